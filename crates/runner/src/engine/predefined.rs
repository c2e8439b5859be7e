//! The variables of a stage or job: predefined ones (as the agent sets them), then the
//! settings', the pipeline's, the stage's and the job's, then `--var`/`--secret`.

use std::path::{Path, PathBuf};

use super::runtime::{Leg, RuntimeScope};
use super::Engine;
use crate::expr::{Expression, Outcome, Val};
use crate::pipeline::{runtime_expression, Job, Pipeline, Stage, VarDef};
use crate::process;
use crate::variables::Variables;

impl Engine<'_> {
    /// The variables of a scope, lowest precedence first: predefined, emulators and vars
    /// file, pipeline, stage, job (with their groups), the matrix entry, then
    /// `--var`/`--secret`. `$[ ]` values are evaluated in order against the variables so
    /// far and `contexts` (each once per run, as the service does); their
    /// errors come back with the variable's name.
    pub(super) fn scope_variables(
        &self,
        pipeline: &Pipeline,
        stage: Option<&Stage>,
        job: Option<&Job>,
        leg: Option<&Leg>,
        contexts: &[(String, Val)],
        deps: &[(String, Outcome)],
    ) -> (Variables, Vec<String>) {
        let mut vars = Variables::new();
        let mut errors = Vec::new();
        self.predefined(&mut vars, stage, job, leg);
        for (name, v) in &self.settings.base_variables {
            vars.set_force(name, &v.value, v.secret);
        }
        let mut defs: Vec<(String, &VarDef)> = pipeline
            .variables
            .iter()
            .map(|d| ("root".to_owned(), d))
            .collect();
        if let Some(s) = stage {
            defs.extend(s.variables.iter().map(|d| (format!("stage {}", s.name), d)));
        }
        if let Some(j) = job {
            // Once per job too: its condition and its copies see the same value.
            let level = format!(
                "job {}.{}",
                stage.map(|s| s.name.as_str()).unwrap_or_default(),
                j.name
            );
            defs.extend(j.variables.iter().map(|d| (level.clone(), d)));
        }
        for (level, def) in defs {
            match def {
                VarDef::Value {
                    name,
                    value,
                    read_only,
                } => {
                    let value = match runtime_expression(value) {
                        None => value.clone(),
                        Some(expr) => {
                            match self.runtime_value(&level, name, expr, &vars, contexts, deps) {
                                Ok(v) => v,
                                Err(e) => {
                                    errors.push(format!("variable '{name}': $[ {expr} ]: {e}"));
                                    String::new()
                                }
                            }
                        }
                    };
                    vars.set_force(name, &value, false);
                    if *read_only {
                        let _ = vars.set(name, &value, false, true);
                    }
                }
                VarDef::Group { name, .. } => {
                    for (n, v) in self.settings.groups.get(name).into_iter().flatten() {
                        vars.set_force(n, &v.value, v.secret);
                    }
                }
            }
        }
        for (name, value) in leg.map(|l| l.variables.as_slice()).unwrap_or_default() {
            vars.set_force(name, value, false);
        }
        for (name, v) in &self.settings.overrides {
            vars.set_force(name, &v.value, v.secret);
        }
        vars.expand_values();
        (vars, errors)
    }

    /// Evaluates a `$[ ]` variable once per run and `level` (root, stage or job), as the
    /// service evaluates it once when its stage or job starts.
    fn runtime_value(
        &self,
        level: &str,
        name: &str,
        expr: &str,
        vars: &Variables,
        contexts: &[(String, Val)],
        deps: &[(String, Outcome)],
    ) -> Result<String, String> {
        let key = format!("{level}\u{0}{}", name.to_ascii_lowercase());
        if !level.is_empty() {
            if let Some(v) = self.runtime_cache.borrow().get(&key) {
                return Ok(v.clone());
            }
        }
        let scope = RuntimeScope {
            vars,
            contexts,
            deps: deps.to_vec(),
            canceled: process::cancel_requested(),
            counters: Some(self.settings.state_dir.clone()),
        };
        let value = Expression::parse(expr)?.eval(&scope)?;
        if !value.is_scalar() {
            return Err(format!(
                "a variable's value must be a string, number or boolean, not {}",
                value.kind()
            ));
        }
        let text = value.to_text();
        if !level.is_empty() {
            self.runtime_cache.borrow_mut().insert(key, text.clone());
        }
        Ok(text)
    }

    pub(super) fn job_dir(
        &self,
        stage: Option<&Stage>,
        job: Option<&Job>,
        leg: Option<&Leg>,
    ) -> PathBuf {
        let mut name = match (stage, job) {
            (Some(s), Some(j)) if !s.implicit => format!("{}_{}", s.name, j.name),
            (_, Some(j)) => j.name.clone(),
            _ => "pipeline".into(),
        };
        if let Some(suffix) = leg.and_then(|l| l.suffix.as_ref()) {
            name = format!("{name}_{suffix}");
        }
        self.settings.work_dir.join(name)
    }

    pub(super) fn predefined(
        &self,
        vars: &mut Variables,
        stage: Option<&Stage>,
        job: Option<&Job>,
        leg: Option<&Leg>,
    ) {
        let sources = self.settings.sources_dir.display().to_string();
        let ws = self.job_dir(stage, job, leg);
        let p = |d: &Path| d.display().to_string();
        let repo_name = self
            .settings
            .sources_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("self")
            .to_owned();
        let os = match std::env::consts::OS {
            "linux" => "Linux",
            "macos" => "Darwin",
            "windows" => "Windows_NT",
            other => other,
        };
        let arch = match std::env::consts::ARCH {
            "x86_64" => "X64",
            "aarch64" => "ARM64",
            "x86" => "X86",
            other => other,
        };
        let stage_name = stage
            .map(|s| s.name.clone())
            .unwrap_or_else(|| "__default".into());
        let job_name = job.map(|j| j.name.clone()).unwrap_or_else(|| "Job".into());
        // A copy made by a strategy is a job of its own, named by its matrix key or number.
        let copy = leg.filter(|l| l.suffix.is_some());
        let instance_name = copy.map_or_else(|| job_name.clone(), |l| l.name.clone());
        let display = {
            let base = job
                .and_then(|j| j.display_name.clone())
                .unwrap_or_else(|| job_name.clone());
            match copy.and_then(|l| l.suffix.as_ref()) {
                Some(suffix) => format!("{base} {suffix}"),
                None => base,
            }
        };
        let (position, total) = leg.map_or((1, 1), |l| (l.position, l.total));
        let branch = self.git.0.clone().unwrap_or_else(|| "main".into());
        let id = &self.settings.identity;
        let defaults: Vec<(&str, String)> = vec![
            ("Pipeline.Workspace", p(&ws)),
            ("Agent.BuildDirectory", p(&ws)),
            ("Agent.WorkFolder", p(&self.settings.work_dir)),
            ("Agent.TempDirectory", p(&ws.join("_temp"))),
            (
                "Agent.ToolsDirectory",
                p(&self.settings.work_dir.join("_tool")),
            ),
            ("Agent.HomeDirectory", p(&self.settings.work_dir)),
            ("Agent.Name", "azp-local".into()),
            (
                "Agent.MachineName",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()),
            ),
            ("Agent.OS", os.into()),
            ("Agent.OSArchitecture", arch.into()),
            ("Agent.JobName", display.clone()),
            ("Agent.JobStatus", "Succeeded".into()),
            ("Agent.Id", "1".into()),
            ("Build.SourcesDirectory", sources.clone()),
            ("Build.Repository.LocalPath", sources.clone()),
            ("System.DefaultWorkingDirectory", sources.clone()),
            ("Build.BinariesDirectory", p(&ws.join("b"))),
            ("Build.ArtifactStagingDirectory", p(&ws.join("a"))),
            ("Build.StagingDirectory", p(&ws.join("a"))),
            ("System.ArtifactsDirectory", p(&ws.join("a"))),
            ("Common.TestResultsDirectory", p(&ws.join("TestResults"))),
            ("Build.Repository.Name", repo_name.clone()),
            ("Build.Repository.Provider", "Git".into()),
            ("Build.Repository.Uri", format!("file://{sources}")),
            ("Build.BuildId", id.build_id.to_string()),
            ("Build.BuildNumber", id.build_number.clone()),
            ("Build.DefinitionName", repo_name),
            ("Build.Reason", "Manual".into()),
            (
                "Build.RequestedFor",
                std::env::var("USER").unwrap_or_else(|_| "azp-local".into()),
            ),
            ("Build.SourceBranch", format!("refs/heads/{branch}")),
            (
                "Build.SourceBranchName",
                branch.rsplit('/').next().unwrap_or(&branch).to_owned(),
            ),
            (
                "Build.SourceVersion",
                self.git.1.clone().unwrap_or_default(),
            ),
            ("System.TeamProject", "local".into()),
            (
                "System.TeamProjectId",
                "00000000-0000-4000-8000-00000000a2b1".into(),
            ),
            ("System.CollectionUri", "http://localhost/azp-local/".into()),
            (
                "System.TeamFoundationCollectionUri",
                "http://localhost/azp-local/".into(),
            ),
            (
                "System.CollectionId",
                "00000000-0000-4000-8000-00000000c011".into(),
            ),
            ("System.DefinitionId", "1".into()),
            ("System.HostType", "build".into()),
            ("System.PlanId", id.plan_id.clone()),
            ("System.TimelineId", id.plan_id.clone()),
            ("System.JobAttempt", id.attempt.to_string()),
            ("System.PhaseAttempt", id.attempt.to_string()),
            ("System.StageAttempt", id.attempt.to_string()),
            ("System.StageName", stage_name.clone()),
            (
                "System.StageDisplayName",
                stage
                    .and_then(|s| s.display_name.clone())
                    .unwrap_or_else(|| stage_name.clone()),
            ),
            ("System.JobName", instance_name.clone()),
            ("System.JobDisplayName", display),
            (
                "System.JobIdentifier",
                format!("{stage_name}.{job_name}.{instance_name}"),
            ),
            ("System.PhaseName", job_name),
            ("System.JobPositionInPhase", position.to_string()),
            ("System.TotalJobsInPhase", total.to_string()),
            ("System.Debug", "false".into()),
            ("System.PullRequest.IsFork", "False".into()),
            ("System.AccessToken", self.collection_token.clone()),
        ];
        for (name, value) in defaults {
            vars.set_force(name, &value, name == "System.AccessToken");
        }
    }
}

pub(super) fn git_output(dir: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

pub(super) fn git_branch(dir: &Path) -> Option<String> {
    git_output(dir, &["rev-parse", "--abbrev-ref", "HEAD"]).filter(|b| b != "HEAD")
}

pub(super) fn git_head(dir: &Path) -> Option<String> {
    git_output(dir, &["rev-parse", "HEAD"])
}
