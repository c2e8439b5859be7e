//! The `overrideParameters` input: the Microsoft task's PowerShell-like grammar, values typed by
//! the template's declared parameter types, and a failure naming the parameter wherever the
//! Microsoft task would silently send something wrong (specs/arm-and-adf.md, overrideParameters).

use serde_json::{Map, Value};

/// One `-name value` pair as written, quotes already removed from a value wrapped whole in
/// double quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOverride {
    pub name: String,
    pub value: String,
}

/// Why `overrideParameters` cannot be used. Messages name the parameter and never show the
/// value of a secure parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("overrideParameters: the {opener} opened at character {position}{context} is never closed; close it, or escape it with a backslash")]
    Unclosed {
        opener: String,
        /// 1-based character position in the trimmed input.
        position: usize,
        /// ` in the value of parameter 'x'`, or empty.
        context: String,
    },
    #[error("overrideParameters: the value '{value}' has no parameter name before it{after}; write `-name value`, and quote values that contain spaces: -name \"two words\"")]
    ValueWithoutName {
        value: String,
        after: String,
        /// The parameter whose value it follows, so that `apply` can hide a secure one's.
        follows: Option<String>,
    },
    #[error("overrideParameters: the value of parameter '{name}' runs over a line break; parameters are separated by spaces, not lines: put the overrides on one line (in YAML, fold them with `>`)")]
    LineBreak { name: String },
    #[error(
        "overrideParameters: a lone '-' at character {position} has no parameter name after it"
    )]
    EmptyName { position: usize },
    #[error("overrideParameters: the template declares no parameter '{name}'{hint}")]
    UnknownParameter { name: String, hint: String },
    #[error("overrideParameters: parameter '{name}' is set to {placeholder}, which would be sent as that text: {fix}")]
    Placeholder {
        name: String,
        placeholder: String,
        fix: String,
    },
    #[error("overrideParameters: parameter '{name}' is of type '{declared}' in the template, but {problem}")]
    TypeMismatch {
        name: String,
        declared: String,
        problem: String,
    },
}

/// What applying the overrides did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The overridden parameters, in input order.
    pub names: Vec<String>,
    /// Things worth a warning (a parameter given twice).
    pub warnings: Vec<String>,
}

/// The service principal of the connection, for `$servicePrincipalId` / `$servicePrincipalKey`
/// values when `addSpnToEnvironment` is on.
#[derive(Debug, Clone, Copy)]
pub struct ServicePrincipal<'a> {
    pub id: &'a str,
    pub key: Option<&'a str>,
}

/// What `$servicePrincipalId` / `$servicePrincipalKey` may stand for. Where the Microsoft task
/// sends the placeholder as text (the option off, or nothing to put there), ours fails.
#[derive(Debug, Clone, Copy)]
pub enum SpnAccess<'a> {
    /// `addSpnToEnvironment` is off.
    Off,
    /// On, with the connection's service principal; `None` for a managed identity.
    On(Option<ServicePrincipal<'a>>),
}

const ID_PLACEHOLDER: &str = "$servicePrincipalId";
const KEY_PLACEHOLDER: &str = "$servicePrincipalKey";

/// The value a placeholder stands for, or why it cannot be given.
fn placeholder(
    name: &str,
    value: &str,
    spn: SpnAccess<'_>,
) -> Result<Option<String>, OverrideError> {
    if value != ID_PLACEHOLDER && value != KEY_PLACEHOLDER {
        return Ok(None);
    }
    let fail = |fix: &str| {
        Err(OverrideError::Placeholder {
            name: name.to_owned(),
            placeholder: value.to_owned(),
            fix: fix.to_owned(),
        })
    };
    match spn {
        SpnAccess::Off => fail("turn on the input 'Access service principal details in override parameters' (addSpnToEnvironment: true)"),
        SpnAccess::On(None) => fail("the service connection uses a managed identity, which has no service principal id or key: pass the value another way (a secret variable, or a Key Vault reference in the parameters file)"),
        SpnAccess::On(Some(spn)) if value == ID_PLACEHOLDER => Ok(Some(spn.id.to_owned())),
        SpnAccess::On(Some(ServicePrincipal { key: Some(key), .. })) => Ok(Some(key.to_owned())),
        SpnAccess::On(Some(_)) => fail("the service connection authenticates without a secret (a certificate or workload identity federation), so there is no key to give: pass the value another way (a secret variable, or a Key Vault reference in the parameters file)"),
    }
}

struct Token {
    text: String,
    /// Held a bracket, quote or escape: such a token is never a name.
    special: bool,
    /// 1-based position of its first character.
    position: usize,
    /// Holds a line break outside any span (after trimming).
    line_break: bool,
}

fn opener_name(c: char) -> &'static str {
    match c {
        '(' => "parenthesis '('",
        '[' => "bracket '['",
        '{' => "brace '{'",
        '"' => "double quote '\"'",
        _ => "single quote '''",
    }
}

struct Unclosed {
    opener: char,
    at: usize,
}

/// Index of the closer of the span opened at `open` (`chars[open]` is the opener).
fn span_end(chars: &[char], open: usize) -> Result<usize, Unclosed> {
    let opener = chars[open];
    let unclosed = Unclosed { opener, at: open };
    match opener {
        '"' | '\'' => {
            let mut i = open + 1;
            while i < chars.len() {
                match chars[i] {
                    '\\' => i += 2,
                    c if c == opener => return Ok(i),
                    _ => i += 1,
                }
            }
            Err(unclosed)
        }
        _ => {
            let closer = match opener {
                '(' => ')',
                '[' => ']',
                _ => '}',
            };
            let mut i = open + 1;
            while i < chars.len() {
                match chars[i] {
                    c if c == closer => return Ok(i),
                    '(' | '[' | '{' | '"' | '\'' => i = span_end(chars, i)? + 1,
                    '\\' => i += 2,
                    _ => i += 1,
                }
            }
            Err(unclosed)
        }
    }
}

/// Splits the (trimmed) input into tokens at spaces and tabs outside spans.
fn tokens(input: &str) -> Result<Vec<Token>, (Unclosed, Vec<Token>)> {
    let chars: Vec<char> = input.trim().chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        let mut special = false;
        let mut breaks = Vec::new();
        while i < chars.len() && chars[i] != ' ' && chars[i] != '\t' {
            match chars[i] {
                '\n' | '\r' => {
                    breaks.push(i);
                    i += 1;
                }
                '(' | '[' | '{' | '"' | '\'' => match span_end(&chars, i) {
                    Ok(end) => {
                        special = true;
                        i = end + 1;
                    }
                    Err(e) => return Err((e, out)),
                },
                '\\' => {
                    special = true;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        let end = i.min(chars.len());
        let raw: String = chars[start..end].iter().collect();
        // A newline is not a separator, but each token is trimmed.
        let text = raw.trim();
        if !text.is_empty() {
            let lead = raw[..raw.len() - raw.trim_start().len()].chars().count();
            let trail = raw.trim_end().chars().count();
            out.push(Token {
                text: text.to_owned(),
                special,
                position: start + lead + 1,
                line_break: breaks
                    .iter()
                    .any(|b| *b >= start + lead && *b < start + trail),
            });
        }
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            i += 1;
        }
    }
    Ok(out)
}

/// JavaScript's `!isNaN(Number(text))` for text starting with `-`: such a token is a
/// negative number, not a name.
fn is_js_number(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('-') else {
        return false;
    };
    let rest = rest.trim();
    if rest == "Infinity" {
        return true;
    }
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (digits(a) || a.is_empty())
                && (digits(b) || b.is_empty())
                && !(a.is_empty() && b.is_empty())
        }
        None => digits(mantissa),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => digits(e.strip_prefix(['+', '-']).unwrap_or(e)),
    };
    mantissa_ok && exponent_ok
}

/// A value wrapped whole in double quotes loses them; single quotes stay.
fn unquote(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() >= 2 && chars[0] == '"' {
        if let Ok(end) = span_end(&chars, 0) {
            if end == chars.len() - 1 {
                return chars[1..end].iter().collect();
            }
        }
    }
    value.to_owned()
}

/// Parses `overrideParameters` into name/value pairs (the grammar only; no typing).
pub fn parse(input: &str) -> Result<Vec<RawOverride>, OverrideError> {
    let toks = match tokens(input) {
        Ok(t) => t,
        Err((unclosed, before)) => {
            // Name the parameter whose value holds the unclosed span, when there is one.
            let context = before
                .last()
                .filter(|t| t.text.starts_with('-') && !t.special && !is_js_number(&t.text))
                .map(|t| format!(" in the value of parameter '{}'", &t.text[1..]))
                .unwrap_or_default();
            return Err(OverrideError::Unclosed {
                opener: opener_name(unclosed.opener).to_owned(),
                position: unclosed.at + 1,
                context,
            });
        }
    };
    let mut out: Vec<RawOverride> = Vec::new();
    let mut pending: Option<String> = None;
    for tok in toks {
        let is_name = tok.text.starts_with('-') && !tok.special && !is_js_number(&tok.text);
        if is_name {
            let name = tok.text[1..].to_owned();
            if name.is_empty() {
                return Err(OverrideError::EmptyName {
                    position: tok.position,
                });
            }
            if let Some(previous) = pending.replace(name) {
                out.push(RawOverride {
                    name: previous,
                    value: String::new(),
                });
            }
        } else {
            match pending.take() {
                Some(name) if tok.line_break => return Err(OverrideError::LineBreak { name }),
                Some(name) => out.push(RawOverride {
                    name,
                    value: unquote(&tok.text),
                }),
                None => {
                    let after = out
                        .last()
                        .map(|o| format!(" (it follows the value of parameter '{}')", o.name))
                        .unwrap_or_default();
                    return Err(OverrideError::ValueWithoutName {
                        value: tok.text,
                        after,
                        follows: out.last().map(|o| o.name.clone()),
                    });
                }
            }
        }
    }
    if let Some(name) = pending {
        out.push(RawOverride {
            name,
            value: String::new(),
        });
    }
    Ok(out)
}

fn declared_type(template: &Value, name: &str) -> Option<String> {
    let declaration = template.get("parameters")?.get(name)?;
    Some(
        declaration
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    )
}

fn unknown(template: &Value, name: &str) -> OverrideError {
    let declared: Vec<&String> = template
        .get("parameters")
        .and_then(Value::as_object)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    let hint = match declared.iter().find(|d| d.eq_ignore_ascii_case(name)) {
        Some(close) => format!("; did you mean '{close}'? Parameter names are case-sensitive here"),
        None if declared.is_empty() => "; it declares no parameters at all".to_owned(),
        None => format!(
            "; it declares: {}",
            declared
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    OverrideError::UnknownParameter {
        name: name.to_owned(),
        hint,
    }
}

/// Why `value` is not the body of a JSON string, in words a user can act on.
fn string_problem(value: &str) -> String {
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => return "it contains an unescaped double quote: write \\\" for a quote inside the value".into(),
            '\\' => match chars.next() {
                Some('"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't') => {}
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    if hex.len() != 4 || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                        return "it contains an invalid \\u escape (four hex digits must follow)".into();
                    }
                }
                Some(other) => {
                    return format!("it contains the escape \\{other}, which is not a JSON escape: write \\\\ for a backslash (e.g. C:\\\\path)")
                }
                None => return "it ends with a lone backslash: write \\\\ for a backslash".into(),
            },
            c if (c as u32) < 0x20 => {
                return if c == '\n' || c == '\r' {
                    "its value runs over a line break: parameters are separated by spaces, not lines; put the overrides on one line (in YAML, fold them with `>`), or write \\n for a newline inside a value".into()
                } else {
                    format!("it contains the control character U+{:04X}; write it as a \\u escape", c as u32)
                };
            }
            _ => {}
        }
    }
    "it is not a valid JSON string body".into()
}

/// Types `value` by the template's declared type (the Microsoft task's `castToType`, with a
/// check that the JSON value really is of that type).
fn typed(name: &str, declared: &str, value: &str) -> Result<Value, OverrideError> {
    let secure = declared.to_ascii_lowercase().starts_with("secure");
    let shown = if secure {
        "the value".to_owned()
    } else {
        format!("the value '{value}'")
    };
    let mismatch = |problem: String| OverrideError::TypeMismatch {
        name: name.to_owned(),
        declared: declared.to_owned(),
        problem,
    };
    let lower = declared.to_ascii_lowercase();
    match lower.as_str() {
        "string" | "securestring" => serde_json::from_str::<String>(&format!("\"{value}\""))
            .map(Value::String)
            .map_err(|_| mismatch(format!("{shown} cannot be read: {}", string_problem(value)))),
        "int" | "bool" | "array" | "object" | "secureobject" => {
            if value.is_empty() {
                return Err(mismatch(
                    "no value was given (the next token is another parameter name)".into(),
                ));
            }
            let parsed: Value = serde_json::from_str(value).map_err(|e| {
                let expected = match lower.as_str() {
                    "int" => "a whole number, e.g. 5".to_owned(),
                    "bool" => "true or false, in lower case".to_owned(),
                    "array" => "a JSON array, e.g. [\"a\",\"b\"]".to_owned(),
                    _ => "a JSON object, e.g. {\"key\":\"value\"}".to_owned(),
                };
                mismatch(format!(
                    "{shown} is not valid JSON ({e}); expected {expected}"
                ))
            })?;
            let fits = match lower.as_str() {
                "int" => parsed.is_i64() || parsed.is_u64(),
                "bool" => parsed.is_boolean(),
                "array" => parsed.is_array(),
                _ => parsed.is_object(),
            };
            if fits {
                Ok(parsed)
            } else {
                Err(mismatch(format!(
                    "{shown} is a JSON {}",
                    json_kind(&parsed)
                )))
            }
        }
        // A type the Microsoft task does not know is sent as the raw string.
        _ => Ok(Value::String(value.to_owned())),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "non-integer number",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Keeps only `value` or `reference` of each entry of a parameters file's `parameters`
/// object, as the Microsoft task does (Key Vault references pass through). Entries with
/// neither are refused earlier ([`crate::files::parameters_object`]).
pub fn sanitize_parameters(parameters: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, entry) in parameters {
        if let Some(v) = entry.get("value") {
            out.insert(name.clone(), serde_json::json!({ "value": v }));
        } else if let Some(r) = entry.get("reference") {
            out.insert(name.clone(), serde_json::json!({ "reference": r }));
        }
    }
    out
}

/// Applies `overrideParameters` to `parameters` (already sanitized): each override replaces
/// the whole entry with `{value}`, typed by `template`'s declared parameter type.
pub fn apply(
    input: &str,
    template: &Value,
    parameters: &mut Map<String, Value>,
    spn: SpnAccess<'_>,
) -> Result<Applied, OverrideError> {
    let mut applied = Applied::default();
    // A stray token after a secure parameter is most likely part of its value (an unquoted
    // secret with a space): never show it.
    let parsed = parse(input).map_err(|e| match e {
        OverrideError::ValueWithoutName {
            after,
            follows: Some(follows),
            ..
        } if declared_type(template, &follows)
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("secure")) =>
        {
            OverrideError::ValueWithoutName {
                value: "(hidden)".into(),
                after,
                follows: Some(follows),
            }
        }
        other => other,
    })?;
    for raw in parsed {
        let declared =
            declared_type(template, &raw.name).ok_or_else(|| unknown(template, &raw.name))?;
        let value = placeholder(&raw.name, &raw.value, spn)?.unwrap_or(raw.value);
        let typed = typed(&raw.name, &declared, &value)?;
        if applied.names.contains(&raw.name) {
            applied.warnings.push(format!(
                "overrideParameters sets '{}' more than once; the last value is used",
                raw.name
            ));
        } else {
            applied.names.push(raw.name.clone());
        }
        parameters.insert(raw.name, serde_json::json!({ "value": typed }));
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template() -> Value {
        json!({"parameters": {
            "s": {"type": "string"},
            "i": {"type": "int"},
            "b": {"type": "bool"},
            "a": {"type": "array"},
            "o": {"type": "object"},
            "p": {"type": "securestring"},
            "storageName": {"type": "String"},
        }})
    }

    fn run(input: &str) -> Result<Map<String, Value>, OverrideError> {
        let mut params = Map::new();
        apply(input, &template(), &mut params, SpnAccess::Off)?;
        Ok(params
            .into_iter()
            .map(|(k, v)| (k, v["value"].clone()))
            .collect())
    }

    fn sent(input: &str) -> Value {
        Value::Object(run(input).unwrap())
    }

    #[test]
    fn spec_vector_plain_values() {
        assert_eq!(
            sent("-s hello -i 5 -b true"),
            json!({"s": "hello", "i": 5, "b": true})
        );
    }

    #[test]
    fn spec_vector_double_quotes_are_removed() {
        assert_eq!(
            sent(r#"-s "value with spaces" -i "5""#),
            json!({"s": "value with spaces", "i": 5})
        );
    }

    #[test]
    fn spec_vector_single_quotes_stay() {
        assert_eq!(sent("-s 'single quoted'"), json!({"s": "'single quoted'"}));
    }

    #[test]
    fn spec_vector_array_and_object() {
        assert_eq!(
            sent(r#"-a ["a","b"] -o {"k":"v"}"#),
            json!({"a": ["a", "b"], "o": {"k": "v"}})
        );
    }

    #[test]
    fn spec_vector_quoted_bool() {
        assert_eq!(sent(r#"-b "true""#), json!({"b": true}));
    }

    #[test]
    fn spec_vector_json_escapes_in_strings() {
        assert_eq!(sent(r#"-s "line\nbreak""#), json!({"s": "line\nbreak"}));
        assert_eq!(sent(r#"-s "say \"hi\"""#), json!({"s": "say \"hi\""}));
    }

    #[test]
    fn grammar_details() {
        // Tabs and runs of spaces separate; the whole input is trimmed.
        assert_eq!(sent("  -s\t\tx   -i 7  "), json!({"s": "x", "i": 7}));
        // A negative number is a value, not a name.
        assert_eq!(sent("-i -5"), json!({"i": -5}));
        // Two names in a row: the first gets "".
        assert_eq!(sent("-s -i 1"), json!({"s": "", "i": 1}));
        // Brackets nest, and quotes inside them may hold closers and spaces.
        assert_eq!(
            sent(r#"-o {"k": [1, {"x": "] }"}], "s p": "v"}"#),
            json!({"o": {"k": [1, {"x": "] }"}], "s p": "v"}})
        );
        // A quoted span inside a bare token keeps the token whole.
        let e = run(r#"-s a"b c"d"#).unwrap_err().to_string();
        assert!(e.contains("unescaped double quote"), "{e}");
        // The seed's override.
        let t = json!({"parameters": {"data-ingestion-pipeline_properties_variables_data_file_name_defaultValue": {"type": "string"}}});
        let mut params = Map::new();
        apply(
            r#"-data-ingestion-pipeline_properties_variables_data_file_name_defaultValue "driver_prediction_train.csv""#,
            &t,
            &mut params,
            SpnAccess::Off,
        )
        .unwrap();
        assert_eq!(
            params["data-ingestion-pipeline_properties_variables_data_file_name_defaultValue"],
            json!({"value": "driver_prediction_train.csv"})
        );
    }

    #[test]
    fn parse_keeps_tokens_and_positions() {
        let parsed = parse(r#"-a 1 -b "x y" -c"#).unwrap();
        assert_eq!(
            parsed,
            vec![
                RawOverride {
                    name: "a".into(),
                    value: "1".into()
                },
                RawOverride {
                    name: "b".into(),
                    value: "x y".into()
                },
                RawOverride {
                    name: "c".into(),
                    value: "".into()
                },
            ]
        );
        assert!(is_js_number("-5"));
        assert!(is_js_number("-1.5e3"));
        assert!(is_js_number("-.5"));
        assert!(is_js_number("-Infinity"));
        assert!(!is_js_number("-name"));
        assert!(!is_js_number("-"));
        assert!(!is_js_number("-e5"));
    }

    #[test]
    fn type_mismatch_names_the_parameter() {
        let e = run("-b True").unwrap_err().to_string();
        assert!(e.contains("parameter 'b' is of type 'bool'"), "{e}");
        assert!(e.contains("'True'") && e.contains("true or false"), "{e}");
        let e = run("-i 5.5").unwrap_err().to_string();
        assert!(e.contains("'i'") && e.contains("non-integer"), "{e}");
        let e = run("-i abc").unwrap_err().to_string();
        assert!(e.contains("'i'") && e.contains("whole number"), "{e}");
        let e = run("-o [1]").unwrap_err().to_string();
        assert!(e.contains("'o'") && e.contains("JSON array"), "{e}");
        // `\t` is a JSON escape: C:\temp holds a tab, as in the Microsoft task.
        assert_eq!(sent(r"-s C:\temp"), json!({"s": "C:\temp"}));
        let e = run("-i -s x").unwrap_err().to_string();
        assert!(e.contains("'i'") && e.contains("no value"), "{e}");
    }

    #[test]
    fn windows_path_gets_an_actionable_message() {
        let e = run(r"-s C:\path").unwrap_err().to_string();
        assert!(e.contains(r"\p") && e.contains(r"\\"), "{e}");
        assert_eq!(sent(r"-s C:\\path"), json!({"s": r"C:\path"}));
    }

    #[test]
    fn secure_values_are_not_shown() {
        let e = run("-p \"bad\"quote\"").unwrap_err().to_string();
        assert!(e.contains("'p'"), "{e}");
        assert!(!e.contains("bad"), "{e}");
    }

    #[test]
    fn newline_inside_a_value_is_explained() {
        let e = run("-s hello\n-i 5").unwrap_err().to_string();
        assert!(e.contains("'s'") && e.contains("line break"), "{e}");
        let e = run("-i 5\r\n-s x").unwrap_err().to_string();
        assert!(e.contains("'i'") && e.contains("line break"), "{e}");
        // Line breaks inside brackets, and around tokens, are fine.
        assert_eq!(
            sent("-o {\n  \"k\": 1\n}\n -s x\n"),
            json!({"o": {"k": 1}, "s": "x"})
        );
    }

    #[test]
    fn unknown_parameter_is_named_with_a_hint() {
        let e = run("-storagename x").unwrap_err().to_string();
        assert!(
            e.contains("'storagename'") && e.contains("did you mean 'storageName'"),
            "{e}"
        );
        let e = run("-nope x").unwrap_err().to_string();
        assert!(
            e.contains("'nope'") && e.contains("declares: a, b, i, o, p, s, storageName"),
            "{e}"
        );
    }

    #[test]
    fn unclosed_spans_fail() {
        let e = run(r#"-s "open -i 5"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "overrideParameters: the double quote '\"' opened at character 4 in the value of parameter 's' is never closed; close it, or escape it with a backslash"
        );
        let e = run(r#"-a ["a", "b""#).unwrap_err().to_string();
        assert!(
            e.contains("bracket '['") && e.contains("parameter 'a'"),
            "{e}"
        );
        let e = run("-o {\"k\": 1").unwrap_err().to_string();
        assert!(e.contains("brace '{'"), "{e}");
        let e = run("-s 'x").unwrap_err().to_string();
        assert!(e.contains("single quote"), "{e}");
    }

    #[test]
    fn values_without_names_fail() {
        let e = run("-s a b").unwrap_err().to_string();
        assert!(
            e.contains("the value 'b' has no parameter name") && e.contains("parameter 's'"),
            "{e}"
        );
        let e = run("hello -s a").unwrap_err().to_string();
        assert!(e.contains("'hello'"), "{e}");
        let e = run("-s a - b").unwrap_err().to_string();
        assert!(e.contains("lone '-'"), "{e}");
    }

    #[test]
    fn overrides_replace_whole_entries_and_references_pass_through() {
        let file = json!({
            "s": {"value": "from-file", "metadata": {"x": 1}},
            "p": {"reference": {"keyVault": {"id": "/subscriptions/x/vault"}, "secretName": "pw"}},
            "i": {"reference": {"keyVault": {"id": "/v"}, "secretName": "n"}},
            "junk": {"metadata": 1},
        });
        let mut params = sanitize_parameters(file.as_object().unwrap());
        assert_eq!(params["s"], json!({"value": "from-file"}));
        assert!(!params.contains_key("junk"));
        let applied = apply("-i 3 -s a -s b", &template(), &mut params, SpnAccess::Off).unwrap();
        assert_eq!(params["i"], json!({"value": 3}));
        assert_eq!(params["s"], json!({"value": "b"}));
        assert_eq!(params["p"]["reference"]["secretName"], json!("pw"));
        assert_eq!(applied.names, vec!["i".to_string(), "s".to_string()]);
        assert_eq!(applied.warnings.len(), 1);
    }

    #[test]
    fn service_principal_placeholders() {
        let mut params = Map::new();
        let spn = ServicePrincipal {
            id: "app-id",
            key: Some("app-key"),
        };
        apply(
            "-s $servicePrincipalId -p $servicePrincipalKey",
            &template(),
            &mut params,
            SpnAccess::On(Some(spn)),
        )
        .unwrap();
        assert_eq!(params["s"], json!({"value": "app-id"}));
        assert_eq!(params["p"], json!({"value": "app-key"}));
        // Never sent as text: the option off, a managed identity, no secret.
        let fails = |input: &str, spn: SpnAccess<'_>| {
            apply(input, &template(), &mut Map::new(), spn)
                .unwrap_err()
                .to_string()
        };
        let e = fails("-s $servicePrincipalId", SpnAccess::Off);
        assert!(
            e.contains("parameter 's' is set to $servicePrincipalId")
                && e.contains("(addSpnToEnvironment: true)"),
            "{e}"
        );
        assert!(fails("-p $servicePrincipalKey", SpnAccess::On(None)).contains("managed identity"));
        let no_key = ServicePrincipal {
            id: "app-id",
            key: None,
        };
        assert!(
            fails("-p $servicePrincipalKey", SpnAccess::On(Some(no_key)))
                .contains("no key to give")
        );
    }

    #[test]
    fn empty_input_changes_nothing() {
        assert_eq!(sent("   "), json!({}));
    }
}
