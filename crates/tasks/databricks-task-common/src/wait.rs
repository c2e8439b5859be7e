//! Waiting for a Databricks run and reporting how it ended: the one implementation behind
//! `waitexecution` and `executenotebook`'s "wait for the run to finish".
//!
//! Polls `runs/get` fast at first (1 s), backing off by half each time up to a maximum;
//! prints a line when the state changes, not on every poll. Transient failures (429, 5xx,
//! lost connections — after the HTTP client's own retries) never end the wait. A timeout or
//! the pipeline's cancellation (SIGINT/SIGTERM) cancels the run before the task ends.

use std::future::Future;
use std::time::{Duration, Instant};

use databricks::{Error, Run, RunId, RunOutput, RunState, Workspace, SUBMIT_TASK_KEY};
use task_sdk::{out, Agent, TaskError};

use crate::connection::{explain, Connection};

/// How long and how often to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitOptions {
    /// The first interval between two status checks.
    pub first_interval: Duration,
    /// The longest interval between two status checks.
    pub max_interval: Duration,
    /// Give up (and cancel the run) after this long; `None` waits for the end.
    pub timeout: Option<Duration>,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            first_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(15),
            timeout: None,
        }
    }
}

impl WaitOptions {
    /// From the inputs `maxPollIntervalSeconds` (1–300, default 15) and `timeoutMinutes`
    /// (0 = none, at most a week).
    pub fn from_inputs(agent: &Agent) -> Result<WaitOptions, TaskError> {
        let max = agent
            .int_input_in("maxPollIntervalSeconds", 1..=300)?
            .unwrap_or(15);
        let timeout = agent
            .int_input_in("timeoutMinutes", 0..=7 * 24 * 60)?
            .unwrap_or(0);
        let max_interval = Duration::from_secs(max as u64);
        Ok(WaitOptions {
            first_interval: Duration::from_secs(1).min(max_interval),
            max_interval,
            timeout: (timeout > 0).then(|| Duration::from_secs(timeout as u64 * 60)),
        })
    }

    /// The interval after `current`: half as long again, up to the maximum.
    pub fn next_interval(&self, current: Duration) -> Duration {
        (current + current / 2)
            .min(self.max_interval)
            .max(self.first_interval)
    }
}

/// How a wait ended.
#[derive(Debug)]
pub enum Ending {
    /// The run reached a terminal state.
    Finished(Box<Run>),
    /// The timeout passed; the run was asked to cancel.
    TimedOut { waited: Duration },
    /// The pipeline was cancelled; the run was asked to cancel.
    Cancelled,
}

/// Whether an error is worth polling again after (the client already retried it).
pub fn is_transient(error: &Error) -> bool {
    match error {
        Error::Transport(send) => !send.is_dns(),
        Error::Api { status, .. } | Error::UnexpectedBody { status, .. } => {
            *status == 429 || *status == 408 || *status >= 500
        }
        _ => false,
    }
}

/// One line describing a state.
fn describe(state: &RunState) -> String {
    let mut text = state.life_cycle_state.to_string();
    if let Some(result) = &state.result_state {
        text.push_str(&format!(" ({result})"));
    }
    if !state.state_message.trim().is_empty() {
        text.push_str(&format!(": {}", state.state_message.trim()));
    }
    text
}

/// How long the cancel request may take when the pipeline is being cancelled: the agent
/// kills the process a few seconds after its signal.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

async fn cancel_run(ws: &Workspace, run_id: RunId, why: &str) {
    match tokio::time::timeout(CANCEL_GRACE, ws.cancel_run(run_id)).await {
        Ok(Ok(())) => out::info(&format!("{why}: cancelled Databricks run {run_id}")),
        Ok(Err(e)) => out::warning(&format!(
            "{why}, but cancelling Databricks run {run_id} failed: {e}. Cancel it in the workspace"
        )),
        Err(_) => out::warning(&format!(
            "{why}, but the workspace did not confirm cancelling run {run_id} within {} s. Check it in the workspace",
            CANCEL_GRACE.as_secs()
        )),
    }
}

/// Polls the run until it ends, the timeout passes or `cancelled` resolves. Prints each
/// state change. Errors that are not transient end the wait.
pub async fn poll_until_end(
    ws: &Workspace,
    conn: &Connection,
    run_id: RunId,
    opts: WaitOptions,
    cancelled: impl Future<Output = ()>,
) -> Result<Ending, TaskError> {
    let started = Instant::now();
    let deadline = opts.timeout.map(|t| started + t);
    let mut interval = opts.first_interval;
    let mut last_state: Option<RunState> = None;
    let mut failing_since: Option<Instant> = None;
    tokio::pin!(cancelled);
    loop {
        let polled = tokio::select! {
            biased;
            _ = &mut cancelled => {
                cancel_run(ws, run_id, "the pipeline was cancelled").await;
                return Ok(Ending::Cancelled);
            }
            polled = ws.get_run(run_id) => polled,
        };
        match polled {
            Ok(run) => {
                if let Some(since) = failing_since.take() {
                    out::info(&format!(
                        "the workspace answers again (after {} s of errors)",
                        since.elapsed().as_secs()
                    ));
                }
                if last_state.is_none() {
                    if let Some(url) = &run.run_page_url {
                        out::info(&format!("Run page: {url}"));
                    }
                }
                if last_state.as_ref() != Some(&run.state) {
                    out::info(&format!(
                        "[{:>4} s] {}",
                        started.elapsed().as_secs(),
                        describe(&run.state)
                    ));
                    last_state = Some(run.state.clone());
                }
                if run.state.is_terminal() {
                    return Ok(Ending::Finished(Box::new(run)));
                }
            }
            Err(e) if e.is_not_found() => {
                return Err(TaskError::new(format!(
                    "run {run_id} does not exist in the workspace {}: check the run id, and that this task talks to the workspace where the run was started",
                    conn.host
                )))
            }
            // Once the run was seen, the host resolves: a failed DNS lookup now is a network
            // blip like any other, and must not end the wait.
            Err(e)
                if is_transient(&e)
                    || (last_state.is_some() && matches!(e, Error::Transport(_))) =>
            {
                if failing_since.is_none() {
                    out::warning(&format!(
                        "checking run {run_id} failed ({e}); still waiting"
                    ));
                    failing_since = Some(Instant::now());
                }
            }
            Err(e) => return Err(explain(conn, e)),
        }
        let mut sleep_for = interval;
        if let Some(deadline) = deadline {
            let now = Instant::now();
            if now >= deadline {
                let waited = started.elapsed();
                cancel_run(ws, run_id, "the timeout passed").await;
                return Ok(Ending::TimedOut { waited });
            }
            sleep_for = sleep_for.min(deadline - now);
        }
        tokio::select! {
            biased;
            _ = &mut cancelled => {
                cancel_run(ws, run_id, "the pipeline was cancelled").await;
                return Ok(Ending::Cancelled);
            }
            _ = tokio::time::sleep(sleep_for) => {}
        }
        interval = opts.next_interval(interval);
    }
}

/// The output of a task run, or `None` with a warning when it cannot be read.
async fn output_of(ws: &Workspace, task_run_id: RunId) -> Option<RunOutput> {
    match ws.get_run_output(task_run_id).await {
        Ok(output) => Some(output),
        Err(e) => {
            out::warning(&format!(
                "could not read the output of task run {task_run_id}: {e}"
            ));
            None
        }
    }
}

/// What a finished run means for the task: prints the exit value or the error and trace,
/// sets the output variables `resultState`, `notebookResult` and `runPageUrl`, and returns
/// an error (the task fails) unless the run succeeded.
pub async fn report(ws: &Workspace, run: &Run) -> Result<(), TaskError> {
    let result = run
        .state
        .result_state
        .as_ref()
        .map(|r| r.to_string())
        .unwrap_or_else(|| run.state.life_cycle_state.to_string());
    out::set_output("resultState", &result, false);
    if let Some(url) = &run.run_page_url {
        out::set_output("runPageUrl", url, false);
    }
    let task = run.task(SUBMIT_TASK_KEY);
    if run.state.is_success() {
        if let Some(output) = match task {
            Some(t) => output_of(ws, t.run_id).await,
            None => None,
        } {
            if let Some(notebook) = output.notebook_output {
                if let Some(value) = notebook.result {
                    let cut = if notebook.truncated {
                        " (truncated by Databricks at 5 MB)"
                    } else {
                        ""
                    };
                    out::info(&format!("Notebook exit value{cut}: {value}"));
                    out::set_output("notebookResult", variable_value(&value), false);
                }
            }
        }
        out::info(&format!(
            "Databricks run {} succeeded ({result})",
            run.run_id
        ));
        return Ok(());
    }
    // Failed: show each task that did not succeed, with its error and trace.
    let mut details = Vec::new();
    let failed: Vec<_> = run.tasks.iter().filter(|t| !t.state.is_success()).collect();
    for t in &failed {
        let Some(output) = output_of(ws, t.run_id).await else {
            continue;
        };
        if let Some(error) = output.error.as_deref().filter(|e| !e.trim().is_empty()) {
            details.push(error.trim().to_owned());
        }
        let trace = output
            .error_trace
            .as_deref()
            .filter(|t| !t.trim().is_empty());
        if output.error.is_some() || trace.is_some() {
            out::group(&format!(
                "Error of task '{}' (run {})",
                t.task_key, t.run_id
            ));
            if let Some(error) = &output.error {
                out::info(error);
            }
            if let Some(trace) = trace {
                out::info(trace);
            }
            out::end_group();
        }
    }
    let mut message = format!("Databricks run {} ended {result}", run.run_id);
    let state_message = run.state.state_message.trim();
    if !state_message.is_empty() {
        message.push_str(&format!(": {state_message}"));
    }
    if let Some(first) = details.first() {
        let first_line = first.lines().next().unwrap_or_default();
        if !state_message.contains(first_line) {
            message.push_str(&format!(". Error: {first_line}"));
        }
    }
    if let Some(url) = &run.run_page_url {
        message.push_str(&format!(". Run page: {url}"));
    }
    Err(TaskError::new(message))
}

/// Waits for `run_id` and reports its end (see [`poll_until_end`] and [`report`]); the
/// pipeline's cancellation cancels the run.
pub async fn wait_and_report(
    ws: &Workspace,
    conn: &Connection,
    run_id: RunId,
    opts: WaitOptions,
) -> Result<(), TaskError> {
    let cancel = task_sdk::CancelSignal::install().await;
    match poll_until_end(ws, conn, run_id, opts, cancel.cancelled()).await? {
        Ending::Finished(run) => report(ws, &run).await,
        Ending::TimedOut { waited } => Err(TaskError::new(format!(
            "Databricks run {run_id} did not finish within the timeout ({} min); it was cancelled. Raise 'Timeout (minutes)' (timeoutMinutes) or set it to 0 to wait until the run ends",
            waited.as_secs().div_ceil(60)
        ))),
        Ending::Cancelled => Err(TaskError::new(format!(
            "the pipeline was cancelled while waiting for Databricks run {run_id}"
        ))),
    }
}

/// The largest output variable we set. Later steps receive variables as environment
/// variables, and Linux refuses to start a process with one over 128 KiB, so a larger exit
/// value (Databricks allows 5 MB) would break every later step of the job.
const MAX_VARIABLE_BYTES: usize = 32 * 1024;

/// `value`, cut at [`MAX_VARIABLE_BYTES`] on a character boundary, with a warning when cut.
fn variable_value(value: &str) -> &str {
    if value.len() <= MAX_VARIABLE_BYTES {
        return value;
    }
    let mut end = MAX_VARIABLE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    out::warning(&format!(
        "the notebook's exit value is {} bytes; the output variable notebookResult holds its first {end} bytes (later steps receive variables as environment variables, which cannot hold more). Write large results to a file or a table and exit with its location",
        value.len()
    ));
    &value[..end]
}

#[cfg(test)]
mod tests {
    #[test]
    fn large_exit_values_are_cut_for_the_output_variable() {
        let small = "done";
        assert_eq!(super::variable_value(small), "done");
        let big = "é".repeat(super::MAX_VARIABLE_BYTES);
        let cut = super::variable_value(&big);
        assert!(
            cut.len() <= super::MAX_VARIABLE_BYTES && cut.len() > super::MAX_VARIABLE_BYTES - 4
        );
        assert!(big.starts_with(cut));
    }

    use super::*;

    #[test]
    fn intervals_grow_to_the_maximum() {
        let opts = WaitOptions {
            first_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(10),
            timeout: None,
        };
        let mut i = opts.first_interval;
        let mut seen = vec![i.as_millis()];
        for _ in 0..8 {
            i = opts.next_interval(i);
            seen.push(i.as_millis());
        }
        assert_eq!(
            seen,
            vec![1000, 1500, 2250, 3375, 5062, 7593, 10000, 10000, 10000]
        );
    }

    #[test]
    fn options_from_inputs() {
        let a = Agent::from_vars([
            ("INPUT_MAXPOLLINTERVALSECONDS", "2"),
            ("INPUT_TIMEOUTMINUTES", "3"),
        ]);
        let o = WaitOptions::from_inputs(&a).unwrap();
        assert_eq!(o.max_interval, Duration::from_secs(2));
        assert_eq!(o.timeout, Some(Duration::from_secs(180)));
        let a = Agent::from_vars([("INPUT_MAXPOLLINTERVALSECONDS", "0")]);
        assert!(WaitOptions::from_inputs(&a).is_err());
        assert_eq!(
            WaitOptions::from_inputs(&Agent::default()).unwrap(),
            WaitOptions::default()
        );
    }

    #[test]
    fn transient_errors() {
        let api = |status| Error::Api {
            status,
            error_code: "TEMPORARILY_UNAVAILABLE".into(),
            message: "x".into(),
        };
        assert!(is_transient(&api(503)));
        assert!(is_transient(&api(429)));
        assert!(!is_transient(&api(400)));
        assert!(!is_transient(&Error::Auth {
            host: "h".into(),
            status: 401,
            detail: "d".into()
        }));
    }
}
