//! `putSecrets`: creates the secret scope if it is missing (Databricks-backed, or backed by
//! an Azure Key Vault), puts secrets and sets ACLs.
//!
//! Secrets come as `KEY=$(secretVariable)` lines (the agent expands the macro into the input,
//! so the value reaches the process in its environment, never its arguments) or as a JSON
//! object `{"KEY": "variableName"}` naming secret pipeline variables, which this task reads
//! itself. Every value is registered as a secret before anything is printed; no value is
//! ever printed, written or put in an error. Everything is checked before the first request:
//! a bad scope name, an empty value or a bad ACL fails the step with nothing changed.

use std::collections::BTreeSet;

use databricks::{check_secret_name, AclPermission, ScopeBackend, MAX_SECRET_VALUE_BYTES};
use databricks_task_common::CredentialKind;
use task_sdk::{out, secrets, Agent, TaskError};

use crate::Cx;

/// One secret to put: the key and where it came from (for messages), and its value.
struct Secret {
    key: String,
    origin: String,
    value: String,
}

/// Never shows the value.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("key", &self.key)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// What the inputs ask for, checked.
struct Plan {
    scope: String,
    backend: ScopeBackend,
    secrets: Vec<Secret>,
    acls: Vec<(String, AclPermission)>,
}

/// Input names.
const SCOPE: &str = "scope";
const LINES: &str = "secrets";
const VARIABLES: &str = "secretVariables";
const ACLS: &str = "acls";

fn input_error(input: &str, text: impl std::fmt::Display) -> TaskError {
    TaskError::new(format!("input '{input}': {text}"))
}

/// `$(name)` left as it was: the agent leaves a macro of an undefined variable unexpanded.
fn unexpanded_macro(value: &str) -> Option<&str> {
    let name = value.trim().strip_prefix("$(")?.strip_suffix(')')?;
    (!name.is_empty() && !name.contains(['(', ')', ' '])).then_some(name)
}

fn check_value(key: &str, origin: &str, value: &str) -> Result<(), TaskError> {
    if let Some(name) = unexpanded_macro(value) {
        return Err(TaskError::new(format!(
            "secret '{key}' ({origin}) is '$({name})' as written: the pipeline has no variable '{name}' (define it, as a secret, in the pipeline or a variable group)"
        )));
    }
    if value.is_empty() {
        return Err(TaskError::new(format!(
            "secret '{key}' ({origin}) is empty: the variable behind it is not set or empty, and Databricks would store an empty secret"
        )));
    }
    if value.len() > MAX_SECRET_VALUE_BYTES {
        return Err(TaskError::new(format!(
            "secret '{key}' ({origin}) is {} bytes; Databricks accepts at most {MAX_SECRET_VALUE_BYTES} bytes (128 KB) per secret",
            value.len()
        )));
    }
    Ok(())
}

/// `KEY=value` lines; blank lines and `#` comments are skipped. A line is never echoed (it
/// may hold a value): errors name the line number and the key.
fn parse_lines(text: &str) -> Result<Vec<Secret>, TaskError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let origin = format!("line {} of '{LINES}'", i + 1);
        let Some((key, value)) = line.split_once('=') else {
            return Err(input_error(
                LINES,
                format!("{origin} has no '=': write one secret per line as KEY=$(secretVariable)"),
            ));
        };
        let key = key.trim().to_owned();
        let value = value.trim_matches([' ', '\t']);
        if !value.is_empty() && value.chars().all(|c| c == '=') {
            // Base64 padding: a value written without KEY= in front, whose text before the
            // '=' would otherwise become the key, be printed and stored as a key name.
            return Err(input_error(
                LINES,
                format!("{origin} (not shown: it may be a value) ends in '=' signs with nothing after them, like a base64 value without a key: write one secret per line as KEY=$(secretVariable)"),
            ));
        }
        // The key is not quoted: when KEY= was forgotten before a value holding '=' (base64
        // ends with it), the text before '=' is most of the secret.
        check_secret_name("secret key", &key, false).map_err(|_| {
            input_error(
                LINES,
                format!("{origin}: the text before '=' (not shown: it may be part of a value) is not a secret key of 1-128 letters, digits, '-', '_' or '.'; write one secret per line as KEY=$(secretVariable)"),
            )
        })?;
        out.push(Secret {
            key,
            origin,
            // Spaces around '=' are layout, not part of the value.
            value: value.to_owned(),
        });
    }
    Ok(out)
}

/// `{"KEY": "variableName"}`: each value is read from the pipeline variable it names.
fn parse_variables(agent: &Agent, text: &str) -> Result<Vec<Secret>, TaskError> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| {
            input_error(
                VARIABLES,
                format!("is not a JSON object of secret key to variable name ({e}); example: {{\"db-password\": \"sqlPassword\"}}"),
            )
        })?;
    let mut out = Vec::new();
    for (key, name) in map {
        check_secret_name("secret key", &key, false).map_err(|e| input_error(VARIABLES, e))?;
        let Some(name) = name.as_str().map(str::trim).filter(|n| !n.is_empty()) else {
            return Err(input_error(
                VARIABLES,
                format!("the value of '{key}' must be the name of a pipeline variable (a string)"),
            ));
        };
        let origin = format!("variable '{name}' in '{VARIABLES}'");
        let Some(value) = agent.variable(name) else {
            return Err(TaskError::new(format!(
                "secret '{key}' ({origin}): the pipeline has no variable '{name}' (define it, as a secret, in the pipeline or a variable group)"
            )));
        };
        out.push(Secret { key, origin, value });
    }
    Ok(out)
}

/// `principal=PERMISSION` lines.
fn parse_acls(text: &str) -> Result<Vec<(String, AclPermission)>, TaskError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let origin = format!("line {}", i + 1);
        let (principal, permission) = line.rsplit_once('=').ok_or_else(|| {
            input_error(
                ACLS,
                format!("{origin} is not principal=permission (e.g. data-engineers=READ)"),
            )
        })?;
        let principal = principal.trim();
        if principal.is_empty() {
            return Err(input_error(ACLS, format!("{origin} has no principal")));
        }
        let permission = AclPermission::parse(permission).ok_or_else(|| {
            input_error(
                ACLS,
                format!(
                    "{origin}: permission '{}' is not READ, WRITE or MANAGE",
                    permission.trim()
                ),
            )
        })?;
        out.push((principal.to_owned(), permission));
    }
    Ok(out)
}

fn backend(agent: &Agent) -> Result<ScopeBackend, TaskError> {
    let kind = agent.input("scopeBackend").unwrap_or_default();
    match kind.trim() {
        "" | "databricks" => Ok(ScopeBackend::Databricks),
        "azureKeyVault" => {
            let resource_id = agent.required_input("keyVaultResourceId")?;
            let resource_id = resource_id.trim();
            let vault = resource_id
                .to_ascii_lowercase()
                .split_once("/providers/microsoft.keyvault/vaults/")
                .map(|(head, name)| {
                    (
                        head.starts_with("/subscriptions/"),
                        name.trim_matches('/').to_owned(),
                    )
                });
            let Some((true, name)) = vault.filter(|(_, n)| !n.is_empty() && !n.contains('/'))
            else {
                return Err(input_error(
                    "keyVaultResourceId",
                    format!("'{resource_id}' is not a key vault resource id: expected /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.KeyVault/vaults/<name> (the vault's Properties page shows it)"),
                ));
            };
            let dns_name = agent
                .input("keyVaultDnsName")
                .map(|d| d.trim().to_owned())
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| format!("https://{name}.vault.azure.net/"));
            if !dns_name.starts_with("https://") {
                return Err(input_error(
                    "keyVaultDnsName",
                    format!("'{dns_name}' is not the vault URI: expected https://{name}.vault.azure.net/"),
                ));
            }
            Ok(ScopeBackend::AzureKeyVault {
                resource_id: resource_id.to_owned(),
                dns_name,
            })
        }
        other => Err(input_error(
            "scopeBackend",
            format!("'{other}' is not databricks or azureKeyVault"),
        )),
    }
}

/// Reads and checks every input; registers the values as secrets.
fn plan(cx: &Cx<'_>) -> Result<Plan, TaskError> {
    let agent = cx.agent;
    let scope = agent.required_input(SCOPE)?.trim().to_owned();
    check_secret_name("scope name", &scope, true).map_err(|e| input_error(SCOPE, e))?;
    let backend = backend(agent)?;
    let mut secrets_to_put = parse_lines(&agent.input(LINES).unwrap_or_default())?;
    if let Some(text) = agent.input(VARIABLES).filter(|t| !t.trim().is_empty()) {
        secrets_to_put.extend(parse_variables(agent, &text)?);
    }
    // Masked before anything else could print them (a macro left as written is no value).
    for s in &secrets_to_put {
        if unexpanded_macro(&s.value).is_none() {
            secrets::register(&s.value);
        }
    }
    let mut seen = BTreeSet::new();
    for s in &secrets_to_put {
        check_value(&s.key, &s.origin, &s.value)?;
        if !seen.insert(s.key.clone()) {
            return Err(TaskError::new(format!(
                "secret '{}' is given twice ({}): give each key once",
                s.key, s.origin
            )));
        }
    }
    let acls = parse_acls(&agent.input(ACLS).unwrap_or_default())?;
    if secrets_to_put.is_empty()
        && acls.is_empty()
        && agent.input("scopeBackend").as_deref() != Some("azureKeyVault")
    {
        return Err(TaskError::new(format!(
            "nothing to do: give secrets as KEY=$(secretVariable) lines in '{LINES}', or as a JSON object in '{VARIABLES}', or ACLs in '{ACLS}'"
        )));
    }
    if let ScopeBackend::AzureKeyVault { .. } = backend {
        if !secrets_to_put.is_empty() {
            return Err(TaskError::new(
                "an Azure Key Vault-backed scope is read-only through Databricks: put the secrets into the key vault itself (e.g. with AzureKeyVault@2 or az keyvault secret set), or use a Databricks-backed scope",
            ));
        }
        let entra = matches!(
            cx.conn.kind,
            CredentialKind::EntraConnection { .. } | CredentialKind::EntraVariable { .. }
        );
        if !entra {
            return Err(TaskError::new(
                "creating an Azure Key Vault-backed scope needs a Microsoft Entra ID token, not a personal access token: connect with an Azure Resource Manager service connection (input 'azureSubscription', or configuredatabricks with one)",
            ));
        }
    }
    Ok(Plan {
        scope,
        backend,
        secrets: secrets_to_put,
        acls,
    })
}

pub async fn run(cx: &Cx<'_>) -> Result<(), TaskError> {
    let Plan {
        scope,
        backend,
        secrets: secrets_to_put,
        acls,
    } = plan(cx)?;
    let scopes = cx
        .ws
        .list_secret_scopes()
        .await
        .map_err(|e| cx.explain(e))?;
    let existing = scopes.iter().find(|s| s.name.eq_ignore_ascii_case(&scope));
    match (existing, &backend) {
        (Some(s), ScopeBackend::AzureKeyVault { .. }) if s.backend_type != "AZURE_KEYVAULT" => {
            return Err(TaskError::new(format!(
                "scope '{}' exists and is {}-backed, not backed by an Azure Key Vault: use another scope name, or delete the scope first",
                s.name, s.backend_type
            )));
        }
        (Some(s), ScopeBackend::Databricks)
            if s.backend_type == "AZURE_KEYVAULT" && !secrets_to_put.is_empty() =>
        {
            return Err(TaskError::new(format!(
                "scope '{}' is backed by an Azure Key Vault, which is read-only through Databricks: put the secrets into the key vault, or use a Databricks-backed scope",
                s.name
            )));
        }
        (Some(s), _) => out::info(&format!("scope '{}' exists ({})", s.name, s.backend_type)),
        (None, _) => {
            let manager = cx
                .agent
                .input("initialManagePrincipal")
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty());
            match cx
                .ws
                .create_secret_scope(&scope, &backend, manager.as_deref())
                .await
            {
                Ok(()) => out::info(&format!(
                    "created scope '{scope}' ({})",
                    match backend {
                        ScopeBackend::Databricks => "Databricks-backed".to_owned(),
                        ScopeBackend::AzureKeyVault { ref dns_name, .. } =>
                            format!("backed by the key vault {dns_name}"),
                    }
                )),
                // Created by a parallel job in the meantime: fine.
                Err(e) if e.error_code() == Some("RESOURCE_ALREADY_EXISTS") => {
                    out::info(&format!("scope '{scope}' exists"))
                }
                Err(e) => return Err(cx.explain(e)),
            }
        }
    }
    let mut done = Vec::new();
    for s in &secrets_to_put {
        if let Err(e) = cx.ws.put_secret(&scope, &s.key, &s.value).await {
            let put = if done.is_empty() {
                "none was put".to_owned()
            } else {
                format!("already put: {}", done.join(", "))
            };
            return Err(TaskError::new(format!(
                "putting secret '{}' into scope '{scope}' failed ({put}): {}",
                s.key,
                cx.explain(e).message()
            )));
        }
        out::info(&format!("put secret '{}' ({})", s.key, s.origin));
        done.push(s.key.clone());
    }
    for (principal, permission) in &acls {
        cx.ws
            .put_secret_acl(&scope, principal, *permission)
            .await
            .map_err(|e| {
                TaskError::new(format!(
                    "setting {} for '{principal}' on scope '{scope}' failed: {}",
                    permission.as_str(),
                    cx.explain(e).message()
                ))
            })?;
        out::info(&format!(
            "granted {} on scope '{scope}' to {principal}",
            permission.as_str()
        ));
    }
    out::info(&format!(
        "scope '{scope}': {} secret(s) put, {} ACL(s) set",
        secrets_to_put.len(),
        acls.len()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_without_echoing_values() {
        let s = parse_lines("# comment\n\nDB_PASSWORD=p@ss=word\r\n api-key = v \n").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].key.as_str(), s[0].value.as_str()),
            ("DB_PASSWORD", "p@ss=word")
        );
        assert_eq!((s[1].key.as_str(), s[1].value.as_str()), ("api-key", "v"));
        let e = parse_lines("hunter2-no-key")
            .unwrap_err()
            .message()
            .to_owned();
        assert!(e.contains("line 1") && !e.contains("hunter2"), "{e}");
        let e = parse_lines("bad key=x").unwrap_err().message().to_owned();
        assert!(e.contains("line 1") && !e.contains("bad key"), "{e}");
        // A KEY= forgotten before a base64 value: the text before its '=' is the secret.
        let e = parse_lines("\nc2VjcmV0+/dG9rZW4==")
            .unwrap_err()
            .message()
            .to_owned();
        assert!(e.contains("line 2") && !e.contains("c2VjcmV0"), "{e}");
        // The same with a key-like text before the padding.
        let e = parse_lines("ZGFwaTEyMzQ1Njc4OTA==")
            .unwrap_err()
            .message()
            .to_owned();
        assert!(e.contains("line 1") && !e.contains("ZGFwaTEy"), "{e}");
        let e = parse_lines(&format!("{}=x", "k".repeat(200)))
            .unwrap_err()
            .message()
            .to_owned();
        assert!(e.contains("line 1") && !e.contains("kkkk"), "{e}");
        assert_eq!(unexpanded_macro("$(dbPassword)"), Some("dbPassword"));
        assert_eq!(unexpanded_macro("$(x"), None);
        assert!(check_value("K", "line 1", "")
            .unwrap_err()
            .message()
            .contains("'K'"));
    }

    #[test]
    fn acls() {
        let a = parse_acls("data-engineers=read\nuser@example.com = MANAGE\n").unwrap();
        assert_eq!(a[1], ("user@example.com".into(), AclPermission::Manage));
        assert!(parse_acls("x=OWNER").is_err());
        assert!(parse_acls("=READ").is_err());
    }
}
