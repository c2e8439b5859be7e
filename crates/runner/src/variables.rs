//! A job's variables (names case-insensitive, as on the service), `$(name)` macro expansion
//! exactly once, and the secret masker.

use std::collections::BTreeMap;

pub use task_sdk::agent::env_name;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    /// The name as first written (VSTS_PUBLIC_VARIABLES lists these).
    pub name: String,
    pub value: String,
    pub secret: bool,
    pub read_only: bool,
}

/// Why a variable was not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("variable '{0}' is read-only and keeps its value")]
pub struct ReadOnly(pub String);

#[derive(Debug, Clone, Default)]
pub struct Variables {
    vars: BTreeMap<String, Var>,
}

impl Variables {
    pub fn new() -> Variables {
        Variables::default()
    }

    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.get(&name.to_ascii_lowercase())
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).map(|v| v.value.as_str())
    }

    /// Sets a variable. A read-only variable keeps its value; a secret stays secret.
    pub fn set(
        &mut self,
        name: &str,
        value: &str,
        secret: bool,
        read_only: bool,
    ) -> Result<(), ReadOnly> {
        let key = name.to_ascii_lowercase();
        if let Some(existing) = self.vars.get(&key) {
            if existing.read_only {
                return Err(ReadOnly(existing.name.clone()));
            }
        }
        let was_secret = self.vars.get(&key).is_some_and(|v| v.secret);
        self.vars.insert(
            key,
            Var {
                name: name.to_owned(),
                value: value.to_owned(),
                secret: secret || was_secret,
                read_only,
            },
        );
        Ok(())
    }

    /// Sets a variable whatever it held before (scopes overriding outer scopes).
    pub fn set_force(&mut self, name: &str, value: &str, secret: bool) {
        self.vars.insert(
            name.to_ascii_lowercase(),
            Var {
                name: name.to_owned(),
                value: value.to_owned(),
                secret,
                read_only: false,
            },
        );
    }

    pub fn iter(&self) -> impl Iterator<Item = &Var> {
        self.vars.values()
    }

    /// Expands `$(name)` macros once, as the agent does: a known name is replaced by its
    /// value (which is not expanded again); an unknown one stays as written.
    pub fn expand(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("$(") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find(')') {
                Some(end) => {
                    let name = &after[..end];
                    match self.get(name.trim()) {
                        Some(var) if !name.is_empty() => {
                            out.push_str(&var.value);
                            rest = &after[end + 1..];
                        }
                        _ => {
                            out.push_str("$(");
                            rest = after;
                        }
                    }
                }
                None => {
                    out.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Expands variables whose values refer to other variables, as the agent does when a job
    /// starts (bounded, so that a cycle ends).
    pub fn expand_values(&mut self) {
        for _ in 0..10 {
            let snapshot = self.clone();
            let mut changed = false;
            for var in self.vars.values_mut() {
                if var.value.contains("$(") {
                    let expanded = snapshot.expand(&var.value);
                    if expanded != var.value {
                        var.value = expanded;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }
}

/// Replaces secrets by `***` in everything printed, longest first; also their JSON-escaped
/// and URL-encoded forms, which the agent's masker covers too.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    secrets: Vec<String>,
}

fn json_escaped(value: &str) -> String {
    let quoted = serde_json::Value::String(value.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

fn url_encoded(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Masker {
    pub fn add(&mut self, value: &str) {
        let mut pieces = vec![value.to_owned()];
        if value.contains(['\n', '\r']) {
            pieces.extend(value.split(['\n', '\r']).map(str::to_owned));
        }
        for piece in pieces {
            let piece = piece.trim().to_owned();
            if piece.is_empty() {
                continue;
            }
            // The logging-command form too (`%` → `%AZP25`), as the raw line carries it.
            let command_escaped = piece.replace('%', "%AZP25");
            for form in [
                json_escaped(&piece),
                url_encoded(&piece),
                command_escaped,
                piece,
            ] {
                if !self.secrets.contains(&form) {
                    self.secrets.push(form);
                }
            }
        }
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_once_and_keeps_unknown_macros() {
        let mut v = Variables::new();
        v.set("a.b", "x$(c)", false, false).unwrap();
        v.set("c", "C", false, false).unwrap();
        assert_eq!(
            v.expand("[$(A.B)] $(nope) $(c) $( $(c"),
            "[x$(c)] $(nope) C $( $(c"
        );
    }

    #[test]
    fn read_only_keeps_value_and_secret_sticks() {
        let mut v = Variables::new();
        v.set("r", "1", false, true).unwrap();
        assert!(v.set("R", "2", false, false).is_err());
        assert_eq!(v.value("r"), Some("1"));
        v.set("s", "1", true, false).unwrap();
        v.set("s", "2", false, false).unwrap();
        assert!(v.get("s").unwrap().secret);
    }

    #[test]
    fn masks_forms_of_a_secret() {
        let mut m = Masker::default();
        m.add("p@ss\"word");
        assert_eq!(m.mask("a p@ss\"word b"), "a *** b");
        assert_eq!(m.mask("{\"k\":\"p@ss\\\"word\"}"), "{\"k\":\"***\"}");
        assert_eq!(m.mask("u=p%40ss%22word"), "u=***");
    }

    #[test]
    fn expand_values_resolves_references() {
        let mut v = Variables::new();
        v.set("a", "$(b)/x", false, false).unwrap();
        v.set("b", "B", false, false).unwrap();
        v.expand_values();
        assert_eq!(v.value("a"), Some("B/x"));
    }
}
