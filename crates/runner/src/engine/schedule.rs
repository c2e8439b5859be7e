//! The order of stages and jobs and whether each runs: dependencies, conditions and their
//! scopes, the outcome of a stage from its jobs.

use std::time::{Duration, Instant};

use super::runtime::{
    self, job_contexts, pipeline_context, stage_contexts, JobRecord, RuntimeScope, StageRecord,
};
use super::{worst, Engine, JobState, RunResult};
use crate::expr::{Outcome, Scope};
use crate::output::{Printer, Row};
use crate::pipeline::{Condition, Legs, Pipeline, Stage};
use crate::process;

impl Engine<'_> {
    pub fn run(mut self, pipeline: &Pipeline) -> RunResult {
        let started = Instant::now();
        let mut stage_outcomes: Vec<(String, Outcome)> = Vec::new();
        let stage_refs = dependency_order(
            &pipeline.stages,
            |s| s.name.as_str(),
            |s| s.depends_on.as_slice(),
        );
        for stage in stage_refs {
            let deps = dependency_outcomes(&stage.depends_on, &stage_outcomes);
            let mut contexts = stage_contexts(&self.stages_done, &stage.depends_on);
            contexts.push(pipeline_context(&self.settings.identity));
            let (vars, errors) =
                self.scope_variables(pipeline, Some(stage), None, None, &contexts, &deps);
            let scope = RuntimeScope {
                vars: &vars,
                contexts: &contexts,
                deps,
                canceled: process::cancel_requested(),
                counters: None,
            };
            let title = stage
                .display_name
                .clone()
                .unwrap_or_else(|| stage.name.clone());
            if !stage.implicit {
                self.printer.stage(&title);
            }
            let (outcome, jobs) = if !errors.is_empty() {
                for e in &errors {
                    self.printer.error(&format!("stage '{}': {e}", stage.name));
                }
                self.skip_jobs(stage, "a variable could not be evaluated");
                (Outcome::Failed, Vec::new())
            } else if evaluate(stage.condition.as_ref(), &scope, self.printer) {
                self.run_stage(pipeline, stage)
            } else {
                let why = stage
                    .condition
                    .as_ref()
                    .map(|c| format!("condition '{}' was false", c.text))
                    .unwrap_or_else(|| "a dependency did not succeed".into());
                self.printer.note(&format!("stage skipped: {why}"));
                self.skip_jobs(stage, "");
                (Outcome::Skipped, Vec::new())
            };
            stage_outcomes.push((stage.name.clone(), outcome));
            self.stages_done.push(StageRecord {
                name: stage.name.clone(),
                result: outcome,
                jobs,
            });
        }
        let mut overall = stage_outcomes
            .iter()
            .fold(Outcome::Skipped, |acc, (_, o)| worst(acc, *o));
        if overall == Outcome::Skipped {
            overall = Outcome::Succeeded;
        }
        if process::cancel_requested() {
            overall = Outcome::Canceled;
        }
        self.printer.table(&self.rows, started.elapsed(), overall);
        RunResult {
            outcome: overall,
            rows: self.rows,
        }
    }

    fn skip_jobs(&mut self, stage: &Stage, note: &str) {
        for job in &stage.jobs {
            self.rows.push(Row {
                path: self.job_path(stage, job),
                outcome: Outcome::Skipped,
                duration: Duration::ZERO,
                note: note.to_owned(),
            });
        }
    }

    /// Runs a stage's jobs in dependency order, each copy of a job (matrix, parallel) one
    /// after another; returns the stage's outcome and its jobs' records.
    pub(super) fn run_stage(
        &mut self,
        pipeline: &Pipeline,
        stage: &Stage,
    ) -> (Outcome, Vec<JobRecord>) {
        let mut outcomes: Vec<(String, Outcome)> = Vec::new();
        let mut records: Vec<JobRecord> = Vec::new();
        for job in dependency_order(
            &stage.jobs,
            |j| j.name.as_str(),
            |j| j.depends_on.as_slice(),
        ) {
            let deps = dependency_outcomes(&job.depends_on, &outcomes);
            let mut contexts = job_contexts(
                &records,
                &job.depends_on,
                &self.stages_done,
                &stage.depends_on,
            );
            contexts.push(pipeline_context(&self.settings.identity));
            let (vars, errors) =
                self.scope_variables(pipeline, Some(stage), Some(job), None, &contexts, &deps);
            let scope = RuntimeScope {
                vars: &vars,
                contexts: &contexts,
                deps: deps.clone(),
                canceled: process::cancel_requested(),
                counters: None,
            };
            let title = job.display_name.clone().unwrap_or_else(|| job.name.clone());
            // A job with copies gets a header per copy instead.
            let copies = !matches!(job.legs, Legs::One);
            if !job.implicit && !copies {
                self.printer.job(&title);
            }
            let mut record = JobRecord {
                name: job.name.clone(),
                result: Outcome::Skipped,
                outputs: Vec::new(),
            };
            if !errors.is_empty() {
                for e in &errors {
                    self.printer.error(&format!("job '{}': {e}", job.name));
                }
                self.rows.push(Row {
                    path: self.job_path(stage, job),
                    outcome: Outcome::Failed,
                    duration: Duration::ZERO,
                    note: "a variable could not be evaluated".into(),
                });
                record.result = Outcome::Failed;
            } else if evaluate(job.condition.as_ref(), &scope, self.printer) {
                let legs = runtime::legs(job);
                let mut outcome = Outcome::Skipped;
                for leg in &legs {
                    if leg.suffix.is_some() {
                        self.printer.job(&format!(
                            "{title} {}",
                            leg.suffix.as_deref().unwrap_or_default()
                        ));
                    }
                    let (mut o, outputs) =
                        self.run_job(pipeline, stage, job, leg, &contexts, &deps);
                    if o == Outcome::Failed && job.continue_on_error {
                        o = Outcome::SucceededWithIssues;
                    }
                    outcome = worst(outcome, o);
                    record.outputs.extend(outputs);
                }
                record.result = outcome;
            } else {
                let why = job
                    .condition
                    .as_ref()
                    .map(|c| format!("condition '{}' was false", c.text))
                    .unwrap_or_else(|| "a dependency did not succeed".into());
                if copies {
                    self.printer.job(&title);
                }
                self.printer.note(&format!("job skipped: {why}"));
                self.rows.push(Row {
                    path: self.job_path(stage, job),
                    outcome: Outcome::Skipped,
                    duration: Duration::ZERO,
                    note: String::new(),
                });
            }
            outcomes.push((job.name.clone(), record.result));
            records.push(record);
        }
        let outcome = outcomes
            .iter()
            .fold(Outcome::Skipped, |acc, (_, o)| worst(acc, *o));
        (outcome, records)
    }
}

pub(super) struct StepScope<'a>(pub(super) &'a JobState);

impl Scope for StepScope<'_> {
    fn variable(&self, name: &str) -> Option<String> {
        self.0.vars.value(name).map(str::to_owned)
    }
    fn outcomes(&self, _: &[String]) -> Result<Vec<Outcome>, String> {
        Ok(vec![self.0.outcome])
    }
    fn canceled(&self) -> bool {
        self.0.canceled
    }
}

pub(super) fn evaluate(
    condition: Option<&Condition>,
    scope: &dyn Scope,
    printer: &mut Printer,
) -> bool {
    match condition {
        None => {
            scope
                .outcomes(&[])
                .map(|o| o.iter().all(|o| o.is_success()))
                .unwrap_or(false)
                && !scope.canceled()
        }
        Some(c) => match c.expr.eval(scope) {
            Ok(v) => v.truthy(),
            Err(e) => {
                printer.error(&format!("condition '{}' cannot be evaluated: {e}", c.text));
                false
            }
        },
    }
}

/// Orders items so that each comes after its dependencies, keeping the written order
/// otherwise. The loader has rejected cycles and unknown names.
pub(super) fn dependency_order<T>(
    items: &[T],
    name: impl Fn(&T) -> &str,
    deps: impl Fn(&T) -> &[String],
) -> Vec<&T> {
    let mut done: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    while out.len() < items.len() {
        let before = out.len();
        for item in items {
            let n = name(item);
            if done.iter().any(|d| d.eq_ignore_ascii_case(n)) {
                continue;
            }
            if deps(item)
                .iter()
                .all(|d| done.iter().any(|x| x.eq_ignore_ascii_case(d)))
            {
                done.push(n);
                out.push(item);
            }
        }
        if out.len() == before {
            break;
        }
    }
    out
}

/// The outcome of each stage or job named in `depends_on` (names compare case-insensitively,
/// as on the service); one that has not run counts as skipped.
pub(super) fn dependency_outcomes(
    depends_on: &[String],
    outcomes: &[(String, Outcome)],
) -> Vec<(String, Outcome)> {
    depends_on
        .iter()
        .map(|d| {
            let outcome = outcomes
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(d))
                .map(|(_, o)| *o)
                .unwrap_or(Outcome::Skipped);
            (d.clone(), outcome)
        })
        .collect()
}
