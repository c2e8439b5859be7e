//! Secret scopes, secrets and their ACLs, with the Secrets API's rules.
//!
//! Names follow the documented rules (alphanumerics, `-`, `_`, `.`, `@`; at most 128
//! characters); scope names are case-insensitive. Values are kept for tests
//! ([`crate::Emulator::secret_value`]) but never dumped by `/emulator/state`.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};

/// Longest scope or key name.
pub const MAX_NAME_CHARS: usize = 128;
/// Largest secret value (bytes).
pub const MAX_VALUE_BYTES: usize = 128 * 1024;
/// Most secrets in one scope.
pub const MAX_SECRETS_PER_SCOPE: usize = 1000;

#[derive(Debug, Clone)]
pub enum Backend {
    Databricks,
    AzureKeyVault {
        resource_id: String,
        dns_name: String,
    },
}

#[derive(Debug)]
struct Scope {
    /// As created (lookups are case-insensitive).
    name: String,
    backend: Backend,
    secrets: BTreeMap<String, Secret>,
    acls: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Secret {
    value: Vec<u8>,
    updated: u64,
}

#[derive(Debug, Default)]
pub struct Secrets {
    /// Keyed by the lower-cased scope name.
    scopes: BTreeMap<String, Scope>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

fn no_scope(scope: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        format!("Scope {scope} does not exist!"),
    )
}

pub const PERMISSIONS: [&str; 3] = ["READ", "WRITE", "MANAGE"];

impl Secrets {
    fn scope(&self, scope: &str) -> ApiResult<&Scope> {
        self.scopes
            .get(&scope.to_lowercase())
            .ok_or_else(|| no_scope(scope))
    }

    fn scope_mut(&mut self, scope: &str) -> ApiResult<&mut Scope> {
        self.scopes
            .get_mut(&scope.to_lowercase())
            .ok_or_else(|| no_scope(scope))
    }

    /// `scopes/create`. `entra_token`: whether the caller authenticated with a Microsoft Entra
    /// ID token, which an Azure Key Vault-backed scope needs (the service reads the vault as
    /// that user).
    pub fn create_scope(
        &mut self,
        name: &str,
        backend: Backend,
        initial_manage_principal: Option<&str>,
        creator: &str,
        entra_token: bool,
    ) -> ApiResult<()> {
        if !valid_name(name) {
            return Err(ApiError::invalid(format!(
                "Scope name '{name}' is invalid: it must consist of alphanumeric characters, dashes, underscores, @, and periods, and may not exceed {MAX_NAME_CHARS} characters."
            )));
        }
        if let Some(p) = initial_manage_principal.filter(|p| !p.is_empty() && *p != "users") {
            return Err(ApiError::invalid(format!(
                "Invalid initial_manage_principal '{p}': the only supported principal is 'users'."
            )));
        }
        if let Backend::AzureKeyVault {
            resource_id,
            dns_name,
        } = &backend
        {
            if !entra_token {
                return Err(ApiError::invalid(
                    "Scope with Azure KeyVault must have userAADToken defined!",
                ));
            }
            if resource_id.is_empty() || dns_name.is_empty() {
                return Err(ApiError::invalid(
                    "Scope with Azure KeyVault must have AzureKeyVaultSecretScopeMetadata defined!",
                ));
            }
        }
        let key = name.to_lowercase();
        if self.scopes.contains_key(&key) {
            return Err(ApiError::already_exists(format!(
                "Scope {name} already exists!"
            )));
        }
        let mut acls = BTreeMap::new();
        let manager = match initial_manage_principal {
            Some("users") => "users",
            _ => creator,
        };
        acls.insert(manager.to_owned(), "MANAGE".to_owned());
        self.scopes.insert(
            key,
            Scope {
                name: name.to_owned(),
                backend,
                secrets: BTreeMap::new(),
                acls,
            },
        );
        Ok(())
    }

    pub fn list_scopes(&self) -> Value {
        let scopes: Vec<Value> = self
            .scopes
            .values()
            .map(|s| match &s.backend {
                Backend::Databricks => json!({"name": s.name, "backend_type": "DATABRICKS"}),
                Backend::AzureKeyVault {
                    resource_id,
                    dns_name,
                } => json!({
                    "name": s.name,
                    "backend_type": "AZURE_KEYVAULT",
                    "keyvault_metadata": {"resource_id": resource_id, "dns_name": dns_name},
                }),
            })
            .collect();
        if scopes.is_empty() {
            json!({})
        } else {
            json!({ "scopes": scopes })
        }
    }

    pub fn delete_scope(&mut self, name: &str) -> ApiResult<()> {
        self.scopes
            .remove(&name.to_lowercase())
            .map(|_| ())
            .ok_or_else(|| no_scope(name))
    }

    pub fn put(&mut self, scope: &str, key: &str, value: Vec<u8>, now: u64) -> ApiResult<()> {
        let s = self.scope_mut(scope)?;
        if matches!(s.backend, Backend::AzureKeyVault { .. }) {
            return Err(ApiError::invalid(format!(
                "Azure KeyVault-backed scope {scope} is read-only: put secrets into the key vault instead."
            )));
        }
        if !valid_name(key) {
            return Err(ApiError::invalid(format!(
                "Secret key '{key}' is invalid: it must consist of alphanumeric characters, dashes, underscores, and periods, and may not exceed {MAX_NAME_CHARS} characters."
            )));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(ApiError::invalid(format!(
                "Secret value for key {key} is {} bytes, over the limit of {MAX_VALUE_BYTES} bytes.",
                value.len()
            )));
        }
        if !s.secrets.contains_key(key) && s.secrets.len() >= MAX_SECRETS_PER_SCOPE {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MAX_SECRETS_PER_SCOPE_EXCEEDED",
                format!("Scope {scope} already holds {MAX_SECRETS_PER_SCOPE} secrets."),
            ));
        }
        s.secrets.insert(
            key.to_owned(),
            Secret {
                value,
                updated: now,
            },
        );
        Ok(())
    }

    pub fn list(&self, scope: &str) -> ApiResult<Value> {
        let s = self.scope(scope)?;
        let secrets: Vec<Value> = s
            .secrets
            .iter()
            .map(|(k, v)| json!({"key": k, "last_updated_timestamp": v.updated}))
            .collect();
        Ok(if secrets.is_empty() {
            json!({})
        } else {
            json!({ "secrets": secrets })
        })
    }

    pub fn delete(&mut self, scope: &str, key: &str) -> ApiResult<()> {
        let s = self.scope_mut(scope)?;
        s.secrets.remove(key).map(|_| ()).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "RESOURCE_DOES_NOT_EXIST",
                format!("Secret {key} does not exist in scope {scope}!"),
            )
        })
    }

    /// Every secret's value by scope (as created) and key, for notebooks' `dbutils.secrets`.
    pub fn values(&self) -> crate::executor::SecretValues {
        self.scopes
            .values()
            .map(|scope| {
                let values = scope
                    .secrets
                    .iter()
                    .map(|(key, secret)| (key.clone(), secret.value.clone()))
                    .collect();
                (scope.name.clone(), values)
            })
            .collect()
    }

    pub fn value(&self, scope: &str, key: &str) -> Option<Vec<u8>> {
        Some(self.scope(scope).ok()?.secrets.get(key)?.value.clone())
    }

    pub fn put_acl(&mut self, scope: &str, principal: &str, permission: &str) -> ApiResult<()> {
        if !PERMISSIONS.contains(&permission) {
            return Err(ApiError::invalid(format!(
                "Invalid permission '{permission}': expected one of READ, WRITE, MANAGE."
            )));
        }
        if principal.trim().is_empty() {
            return Err(ApiError::invalid("Principal cannot be empty."));
        }
        let s = self.scope_mut(scope)?;
        s.acls.insert(principal.to_owned(), permission.to_owned());
        Ok(())
    }

    fn no_acl(scope: &str, principal: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_DOES_NOT_EXIST",
            format!("Failed to get secret acl for principal {principal} in scope {scope}."),
        )
    }

    pub fn get_acl(&self, scope: &str, principal: &str) -> ApiResult<Value> {
        let s = self.scope(scope)?;
        let permission = s
            .acls
            .get(principal)
            .ok_or_else(|| Self::no_acl(scope, principal))?;
        Ok(json!({"principal": principal, "permission": permission}))
    }

    pub fn list_acls(&self, scope: &str) -> ApiResult<Value> {
        let s = self.scope(scope)?;
        let items: Vec<Value> = s
            .acls
            .iter()
            .map(|(p, perm)| json!({"principal": p, "permission": perm}))
            .collect();
        Ok(json!({ "items": items }))
    }

    pub fn delete_acl(&mut self, scope: &str, principal: &str) -> ApiResult<()> {
        let s = self.scope_mut(scope)?;
        s.acls
            .remove(principal)
            .map(|_| ())
            .ok_or_else(|| Self::no_acl(scope, principal))
    }

    /// Scopes with their keys and ACLs, never the values.
    pub fn dump(&self) -> Value {
        self.scopes
            .values()
            .map(|s| {
                json!({
                    "name": s.name,
                    "backend_type": match s.backend { Backend::Databricks => "DATABRICKS", Backend::AzureKeyVault { .. } => "AZURE_KEYVAULT" },
                    "keys": s.secrets.keys().collect::<Vec<_>>(),
                    "acls": s.acls,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_rules() {
        assert!(valid_name("etl-prod_1.x@team"));
        assert!(!valid_name(""));
        assert!(!valid_name("has space"));
        assert!(!valid_name("slash/no"));
        assert!(valid_name(&"a".repeat(128)));
        assert!(!valid_name(&"a".repeat(129)));
    }

    #[test]
    fn scopes_are_case_insensitive_and_values_are_kept_apart() {
        let mut s = Secrets::default();
        s.create_scope("Etl", Backend::Databricks, None, "me", false)
            .unwrap();
        let e = s
            .create_scope("etl", Backend::Databricks, None, "me", false)
            .unwrap_err();
        assert_eq!(e.error_code, "RESOURCE_ALREADY_EXISTS");
        s.put("ETL", "k", b"v".to_vec(), 1).unwrap();
        assert_eq!(s.value("etl", "k").unwrap(), b"v");
        assert!(!s.dump().to_string().contains("\"v\""));
        assert_eq!(s.list_acls("etl").unwrap()["items"][0]["principal"], "me");
        let e = s.put("nope", "k", vec![], 1).unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn key_vault_scopes_need_an_entra_token_and_are_read_only() {
        let mut s = Secrets::default();
        let kv = Backend::AzureKeyVault {
            resource_id: "/subscriptions/x/resourceGroups/r/providers/Microsoft.KeyVault/vaults/v"
                .into(),
            dns_name: "https://v.vault.azure.net/".into(),
        };
        let e = s
            .create_scope("kv", kv.clone(), None, "me", false)
            .unwrap_err();
        assert!(e.message.contains("userAADToken"), "{}", e.message);
        s.create_scope("kv", kv, None, "me", true).unwrap();
        assert!(s.put("kv", "k", b"v".to_vec(), 1).is_err());
    }
}
