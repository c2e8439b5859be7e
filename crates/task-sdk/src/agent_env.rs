//! The environment the agent gives a task process (agent-contract.md §2), built in one
//! place: azp-local, the test kits and the emulators' service connections all use this
//! builder, and [`crate::Agent`] reads what it builds, so no test passes against an
//! environment the agent never makes.
//!
//! Names are mapped as the agent maps them ([`env_name`]): `a.b c` → `A_B_C`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::agent::env_name;

/// A service connection as the agent exports it: `ENDPOINT_URL_<id>`, `ENDPOINT_AUTH_<id>`
/// (JSON `{"parameters", "scheme"}`), `ENDPOINT_AUTH_SCHEME_<id>`,
/// `ENDPOINT_AUTH_PARAMETER_<id>_<KEY>`, `ENDPOINT_DATA_<id>` (JSON) and
/// `ENDPOINT_DATA_<id>_<KEY>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceConnection {
    /// The id tasks receive in their `connectedService:*` input (a GUID on the service;
    /// `SYSTEMVSSCONNECTION` for the job's own connection).
    pub id: String,
    pub url: String,
    pub scheme: String,
    /// Authorization parameters (`serviceprincipalid`, `AccessToken`, …).
    pub auth: BTreeMap<String, String>,
    /// Data (`subscriptionId`, `environment`, …).
    pub data: BTreeMap<String, String>,
}

impl ServiceConnection {
    /// The job's own connection, `SYSTEMVSSCONNECTION`: the collection URL and an access
    /// token; every task gets it.
    pub fn system(collection_uri: &str, access_token: &str) -> ServiceConnection {
        ServiceConnection {
            id: "SYSTEMVSSCONNECTION".into(),
            url: collection_uri.to_owned(),
            scheme: "OAuth".into(),
            auth: [("AccessToken".to_owned(), access_token.to_owned())].into(),
            data: BTreeMap::new(),
        }
    }

    /// The `ENDPOINT_*` entries, keyed by the id with `.` and space made `_` (the agent keeps
    /// the id's case; GUIDs are lower case).
    pub fn env(&self) -> Vec<(String, String)> {
        let id = self.id.replace(['.', ' '], "_");
        let as_json = |m: &BTreeMap<String, String>| -> Value {
            Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect::<Map<String, Value>>(),
            )
        };
        let mut auth = Map::new();
        auth.insert("parameters".into(), as_json(&self.auth));
        auth.insert("scheme".into(), Value::String(self.scheme.clone()));
        let mut env = vec![
            (format!("ENDPOINT_URL_{id}"), self.url.clone()),
            (
                format!("ENDPOINT_AUTH_{id}"),
                Value::Object(auth).to_string(),
            ),
            (format!("ENDPOINT_AUTH_SCHEME_{id}"), self.scheme.clone()),
            (
                format!("ENDPOINT_DATA_{id}"),
                as_json(&self.data).to_string(),
            ),
        ];
        for (k, v) in &self.auth {
            env.push((
                format!("ENDPOINT_AUTH_PARAMETER_{id}_{}", env_name(k)),
                v.clone(),
            ));
        }
        for (k, v) in &self.data {
            env.push((format!("ENDPOINT_DATA_{id}_{}", env_name(k)), v.clone()));
        }
        env
    }
}

/// Builds a task process's environment the way the agent does.
#[derive(Debug, Clone, Default)]
pub struct AgentEnv {
    env: BTreeMap<String, String>,
    public: Vec<String>,
    secrets: Vec<String>,
}

impl AgentEnv {
    /// An empty environment; [`AgentEnv::build`] adds what the agent always sets
    /// (`TF_BUILD=True`).
    pub fn new() -> AgentEnv {
        AgentEnv::default()
    }

    /// Starts from an inherited environment (azp-local's own, a test's `PATH`/`HOME`),
    /// without anything only the agent sets.
    pub fn inherit(mut self, vars: impl IntoIterator<Item = (String, String)>) -> AgentEnv {
        for (k, v) in vars {
            let agent_only = ["INPUT_", "SECRET_", "ENDPOINT_", "VSTS_TASKVARIABLE_"]
                .iter()
                .any(|p| k.starts_with(p))
                || k == "VSTS_SECRET_VARIABLES"
                || k == "VSTS_PUBLIC_VARIABLES";
            if !agent_only {
                self.env.insert(k, v);
            }
        }
        self
    }

    /// A public variable (`a.b` → `A_B`), listed in `VSTS_PUBLIC_VARIABLES`. A later value of
    /// the same name wins; a secret of that name stops being one.
    pub fn variable(&mut self, name: &str, value: &str) -> &mut AgentEnv {
        let key = env_name(name);
        self.env.remove(&format!("SECRET_{key}"));
        self.secrets.retain(|n| env_name(n) != key);
        self.public.retain(|n| env_name(n) != key);
        self.public.push(name.to_owned());
        self.env.insert(key, value.to_owned());
        self
    }

    /// A secret variable: `SECRET_A_B`, listed in `VSTS_SECRET_VARIABLES`; never as `A_B`.
    pub fn secret(&mut self, name: &str, value: &str) -> &mut AgentEnv {
        let key = env_name(name);
        self.env.remove(&key);
        self.public.retain(|n| env_name(n) != key);
        self.secrets.retain(|n| env_name(n) != key);
        self.secrets.push(name.to_owned());
        self.env.insert(format!("SECRET_{key}"), value.to_owned());
        self
    }

    /// An input: `INPUT_<NAME>`, trimmed as the agent trims inputs.
    pub fn input(&mut self, name: &str, value: &str) -> &mut AgentEnv {
        self.env
            .insert(format!("INPUT_{}", env_name(name)), value.trim().to_owned());
        self
    }

    /// A task variable (`task.settaskvariable`): `VSTS_TASKVARIABLE_<NAME>`.
    pub fn task_variable(&mut self, name: &str, value: &str) -> &mut AgentEnv {
        self.env.insert(
            format!("VSTS_TASKVARIABLE_{}", env_name(name)),
            value.to_owned(),
        );
        self
    }

    /// A service connection's `ENDPOINT_*` entries.
    pub fn connection(&mut self, connection: &ServiceConnection) -> &mut AgentEnv {
        self.env.extend(connection.env());
        self
    }

    /// An entry as it is (`PATH`, `HOME`, `IDENTITY_ENDPOINT`, …): what the agent's own
    /// process environment passes through.
    pub fn set(&mut self, key: &str, value: &str) -> &mut AgentEnv {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// An entry's value, as built so far.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    /// The environment, with `TF_BUILD=True`, `VSTS_PUBLIC_VARIABLES` and
    /// `VSTS_SECRET_VARIABLES` (JSON arrays of the original names).
    pub fn build(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.insert("TF_BUILD".into(), "True".into());
        let list = |names: &[String]| Value::from(names.to_vec()).to_string();
        env.insert("VSTS_PUBLIC_VARIABLES".into(), list(&self.public));
        env.insert("VSTS_SECRET_VARIABLES".into(), list(&self.secrets));
        env.into_iter().collect()
    }
}

/// Entries as they are, like [`AgentEnv::set`] (e.g. an emulator's `ENDPOINT_*` list).
impl Extend<(String, String)> for AgentEnv {
    fn extend<T: IntoIterator<Item = (String, String)>>(&mut self, iter: T) {
        self.env.extend(iter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Agent;

    fn map(env: Vec<(String, String)>) -> BTreeMap<String, String> {
        env.into_iter().collect()
    }

    #[test]
    fn builds_what_the_contract_says() {
        let mut e = AgentEnv::new().inherit([
            ("PATH".to_owned(), "/bin".to_owned()),
            ("INPUT_STALE".to_owned(), "x".to_owned()),
            ("SECRET_STALE".to_owned(), "x".to_owned()),
        ]);
        e.variable("Build.SourcesDirectory", "/src")
            .variable("my var", "v")
            .secret("api.key", "s3cret")
            .input("workspaceFolder", "  /Shared  ")
            .task_variable("runId", "42");
        let env = map(e.build());
        assert_eq!(env["TF_BUILD"], "True");
        assert_eq!(env["PATH"], "/bin");
        assert!(!env.contains_key("INPUT_STALE") && !env.contains_key("SECRET_STALE"));
        assert_eq!(env["BUILD_SOURCESDIRECTORY"], "/src");
        assert_eq!(env["MY_VAR"], "v");
        assert_eq!(env["SECRET_API_KEY"], "s3cret");
        assert!(!env.contains_key("API_KEY"));
        assert_eq!(env["INPUT_WORKSPACEFOLDER"], "/Shared");
        assert_eq!(env["VSTS_TASKVARIABLE_RUNID"], "42");
        assert_eq!(
            env["VSTS_PUBLIC_VARIABLES"],
            r#"["Build.SourcesDirectory","my var"]"#
        );
        assert_eq!(env["VSTS_SECRET_VARIABLES"], r#"["api.key"]"#);
    }

    #[test]
    fn a_variable_is_public_or_secret_not_both() {
        let mut e = AgentEnv::new();
        e.variable("x", "1").secret("x", "2");
        let env = map(e.build());
        assert!(!env.contains_key("X"));
        assert_eq!(env["SECRET_X"], "2");
        assert_eq!(env["VSTS_PUBLIC_VARIABLES"], "[]");
        e.variable("x", "3");
        let env = map(e.build());
        assert_eq!(env["X"], "3");
        assert!(!env.contains_key("SECRET_X"));
        assert_eq!(env["VSTS_SECRET_VARIABLES"], "[]");
    }

    #[test]
    fn task_sdk_reads_what_the_builder_writes() {
        let conn = ServiceConnection {
            id: "0a6c1e4c-0000-4000-8000-000000000001".into(),
            url: "https://management.azure.com/".into(),
            scheme: "ServicePrincipal".into(),
            auth: [
                ("serviceprincipalid".to_owned(), "app".to_owned()),
                ("serviceprincipalkey".to_owned(), "key".to_owned()),
                ("tenantid".to_owned(), "tenant".to_owned()),
            ]
            .into(),
            data: [("subscriptionId".to_owned(), "sub".to_owned())].into(),
        };
        let mut e = AgentEnv::new();
        e.connection(&conn)
            .connection(&ServiceConnection::system(
                "https://dev.azure.com/o/",
                "tok",
            ))
            .secret("token", "t0k3n")
            .variable("System.PlanId", "plan")
            .input("azureSubscription", &conn.id);
        let env = e.build();
        let built = map(env.clone());
        assert_eq!(
            built["ENDPOINT_AUTH_PARAMETER_0a6c1e4c-0000-4000-8000-000000000001_SERVICEPRINCIPALKEY"],
            "key"
        );
        assert_eq!(
            built["ENDPOINT_DATA_0a6c1e4c-0000-4000-8000-000000000001_SUBSCRIPTIONID"],
            "sub"
        );
        assert_eq!(
            built["ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN"],
            "tok"
        );
        let agent = Agent::from_vars(env);
        assert_eq!(agent.variable("System.PlanId").as_deref(), Some("plan"));
        assert_eq!(agent.variable("token").as_deref(), Some("t0k3n"));
        assert_eq!(
            agent.input("azureSubscription").as_deref(),
            Some(conn.id.as_str())
        );
        let endpoint = agent
            .endpoint(&conn.id)
            .expect("task-sdk reads the connection the builder wrote");
        assert_eq!(endpoint.url.as_deref(), Some(conn.url.as_str()));
        assert_eq!(endpoint.scheme.as_deref(), Some("ServicePrincipal"));
        assert_eq!(endpoint.auth_param("serviceprincipalkey"), Some("key"));
        assert_eq!(endpoint.data("subscriptionId"), Some("sub"));
        let rm = agent.azure_rm(&conn.id).expect("an AzureRM connection");
        assert_eq!(rm.tenant_id, "tenant");
    }
}
