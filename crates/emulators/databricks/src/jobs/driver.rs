//! The run driver: one task per run advances it through its life cycle, runs its
//! tasks in dependency order and records outcomes under short locks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::{
    topological_order, Life, ResultState, Run, RunFault, TaskKind, TaskSpec, TASK_FAILURE_MESSAGE,
};
use crate::executor::{Outcome, Program};
use crate::notebook::Language;
use crate::Shared;

/// How waiting for something ended.
enum Interrupt {
    Canceled,
    TimedOut,
    /// The emulator is stopping: drop the run where it is.
    Shutdown,
}

/// Waits for `future` unless the run is canceled or its deadline passes first.
async fn guarded<F: std::future::Future>(
    future: F,
    cancel: &Notify,
    deadline: Option<Instant>,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<F::Output, Interrupt> {
    let timeout = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        value = future => Ok(value),
        _ = cancel.notified() => Err(Interrupt::Canceled),
        _ = timeout => Err(Interrupt::TimedOut),
        _ = crate::stopped(shutdown) => Err(Interrupt::Shutdown),
    }
}

/// Drives one run from PENDING to a final state.
pub async fn drive(shared: Arc<Shared>, run_id: u64) {
    let mut shutdown = shared.shutdown.clone();
    let Some((cancel, timeout_seconds, clusters)) = shared.with_jobs(|jobs| {
        jobs.runs.get(&run_id).map(|run| {
            let clusters: Vec<String> = run
                .tasks
                .iter()
                .filter_map(|t| t.spec.existing_cluster_id.clone())
                .collect();
            (run.cancel.clone(), run.timeout_seconds, clusters)
        })
    }) else {
        return;
    };
    let opts = &shared.opts;
    let started = Instant::now();
    let mut run_deadline =
        (timeout_seconds > 0).then(|| started + Duration::from_secs(timeout_seconds));
    if opts.run_fault == Some(RunFault::Timeout) && run_deadline.is_none() {
        // A forced timeout needs a deadline even when the run set none.
        run_deadline = Some(started + opts.run_pending + opts.non_python_run_delay);
    }

    // PENDING: cluster start (a terminated cluster is started, as job runs do) and setup.
    let mut setup = opts.run_pending;
    for cluster in &clusters {
        let wait = shared
            .clusters
            .lock()
            .ok()
            .and_then(|mut c| c.ensure_started(cluster, crate::now_ms()))
            .unwrap_or_default();
        setup = setup.max(wait);
    }
    if let Err(interrupt) = guarded(
        tokio::time::sleep(setup),
        &cancel,
        run_deadline,
        &mut shutdown,
    )
    .await
    {
        finish_interrupted(&shared, run_id, interrupt, timeout_seconds, None).await;
        return;
    }

    if opts.run_fault == Some(RunFault::InternalError) {
        shared.with_jobs(|jobs| {
            if let Some(run) = jobs.runs.get_mut(&run_id) {
                let now = crate::now_ms();
                run.state.life = Life::InternalError;
                run.state.message =
                    "Emulator fault injection: the run hit an internal error.".to_string();
                run.timing.end_time = Some(now);
                for task in &mut run.tasks {
                    task.state.life = Life::InternalError;
                    task.state.message = run.state.message.clone();
                    task.timing.end_time = Some(now);
                }
            }
        });
        return;
    }

    let order = shared.with_jobs(|jobs| {
        jobs.runs.get_mut(&run_id).map(|run| {
            run.state.life = Life::Running;
            run.timing.running_at = Some(crate::now_ms());
            topological_order(&run.tasks.iter().map(|t| t.spec.clone()).collect::<Vec<_>>())
                .unwrap_or_default()
        })
    });
    let Some(order) = order else { return };

    let mut interrupted = None;
    for index in order {
        let Some(spec) = shared.with_jobs(|jobs| {
            let run = jobs.runs.get_mut(&run_id)?;
            let upstream = upstream_result(run, index);
            let task = run.tasks.get_mut(index)?;
            let now = crate::now_ms();
            task.timing.start_time = now;
            if let Some(result) = upstream {
                task.state.life = Life::Terminated;
                task.state.result = Some(result);
                task.state.message = "Upstream task failed.".to_string();
                task.timing.end_time = Some(now);
                return None;
            }
            task.state.life = Life::Running;
            task.timing.running_at = Some(now);
            Some((task.spec.clone(), task.run_id))
        }) else {
            continue;
        };
        let (spec, task_run_id) = spec;
        let task_deadline = (spec.timeout_seconds > 0)
            .then(|| Instant::now() + Duration::from_secs(spec.timeout_seconds));
        let deadline = match (run_deadline, task_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let work = execute(&shared, &spec, task_run_id);
        match guarded(work, &cancel, deadline, &mut shutdown).await {
            Ok((result, message, outcome)) => shared.with_jobs(|jobs| {
                if let Some(task) = jobs
                    .runs
                    .get_mut(&run_id)
                    .and_then(|r| r.tasks.get_mut(index))
                {
                    let now = crate::now_ms();
                    task.state.life = Life::Terminated;
                    task.state.result = Some(result);
                    task.state.message = message;
                    task.timing.terminating_at = Some(now);
                    task.timing.end_time = Some(now);
                    task.outcome = Some(outcome);
                }
            }),
            Err(interrupt) => {
                let task_only_timeout = matches!(interrupt, Interrupt::TimedOut)
                    && task_deadline.is_some()
                    && run_deadline.is_none_or(|r| task_deadline.is_some_and(|t| t < r));
                if task_only_timeout {
                    shared.with_jobs(|jobs| {
                        if let Some(task) = jobs
                            .runs
                            .get_mut(&run_id)
                            .and_then(|r| r.tasks.get_mut(index))
                        {
                            let now = crate::now_ms();
                            task.state.life = Life::Terminated;
                            task.state.result = Some(ResultState::TimedOut);
                            task.state.message =
                                format!("Task timed out after {} seconds.", spec.timeout_seconds);
                            task.state.user_cancelled_or_timedout = true;
                            task.timing.end_time = Some(now);
                        }
                    });
                    continue;
                }
                interrupted = Some((interrupt, index));
                break;
            }
        }
    }
    if let Some((interrupt, index)) = interrupted {
        finish_interrupted(&shared, run_id, interrupt, timeout_seconds, Some(index)).await;
        return;
    }

    // TERMINATING: the aggregate result is known; cleanup takes a moment.
    shared.with_jobs(|jobs| {
        if let Some(run) = jobs.runs.get_mut(&run_id) {
            run.state.life = Life::Terminating;
            run.timing.terminating_at = Some(crate::now_ms());
        }
    });
    tokio::time::sleep(opts.run_terminating).await;
    shared.with_jobs(|jobs| {
        if let Some(run) = jobs.runs.get_mut(&run_id) {
            let failed = run
                .tasks
                .iter()
                .find(|t| !matches!(t.state.result, Some(ResultState::Success) | None));
            let (result, message) = match failed {
                None => (ResultState::Success, String::new()),
                Some(task) => {
                    let result = match task.state.result {
                        Some(ResultState::TimedOut) => ResultState::TimedOut,
                        _ => ResultState::Failed,
                    };
                    let inner = task.state.message.trim_end_matches('.');
                    (
                        result,
                        format!("Task {} failed with message: {inner}.", task.spec.task_key),
                    )
                }
            };
            run.state.life = Life::Terminated;
            run.state.result = Some(result);
            run.state.message = message;
            run.timing.end_time = Some(crate::now_ms());
        }
    });
}

/// UPSTREAM_* when a dependency of task `index` did not succeed.
fn upstream_result(run: &Run, index: usize) -> Option<ResultState> {
    let task = run.tasks.get(index)?;
    for dep in &task.spec.depends_on {
        let upstream = run.tasks.iter().find(|t| &t.spec.task_key == dep)?;
        match upstream.state.result {
            Some(ResultState::Success) => {}
            Some(ResultState::Canceled | ResultState::UpstreamCanceled) => {
                return Some(ResultState::UpstreamCanceled)
            }
            _ => return Some(ResultState::UpstreamFailed),
        }
    }
    None
}

async fn finish_interrupted(
    shared: &Arc<Shared>,
    run_id: u64,
    interrupt: Interrupt,
    timeout_seconds: u64,
    running_task: Option<usize>,
) {
    let (result, message) = match interrupt {
        Interrupt::Shutdown => return,
        Interrupt::Canceled => (ResultState::Canceled, "Run cancelled.".to_string()),
        Interrupt::TimedOut => (
            ResultState::TimedOut,
            format!("Run timed out after {timeout_seconds} seconds."),
        ),
    };
    shared.with_jobs(|jobs| {
        if let Some(run) = jobs.runs.get_mut(&run_id) {
            run.state.life = Life::Terminating;
            run.timing.terminating_at = Some(crate::now_ms());
        }
    });
    tokio::time::sleep(shared.opts.run_terminating).await;
    shared.with_jobs(|jobs| {
        let Some(run) = jobs.runs.get_mut(&run_id) else {
            return;
        };
        let now = crate::now_ms();
        for (i, task) in run.tasks.iter_mut().enumerate() {
            if task.state.life.is_final() {
                continue;
            }
            task.state.life = Life::Terminated;
            task.state.result = Some(if Some(i) == running_task || running_task.is_none() {
                result
            } else {
                ResultState::UpstreamCanceled
            });
            task.state.message = message.clone();
            task.state.user_cancelled_or_timedout = true;
            task.timing.end_time = Some(now);
        }
        run.state.life = Life::Terminated;
        run.state.result = Some(result);
        run.state.message = message;
        run.state.user_cancelled_or_timedout = true;
        run.timing.end_time = Some(now);
    });
}

/// Runs one task; returns its result state, state message and output.
async fn execute(
    shared: &Arc<Shared>,
    spec: &TaskSpec,
    task_run_id: u64,
) -> (ResultState, String, Outcome) {
    let opts = &shared.opts;
    let failed = |message: String, outcome: Outcome| (ResultState::Failed, message, outcome);
    match opts.run_fault {
        Some(RunFault::Fail) => {
            tokio::time::sleep(opts.non_python_run_delay).await;
            let error = "Emulator fault injection: the task failed.".to_string();
            return failed(
                TASK_FAILURE_MESSAGE.to_string(),
                Outcome {
                    error: Some(error),
                    ..Outcome::default()
                },
            );
        }
        Some(RunFault::Timeout) => {
            // Never finishes: the run's (or the emulator's default) deadline ends it.
            return std::future::pending().await;
        }
        _ => {}
    }
    let program = match &spec.kind {
        TaskKind::Notebook { path } => {
            let notebook = shared
                .workspace
                .lock()
                .ok()
                .and_then(|ws| ws.notebook(path));
            match notebook {
                None => {
                    // Wording of the real service (seen in public issue threads).
                    let message = format!(
                        "Unable to access the notebook \"{path}\". Either it does not exist, or the identity used to run this job, {}, lacks the required permissions.",
                        opts.user_name
                    );
                    return failed(
                        message.clone(),
                        Outcome {
                            error: Some(message),
                            ..Outcome::default()
                        },
                    );
                }
                Some((Language::Python, body)) => Some(Program::Notebook { body }),
                Some(_) => None,
            }
        }
        TaskKind::PythonFile { path, args } => {
            let source = shared.workspace.lock().ok().and_then(|ws| ws.file(path));
            match source {
                None => {
                    let message = format!("File {path} does not exist.");
                    return failed(
                        message.clone(),
                        Outcome {
                            error: Some(message),
                            ..Outcome::default()
                        },
                    );
                }
                Some(source) => Some(Program::PythonFile {
                    source,
                    args: args.clone(),
                }),
            }
        }
        TaskKind::Other => None,
    };
    match (program, &shared.executor) {
        (Some(program), Some(executor)) => {
            let secrets = crate::stores::lock(&shared.stores.secrets)
                .map(|s| s.values())
                .unwrap_or_default();
            let outcome = executor
                .run(task_run_id, &program, &spec.params, &secrets)
                .await;
            if outcome.failed() {
                failed(TASK_FAILURE_MESSAGE.to_string(), outcome)
            } else {
                (ResultState::Success, String::new(), outcome)
            }
        }
        _ => {
            tokio::time::sleep(opts.non_python_run_delay).await;
            (ResultState::Success, String::new(), Outcome::default())
        }
    }
}
