//! The local vars file (`--vars`): what the service would hold outside the YAML. Variables
//! and secrets defined in the project, variable groups, service connections, and what to do
//! with tasks this machine does not have.
//!
//! ```yaml
//! variables:            # like pipeline variables set in the web UI
//!   RESOURCE_GROUP: rg-qa
//! secrets:              # secret variables
//!   API_KEY: s3cret
//! groups:               # variable groups, for `- group: name`
//!   devops-ds-qa-vg:
//!     DATA_FILE_NAME: train.csv
//!     STORAGE_KEY: { value: abc, secret: true }
//! endpoints:            # service connections, by id
//!   0a6c1e4c-0000-4000-8000-000000000001:
//!     name: my-azure
//!     url: https://management.azure.com/
//!     scheme: ServicePrincipal
//!     auth: { serviceprincipalid: …, serviceprincipalkey: …, tenantid: … }
//!     data: { subscriptionId: … }
//! tasks:                # tasks azp-local does not have
//!   UsePythonVersion@0: skip
//!   PublishTestResults@2: echo "results in $INPUT_TESTRESULTSFILES"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::endpoints::Endpoint;
use crate::pipeline::Problem;
use crate::yaml::{self, Node};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarValue {
    pub value: String,
    pub secret: bool,
}

#[derive(Debug, Clone, Default)]
pub struct VarsFile {
    pub variables: Vec<(String, VarValue)>,
    pub groups: BTreeMap<String, Vec<(String, VarValue)>>,
    pub endpoints: Vec<Endpoint>,
    /// Lower-case task reference → local command (`None`: skip quietly).
    pub tasks: BTreeMap<String, Option<String>>,
}

fn to_json(node: &Node) -> Value {
    if let Some(map) = node.as_map() {
        Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), to_json(v)))
                .collect(),
        )
    } else if let Some(items) = node.as_seq() {
        Value::Array(items.iter().map(to_json).collect())
    } else if node.is_null() {
        Value::Null
    } else {
        Value::String(node.as_str().unwrap_or_default().to_owned())
    }
}

fn var_list(node: &Node, secret: bool, problems: &mut Vec<Problem>) -> Vec<(String, VarValue)> {
    let mut out = Vec::new();
    let Some(map) = node.as_map() else {
        if !node.is_null() {
            problems.push(Problem {
                pos: node.pos,
                message: "expected a mapping of NAME: value".into(),
            });
        }
        return out;
    };
    for (k, v) in map {
        let name = k.as_str().unwrap_or_default().to_owned();
        let value = if let Some(text) = v.as_str() {
            Some(VarValue {
                value: if v.is_null() {
                    String::new()
                } else {
                    text.to_owned()
                },
                secret,
            })
        } else if v.as_map().is_some() {
            let value = v.get("value").and_then(Node::as_str).map(str::to_owned);
            let is_secret = v
                .get("secret")
                .and_then(Node::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case("true"));
            value.map(|value| VarValue {
                value,
                secret: secret || is_secret,
            })
        } else {
            None
        };
        match value {
            Some(value) => out.push((name, value)),
            None => problems.push(Problem {
                pos: v.pos,
                message: format!("variable '{name}' must be a value or {{value: …, secret: true}}"),
            }),
        }
    }
    out
}

impl VarsFile {
    pub fn load(path: &Path) -> Result<VarsFile, Vec<Problem>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![Problem {
                pos: Default::default(),
                message: format!("cannot read: {e}"),
            }]
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<VarsFile, Vec<Problem>> {
        let root = yaml::parse(text).map_err(|e| {
            vec![Problem {
                pos: e.pos,
                message: format!("YAML syntax: {}", e.message),
            }]
        })?;
        let mut problems = Vec::new();
        let mut file = VarsFile::default();
        if root.is_null() {
            return Ok(file);
        }
        let Some(map) = root.as_map() else {
            return Err(vec![Problem {
                pos: root.pos,
                message: "the vars file must be a mapping".into(),
            }]);
        };
        for (k, v) in map {
            match k.as_str().unwrap_or_default() {
                "variables" => file.variables.extend(var_list(v, false, &mut problems)),
                "secrets" => file.variables.extend(var_list(v, true, &mut problems)),
                "groups" => {
                    for (g, vars) in v.as_map().unwrap_or_default() {
                        let name = g.as_str().unwrap_or_default().to_owned();
                        let list = var_list(vars, false, &mut problems);
                        file.groups.insert(name, list);
                    }
                }
                "endpoints" => {
                    for (id, def) in v.as_map().unwrap_or_default() {
                        let id = id.as_str().unwrap_or_default();
                        match Endpoint::from_json(id, &to_json(def)) {
                            Ok(e) => file.endpoints.push(e),
                            Err(message) => problems.push(Problem { pos: def.pos, message }),
                        }
                    }
                }
                "tasks" => {
                    for (task, what) in v.as_map().unwrap_or_default() {
                        let reference = task.as_str().unwrap_or_default().to_ascii_lowercase();
                        let command = match what.as_str() {
                            Some(s) if s.trim().eq_ignore_ascii_case("skip") || s.trim().is_empty() => None,
                            Some(s) => Some(s.to_owned()),
                            None => {
                                problems.push(Problem { pos: what.pos, message: "a task mapping is 'skip' or a bash command".into() });
                                None
                            }
                        };
                        file.tasks.insert(reference, command);
                    }
                }
                other => problems.push(Problem {
                    pos: k.pos,
                    message: format!("unknown key '{other}' in the vars file (expected variables, secrets, groups, endpoints, tasks)"),
                }),
            }
        }
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_section() {
        let f = VarsFile::parse(
            "variables:\n  A: 1\nsecrets:\n  S: x\ngroups:\n  g:\n    B: two\n    K: {value: k, secret: true}\nendpoints:\n  id1:\n    url: https://u/\n    scheme: ServicePrincipal\n    auth: {serviceprincipalkey: p}\ntasks:\n  UsePythonVersion@0: skip\n  PublishTestResults@2: echo hi\n",
        )
        .unwrap();
        assert_eq!(
            f.variables[0],
            (
                "A".into(),
                VarValue {
                    value: "1".into(),
                    secret: false
                }
            )
        );
        assert!(f.variables[1].1.secret);
        assert!(f.groups["g"][1].1.secret);
        assert_eq!(f.endpoints[0].auth["serviceprincipalkey"], "p");
        assert_eq!(f.tasks["usepythonversion@0"], None);
        assert_eq!(f.tasks["publishtestresults@2"].as_deref(), Some("echo hi"));
    }

    #[test]
    fn reports_unknown_sections() {
        let e = VarsFile::parse("varables: {}\n").unwrap_err();
        assert_eq!(e[0].pos.line, 1);
    }
}
