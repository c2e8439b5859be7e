//! Service connections as the agent exports them (contract §2): `ENDPOINT_URL_<id>`,
//! `ENDPOINT_AUTH_<id>`, `ENDPOINT_AUTH_SCHEME_<id>`, `ENDPOINT_AUTH_PARAMETER_<id>_<KEY>`,
//! `ENDPOINT_DATA_<id>_<KEY>`, and a typed view of an AzureRM connection.

use std::collections::HashMap;

use crate::agent::Agent;
use crate::secrets;

/// Why a service connection cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("service connection '{id}' is not available to this task: check that the connection exists, that the pipeline is authorized to use it, and that the task's input names it")]
    Missing { id: String },
    #[error(
        "service connection '{id}' has no '{field}': edit the service connection and fill it in"
    )]
    MissingField { id: String, field: String },
    #[error("service connection '{id}' uses the authentication scheme '{scheme}', which this task does not support; use {supported}")]
    UnsupportedScheme {
        id: String,
        scheme: String,
        supported: String,
    },
}

/// One service connection. Auth parameter and data keys are kept lower-cased, since the
/// agent upper-cases them in variable names and task-lib looks them up case-insensitively.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub url: Option<String>,
    pub scheme: Option<String>,
    auth: HashMap<String, String>,
    data: HashMap<String, String>,
}

impl Endpoint {
    /// An auth parameter (e.g. `serviceprincipalkey`), case-insensitive. Auth parameters are
    /// registered as secrets when the endpoint is read.
    pub fn auth_param(&self, key: &str) -> Option<&str> {
        self.auth
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A data entry (e.g. `subscriptionid`), case-insensitive.
    pub fn data(&self, key: &str) -> Option<&str> {
        self.data
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn require_auth(&self, key: &str) -> Result<&str, EndpointError> {
        self.auth_param(key)
            .ok_or_else(|| EndpointError::MissingField {
                id: self.id.clone(),
                field: key.to_owned(),
            })
    }
}

/// Auth parameters that are not secrets (lower-cased); everything else in `ENDPOINT_AUTH_*` is
/// masked.
pub const PUBLIC_AUTH_PARAMS: &[&str] = &[
    "serviceprincipalid",
    "tenantid",
    "authenticationtype",
    "scope",
    "workloadidentityfederationsubject",
    "workloadidentityfederationissuer",
    "username",
];

impl Agent {
    /// Reads a service connection by id (the input's value, a GUID for real connections).
    pub fn endpoint(&self, id: &str) -> Result<Endpoint, EndpointError> {
        let url = self.env(&format!("ENDPOINT_URL_{id}")).map(str::to_owned);
        let auth_json = self.env(&format!("ENDPOINT_AUTH_{id}"));
        let mut scheme = self
            .env(&format!("ENDPOINT_AUTH_SCHEME_{id}"))
            .map(str::to_owned);
        let mut auth = HashMap::new();
        if let Some(json) = auth_json {
            #[derive(serde::Deserialize)]
            struct Auth {
                #[serde(default)]
                parameters: HashMap<String, serde_json::Value>,
                scheme: Option<String>,
            }
            if let Ok(parsed) = serde_json::from_str::<Auth>(json) {
                for (k, v) in parsed.parameters {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    auth.insert(k.to_ascii_lowercase(), v);
                }
                if scheme.is_none() {
                    scheme = parsed.scheme;
                }
            }
        }
        let param_prefix = format!("ENDPOINT_AUTH_PARAMETER_{id}_");
        for (key, value) in self.env_with_prefix(&param_prefix) {
            auth.entry(key[param_prefix.len()..].to_ascii_lowercase())
                .or_insert_with(|| value.to_owned());
        }
        let mut data = HashMap::new();
        if let Some(json) = self.env(&format!("ENDPOINT_DATA_{id}")) {
            if let Ok(map) = serde_json::from_str::<HashMap<String, serde_json::Value>>(json) {
                for (k, v) in map {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    data.insert(k.to_ascii_lowercase(), v);
                }
            }
        }
        let data_prefix = format!("ENDPOINT_DATA_{id}_");
        for (key, value) in self.env_with_prefix(&data_prefix) {
            data.entry(key[data_prefix.len()..].to_ascii_lowercase())
                .or_insert_with(|| value.to_owned());
        }
        if url.is_none() && auth.is_empty() && scheme.is_none() {
            return Err(EndpointError::Missing { id: id.to_owned() });
        }
        for (key, value) in &auth {
            if !PUBLIC_AUTH_PARAMS.contains(&key.as_str()) && !value.is_empty() {
                secrets::register(value);
            }
        }
        Ok(Endpoint {
            id: id.to_owned(),
            url,
            scheme,
            auth,
            data,
        })
    }

    /// The agent's own connection (`SYSTEMVSSCONNECTION`), whose `AccessToken` authorizes
    /// calls back to Azure DevOps, e.g. the OIDC token request of workload identity federation.
    pub fn system_connection(&self) -> Result<Endpoint, EndpointError> {
        self.endpoint("SYSTEMVSSCONNECTION")
    }

    /// A typed view of an AzureRM service connection.
    pub fn azure_rm(&self, id: &str) -> Result<AzureRmConnection, EndpointError> {
        AzureRmConnection::from_endpoint(self.endpoint(id)?, self)
    }
}

/// How an AzureRM service connection authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzureAuth {
    /// Service principal with a client secret (`ServicePrincipal`, `authenticationType=spnKey`).
    ServicePrincipalSecret { client_id: String, secret: String },
    /// Service principal with a certificate (PEM holding the key and certificate).
    ServicePrincipalCertificate {
        client_id: String,
        certificate_pem: String,
    },
    /// Workload identity federation: an OIDC token from the agent's server is the assertion.
    WorkloadIdentityFederation {
        client_id: String,
        /// `SYSTEM_OIDCREQUESTURI`.
        oidc_request_uri: Option<String>,
        /// `SYSTEMVSSCONNECTION`'s `AccessToken`.
        system_access_token: Option<String>,
    },
    /// Managed identity of the agent's machine; `client_id` picks a user-assigned identity.
    ManagedIdentity { client_id: Option<String> },
}

/// Azure clouds by the names AzureRM connections use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AzureCloud {
    Public,
    UsGovernment,
    China,
}

impl AzureCloud {
    pub fn from_name(name: &str) -> Option<AzureCloud> {
        match name.to_ascii_lowercase().as_str() {
            "azurecloud" | "" => Some(AzureCloud::Public),
            "azureusgovernment" => Some(AzureCloud::UsGovernment),
            "azurechinacloud" => Some(AzureCloud::China),
            _ => None,
        }
    }

    pub fn authority(self) -> &'static str {
        match self {
            AzureCloud::Public => "https://login.microsoftonline.com/",
            AzureCloud::UsGovernment => "https://login.microsoftonline.us/",
            AzureCloud::China => "https://login.chinacloudapi.cn/",
        }
    }

    pub fn resource_manager(self) -> &'static str {
        match self {
            AzureCloud::Public => "https://management.azure.com/",
            AzureCloud::UsGovernment => "https://management.usgovcloudapi.net/",
            AzureCloud::China => "https://management.chinacloudapi.cn/",
        }
    }
}

/// An AzureRM service connection, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureRmConnection {
    pub id: String,
    pub auth: AzureAuth,
    pub tenant_id: String,
    pub subscription_id: Option<String>,
    pub subscription_name: Option<String>,
    /// The cloud's name as the connection states it (`AzureCloud`, `AzureStack`, …).
    pub environment: String,
    /// The Entra ID authority, with a trailing slash: from the connection's data, else the
    /// cloud named by `environment`.
    pub authority_url: String,
    /// The ARM endpoint (`ENDPOINT_URL_<id>`, else the cloud's), with a trailing slash.
    pub resource_manager_url: String,
    /// The audience for ARM tokens (`activeDirectoryServiceEndpointResourceId`, else the
    /// ARM URL).
    pub resource_id: String,
    pub scope_level: Option<String>,
    pub management_group_id: Option<String>,
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    }
}

impl AzureRmConnection {
    fn from_endpoint(ep: Endpoint, agent: &Agent) -> Result<AzureRmConnection, EndpointError> {
        let scheme = ep
            .scheme
            .clone()
            .unwrap_or_else(|| "ServicePrincipal".into());
        let environment = ep.data("environment").unwrap_or("AzureCloud").to_owned();
        let cloud = AzureCloud::from_name(&environment);
        let authority_url = ep
            .data("environmentAuthorityUrl")
            .or_else(|| ep.data("activeDirectoryAuthority"))
            .map(with_slash)
            .or_else(|| cloud.map(|c| c.authority().to_owned()))
            .ok_or_else(|| EndpointError::MissingField {
                id: ep.id.clone(),
                field: "environmentAuthorityUrl".into(),
            })?;
        let resource_manager_url = ep
            .url
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(with_slash)
            .or_else(|| cloud.map(|c| c.resource_manager().to_owned()))
            .ok_or_else(|| EndpointError::MissingField {
                id: ep.id.clone(),
                field: "url".into(),
            })?;
        let resource_id = ep
            .data("activeDirectoryServiceEndpointResourceId")
            .map(str::to_owned)
            .unwrap_or_else(|| resource_manager_url.clone());
        let tenant_id = ep.require_auth("tenantid")?.to_owned();
        let auth = match scheme.to_ascii_lowercase().as_str() {
            "serviceprincipal" => {
                let client_id = ep.require_auth("serviceprincipalid")?.to_owned();
                let kind = ep.auth_param("authenticationType").unwrap_or("spnKey");
                if kind.eq_ignore_ascii_case("spnCertificate") {
                    AzureAuth::ServicePrincipalCertificate {
                        client_id,
                        certificate_pem: ep.require_auth("servicePrincipalCertificate")?.to_owned(),
                    }
                } else {
                    AzureAuth::ServicePrincipalSecret {
                        client_id,
                        secret: ep.require_auth("serviceprincipalkey")?.to_owned(),
                    }
                }
            }
            "workloadidentityfederation" => AzureAuth::WorkloadIdentityFederation {
                client_id: ep.require_auth("serviceprincipalid")?.to_owned(),
                oidc_request_uri: agent.variable("System.OidcRequestUri"),
                system_access_token: agent
                    .system_connection()
                    .ok()
                    .and_then(|c| c.auth_param("AccessToken").map(str::to_owned)),
            },
            "managedserviceidentity" => AzureAuth::ManagedIdentity {
                client_id: ep
                    .data("msiclientId")
                    .or_else(|| ep.auth_param("serviceprincipalid"))
                    .map(str::to_owned),
            },
            _ => {
                return Err(EndpointError::UnsupportedScheme {
                    id: ep.id.clone(),
                    scheme,
                    supported:
                        "ServicePrincipal, WorkloadIdentityFederation or ManagedServiceIdentity"
                            .into(),
                })
            }
        };
        Ok(AzureRmConnection {
            id: ep.id.clone(),
            auth,
            tenant_id,
            subscription_id: ep.data("subscriptionid").map(str::to_owned),
            subscription_name: ep.data("subscriptionname").map(str::to_owned),
            environment,
            authority_url,
            resource_manager_url,
            resource_id,
            scope_level: ep.data("scopeLevel").map(str::to_owned),
            management_group_id: ep.data("managementGroupId").map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "9a2b2f8c-0000-4000-8000-000000000001";

    fn agent(extra: &[(&str, &str)]) -> Agent {
        let mut vars: Vec<(String, String)> = vec![
            (
                format!("ENDPOINT_URL_{ID}"),
                "https://management.azure.com/".into(),
            ),
            (format!("ENDPOINT_DATA_{ID}_SUBSCRIPTIONID"), "sub-1".into()),
            (
                format!("ENDPOINT_DATA_{ID}_SUBSCRIPTIONNAME"),
                "Sub One".into(),
            ),
            (
                format!("ENDPOINT_DATA_{ID}_ENVIRONMENT"),
                "AzureCloud".into(),
            ),
        ];
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| (k.replace("{ID}", ID), v.to_string())),
        );
        Agent::from_vars(vars)
    }

    #[test]
    fn service_principal_secret_from_auth_json() {
        let a = agent(&[(
            "ENDPOINT_AUTH_{ID}",
            r#"{"parameters":{"serviceprincipalid":"app","serviceprincipalkey":"sp-secret-123","tenantid":"tenant","authenticationType":"spnKey"},"scheme":"ServicePrincipal"}"#,
        )]);
        let c = a.azure_rm(ID).unwrap();
        assert_eq!(
            c.auth,
            AzureAuth::ServicePrincipalSecret {
                client_id: "app".into(),
                secret: "sp-secret-123".into()
            }
        );
        assert_eq!(c.tenant_id, "tenant");
        assert_eq!(c.subscription_id.as_deref(), Some("sub-1"));
        assert_eq!(c.authority_url, "https://login.microsoftonline.com/");
        assert_eq!(c.resource_manager_url, "https://management.azure.com/");
        assert_eq!(c.resource_id, "https://management.azure.com/");
        assert_eq!(crate::secrets::mask("sp-secret-123"), "***");
    }

    #[test]
    fn service_principal_certificate_from_parameter_variables() {
        let a = agent(&[
            ("ENDPOINT_AUTH_SCHEME_{ID}", "ServicePrincipal"),
            ("ENDPOINT_AUTH_PARAMETER_{ID}_SERVICEPRINCIPALID", "app"),
            ("ENDPOINT_AUTH_PARAMETER_{ID}_TENANTID", "tenant"),
            (
                "ENDPOINT_AUTH_PARAMETER_{ID}_AUTHENTICATIONTYPE",
                "spnCertificate",
            ),
            (
                "ENDPOINT_AUTH_PARAMETER_{ID}_SERVICEPRINCIPALCERTIFICATE",
                "-----BEGIN CERTIFICATE-----pem",
            ),
        ]);
        let c = a.azure_rm(ID).unwrap();
        assert!(
            matches!(c.auth, AzureAuth::ServicePrincipalCertificate { ref certificate_pem, .. } if certificate_pem.contains("pem"))
        );
    }

    #[test]
    fn workload_identity_federation_reads_oidc_pieces() {
        let a = agent(&[
            ("ENDPOINT_AUTH_SCHEME_{ID}", "WorkloadIdentityFederation"),
            ("ENDPOINT_AUTH_PARAMETER_{ID}_SERVICEPRINCIPALID", "app"),
            ("ENDPOINT_AUTH_PARAMETER_{ID}_TENANTID", "tenant"),
            (
                "SYSTEM_OIDCREQUESTURI",
                "https://dev.azure.com/org/_apis/oidc",
            ),
            (
                "ENDPOINT_AUTH_SYSTEMVSSCONNECTION",
                r#"{"parameters":{"AccessToken":"vss-access-token"},"scheme":"OAuth"}"#,
            ),
            (
                "ENDPOINT_URL_SYSTEMVSSCONNECTION",
                "https://dev.azure.com/org/",
            ),
        ]);
        let c = a.azure_rm(ID).unwrap();
        assert_eq!(
            c.auth,
            AzureAuth::WorkloadIdentityFederation {
                client_id: "app".into(),
                oidc_request_uri: Some("https://dev.azure.com/org/_apis/oidc".into()),
                system_access_token: Some("vss-access-token".into()),
            }
        );
        assert_eq!(crate::secrets::mask("vss-access-token"), "***");
    }

    #[test]
    fn managed_identity_and_sovereign_authority() {
        let a = agent(&[
            ("ENDPOINT_AUTH_SCHEME_{ID}", "ManagedServiceIdentity"),
            ("ENDPOINT_AUTH_PARAMETER_{ID}_TENANTID", "tenant"),
            ("ENDPOINT_DATA_{ID}_MSICLIENTID", "mi-client"),
            (
                "ENDPOINT_DATA_{ID}_ENVIRONMENTAUTHORITYURL",
                "https://login.example.test",
            ),
            (
                "ENDPOINT_DATA_{ID}_ACTIVEDIRECTORYSERVICEENDPOINTRESOURCEID",
                "https://management.core.windows.net/",
            ),
            ("ENDPOINT_DATA_{ID}_SCOPELEVEL", "ManagementGroup"),
            ("ENDPOINT_DATA_{ID}_MANAGEMENTGROUPID", "mg-1"),
        ]);
        let c = a.azure_rm(ID).unwrap();
        assert_eq!(
            c.auth,
            AzureAuth::ManagedIdentity {
                client_id: Some("mi-client".into())
            }
        );
        assert_eq!(c.authority_url, "https://login.example.test/");
        assert_eq!(c.resource_id, "https://management.core.windows.net/");
        assert_eq!(c.scope_level.as_deref(), Some("ManagementGroup"));
        assert_eq!(c.management_group_id.as_deref(), Some("mg-1"));
    }

    #[test]
    fn cloud_fallback_and_errors() {
        let a = Agent::from_vars([
            (
                format!("ENDPOINT_AUTH_SCHEME_{ID}"),
                "ServicePrincipal".to_string(),
            ),
            (
                format!("ENDPOINT_AUTH_PARAMETER_{ID}_SERVICEPRINCIPALID"),
                "app".into(),
            ),
            (
                format!("ENDPOINT_AUTH_PARAMETER_{ID}_TENANTID"),
                "tenant".into(),
            ),
            (
                format!("ENDPOINT_DATA_{ID}_ENVIRONMENT"),
                "AzureUSGovernment".into(),
            ),
        ]);
        let e = a.azure_rm(ID).unwrap_err();
        assert_eq!(
            e,
            EndpointError::MissingField {
                id: ID.into(),
                field: "serviceprincipalkey".into()
            }
        );
        assert!(matches!(
            a.azure_rm("other"),
            Err(EndpointError::Missing { .. })
        ));
        let b = Agent::from_vars([
            (
                format!("ENDPOINT_AUTH_SCHEME_{ID}"),
                "PublishProfile".to_string(),
            ),
            (
                format!("ENDPOINT_AUTH_PARAMETER_{ID}_TENANTID"),
                "tenant".into(),
            ),
        ]);
        assert!(matches!(
            b.azure_rm(ID),
            Err(EndpointError::UnsupportedScheme { .. })
        ));
        let c = Agent::from_vars([
            (
                format!("ENDPOINT_AUTH_SCHEME_{ID}"),
                "ManagedServiceIdentity".to_string(),
            ),
            (
                format!("ENDPOINT_AUTH_PARAMETER_{ID}_TENANTID"),
                "tenant".into(),
            ),
            (
                format!("ENDPOINT_DATA_{ID}_ENVIRONMENT"),
                "AzureUSGovernment".into(),
            ),
        ])
        .azure_rm(ID)
        .unwrap();
        assert_eq!(c.authority_url, "https://login.microsoftonline.us/");
        assert_eq!(
            c.resource_manager_url,
            "https://management.usgovcloudapi.net/"
        );
    }

    #[test]
    fn generic_endpoint_fields() {
        let a = Agent::from_vars([
            (
                "ENDPOINT_URL_gen".to_string(),
                "https://x.example/".to_string(),
            ),
            (
                "ENDPOINT_AUTH_gen".into(),
                r#"{"parameters":{"apitoken":"generic-token-1"},"scheme":"Token"}"#.into(),
            ),
            ("ENDPOINT_DATA_gen".into(), r#"{"Region":"west"}"#.into()),
        ]);
        let e = a.endpoint("gen").unwrap();
        assert_eq!(e.url.as_deref(), Some("https://x.example/"));
        assert_eq!(e.scheme.as_deref(), Some("Token"));
        assert_eq!(e.auth_param("ApiToken"), Some("generic-token-1"));
        assert_eq!(e.data("region"), Some("west"));
    }
}
