//! The environment of a step's process (contract §2): public variables, secrets, inputs,
//! service connections, task variables, `PATH`.

use std::path::{Path, PathBuf};

use task_sdk::agent_env::AgentEnv;

use super::{Engine, JobState};
use crate::endpoints::{system_connection, Endpoint};
use crate::manifest::Manifest;
use crate::variables::env_name;

impl Engine<'_> {
    /// The environment every step gets: azp-local's own, `PATH` with prepended folders,
    /// public variables, and `TF_BUILD`, through task-sdk's builder (the agent's rules).
    pub(super) fn common_env(&self, state: &JobState) -> AgentEnv {
        let mut env = AgentEnv::new().inherit(self.settings.base_env.iter().cloned());
        for v in state.vars.iter() {
            if v.secret || env_name(&v.name) == "PATH" {
                continue;
            }
            env.variable(&v.name, &v.value);
        }
        if !state.prepend_path.is_empty() {
            let mut dirs: Vec<PathBuf> =
                state.prepend_path.iter().rev().map(PathBuf::from).collect();
            if let Some(old) = env.get("PATH") {
                dirs.extend(std::env::split_paths(old));
            }
            if let Ok(path) = std::env::join_paths(dirs) {
                env.set("PATH", &path.to_string_lossy());
            }
        }
        env
    }

    /// The task's environment (contract §2). Returns an error message for a connection the
    /// run does not know.
    pub(super) fn task_env(
        &self,
        state: &mut JobState,
        manifest: &Manifest,
        given: &[(String, String)],
    ) -> (Vec<(String, String)>, Option<String>) {
        let mut env = self.common_env(state);
        for v in state.vars.iter().filter(|v| v.secret) {
            env.secret(&v.name, &v.value);
        }
        let mut connections: Vec<Endpoint> = Vec::new();
        let mut problem = None;
        for input in &manifest.inputs {
            // Defaults first, the step's inputs over them, both trimmed; macros expanded once.
            let raw = given
                .iter()
                .find(|(n, _)| n == &input.name)
                .map(|(_, v)| v.clone())
                .or_else(|| input.default.clone())
                .unwrap_or_default();
            let mut value = state.vars.expand(raw.trim()).trim().to_owned();
            if input.is_file_path() && !value.is_empty() && !Path::new(&value).is_absolute() {
                value = self.absolute(state, &value).display().to_string();
            }
            if input.is_connected_service() && !value.is_empty() {
                let mut ids = Vec::new();
                for reference in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                    match state.endpoints.iter().find(|e| {
                        e.id.eq_ignore_ascii_case(reference)
                            || e.name
                                .as_deref()
                                .is_some_and(|n| n.eq_ignore_ascii_case(reference))
                    }) {
                        Some(e) => {
                            ids.push(e.id.clone());
                            connections.push(e.clone());
                        }
                        None => {
                            problem.get_or_insert_with(|| format!(
                                "input '{}' names the service connection '{reference}', which this run does not have: define it in the vars file's 'endpoints', with --endpoint id=<file.json>, or use --emulators",
                                input.name
                            ));
                        }
                    }
                }
                value = ids.join(",");
            }
            env.input(&input.name, &value);
        }
        for e in &connections {
            env.connection(&e.connection());
        }
        let vss = state
            .endpoints
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case("SYSTEMVSSCONNECTION"))
            .cloned()
            .unwrap_or_else(|| {
                system_connection(
                    state.vars.value("System.CollectionUri").unwrap_or_default(),
                    &self.collection_token,
                )
            });
        env.connection(&vss.connection());
        for (name, value, _secret) in state
            .task_variables
            .get(&manifest.name.to_ascii_lowercase())
            .into_iter()
            .flatten()
        {
            env.task_variable(name, value);
        }
        (env.build(), problem)
    }
}
