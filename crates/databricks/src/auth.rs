//! How requests authenticate. The client does not care where a token came from.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The Entra ID application id of Azure Databricks: request tokens for the scope
/// `2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default`.
pub const AZURE_DATABRICKS_RESOURCE_ID: &str = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d";

/// A token that may change over time (an Entra ID token expires after about an hour, a run
/// can take longer). Called before every request; implementations cache and refresh.
pub trait TokenSource: Send + Sync {
    /// A currently valid bearer token. The error text is shown to the user: no secrets in it.
    fn token(&self) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>>;
}

/// Credentials sent with every request. `Debug` never shows a token.
#[derive(Clone)]
pub enum Auth {
    /// A personal access token (`dapi…`) or an Entra ID access token for the Azure Databricks
    /// resource; sent as `Authorization: Bearer …`.
    Token(String),
    /// An Entra ID service principal that may not yet be a user of the workspace: besides the
    /// bearer token, `X-Databricks-Azure-SP-Management-Token` carries a token for
    /// `https://management.core.windows.net/` and `X-Databricks-Azure-Workspace-Resource-Id`
    /// the workspace's ARM resource id, so the workspace adds the principal on first use.
    AzureSp {
        token: String,
        management_token: String,
        resource_id: String,
    },
    /// A refreshing bearer token.
    Source(Arc<dyn TokenSource>),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Token(_) => f.write_str("Auth::Token(***)"),
            Auth::AzureSp { resource_id, .. } => f
                .debug_struct("Auth::AzureSp")
                .field("token", &"***")
                .field("management_token", &"***")
                .field("resource_id", resource_id)
                .finish(),
            Auth::Source(_) => f.write_str("Auth::Source(..)"),
        }
    }
}

/// The headers one request carries.
pub(crate) struct Headers {
    pub bearer: String,
    pub extra: Vec<(&'static str, String)>,
}

impl Auth {
    pub(crate) async fn headers(&self) -> Result<Headers, String> {
        Ok(match self {
            Auth::Token(token) => Headers {
                bearer: format!("Bearer {}", token.trim()),
                extra: Vec::new(),
            },
            Auth::AzureSp {
                token,
                management_token,
                resource_id,
            } => Headers {
                bearer: format!("Bearer {}", token.trim()),
                extra: vec![
                    (
                        "X-Databricks-Azure-SP-Management-Token",
                        management_token.trim().to_owned(),
                    ),
                    (
                        "X-Databricks-Azure-Workspace-Resource-Id",
                        resource_id.trim().to_owned(),
                    ),
                ],
            },
            Auth::Source(source) => Headers {
                bearer: format!("Bearer {}", source.token().await?.trim()),
                extra: Vec::new(),
            },
        })
    }

    /// An empty token is a configuration mistake worth naming before any request.
    pub(crate) fn is_blank(&self) -> bool {
        match self {
            Auth::Token(t) | Auth::AzureSp { token: t, .. } => t.trim().is_empty(),
            Auth::Source(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_tokens() {
        let a = Auth::AzureSp {
            token: "eyJsecret".into(),
            management_token: "eyJmgmt".into(),
            resource_id: "/subscriptions/x".into(),
        };
        let shown = format!("{a:?} {:?}", Auth::Token("dapi123".into()));
        assert!(
            !shown.contains("secret") && !shown.contains("mgmt") && !shown.contains("dapi123"),
            "{shown}"
        );
        assert!(shown.contains("/subscriptions/x"));
    }
}
