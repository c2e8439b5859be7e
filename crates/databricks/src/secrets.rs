//! Secrets API 2.0: scopes (Databricks- or Azure Key Vault-backed), secrets, and scope ACLs.
//!
//! Secret values go into request bodies only; they are never logged, put in an error or
//! returned (the API has no call that reads a value outside a cluster).

use serde::Deserialize;
use serde_json::json;

use crate::client::Call;
use crate::{Error, Workspace};

/// Longest scope name or secret key the service accepts.
pub const MAX_SECRET_NAME_CHARS: usize = 128;
/// Largest secret value the service accepts (bytes).
pub const MAX_SECRET_VALUE_BYTES: usize = 128 * 1024;

/// Where a new scope keeps its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeBackend {
    /// Encrypted storage the workspace owns; secrets are put through the API.
    Databricks,
    /// An Azure Key Vault, read-only through Databricks (secrets are put into the vault).
    /// Creating one needs a Microsoft Entra ID token, not a personal access token.
    AzureKeyVault {
        resource_id: String,
        dns_name: String,
    },
}

/// A scope as `scopes/list` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SecretScope {
    pub name: String,
    #[serde(default)]
    pub backend_type: String,
}

/// A permission on a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclPermission {
    Read,
    Write,
    Manage,
}

impl AclPermission {
    pub fn as_str(self) -> &'static str {
        match self {
            AclPermission::Read => "READ",
            AclPermission::Write => "WRITE",
            AclPermission::Manage => "MANAGE",
        }
    }

    /// `READ`, `WRITE` or `MANAGE`, in any case.
    pub fn parse(text: &str) -> Option<AclPermission> {
        match text.trim().to_ascii_uppercase().as_str() {
            "READ" => Some(AclPermission::Read),
            "WRITE" => Some(AclPermission::Write),
            "MANAGE" => Some(AclPermission::Manage),
            _ => None,
        }
    }
}

/// Checks a scope name or secret key against the documented rules: letters, digits, `-`,
/// `_`, `.` (and `@` in scope names), at most 128 characters. The message says what is wrong.
pub fn check_secret_name(what: &str, name: &str, allow_at: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if name.chars().count() > MAX_SECRET_NAME_CHARS {
        return Err(format!(
            "the {what} '{name}' has {} characters; at most {MAX_SECRET_NAME_CHARS} are allowed",
            name.chars().count()
        ));
    }
    let allowed = |c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || (allow_at && c == '@')
    };
    if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        let set = if allow_at {
            "letters, digits, '-', '_', '.' and '@'"
        } else {
            "letters, digits, '-', '_' and '.'"
        };
        return Err(format!(
            "the {what} '{name}' contains '{bad}'; only {set} are allowed"
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct Scopes {
    #[serde(default)]
    scopes: Vec<SecretScope>,
}

#[derive(Deserialize)]
struct Keys {
    #[serde(default)]
    secrets: Vec<Key>,
}

#[derive(Deserialize)]
struct Key {
    key: String,
}

#[derive(Deserialize)]
struct Acls {
    #[serde(default)]
    items: Vec<Acl>,
}

#[derive(Deserialize)]
struct Acl {
    principal: String,
    permission: String,
}

impl Workspace {
    /// Every secret scope of the workspace.
    pub async fn list_secret_scopes(&self) -> Result<Vec<SecretScope>, Error> {
        let answer: Scopes = self.send(Call::get("/api/2.0/secrets/scopes/list")).await?;
        Ok(answer.scopes)
    }

    /// Creates a scope. `initial_manage_principal` is `users` (every user may manage it) or
    /// `None` (the caller manages it). An existing scope is `RESOURCE_ALREADY_EXISTS`.
    pub async fn create_secret_scope(
        &self,
        scope: &str,
        backend: &ScopeBackend,
        initial_manage_principal: Option<&str>,
    ) -> Result<(), Error> {
        let mut body = json!({ "scope": scope });
        if let Some(p) = initial_manage_principal {
            body["initial_manage_principal"] = json!(p);
        }
        if let ScopeBackend::AzureKeyVault {
            resource_id,
            dns_name,
        } = backend
        {
            body["scope_backend_type"] = json!("AZURE_KEYVAULT");
            body["backend_azure_keyvault"] =
                json!({ "resource_id": resource_id, "dns_name": dns_name });
        }
        self.send::<serde_json::Value>(Call::post("/api/2.0/secrets/scopes/create", body))
            .await
            .map(drop)
    }

    /// Puts (creates or replaces) a secret. Replaying is harmless: the value is the same.
    pub async fn put_secret(&self, scope: &str, key: &str, value: &str) -> Result<(), Error> {
        let body = json!({ "scope": scope, "key": key, "string_value": value });
        self.send::<serde_json::Value>(Call::post("/api/2.0/secrets/put", body).replay_safe())
            .await
            .map(drop)
    }

    /// The keys in a scope (never the values).
    pub async fn list_secret_keys(&self, scope: &str) -> Result<Vec<String>, Error> {
        let answer: Keys = self
            .send(Call::get("/api/2.0/secrets/list").query("scope", scope))
            .await?;
        Ok(answer.secrets.into_iter().map(|k| k.key).collect())
    }

    /// Grants `permission` on `scope` to a user, group or service principal (replacing what
    /// it had).
    pub async fn put_secret_acl(
        &self,
        scope: &str,
        principal: &str,
        permission: AclPermission,
    ) -> Result<(), Error> {
        let body =
            json!({ "scope": scope, "principal": principal, "permission": permission.as_str() });
        self.send::<serde_json::Value>(Call::post("/api/2.0/secrets/acls/put", body).replay_safe())
            .await
            .map(drop)
    }

    /// The ACLs of a scope: principal → permission (as the API spells it).
    pub async fn list_secret_acls(&self, scope: &str) -> Result<Vec<(String, String)>, Error> {
        let answer: Acls = self
            .send(Call::get("/api/2.0/secrets/acls/list").query("scope", scope))
            .await?;
        Ok(answer
            .items
            .into_iter()
            .map(|a| (a.principal, a.permission))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_secret_name("scope", "etl-prod_1.x@team", true).is_ok());
        let e = check_secret_name("scope name", "etl prod", true).unwrap_err();
        assert!(e.contains("contains ' '"), "{e}");
        assert!(check_secret_name("key", "a@b", false).is_err());
        assert!(check_secret_name("key", &"k".repeat(129), false)
            .unwrap_err()
            .contains("129 characters"));
        assert!(check_secret_name("key", "", false)
            .unwrap_err()
            .contains("empty"));
        assert_eq!(AclPermission::parse(" read "), Some(AclPermission::Read));
        assert_eq!(AclPermission::parse("owner"), None);
    }
}
