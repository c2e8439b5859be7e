//! Service connections known to a local run, and the `ENDPOINT_*` environment the agent
//! exports for those a task's `connectedService:*` inputs name (contract §2).

use std::collections::BTreeMap;

use serde_json::Value;

use task_sdk::agent_env::ServiceConnection;
use task_sdk::endpoint::PUBLIC_AUTH_PARAMS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The id tasks receive as the input's value (a GUID on the service).
    pub id: String,
    /// The connection's name, which YAML may use instead of the id.
    pub name: Option<String>,
    pub url: String,
    pub scheme: String,
    pub auth: BTreeMap<String, String>,
    pub data: BTreeMap<String, String>,
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect()
}

impl Endpoint {
    /// Reads the JSON form: `{"name", "url", "scheme", "auth" (or "parameters"), "data"}`, or
    /// the agent's `{"authorization": {"scheme", "parameters"}}` shape.
    pub fn from_json(id: &str, v: &Value) -> Result<Endpoint, String> {
        if !v.is_object() {
            return Err(format!("service connection '{id}' must be a JSON object"));
        }
        let authorization = &v["authorization"];
        let scheme = v["scheme"]
            .as_str()
            .or(authorization["scheme"].as_str())
            .unwrap_or("None")
            .to_owned();
        let auth = [&v["auth"], &v["parameters"], &authorization["parameters"]]
            .into_iter()
            .find(|p| p.is_object())
            .map(string_map)
            .unwrap_or_default();
        Ok(Endpoint {
            id: id.to_owned(),
            name: v["name"].as_str().map(str::to_owned),
            url: v["url"].as_str().unwrap_or_default().to_owned(),
            scheme,
            auth,
            data: string_map(&v["data"]),
        })
    }

    /// Reads the `ENDPOINT_*` variables of connection `id` from an environment list (the
    /// shape the Azure emulator hands out).
    pub fn from_env(id: &str, name: Option<&str>, env: &[(String, String)]) -> Option<Endpoint> {
        // Case-insensitive: emulators have exported the id both as given and upper-cased.
        let key = id.replace(['.', ' '], "_");
        let get = |prefix: &str| {
            let wanted = format!("{prefix}{key}");
            env.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&wanted))
                .map(|(_, v)| v.clone())
        };
        let auth: Value = serde_json::from_str(&get("ENDPOINT_AUTH_")?).ok()?;
        let data: Value = get("ENDPOINT_DATA_")
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(Value::Null);
        Some(Endpoint {
            id: id.to_owned(),
            name: name.map(str::to_owned),
            url: get("ENDPOINT_URL_")?,
            scheme: auth["scheme"].as_str().unwrap_or("None").to_owned(),
            auth: string_map(&auth["parameters"]),
            data: string_map(&data),
        })
    }

    /// Values to mask: every auth parameter but the public ones.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.auth
            .iter()
            .filter(|(k, v)| {
                !v.is_empty() && !PUBLIC_AUTH_PARAMS.contains(&k.to_ascii_lowercase().as_str())
            })
            .map(|(_, v)| v.as_str())
    }

    /// As task-sdk's builder exports it.
    pub fn connection(&self) -> ServiceConnection {
        ServiceConnection {
            id: self.id.clone(),
            url: self.url.clone(),
            scheme: self.scheme.clone(),
            auth: self.auth.clone(),
            data: self.data.clone(),
        }
    }

    /// The agent's variables for this connection, keyed by its id as given.
    pub fn env(&self) -> Vec<(String, String)> {
        self.connection().env()
    }

    /// Applies a `task.setendpoint`.
    pub fn set(&mut self, field: &str, key: Option<&str>, value: &str) {
        match (field, key) {
            ("url", _) => self.url = value.to_owned(),
            ("dataparameter", Some(k)) => {
                self.data.insert(k.to_owned(), value.to_owned());
            }
            ("authparameter", Some(k)) => {
                self.auth.insert(k.to_owned(), value.to_owned());
            }
            _ => {}
        }
    }
}

/// The `SYSTEMVSSCONNECTION` every task receives: the collection URL and a job access token.
pub fn system_connection(collection_uri: &str, token: &str) -> Endpoint {
    let c = ServiceConnection::system(collection_uri, token);
    Endpoint {
        id: c.id,
        name: Some("SystemVssConnection".into()),
        url: c.url,
        scheme: c.scheme,
        auth: c.auth,
        data: c.data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exports_the_agent_variables() {
        let e = Endpoint::from_json(
            "0a1b",
            &json!({"url": "https://x/", "scheme": "ServicePrincipal", "auth": {"serviceprincipalkey": "k", "tenantid": "t"}, "data": {"subscriptionId": "s"}}),
        )
        .unwrap();
        let env: BTreeMap<_, _> = e.env().into_iter().collect();
        assert_eq!(env["ENDPOINT_URL_0a1b"], "https://x/");
        assert_eq!(env["ENDPOINT_AUTH_SCHEME_0a1b"], "ServicePrincipal");
        assert_eq!(env["ENDPOINT_AUTH_PARAMETER_0a1b_SERVICEPRINCIPALKEY"], "k");
        assert_eq!(env["ENDPOINT_DATA_0a1b_SUBSCRIPTIONID"], "s");
        let auth: Value = serde_json::from_str(&env["ENDPOINT_AUTH_0a1b"]).unwrap();
        assert_eq!(auth["parameters"]["tenantid"], "t");
        assert_eq!(e.secrets().collect::<Vec<_>>(), vec!["k"]);
    }

    #[test]
    fn round_trips_through_env() {
        let e = Endpoint::from_json(
            "abc",
            &json!({"url": "u", "scheme": "S", "auth": {"a": "1"}, "data": {"d": "2"}}),
        )
        .unwrap();
        let env: Vec<(String, String)> = e
            .env()
            .into_iter()
            .map(|(k, v)| (k.replace("_abc", "_ABC"), v))
            .collect();
        let back = Endpoint::from_env("abc", None, &env).unwrap();
        assert_eq!(back.url, "u");
        assert_eq!(back.auth["a"], "1");
        assert_eq!(back.data["d"], "2");
    }
}
