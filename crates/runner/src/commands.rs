//! What the agent does with each line a step prints (contract §3 and §4): logging commands
//! through task-sdk's one parser, display-only `##[…]` prefixes, and the result rules.
//!
//! The interpreter is pure: it returns what to show and records what the step asked for;
//! the caller applies variable updates after the step, as the agent applies them to later
//! steps only.

use std::path::Path;

use task_sdk::command::{parse, Command, TaskResult};

use crate::expr::Outcome;
use crate::variables::Masker;

/// A line to show, already masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    Out(String),
    Group(String),
    EndGroup,
    Section(String),
    Command(String),
    Warning(String),
    Error(String),
    Debug(String),
}

/// What a step asked the job to change for later steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    Variable {
        name: String,
        value: String,
        secret: bool,
        read_only: bool,
        output: bool,
    },
    PrependPath(String),
    TaskVariable {
        name: String,
        value: String,
        secret: bool,
    },
    Endpoint {
        id: String,
        field: String,
        key: Option<String>,
        value: String,
    },
    BuildNumber(String),
    UploadArtifact {
        name: String,
        path: String,
    },
}

/// Areas the agent knows (its command extensions); commands in any other area are warnings.
const KNOWN_AREAS: &[&str] = &[
    "task",
    "artifact",
    "build",
    "release",
    "codecoverage",
    "results",
    "telemetry",
    "plugininternal",
];

#[derive(Debug, Default)]
pub struct Interpreter {
    /// task.json `outputVariables`: set as outputs even without `isoutput=true`.
    pub output_variables: Vec<String>,
    /// task.json `restrictions.settableVariables.allowed`.
    pub settable: Option<Vec<String>>,
    pub debug: bool,
    /// Merged `task.complete` results (None: the step never sent one).
    pub completed: Option<TaskResult>,
    pub complete_message: Option<String>,
    /// A logging command failed: the step fails (rule 3).
    pub command_failed: bool,
    pub errors: usize,
    pub warnings: usize,
    pub updates: Vec<Update>,
}

fn bad(out: &mut Vec<Shown>, failed: &mut bool, errors: &mut usize, message: String) {
    *failed = true;
    *errors += 1;
    out.push(Shown::Error(message));
}

impl Interpreter {
    /// Interprets one output line. New secrets are added to `masker` before anything of the
    /// line is shown.
    pub fn line(&mut self, raw: &str, masker: &mut Masker) -> Vec<Shown> {
        let raw = raw.trim_end_matches(['\r', '\n']);
        let mut out = Vec::new();
        if raw.contains("##vso[") {
            if let Some(command) = parse(raw) {
                self.command(&command, raw, masker, &mut out);
                return out;
            }
        }
        let masked = masker.mask(raw);
        let shown = if let Some(rest) = masked.strip_prefix("##[group]") {
            Shown::Group(rest.to_owned())
        } else if masked.starts_with("##[endgroup]") {
            Shown::EndGroup
        } else if let Some(rest) = masked.strip_prefix("##[section]") {
            Shown::Section(rest.to_owned())
        } else if let Some(rest) = masked.strip_prefix("##[command]") {
            Shown::Command(rest.to_owned())
        } else if let Some(rest) = masked.strip_prefix("##[warning]") {
            Shown::Warning(rest.to_owned())
        } else if let Some(rest) = masked.strip_prefix("##[error]") {
            Shown::Error(rest.to_owned())
        } else if let Some(rest) = masked.strip_prefix("##[debug]") {
            if !self.debug {
                return out;
            }
            Shown::Debug(rest.to_owned())
        } else {
            Shown::Out(masked)
        };
        out.push(shown);
        out
    }

    fn command(&mut self, c: &Command, raw: &str, masker: &mut Masker, out: &mut Vec<Shown>) {
        let area = c.area.to_ascii_lowercase();
        let event = c.event.to_ascii_lowercase();
        if !KNOWN_AREAS.contains(&area.as_str()) {
            self.warnings += 1;
            out.push(Shown::Warning(format!(
                "'##vso[{}.{}]' is not a recognized logging command area; the line is ignored",
                c.area, c.event
            )));
            return;
        }
        // Secrets first, so that the debug echo below is masked too.
        let secret_value = match event.as_str() {
            "setsecret" if area == "task" => Some(c.data.clone()),
            "setvariable" | "settaskvariable" if area == "task" && c.flag("issecret") => {
                Some(c.data.clone())
            }
            _ => None,
        };
        // Masked even when the command is then rejected (a multi-line secret): the raw line
        // still reaches the debug echo and the step's log file.
        if let Some(v) = secret_value {
            masker.add(&v);
        }
        if self.debug {
            out.push(Shown::Debug(format!(
                "Processed: {}",
                masker.mask(raw.trim_start())
            )));
        }
        let mut failed = false;
        let mut errors = 0;
        match (area.as_str(), event.as_str()) {
            ("task", "logissue" | "issue") => match c.property("type").map(str::to_ascii_lowercase).as_deref() {
                Some("error") => {
                    self.errors += 1;
                    out.push(Shown::Error(masker.mask(&issue_text(c))));
                }
                Some("warning") => {
                    self.warnings += 1;
                    out.push(Shown::Warning(masker.mask(&issue_text(c))));
                }
                other => bad(out, &mut failed, &mut errors, format!("task.logissue: invalid issue type '{}' (expected error or warning)", other.unwrap_or(""))),
            },
            ("task", "setvariable") => {
                let name = c.property("variable").unwrap_or("").trim().to_owned();
                if name.is_empty() {
                    bad(out, &mut failed, &mut errors, "task.setvariable: the 'variable' property is required".into());
                } else if c.flag("issecret") && c.data.contains(['\n', '\r']) {
                    bad(out, &mut failed, &mut errors, format!("task.setvariable: the secret variable '{name}' has a multi-line value, which the agent rejects"));
                } else if self.settable.as_ref().is_some_and(|allowed| !allowed.iter().any(|a| allowed_by(a, &name))) {
                    self.warnings += 1;
                    out.push(Shown::Warning(format!("the task is not allowed to set variable '{name}' (task.json restrictions)")));
                } else {
                    let output = c.flag("isoutput") || self.output_variables.iter().any(|o| o.eq_ignore_ascii_case(&name));
                    self.updates.push(Update::Variable {
                        name,
                        value: c.data.clone(),
                        secret: c.flag("issecret"),
                        read_only: c.flag("isreadonly"),
                        output,
                    });
                }
            }
            ("task", "setsecret") => {}
            ("task", "complete") => match c.property("result") {
                None => self.complete(TaskResult::Succeeded, &c.data),
                Some(r) => match TaskResult::parse(r) {
                    Some(result) => self.complete(result, &c.data),
                    None => bad(out, &mut failed, &mut errors, format!("task.complete: invalid result '{r}' (expected Succeeded, SucceededWithIssues or Failed)")),
                },
            },
            ("task", "setprogress") => {
                if c.property("value").is_some_and(|v| v.trim().parse::<i64>().is_err()) {
                    bad(out, &mut failed, &mut errors, "task.setprogress: 'value' must be a number".into());
                }
            }
            ("task", "debug") => {
                if self.debug {
                    out.push(Shown::Debug(masker.mask(&c.data)));
                }
            }
            ("task", "uploadsummary" | "uploadfile" | "addattachment") => {
                if event == "addattachment" && (c.property("type").is_none() || c.property("name").is_none()) {
                    bad(out, &mut failed, &mut errors, "task.addattachment: 'type' and 'name' are required".into());
                } else if c.data.trim().is_empty() || !Path::new(c.data.trim()).is_file() {
                    bad(out, &mut failed, &mut errors, format!("task.{event}: file '{}' does not exist", masker.mask(c.data.trim())));
                } else {
                    out.push(Shown::Section(format!("{event}: {}", masker.mask(c.data.trim()))));
                }
            }
            ("task", "prependpath") => {
                let dir = c.data.trim();
                if dir.is_empty() {
                    bad(out, &mut failed, &mut errors, "task.prependpath: the directory is required".into());
                } else {
                    self.updates.push(Update::PrependPath(dir.to_owned()));
                }
            }
            ("task", "settaskvariable") => match c.property("variable") {
                Some(name) if !name.trim().is_empty() => self.updates.push(Update::TaskVariable {
                    name: name.trim().to_owned(),
                    value: c.data.clone(),
                    secret: c.flag("issecret"),
                }),
                _ => bad(out, &mut failed, &mut errors, "task.settaskvariable: the 'variable' property is required".into()),
            },
            ("task", "setendpoint") => {
                let field = c.property("field").unwrap_or("").to_ascii_lowercase();
                let id = c.property("id").unwrap_or("").to_owned();
                let key = c.property("key").map(str::to_owned);
                if id.is_empty() {
                    bad(out, &mut failed, &mut errors, "task.setendpoint: 'id' is required".into());
                } else if !matches!(field.as_str(), "url" | "dataparameter" | "authparameter") {
                    bad(out, &mut failed, &mut errors, format!("task.setendpoint: invalid field '{field}' (expected url, dataParameter or authParameter)"));
                } else if field != "url" && key.is_none() {
                    bad(out, &mut failed, &mut errors, "task.setendpoint: 'key' is required".into());
                } else {
                    if field == "authparameter" {
                        masker.add(&c.data);
                    }
                    self.updates.push(Update::Endpoint { id, field, key, value: c.data.clone() });
                }
            }
            ("task", "logdetail") => {}
            ("task", _) => bad(out, &mut failed, &mut errors, format!("'##vso[task.{}]' is not a known command of area 'task'", c.event)),
            ("build", "updatebuildnumber") => self.updates.push(Update::BuildNumber(c.data.trim().to_owned())),
            ("artifact", "upload") => match c.property("artifactname") {
                Some(name) if !c.data.trim().is_empty() => self.updates.push(Update::UploadArtifact { name: name.to_owned(), path: c.data.trim().to_owned() }),
                _ => bad(out, &mut failed, &mut errors, "artifact.upload: 'artifactname' and a path are required".into()),
            },
            ("build", "uploadlog" | "addbuildtag" | "uploadsummary")
            | ("artifact", "associate")
            | ("release", "updatereleasename")
            | ("codecoverage", "publish")
            | ("results", "publish")
            | ("telemetry", "publish")
            | ("plugininternal", _) => {
                if self.debug {
                    out.push(Shown::Debug(format!("{area}.{event}: nothing to do on a local run")));
                }
            }
            _ => bad(out, &mut failed, &mut errors, format!("'##vso[{}.{}]' is not a known command of area '{}'", c.area, c.event, c.area)),
        }
        self.command_failed |= failed;
        self.errors += errors;
    }

    fn complete(&mut self, result: TaskResult, message: &str) {
        self.completed = Some(self.completed.map_or(result, |r| r.max(result)));
        if !message.is_empty() {
            self.complete_message = Some(message.to_owned());
        }
    }

    /// The step's result by the agent's rules (contract §4): worst `task.complete`, a
    /// non-zero exit is Failed, a failed command is Failed, exit 0 alone is Succeeded.
    /// `continueOnError` is the caller's.
    pub fn result(&self, exit_ok: bool) -> Outcome {
        let mut result = self.completed.unwrap_or(TaskResult::Succeeded);
        if !exit_ok || self.command_failed {
            result = TaskResult::Failed;
        }
        match result {
            TaskResult::Succeeded => Outcome::Succeeded,
            TaskResult::SucceededWithIssues => Outcome::SucceededWithIssues,
            TaskResult::Failed => Outcome::Failed,
        }
    }
}

fn issue_text(c: &Command) -> String {
    let mut text = c.data.clone();
    if let Some(path) = c.property("sourcepath") {
        let mut at = path.to_owned();
        if let Some(line) = c.property("linenumber") {
            at = format!("{at}:{line}");
            if let Some(col) = c.property("columnnumber") {
                at = format!("{at}:{col}");
            }
        }
        text = format!("{at}: {text}");
    }
    if let Some(code) = c.property("code") {
        text = format!("{text} [{code}]");
    }
    text
}

/// task.json `settableVariables.allowed` entries may end with `*`.
fn allowed_by(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name
            .to_ascii_lowercase()
            .starts_with(&prefix.to_ascii_lowercase()),
        None => pattern.eq_ignore_ascii_case(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str]) -> (Interpreter, Vec<Shown>, Masker) {
        let mut i = Interpreter::default();
        let mut m = Masker::default();
        let mut shown = Vec::new();
        for l in lines {
            shown.extend(i.line(l, &mut m));
        }
        (i, shown, m)
    }

    #[test]
    fn results_merge_and_exit_code_wins() {
        let (i, _, _) = run(&[
            "##vso[task.complete result=SucceededWithIssues;]x",
            "##vso[task.complete result=Succeeded;]",
        ]);
        assert_eq!(i.result(true), Outcome::SucceededWithIssues);
        let (i, _, _) = run(&["##vso[task.complete result=Succeeded;]"]);
        assert_eq!(i.result(false), Outcome::Failed);
        let (i, _, _) = run(&[]);
        assert_eq!(i.result(true), Outcome::Succeeded);
    }

    #[test]
    fn logissue_error_counts_but_does_not_fail() {
        let (i, shown, _) = run(&["##vso[task.logissue type=error;]boom"]);
        assert_eq!(i.errors, 1);
        assert_eq!(i.result(true), Outcome::Succeeded);
        assert_eq!(shown, vec![Shown::Error("boom".into())]);
    }

    #[test]
    fn bad_commands_fail_but_unknown_areas_warn() {
        let (i, _, _) = run(&["##vso[task.bogus]x"]);
        assert_eq!(i.result(true), Outcome::Failed);
        let (i, _, _) = run(&["##vso[task.complete result=Great;]"]);
        assert_eq!(i.result(true), Outcome::Failed);
        let (i, _, _) = run(&["##vso[task.logissue]no type"]);
        assert_eq!(i.result(true), Outcome::Failed);
        let (i, _, _) = run(&["##vso[foo.bar]x"]);
        assert_eq!((i.result(true), i.warnings), (Outcome::Succeeded, 1));
    }

    #[test]
    fn secrets_are_masked_from_the_next_line_on() {
        let (_, shown, _) = run(&[
            "##vso[task.setsecret]hunter2",
            "pw is hunter2",
            "##vso[task.setvariable variable=t;issecret=true]s3cr3t",
            "t=s3cr3t",
        ]);
        assert_eq!(
            shown,
            vec![Shown::Out("pw is ***".into()), Shown::Out("t=***".into())]
        );
    }

    #[test]
    fn setvariable_updates_and_output_variables() {
        let mut i = Interpreter {
            output_variables: vec!["runId".into()],
            ..Default::default()
        };
        let mut m = Masker::default();
        i.line("##vso[task.setvariable variable=runId]42", &mut m);
        i.line(
            "##vso[task.setvariable variable=plain;isreadonly=true]v",
            &mut m,
        );
        assert_eq!(
            i.updates,
            vec![
                Update::Variable {
                    name: "runId".into(),
                    value: "42".into(),
                    secret: false,
                    read_only: false,
                    output: true
                },
                Update::Variable {
                    name: "plain".into(),
                    value: "v".into(),
                    secret: false,
                    read_only: true,
                    output: false
                },
            ]
        );
        let (i, _, _) = run(&["##vso[task.setvariable variable=s;issecret=true]a%0Ab"]);
        assert!(i.command_failed);
    }

    #[test]
    fn display_prefixes() {
        let (_, shown, _) = run(&[
            "##[group]G",
            "in",
            "##[endgroup]",
            "##[debug]hidden",
            "text ##[error]not a prefix",
        ]);
        assert_eq!(
            shown,
            vec![
                Shown::Group("G".into()),
                Shown::Out("in".into()),
                Shown::EndGroup,
                Shown::Out("text ##[error]not a prefix".into())
            ]
        );
    }
}
