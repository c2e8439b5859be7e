//! Microsoft Entra ID mode end to end: configuredatabricks (and deploynotebooks without a
//! configure step) given an AzureRM service connection (`azureSubscription`) get a token for
//! the Azure Databricks resource from the Azure emulator, and the Databricks emulator accepts
//! only tokens the Azure emulator issued for that resource.

use std::path::Path;
use std::sync::Arc;

use azure_emulator::{Scheme, DATABRICKS_RESOURCE};
use databricks_emulator::{Options, TokenCheck};
use databricks_task_common::testing::{sibling_binary, Job, StepRun};
use task_sdk::TaskResult;

const BIN: &str = env!("CARGO_BIN_EXE_configure-databricks");
/// A service connection id as the agent gives it: a lowercase GUID with letters.
const CONNECTION: &str = "6f1c2a4e-8b3d-4e5f-9a7b-0c1d2e3f4a5b";
const SCHEMES: [Scheme; 3] = [
    Scheme::ServicePrincipal,
    Scheme::WorkloadIdentityFederation,
    Scheme::ManagedServiceIdentity,
];

/// Whether `audience` (as the Azure emulator recorded it) is the Azure Databricks resource.
fn is_databricks(audience: &str) -> bool {
    audience.trim_end_matches('/') == DATABRICKS_RESOURCE
}

/// Whether the Databricks emulator accepts a token, given the audience the Azure emulator
/// issued it for (`None`: not issued there, or expired).
type Acceptance = fn(Option<&str>) -> bool;

/// Both emulators; the Databricks one accepts a token when `accepts(audience of the token)`,
/// the audience being what the Azure emulator issued the token for (none: not issued there,
/// or expired). No fixed tokens.
struct Emulators {
    azure: Arc<azure_emulator::Emulator>,
    databricks: databricks_emulator::Emulator,
}

impl Emulators {
    fn new(accepts: Acceptance) -> Emulators {
        let azure = Arc::new(
            azure_emulator::Emulator::start_blocking(azure_emulator::Options::default())
                .expect("the Azure emulator starts"),
        );
        let issuer = azure.clone();
        let databricks = databricks_emulator::Emulator::start_blocking(Options {
            tokens: Vec::new(),
            token_check: Some(TokenCheck::new(move |token| {
                accepts(issuer.token_audience(token).as_deref())
            })),
            python: Some(Default::default()),
            ..Options::default()
        })
        .expect("the Databricks emulator starts");
        Emulators { azure, databricks }
    }

    /// Databricks accepts exactly the Azure emulator's tokens for the Databricks resource.
    fn faithful() -> Emulators {
        Emulators::new(|audience| audience.is_some_and(is_databricks))
    }

    /// A job whose agent knows the service connection (`ENDPOINT_*`) and trusts the Azure
    /// emulator's CA; `HOME` is the job's temp home.
    fn job(&self, scheme: Scheme) -> Job {
        let mut job = Job::new();
        job.env
            .extend(self.azure.service_connection_env(CONNECTION, scheme));
        job.env.variable(
            "Agent.CAInfo",
            &self.azure.ca_pem_path().display().to_string(),
        );
        job
    }

    fn connection_inputs(&self) -> [(&'static str, String); 2] {
        [
            ("url", self.databricks.url()),
            ("azureSubscription", CONNECTION.to_owned()),
        ]
    }
}

fn run(job: &mut Job, binary: &Path, inputs: &[(&str, String)]) -> StepRun {
    let inputs: Vec<(&str, &str)> = inputs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    job.run(binary, &inputs)
}

/// Values the agent must never see in plain output: the connection's credentials.
fn connection_secrets(emu: &Emulators) -> Vec<String> {
    let o = emu.azure.options();
    vec![
        o.client_secret.clone(),
        o.oidc_request_token.clone(),
        o.identity_header.clone(),
    ]
}

#[test]
fn each_scheme_gets_a_databricks_token_and_hands_it_on() {
    for scheme in SCHEMES {
        let emu = Emulators::faithful();
        let mut job = emu.job(scheme);
        let step = run(&mut job, Path::new(BIN), &emu.connection_inputs());
        assert_eq!(
            step.result(),
            TaskResult::Succeeded,
            "{scheme:?}: {}",
            step.log()
        );

        let vars = step.variables();
        let (token, secret, output) = vars
            .get("Databricks.Token")
            .unwrap_or_else(|| panic!("{scheme:?}: no token variable: {}", step.log()))
            .clone();
        assert!(secret && !output, "{scheme:?}: {}", step.log());
        assert_eq!(
            emu.azure.token_audience(&token).as_deref(),
            Some(DATABRICKS_RESOURCE),
            "{scheme:?}: the token is not one the Azure emulator issued for Azure Databricks"
        );
        assert_eq!(
            vars["Databricks.Host"],
            (emu.databricks.url(), false, false)
        );
        let expires: u64 = vars["Databricks.TokenExpiresOn"]
            .0
            .parse()
            .unwrap_or_else(|_| panic!("{scheme:?}: no expiry: {}", step.log()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            expires > now && expires <= now + 3700,
            "{scheme:?}: expiry {expires} vs now {now}"
        );
        assert!(
            step.stdout.contains("Connected to") && step.stdout.contains("emulator@example.com"),
            "{scheme:?}: {}",
            step.log()
        );
        // The token was registered as a secret before anything could print it.
        assert!(
            step.commands
                .iter()
                .any(|c| c.name() == "task.setsecret" && c.data == token),
            "{scheme:?}: {}",
            step.log()
        );
        step.assert_no_secret(&token);
        for secret in connection_secrets(&emu) {
            step.assert_no_secret(&secret);
        }
        // The workspace saw a request with that token (the credential check).
        assert!(emu.databricks.request_count("preview/scim/v2/Me") >= 1);

        let cfg = std::fs::read_to_string(job.home().join(".databrickscfg")).unwrap();
        assert!(
            cfg.contains(&format!(
                "[AZDO]\nhost = {}\ntoken = {token}\n",
                emu.databricks.url()
            )),
            "{scheme:?}: {cfg}"
        );
    }
}

#[test]
fn a_workspace_that_refuses_the_token_fails_the_task() {
    let refusals: [(&str, Acceptance); 2] = [
        ("refuses every token", |_| false),
        // Accepts only tokens for ARM: a Databricks-audience token must be refused, which
        // shows the check tells audiences apart.
        ("wants another audience", |audience| {
            audience.is_some_and(|a| a.trim_end_matches('/') == "https://management.azure.com")
        }),
    ];
    for (what, accepts) in refusals {
        let emu = Emulators::new(accepts);
        let mut job = emu.job(Scheme::ServicePrincipal);
        let step = run(&mut job, Path::new(BIN), &emu.connection_inputs());
        assert_eq!(step.result(), TaskResult::Failed, "{what}: {}", step.log());
        let errors = step.errors();
        assert_eq!(errors.len(), 1, "{what}: {}", step.log());
        assert!(
            errors[0]
                .contains("refused the Microsoft Entra ID token (HTTP 403, invalid access token)"),
            "{what}: {}",
            errors[0]
        );
        assert!(step.variable("Databricks.Token").is_none(), "{what}");
        assert!(!job.home().join(".databrickscfg").exists(), "{what}");
        // The token the task got is registered, and appears nowhere else.
        let issued: Vec<String> = step
            .commands
            .iter()
            .filter(|c| c.name() == "task.setsecret")
            .map(|c| c.data.clone())
            .filter(|t| emu.azure.token_audience(t).is_some())
            .collect();
        assert_eq!(issued.len(), 1, "{what}: {}", step.log());
        step.assert_no_secret(&issued[0]);
        for secret in connection_secrets(&emu) {
            step.assert_no_secret(&secret);
        }
    }
}

#[test]
fn deploy_notebooks_uses_the_connection_without_a_configure_step() {
    let deploy = sibling_binary("deploy-notebooks");
    for scheme in SCHEMES {
        let emu = Emulators::faithful();
        let mut job = emu.job(scheme);
        let root = job.dir().join("s").join("notebooks");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            root.join("hello.py"),
            "# Databricks notebook source\nprint('hello')\n",
        )
        .unwrap();
        let mut inputs = emu.connection_inputs().to_vec();
        inputs.extend([
            ("notebooksFolderPath", root.display().to_string()),
            ("workspaceFolder", "/Shared/entra".to_owned()),
        ]);
        let step = run(&mut job, &deploy, &inputs);
        assert_eq!(
            step.result(),
            TaskResult::Succeeded,
            "{scheme:?}: {}",
            step.log()
        );
        let state = emu.databricks.state();
        let deployed = state["workspace"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["path"] == "/Shared/entra/hello");
        assert!(deployed, "{scheme:?}: {state}\n{}", step.log());
        for token in step
            .commands
            .iter()
            .filter(|c| c.name() == "task.setsecret")
        {
            step.assert_no_secret(&token.data);
        }
        for secret in connection_secrets(&emu) {
            step.assert_no_secret(&secret);
        }
    }
}
