//! The rule type, its text and JSON forms, and the set of rules an emulator checks.

use std::str::FromStr;
use std::sync::Mutex;

use serde_json::{json, Map, Value};

/// When a dropped connection is closed, relative to the request's handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DropMode {
    /// Close before the request reaches its handler: nothing happened server-side.
    #[default]
    Before,
    /// Handle the request, then close without answering: the client cannot tell whether its
    /// (possibly mutating) request took effect.
    After,
}

impl DropMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DropMode::Before => "before",
            DropMode::After => "after",
        }
    }
}

impl FromStr for DropMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "before" => Ok(DropMode::Before),
            "after" => Ok(DropMode::After),
            other => Err(format!(
                "drop mode must be 'before' or 'after', not '{other}'"
            )),
        }
    }
}

/// What a firing rule does to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Answer with this error status (the emulator writes its service's error body), with
    /// `Retry-After: retry_after_secs` when set.
    Status {
        status: u16,
        retry_after_secs: Option<u64>,
    },
    /// Close the connection without an answer.
    Drop(DropMode),
}

/// One fault rule; see the crate doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Upper-case method or `*`.
    pub method: String,
    /// Path pattern (no query); `*` matches any run of characters.
    pub path: String,
    pub action: Action,
    /// Matching requests let through before the rule fires.
    pub offset: u32,
    /// How often the rule fires; `None`: every time.
    pub times: Option<u32>,
}

/// The `Retry-After` a throttling status carries when the rule names none: clients must not
/// be told to come back at once.
const DEFAULT_RETRY_AFTER_SECS: u64 = 1;

fn status_action(status: u16, retry_after_secs: Option<u64>) -> Result<Action, String> {
    if !(400..=599).contains(&status) {
        return Err(format!(
            "a fault status must be an error status (400 to 599), not {status}"
        ));
    }
    let retry_after_secs =
        retry_after_secs.or(matches!(status, 429 | 503).then_some(DEFAULT_RETRY_AFTER_SECS));
    Ok(Action::Status {
        status,
        retry_after_secs,
    })
}

fn split_pattern(pattern: &str) -> Result<(String, String), String> {
    let mut parts = pattern.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(path), None) if path.starts_with('/') || path == "*" => {
            Ok((method.to_ascii_uppercase(), path.to_string()))
        }
        _ => Err(format!(
            "a fault pattern is 'METHOD /path' (wildcard *), e.g. 'POST /subscriptions/*/createRun', not '{pattern}'"
        )),
    }
}

impl FromStr for Rule {
    type Err = String;

    /// `METHOD /path ACTION [retry-after=S] [offset=N] [times=N]` where ACTION is an error
    /// status (`429`, `503`, …), `drop-before` or `drop-after`; e.g.
    /// `POST /subscriptions/*/createRun 503 times=2` or `PUT */deployments/* drop-after times=1`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage = || {
            format!("a fault rule is 'METHOD /path STATUS|drop-before|drop-after [retry-after=S] [offset=N] [times=N]', not '{text}'")
        };
        let tokens: Vec<&str> = text.split_whitespace().collect();
        let [method, path, action, options @ ..] = tokens.as_slice() else {
            return Err(usage());
        };
        let (method, path) = split_pattern(&format!("{method} {path}"))?;
        let (mut retry_after, mut offset, mut times) = (None, 0, None);
        for option in options {
            let (key, value) = option.split_once('=').ok_or_else(usage)?;
            let number = value.parse::<u32>().map_err(|_| {
                format!("fault rule '{text}': {key} must be a whole number, not '{value}'")
            })?;
            match key {
                "retry-after" => retry_after = Some(u64::from(number)),
                "offset" => offset = number,
                "times" => times = Some(number),
                _ => return Err(usage()),
            }
        }
        let action = match *action {
            "drop-before" | "drop-after" if retry_after.is_some() => {
                return Err(format!(
                    "fault rule '{text}': retry-after goes with a status, not a dropped connection"
                ))
            }
            "drop-before" => Action::Drop(DropMode::Before),
            "drop-after" => Action::Drop(DropMode::After),
            status => status_action(status.parse().map_err(|_| usage())?, retry_after)?,
        };
        Ok(Rule {
            method,
            path,
            action,
            offset,
            times,
        })
    }
}

impl Rule {
    /// `{"pattern": "METHOD /path", "status": 503, "retryAfter": 2, "offset": 0, "times": 1}`,
    /// or `"drop": "before" | "after"` instead of `status`.
    pub fn from_json(value: &Value) -> Result<Rule, String> {
        let object = value
            .as_object()
            .ok_or("a fault rule is a JSON object with 'pattern' and 'status' or 'drop'")?;
        let known = ["pattern", "status", "retryAfter", "drop", "offset", "times"];
        if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!(
                "unknown fault rule field '{unknown}'; the fields are {}",
                known.join(", ")
            ));
        }
        let number = |key: &str| -> Result<Option<u64>, String> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| format!("fault rule field '{key}' must be a whole number")),
            }
        };
        let pattern = object
            .get("pattern")
            .and_then(Value::as_str)
            .ok_or("a fault rule needs 'pattern': 'METHOD /path'")?;
        let (method, path) = split_pattern(pattern)?;
        let action =
            match (object.get("drop"), number("status")?) {
                (Some(_), Some(_)) => {
                    return Err("a fault rule has 'status' or 'drop', not both".into())
                }
                (Some(mode), None) => {
                    if number("retryAfter")?.is_some() {
                        return Err("'retryAfter' goes with 'status', not 'drop'".into());
                    }
                    Action::Drop(
                        mode.as_str()
                            .ok_or("'drop' is \"before\" or \"after\"")?
                            .parse()?,
                    )
                }
                (None, Some(status)) => {
                    status_action(u16::try_from(status).unwrap_or(0), number("retryAfter")?)?
                }
                (None, None) => return Err(
                    "a fault rule needs 'status' (e.g. 503) or 'drop' (\"before\" or \"after\")"
                        .into(),
                ),
            };
        let small = |key: &str| -> Result<Option<u32>, String> {
            number(key)?
                .map(|n| {
                    u32::try_from(n).map_err(|_| format!("fault rule field '{key}' is too large"))
                })
                .transpose()
        };
        Ok(Rule {
            method,
            path,
            action,
            offset: small("offset")?.unwrap_or(0),
            times: small("times")?,
        })
    }

    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert(
            "pattern".into(),
            json!(format!("{} {}", self.method, self.path)),
        );
        match self.action {
            Action::Status {
                status,
                retry_after_secs,
            } => {
                out.insert("status".into(), json!(status));
                if let Some(secs) = retry_after_secs {
                    out.insert("retryAfter".into(), json!(secs));
                }
            }
            Action::Drop(mode) => {
                out.insert("drop".into(), json!(mode.as_str()));
            }
        }
        out.insert("offset".into(), json!(self.offset));
        out.insert("times".into(), json!(self.times));
        Value::Object(out)
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        (self.method == "*" || self.method.eq_ignore_ascii_case(method))
            && glob(self.path.as_bytes(), path.as_bytes())
    }
}

/// `*` matches any run of bytes; everything else compares ignoring ASCII case.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative with one backtrack point: the classic linear wildcard match.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p].eq_ignore_ascii_case(&text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The rules an emulator checks, in the order they were added.
#[derive(Debug, Default)]
pub struct Rules {
    rules: Mutex<Vec<Rule>>,
}

impl Rules {
    pub fn new(rules: Vec<Rule>) -> Rules {
        Rules {
            rules: Mutex::new(rules),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, rule: Rule) {
        self.lock().push(rule);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The rules still active, with what is left of their `offset` and `times`.
    pub fn active(&self) -> Vec<Rule> {
        self.lock().clone()
    }

    /// [`Rules::active`] as `GET /emulator/faults` answers it.
    pub fn to_json(&self) -> Value {
        json!({"rules": self.lock().iter().map(Rule::to_json).collect::<Vec<_>>()})
    }

    /// Counts one request against every rule it matches and returns the action of the first
    /// one past its offset; a rule that has fired `times` times is removed.
    pub fn check(&self, method: &str, path: &str) -> Option<Action> {
        let mut rules = self.lock();
        let mut fired = None;
        for rule in rules.iter_mut().filter(|r| r.matches(method, path)) {
            if rule.offset > 0 {
                rule.offset -= 1;
            } else if fired.is_none() {
                fired = Some(rule.action);
                if let Some(times) = &mut rule.times {
                    *times = times.saturating_sub(1);
                }
            }
        }
        rules.retain(|r| r.times != Some(0));
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form() {
        let r: Rule = "post /subscriptions/*/createRun 503 times=2 offset=1"
            .parse()
            .unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.action,
            Action::Status {
                status: 503,
                retry_after_secs: Some(1)
            }
        );
        assert_eq!((r.offset, r.times), (1, Some(2)));
        let r: Rule = "* * drop-after".parse().unwrap();
        assert_eq!(r.action, Action::Drop(DropMode::After));
        let r: Rule = "GET /x 500".parse().unwrap();
        assert_eq!(
            r.action,
            Action::Status {
                status: 500,
                retry_after_secs: None
            }
        );
        for bad in [
            "GET /x",
            "GET x 503",
            "GET /x 200",
            "GET /x 503 times=-1",
            "GET /x drop-sideways",
            "GET /x drop-before retry-after=2",
            "GET /x 503 colour=red",
        ] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn json_form_round_trips() {
        let v = json!({"pattern": "PUT /a/*", "status": 429, "retryAfter": 3, "times": 1});
        let r = Rule::from_json(&v).unwrap();
        assert_eq!(Rule::from_json(&r.to_json()).unwrap(), r, "{}", r.to_json());
        let r = Rule::from_json(&json!({"pattern": "PUT /a", "drop": "before"})).unwrap();
        assert_eq!(r.action, Action::Drop(DropMode::Before));
        for bad in [
            json!({"pattern": "PUT /a"}),
            json!({"pattern": "PUT /a", "status": 503, "drop": "after"}),
            json!({"pattern": "/a", "status": 503}),
            json!({"pattern": "PUT /a", "status": 503, "time": 1}),
            json!({"pattern": "PUT /a", "drop": "later"}),
            json!([]),
        ] {
            assert!(Rule::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(glob(
            b"/subscriptions/*/createRun",
            b"/subscriptions/s/rg/x/CREATERUN"
        ));
        assert!(glob(b"*", b""));
        assert!(glob(b"/a*b*c", b"/aXbYbZc"));
        assert!(!glob(b"/a*b", b"/aXbY"));
        assert!(!glob(b"/a", b"/ab"));
    }

    #[test]
    fn offset_then_times_then_gone() {
        let rules = Rules::new(vec!["POST /run 503 offset=1 times=2".parse().unwrap()]);
        let fired: Vec<bool> = (0..5)
            .map(|_| rules.check("POST", "/run").is_some())
            .collect();
        assert_eq!(fired, [false, true, true, false, false]);
        assert_eq!(rules.to_json()["rules"], json!([]));
        assert!(rules.check("GET", "/run").is_none());
    }

    #[test]
    fn first_rule_past_its_offset_fires_and_every_match_counts() {
        let rules = Rules::new(vec![
            "* /a 429 offset=1".parse().unwrap(),
            "GET /a drop-before times=1".parse().unwrap(),
        ]);
        assert_eq!(
            rules.check("GET", "/a"),
            Some(Action::Drop(DropMode::Before))
        );
        assert!(matches!(
            rules.check("GET", "/a"),
            Some(Action::Status { status: 429, .. })
        ));
        rules.clear();
        assert!(rules.check("GET", "/a").is_none());
    }
}
