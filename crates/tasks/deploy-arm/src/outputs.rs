//! `deploymentOutputs`: the deployment's outputs as pipeline variables, in the Microsoft task's
//! format: every leaf as `<prefix>.<path>` (array indexes as keys), JSON-encoded unless
//! `useWithoutJSON`, and `<prefix>` holding the whole outputs object as JSON.

use serde_json::Value;

/// One variable to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputVariable {
    pub name: String,
    pub value: String,
    pub secret: bool,
}

fn is_secure(output: &Value) -> bool {
    output
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("secure"))
}

fn leaf_text(value: &Value, use_without_json: bool, secret: bool) -> String {
    match value {
        Value::String(s) if use_without_json && !(secret && s.contains(['\n', '\r'])) => s.clone(),
        // A multi-line secret cannot be a variable; its JSON form is one line.
        other => other.to_string(),
    }
}

fn leaves(
    path: &str,
    value: &Value,
    use_without_json: bool,
    secret: bool,
    out: &mut Vec<OutputVariable>,
) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                leaves(&format!("{path}.{k}"), v, use_without_json, secret, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                leaves(&format!("{path}.{i}"), v, use_without_json, secret, out);
            }
        }
        leaf => out.push(OutputVariable {
            name: path.to_owned(),
            value: leaf_text(leaf, use_without_json, secret),
            secret,
        }),
    }
}

/// The variables for `outputs` (the deployment's `properties.outputs`). Values of secure
/// outputs are secrets, and so is the whole-object variable when it holds one.
pub fn output_variables(
    prefix: &str,
    outputs: &Value,
    use_without_json: bool,
) -> Vec<OutputVariable> {
    let mut out = Vec::new();
    let mut any_secret = false;
    match outputs {
        Value::Object(map) => {
            for (name, output) in map {
                let secret = is_secure(output);
                let before = out.len();
                leaves(
                    &format!("{prefix}.{name}"),
                    output,
                    use_without_json,
                    secret,
                    &mut out,
                );
                // Only a secure output that really carries a value makes the whole secret
                // (ARM normally leaves secure values out of the response).
                if secret
                    && out[before..]
                        .iter()
                        .any(|v| v.name.ends_with(".value") || v.name.contains(".value."))
                {
                    any_secret = true;
                }
            }
        }
        Value::Null => return out,
        other => leaves(prefix, other, use_without_json, false, &mut out),
    }
    out.push(OutputVariable {
        name: prefix.to_owned(),
        value: outputs.to_string(),
        secret: any_secret,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn find<'a>(vars: &'a [OutputVariable], name: &str) -> &'a OutputVariable {
        vars.iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no {name} in {vars:?}"))
    }

    #[test]
    fn microsoft_format() {
        let outputs = json!({
            "storageName": {"type": "String", "value": "abc"},
            "count": {"type": "Int", "value": 3},
            "list": {"type": "Array", "value": ["x", {"k": true}]},
        });
        let vars = output_variables("out", &outputs, false);
        assert_eq!(find(&vars, "out.storageName.value").value, "\"abc\"");
        assert_eq!(find(&vars, "out.storageName.type").value, "\"String\"");
        assert_eq!(find(&vars, "out.count.value").value, "3");
        assert_eq!(find(&vars, "out.list.value.0").value, "\"x\"");
        assert_eq!(find(&vars, "out.list.value.1.k").value, "true");
        let whole = find(&vars, "out");
        assert_eq!(
            serde_json::from_str::<Value>(&whole.value).unwrap(),
            outputs
        );
        assert!(vars.iter().all(|v| !v.secret));
        assert_eq!(vars.len(), 8);
    }

    #[test]
    fn without_json() {
        let outputs =
            json!({"name": {"type": "String", "value": "abc"}, "n": {"type": "Int", "value": 1}});
        let vars = output_variables("o", &outputs, true);
        assert_eq!(find(&vars, "o.name.value").value, "abc");
        assert_eq!(find(&vars, "o.n.value").value, "1");
    }

    #[test]
    fn secure_outputs_are_secrets() {
        let outputs = json!({
            "key": {"type": "SecureString", "value": "s3cret"},
            "plain": {"type": "String", "value": "p"},
        });
        let vars = output_variables("out", &outputs, true);
        assert!(find(&vars, "out.key.value").secret);
        assert!(find(&vars, "out.key.type").secret);
        assert!(!find(&vars, "out.plain.value").secret);
        assert!(find(&vars, "out").secret);
        // A secure output without its value (as ARM returns it) does not hide the rest.
        let vars = output_variables(
            "out",
            &json!({"key": {"type": "SecureString"}, "p": {"type": "String", "value": "v"}}),
            false,
        );
        assert!(!find(&vars, "out").secret);
    }

    #[test]
    fn multi_line_secret_stays_one_line() {
        let outputs = json!({"k": {"type": "SecureString", "value": "a\nb"}});
        let vars = output_variables("o", &outputs, true);
        assert_eq!(find(&vars, "o.k.value").value, "\"a\\nb\"");
    }

    #[test]
    fn empty_outputs() {
        let vars = output_variables("o", &json!({}), false);
        assert_eq!(
            vars,
            vec![OutputVariable {
                name: "o".into(),
                value: "{}".into(),
                secret: false
            }]
        );
        assert!(output_variables("o", &Value::Null, false).is_empty());
    }
}
