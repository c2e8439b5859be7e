//! The `executionParams` input: a JSON object of widget values.
//!
//! Accepted: a JSON object (`{"a": "b"}`); the same with backslash-escaped quotes
//! (`{\"a\":\"b\"}`), which the old task's help told users to write; and a JSON string that
//! holds such an object. Values: strings as they are; numbers and booleans as their JSON text
//! (`5`, `true`), since widgets are strings anyway and the old task let them through; `null`,
//! arrays and objects are refused (there is no one obvious text for them).

use std::collections::BTreeMap;

use serde_json::Value;

/// Why the parameters cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("input 'Notebook parameters' (executionParams) is not valid JSON ({0}); write a JSON object such as {{\"name\": \"value\"}}")]
    NotJson(String),
    #[error("input 'Notebook parameters' (executionParams) must be a JSON object such as {{\"name\": \"value\"}}, not {0}")]
    NotAnObject(&'static str),
    #[error("input 'Notebook parameters' (executionParams): the value of '{key}' is {kind}; notebook parameters are text: write it as a string, e.g. \"{key}\": \"...\"")]
    BadValue { key: String, kind: &'static str },
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses the input; empty means no parameters.
pub fn parse(raw: &str) -> Result<BTreeMap<String, String>, ParamsError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(BTreeMap::new());
    }
    let value = match serde_json::from_str::<Value>(raw) {
        Ok(v) => v,
        Err(first) => {
            // The old help text's form: {\"a\":\"b\"}.
            if raw.contains("\\\"") {
                serde_json::from_str::<Value>(&raw.replace("\\\"", "\""))
                    .map_err(|_| ParamsError::NotJson(first.to_string()))?
            } else {
                return Err(ParamsError::NotJson(first.to_string()));
            }
        }
    };
    // A JSON string holding the object ("{\"a\":\"b\"}" with the outer quotes).
    let value = match value {
        Value::String(inner) if inner.trim_start().starts_with('{') => {
            serde_json::from_str::<Value>(&inner)
                .map_err(|e| ParamsError::NotJson(e.to_string()))?
        }
        other => other,
    };
    let Value::Object(map) = value else {
        return Err(ParamsError::NotAnObject(kind(&value)));
    };
    map.into_iter()
        .map(|(key, value)| match value {
            Value::String(s) => Ok((key, s)),
            Value::Number(n) => Ok((key, n.to_string())),
            Value::Bool(b) => Ok((key, b.to_string())),
            other => Err(ParamsError::BadValue {
                kind: kind(&other),
                key,
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> Vec<(String, String)> {
        parse(raw).unwrap().into_iter().collect()
    }

    #[test]
    fn accepted_forms() {
        let want = vec![("bin_file_name".to_owned(), "data.csv".to_owned())];
        assert_eq!(ok(r#"{"bin_file_name":"data.csv"}"#), want);
        assert_eq!(ok(r#"{\"bin_file_name\":\"data.csv\"}"#), want);
        assert_eq!(ok(r#""{\"bin_file_name\":\"data.csv\"}""#), want);
        assert_eq!(ok("  "), vec![]);
        assert_eq!(ok("{}"), vec![]);
        assert_eq!(
            ok(r#"{"n": 5, "f": 1.5, "b": true, "q": "say \"hi\""}"#),
            vec![
                ("b".to_owned(), "true".to_owned()),
                ("f".to_owned(), "1.5".to_owned()),
                ("n".to_owned(), "5".to_owned()),
                ("q".to_owned(), "say \"hi\"".to_owned()),
            ]
        );
    }

    #[test]
    fn refused_forms_say_why() {
        assert!(matches!(parse("{a: b}"), Err(ParamsError::NotJson(_))));
        assert_eq!(parse("[1]"), Err(ParamsError::NotAnObject("an array")));
        assert_eq!(
            parse(r#"{"a": null}"#),
            Err(ParamsError::BadValue {
                key: "a".into(),
                kind: "null"
            })
        );
        let e = parse(r#"{"a": {"b": "c"}}"#).unwrap_err().to_string();
        assert!(e.contains("'a' is an object"), "{e}");
    }
}
