use std::time::Duration;

use azure::{Arm, Credential, DataFactory};
use azure_emulator::{Emulator, Options, Scheme};
use task_sdk::http::{client, HttpSettings};
use task_sdk::{Agent, AzureRmConnection, HttpClient, RetryPolicy};

/// Digits only: `Emulator::service_connection_env` upper-cases the id in variable names, while
/// the agent (and task-sdk) use the lower-case GUID; a digit-only id reads the same both ways.
pub const CONN: &str = "31415926-5358-4793-8384-626433832795";

/// Quick polls: the emulator advances on polls, not on time.
pub fn fast() -> Options {
    Options {
        async_retry_after_secs: 0,
        ..Options::default()
    }
}

pub async fn start(opts: Options) -> Emulator {
    Emulator::start(opts).await.expect("emulator starts")
}

/// The task's HTTP client, trusting the emulator's CA like `AGENT_CAINFO` makes it.
pub fn http(emu: &Emulator) -> HttpClient {
    let settings = HttpSettings {
        proxy: None,
        ca_file: Some(emu.ca_pem_path().to_path_buf()),
        user_agent: "azure-crate-tests".into(),
        timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(10),
        launcher_tunnel: None,
        ..HttpSettings::default()
    };
    HttpClient::new(
        client(&settings).expect("client"),
        RetryPolicy::default().with_budget(Duration::from_secs(3)),
    )
}

/// The agent's view of a service connection of `scheme` pointing at the emulator, with
/// `edit` applied to its variables.
pub fn agent_with(
    emu: &Emulator,
    scheme: Scheme,
    edit: impl Fn(&mut Vec<(String, String)>),
) -> Agent {
    let mut vars = emu.service_connection_env(CONN, scheme);
    // As the agent passes its CA (the managed identity client reads it from the snapshot).
    vars.push((
        "AGENT_CAINFO".into(),
        emu.ca_pem_path().display().to_string(),
    ));
    edit(&mut vars);
    Agent::from_vars(vars)
}

pub fn connection(agent: &Agent) -> AzureRmConnection {
    agent.azure_rm(CONN).expect("connection parses")
}

pub struct Clients {
    pub arm: Arm,
    pub adf: DataFactory,
    pub credential: Credential,
    pub subscription: String,
}

pub fn clients(emu: &Emulator, scheme: Scheme) -> Clients {
    let agent = agent_with(emu, scheme, |_| {});
    let conn = connection(&agent);
    let http = http(emu);
    let credential = Credential::from_agent(&agent, &conn, &http).expect("credential");
    Clients {
        arm: Arm::new(&conn, credential.clone(), http.clone()).expect("arm"),
        adf: DataFactory::new(&conn, credential.clone(), http).expect("adf"),
        credential,
        subscription: conn.subscription_id.clone().expect("subscription"),
    }
}

/// Replaces the value of every variable whose name ends with `suffix`.
pub fn set(vars: &mut [(String, String)], suffix: &str, value: &str) {
    for (k, v) in vars.iter_mut() {
        if k.ends_with(suffix) {
            *v = value.to_owned();
        }
    }
}

/// Replaces `from` with `to` in every variable's value (the connection appears both in
/// `ENDPOINT_AUTH_<id>` JSON and in `ENDPOINT_AUTH_PARAMETER_<id>_*`).
pub fn replace_everywhere(vars: &mut [(String, String)], from: &str, to: &str) {
    for (_, v) in vars.iter_mut() {
        *v = v.replace(from, to);
    }
}
