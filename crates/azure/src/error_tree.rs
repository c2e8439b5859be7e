//! ARM's nested error (`error {code, message, target, details[], additionalInfo[]}`) and its
//! rendering: the whole tree, indented, so that a user sees the innermost cause (the Microsoft
//! task prints one level), plus the names of policy assignments that denied a request.

use std::fmt::{self, Write as _};

use serde::Deserialize;
use serde_json::Value;

/// One node of an ARM error.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmErrorTree {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub details: Vec<ArmErrorTree>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub additional_info: Vec<Value>,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A policy assignment that denied a request, from `additionalInfo[{type: PolicyViolation}]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyViolation {
    /// The assignment's display name, else its name.
    pub assignment: String,
    pub assignment_id: Option<String>,
    /// The policy definition's display name, else its name.
    pub definition: Option<String>,
}

impl ArmErrorTree {
    /// Reads an error from a response body: `{"error": {…}}`, or the error object itself.
    /// Returns `None` when the body holds no code or message.
    pub fn from_body(body: &Value) -> Option<ArmErrorTree> {
        let node = body.get("error").filter(|e| e.is_object()).unwrap_or(body);
        let tree: ArmErrorTree = serde_json::from_value(node.clone()).ok()?;
        (!tree.code.is_empty() || !tree.message.is_empty()).then_some(tree)
    }

    /// A tree with one node, for errors that did not come from ARM's JSON.
    pub fn leaf(code: impl Into<String>, message: impl Into<String>) -> ArmErrorTree {
        ArmErrorTree {
            code: code.into(),
            message: message.into(),
            ..ArmErrorTree::default()
        }
    }

    /// The whole tree, one node per line, children indented by two spaces:
    /// `Code: message (target: x)`, then any policy violations under their node.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out, 0);
        out.truncate(out.trim_end().len());
        out
    }

    fn render_into(&self, out: &mut String, depth: usize) {
        let indent = "  ".repeat(depth);
        let _ = write!(out, "{indent}");
        match (self.code.is_empty(), self.message.is_empty()) {
            (false, false) => {
                let _ = write!(out, "{}: {}", self.code, self.message.trim());
            }
            (false, true) => out.push_str(&self.code),
            _ => out.push_str(self.message.trim()),
        }
        if let Some(target) = self.target.as_deref().filter(|t| !t.is_empty()) {
            let _ = write!(out, " (target: {target})");
        }
        out.push('\n');
        for v in policy_violations_of(&self.additional_info) {
            let _ = write!(
                out,
                "{indent}  denied by policy assignment '{}'",
                v.assignment
            );
            if let Some(d) = &v.definition {
                let _ = write!(out, " (policy '{d}')");
            }
            if let Some(id) = &v.assignment_id {
                let _ = write!(out, ": {id}");
            }
            out.push('\n');
        }
        for child in &self.details {
            child.render_into(out, depth + 1);
        }
    }

    /// Every node, depth first.
    pub fn walk(&self) -> Vec<&ArmErrorTree> {
        let mut all = vec![self];
        for d in &self.details {
            all.extend(d.walk());
        }
        all
    }

    /// The policy assignments that denied the request, anywhere in the tree, without duplicates.
    pub fn policy_violations(&self) -> Vec<PolicyViolation> {
        let mut out: Vec<PolicyViolation> = Vec::new();
        for node in self.walk() {
            for v in policy_violations_of(&node.additional_info) {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        out
    }

    /// The names of the policy assignments that denied the request.
    pub fn policy_assignments(&self) -> Vec<String> {
        self.policy_violations()
            .into_iter()
            .map(|v| v.assignment)
            .collect()
    }
}

impl fmt::Display for ArmErrorTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

fn policy_violations_of(info: &[Value]) -> Vec<PolicyViolation> {
    info.iter()
        .filter(|i| {
            i.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("PolicyViolation"))
        })
        .filter_map(|i| {
            let info = i.get("info")?;
            let text = |k: &str| {
                info.get(k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            let assignment =
                text("policyAssignmentDisplayName").or_else(|| text("policyAssignmentName"))?;
            Some(PolicyViolation {
                assignment,
                assignment_id: text("policyAssignmentId"),
                definition: text("policyDefinitionDisplayName")
                    .or_else(|| text("policyDefinitionName")),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_nested_tree_indented() {
        let body = json!({"error": {
            "code": "DeploymentFailed", "message": "At least one resource deployment operation failed.",
            "details": [{"code": "Conflict", "message": "{\"status\":\"Failed\"}", "target": "st1",
                "details": [{"code": "StorageAccountAlreadyTaken", "message": "The storage account named st1 is already taken."}]}]
        }});
        let tree = ArmErrorTree::from_body(&body).unwrap();
        assert_eq!(
            tree.render(),
            "DeploymentFailed: At least one resource deployment operation failed.\n  Conflict: {\"status\":\"Failed\"} (target: st1)\n    StorageAccountAlreadyTaken: The storage account named st1 is already taken."
        );
    }

    #[test]
    fn extracts_policy_assignments() {
        let body = json!({"error": {"code": "InvalidTemplateDeployment", "message": "policy", "details": [
        {"code": "RequestDisallowedByPolicy", "message": "denied", "additionalInfo": [
            {"type": "PolicyViolation", "info": {"policyAssignmentName": "a1", "policyAssignmentDisplayName": "Allowed locations", "policyAssignmentId": "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a1", "policyDefinitionDisplayName": "Allowed locations def"}},
            {"type": "Other", "info": {}}
        ]}]}});
        let tree = ArmErrorTree::from_body(&body).unwrap();
        assert_eq!(
            tree.policy_assignments(),
            vec!["Allowed locations".to_string()]
        );
        let r = tree.render();
        assert!(r.contains("    denied by policy assignment 'Allowed locations' (policy 'Allowed locations def')"), "{r}");
    }

    #[test]
    fn null_details_and_empty_bodies() {
        let t = ArmErrorTree::from_body(&json!({"error": {"code": "X", "message": "m", "details": null, "additionalInfo": null}})).unwrap();
        assert!(t.details.is_empty());
        assert!(ArmErrorTree::from_body(&json!({})).is_none());
    }
}
