//! Test support for the Azure tasks (deploy-arm, run-adf-pipeline): runs a task binary the
//! way the agent does — a cleared environment holding the inputs, the Azure emulator's
//! service connection and the agent's variables — and reads its stdout as logging commands.
//! Also [`azurite`]: the Azure Storage emulator for the blob task. Not shipped: a dev-dependency
//! only.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod azurite;

use azure_emulator::{Emulator, Options, Scheme};
use task_sdk::agent_env::AgentEnv;
use task_sdk::command::{self, Command as LogCommand};

/// The service connection's id: a GUID, as the agent names it.
pub const CONNECTION: &str = "11111111-2222-3333-4444-555555555555";

pub struct Env {
    pub emulator: Emulator,
    pub work: tempfile::TempDir,
    pub temp: tempfile::TempDir,
    pub scheme: Scheme,
}

impl Env {
    pub fn new(scheme: Scheme) -> Env {
        Env::with_options(scheme, Options::default())
    }

    pub fn with_options(scheme: Scheme, options: Options) -> Env {
        Env {
            emulator: Emulator::start_blocking(options).expect("the emulator starts"),
            work: tempfile::tempdir().unwrap(),
            temp: tempfile::tempdir().unwrap(),
            scheme,
        }
    }

    pub fn root(&self) -> &Path {
        self.work.path()
    }

    pub fn write(&self, relative: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.root().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    /// The environment of one task run, built by task-sdk's [`AgentEnv`] (the builder
    /// azp-local uses), with the emulator's service connection.
    pub fn vars(&self, inputs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = AgentEnv::new();
        for (name, value) in [
            (
                "Agent.TempDirectory",
                self.temp.path().display().to_string(),
            ),
            (
                "Agent.CAInfo",
                self.emulator.ca_pem_path().display().to_string(),
            ),
            (
                "System.DefaultWorkingDirectory",
                self.root().display().to_string(),
            ),
            ("Build.SourcesDirectory", self.root().display().to_string()),
            ("System.Debug", "false".into()),
            (task_sdk::RETRY_BUDGET_VARIABLE, "3".into()),
        ] {
            env.variable(name, &value);
        }
        env.extend(
            self.emulator
                .service_connection_env(CONNECTION, self.scheme),
        );
        for (name, value) in inputs {
            env.input(name, value);
        }
        env.build()
    }

    /// Starts `binary` (directly, or the shipped build through the launcher: see
    /// launcher-testkit).
    pub fn spawn(&self, binary: &str, inputs: &[(&str, &str)]) -> Child {
        launcher_testkit::command(Path::new(binary))
            .env_clear()
            .envs(self.vars(inputs))
            .current_dir(self.root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the task starts")
    }

    pub fn run(&self, binary: &str, inputs: &[(&str, &str)]) -> Outcome {
        let child = self.spawn(binary, inputs);
        Outcome::from_output(child.wait_with_output().unwrap())
    }

    /// Values that must never be printed (other than to register them as secrets).
    pub fn secrets(&self) -> Vec<String> {
        let o = self.emulator.options();
        vec![
            o.client_secret.clone(),
            o.oidc_request_token.clone(),
            o.identity_header.clone(),
        ]
    }
}

pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub commands: Vec<LogCommand>,
}

impl Outcome {
    /// Reads `child`'s output until a line contains `marker` (within 60 s), lets `pause` pass,
    /// then sends SIGTERM as the agent does when the pipeline is cancelled, and returns what
    /// the task printed in all.
    pub fn terminated_after(mut child: Child, marker: &str, pause: Duration) -> Outcome {
        let mut reader = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut seen = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
                panic!("the task never printed '{marker}':\n{seen}");
            }
            seen.push_str(&line);
            if line.contains(marker) {
                break;
            }
        }
        std::thread::sleep(pause);
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        reader.read_to_string(&mut seen).unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr is piped")
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        Outcome::from_output(std::process::Output {
            status,
            stdout: seen.into_bytes(),
            stderr: stderr.into_bytes(),
        })
    }

    pub fn from_output(output: std::process::Output) -> Outcome {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let commands = stdout
            .lines()
            .chain(stderr.lines())
            .filter_map(command::parse)
            .collect();
        Outcome {
            code: output.status.code(),
            stdout,
            stderr,
            commands,
        }
    }

    /// What a person reads in the log: plain lines, and the messages of commands.
    pub fn log(&self) -> String {
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .map(|l| match command::parse(l) {
                Some(c) if c.name() == "task.setsecret" => String::new(),
                Some(c) => c.data,
                None => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
            && !self
                .commands
                .iter()
                .any(|c| c.name() == "task.complete" && c.property("result") == Some("Failed"))
    }

    pub fn failed(&self) -> bool {
        self.code != Some(0)
            && self
                .commands
                .iter()
                .any(|c| c.name() == "task.complete" && c.property("result") == Some("Failed"))
    }

    /// The failure message (`task.complete result=Failed`).
    pub fn failure(&self) -> String {
        self.commands
            .iter()
            .filter(|c| c.name() == "task.complete" && c.property("result") == Some("Failed"))
            .map(|c| c.data.clone())
            .next()
            .unwrap_or_default()
    }

    /// A `task.setvariable` by name: (value, issecret, isoutput).
    pub fn variable(&self, name: &str) -> Option<(String, bool, bool)> {
        self.commands
            .iter()
            .rev()
            .find(|c| c.name() == "task.setvariable" && c.property("variable") == Some(name))
            .map(|c| (c.data.clone(), c.flag("issecret"), c.flag("isoutput")))
    }

    pub fn has(&self, name: &str) -> bool {
        self.commands.iter().any(|c| c.name() == name)
    }

    /// Fails the test if a secret, or anything shaped like an access token, appears outside a
    /// `task.setsecret` line.
    pub fn assert_no_secret(&self, secrets: &[String]) {
        for line in self.stdout.lines().chain(self.stderr.lines()) {
            if command::parse(line).is_some_and(|c| c.name() == "task.setsecret") {
                continue;
            }
            for s in secrets {
                assert!(
                    !line.contains(s.as_str()),
                    "a secret appears in the output: {line}"
                );
            }
            assert!(
                !line.contains("eyJ"),
                "something token-shaped appears in the output: {line}"
            );
        }
    }

    pub fn dump(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}
