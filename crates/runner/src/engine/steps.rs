//! How scripts and tasks run: their process, its logging commands, and the updates they make
//! to the job (variables, paths, endpoints, artifacts).

use std::path::PathBuf;
use std::time::Duration;

use super::{copy_tree, is_true, Engine, JobState};
use crate::commands::{Interpreter, Shown, Update};
use crate::expr::Outcome;
use crate::manifest::{Handler, Manifest};
use crate::pipeline::{Shell, Step};
use crate::process::{self, Spawn, Stream};

impl Engine<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_script(
        &mut self,
        state: &mut JobState,
        step: &Step,
        shell: Shell,
        script: &str,
        working_directory: Option<&str>,
        fail_on_stderr: bool,
        extra_env: Vec<(String, String)>,
        timeout: Option<Duration>,
    ) -> (Outcome, String) {
        let temp = PathBuf::from(state.vars.value("Agent.TempDirectory").unwrap_or("."));
        let _ = std::fs::create_dir_all(&temp);
        let body = state.vars.expand(script);
        let (program, args, file) = match shell {
            Shell::Bash => {
                let file = temp.join(format!("{:016x}.sh", fastrand::u64(..)));
                (
                    PathBuf::from("bash"),
                    vec![
                        "--noprofile".to_owned(),
                        "--norc".to_owned(),
                        file.display().to_string(),
                    ],
                    file,
                )
            }
            Shell::Pwsh | Shell::PowerShell => {
                let file = temp.join(format!("{:016x}.ps1", fastrand::u64(..)));
                (
                    PathBuf::from("pwsh"),
                    vec![
                        "-NoLogo".into(),
                        "-NoProfile".into(),
                        "-NonInteractive".into(),
                        "-Command".into(),
                        format!(". '{}'", file.display()),
                    ],
                    file,
                )
            }
        };
        let body = match shell {
            Shell::Bash => body,
            _ => format!("$ErrorActionPreference = 'stop'\n{body}\nif ((Test-Path -LiteralPath variable:\\LASTEXITCODE)) {{ exit $LASTEXITCODE }}\n"),
        };
        if let Err(e) = std::fs::write(&file, body) {
            return (Outcome::Failed, format!("cannot write the script: {e}"));
        }
        let mut env = self.common_env(state).build();
        for (k, v) in &step.env {
            env.push((k.clone(), state.vars.expand(v)));
        }
        env.extend(extra_env);
        let cwd = working_directory
            .map(|w| self.absolute(state, &state.vars.expand(w)))
            .unwrap_or_else(|| self.absolute(state, "."));
        self.printer.shown(&Shown::Command(format!(
            "{} {}",
            program.display(),
            args.join(" ")
        )));
        let spawn = Spawn {
            program,
            args,
            cwd,
            env,
            timeout,
        };
        let result = self.spawn_and_interpret(
            state,
            &spawn,
            Interpreter {
                debug: is_true(state.vars.value("System.Debug")),
                ..Default::default()
            },
            step,
            fail_on_stderr,
            None,
        );
        let _ = std::fs::remove_file(&file);
        result
    }

    pub(super) fn run_task(
        &mut self,
        state: &mut JobState,
        step: &Step,
        manifest: &Manifest,
        inputs: &[(String, String)],
        timeout: Option<Duration>,
    ) -> (Outcome, String) {
        let handler = match manifest.handler(&self.settings.binaries) {
            Ok(h) => h,
            Err(e) => {
                self.printer.shown(&Shown::Error(e.clone()));
                return (Outcome::Failed, e);
            }
        };
        let (mut env, missing) = self.task_env(state, manifest, inputs);
        if let Some(msg) = missing {
            self.printer.shown(&Shown::Error(msg.clone()));
            return (Outcome::Failed, msg);
        }
        for (k, v) in &step.env {
            env.push((k.clone(), state.vars.expand(v)));
        }
        let cwd = self.absolute(state, ".");
        let (program, args) = match &handler {
            Handler::Node { name, target, eol } => {
                if *eol {
                    self.printer.shown(&Shown::Warning(format!("Task '{}' uses the {name} handler, which is end-of-life; move it to Node20_1 or Node24", manifest.name)));
                }
                (
                    PathBuf::from("node"),
                    vec![manifest.dir.join(target).display().to_string()],
                )
            }
            Handler::Binary(path) => (path.clone(), Vec::new()),
        };
        self.printer.shown(&Shown::Section(format!(
            "Task {} {}.x ({})",
            manifest.name,
            manifest.major,
            manifest.dir.display()
        )));
        let interpreter = Interpreter {
            output_variables: manifest.output_variables.clone(),
            settable: manifest.settable_variables.clone(),
            debug: is_true(state.vars.value("System.Debug")),
            ..Default::default()
        };
        let spawn = Spawn {
            program,
            args,
            cwd,
            env,
            timeout,
        };
        self.spawn_and_interpret(
            state,
            &spawn,
            interpreter,
            step,
            false,
            Some(&manifest.name),
        )
    }

    pub(super) fn spawn_and_interpret(
        &mut self,
        state: &mut JobState,
        spawn: &Spawn,
        mut interpreter: Interpreter,
        step: &Step,
        fail_on_stderr: bool,
        task: Option<&str>,
    ) -> (Outcome, String) {
        let mut stderr_lines = 0usize;
        let printer = &mut *self.printer;
        let masker = &mut state.masker;
        let result = process::run(spawn, &mut |stream, line| {
            if stream == Stream::Stderr {
                stderr_lines += 1;
            }
            let shown = interpreter.line(line, masker);
            printer.raw(&masker.mask(line));
            for s in &shown {
                printer.shown(s);
            }
        });
        let ended = match result {
            Ok(e) => e,
            Err(e) => {
                let msg = format!("cannot start {}: {e}", spawn.program.display());
                self.printer.shown(&Shown::Error(msg.clone()));
                return (Outcome::Failed, msg);
            }
        };
        let mut note = String::new();
        let mut outcome = interpreter.result(ended.ok());
        if ended.canceled {
            outcome = Outcome::Canceled;
            note = "canceled".into();
        } else if ended.timed_out {
            outcome = Outcome::Failed;
            note = format!(
                "timed out after {}",
                crate::output::duration_text(spawn.timeout.unwrap_or_default())
            );
        } else if ended.code != Some(0) {
            note = match ended.code {
                Some(c) => format!("exit code {c}"),
                None => "ended by a signal".into(),
            };
        } else if interpreter.command_failed {
            note = "a logging command failed".into();
        } else if let Some(m) = &interpreter.complete_message {
            if outcome != Outcome::Succeeded {
                note = state.masker.mask(m);
            }
        }
        if fail_on_stderr && stderr_lines > 0 && outcome != Outcome::Canceled {
            outcome = Outcome::Failed;
            note = format!("{stderr_lines} line(s) on stderr (failOnStderr)");
        }
        if interpreter.errors > 0 || interpreter.warnings > 0 {
            let counts = format!(
                "{} error(s), {} warning(s)",
                interpreter.errors, interpreter.warnings
            );
            note = if note.is_empty() {
                counts
            } else {
                format!("{note}; {counts}")
            };
        }
        self.apply_updates(state, interpreter.updates, step, task);
        (outcome, note)
    }

    pub(super) fn apply_updates(
        &mut self,
        state: &mut JobState,
        updates: Vec<Update>,
        step: &Step,
        task: Option<&str>,
    ) {
        for update in updates {
            match update {
                Update::Variable {
                    name,
                    value,
                    secret,
                    read_only,
                    output,
                } => {
                    if secret {
                        state.masker.add(&value);
                    }
                    let name = if output {
                        match &step.name {
                            Some(step_name) => format!("{step_name}.{name}"),
                            // The agent names such a step itself; nothing later can refer to it.
                            None => continue,
                        }
                    } else {
                        name
                    };
                    if let Err(e) = state.vars.set(&name, &value, secret, read_only || output) {
                        self.printer.warning(&e.to_string());
                    }
                    if output {
                        // For later jobs and stages: `[<copy or hook>.]<step>.<var>`.
                        if state.output_prefixes.is_empty() {
                            state.outputs.push((name.clone(), value.clone()));
                        }
                        for prefix in &state.output_prefixes {
                            state
                                .outputs
                                .push((format!("{prefix}.{name}"), value.clone()));
                        }
                        if secret {
                            self.secret_outputs.push(value.clone());
                        }
                    }
                }
                Update::PrependPath(dir) => {
                    state.prepend_path.retain(|d| d != &dir);
                    state.prepend_path.push(dir);
                }
                Update::TaskVariable {
                    name,
                    value,
                    secret,
                } => {
                    if secret {
                        state.masker.add(&value);
                    }
                    if let Some(task) = task {
                        state
                            .task_variables
                            .entry(task.to_ascii_lowercase())
                            .or_default()
                            .push((name, value, secret));
                    }
                }
                Update::Endpoint {
                    id,
                    field,
                    key,
                    value,
                } => match state
                    .endpoints
                    .iter_mut()
                    .find(|e| e.id.eq_ignore_ascii_case(&id))
                {
                    Some(e) => e.set(&field, key.as_deref(), &value),
                    None => self.printer.warning(&format!(
                        "task.setendpoint: no service connection '{id}' in this run"
                    )),
                },
                Update::BuildNumber(n) => state.vars.set_force("Build.BuildNumber", &n, false),
                Update::UploadArtifact { name, path } => {
                    let source = self.absolute(state, &path);
                    let target = self.artifacts_dir.join(&name);
                    if let Err(e) = copy_tree(&source, &target) {
                        self.printer
                            .warning(&format!("artifact.upload of {}: {e}", source.display()));
                    }
                }
            }
        }
    }
}
