//! A task's life: start-up (secrets, logging, HTTP), the body, and the result (contract §4).

use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::process::ExitCode;

use crate::agent::Agent;
use crate::command::{line, IssueSource, IssueType, TaskResult};
use crate::http;
use crate::retry::{HttpClient, RetryPolicy};
use crate::secrets;

/// The error a task ends with: one actionable message for the user. Any error converts into
/// it, its causes joined with `: `.
pub struct TaskError {
    message: String,
}

impl TaskError {
    pub fn new(message: impl Into<String>) -> TaskError {
        TaskError {
            message: message.into(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for TaskError {
    fn from(error: E) -> TaskError {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        TaskError { message }
    }
}

/// `.context("…")` for results whose error should be prefixed with what was being done.
pub trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T, TaskError>;
}

impl<T, E: Into<TaskError>> Context<T> for Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T, TaskError> {
        self.map_err(|e| TaskError::new(format!("{what}: {}", e.into().message)))
    }
}

/// What a task knows about itself, for the user agent and messages.
#[derive(Debug, Clone, Copy)]
pub struct TaskInfo {
    /// The task.json name, e.g. `deploynotebooks`.
    pub name: &'static str,
    pub version: &'static str,
    /// The task's task.json, for input labels in error messages.
    pub manifest: &'static str,
}

/// The pipeline variable that overrides the total time a task spends retrying one request
/// (default 300 seconds).
pub const RETRY_BUDGET_VARIABLE: &str = "AzdoDataTasks.RetryBudgetSeconds";

/// What the task body receives.
pub struct TaskContext {
    pub agent: Agent,
    pub info: TaskInfo,
}

impl TaskContext {
    /// The one HTTP client of this task: the agent's proxy and CA, our user agent, and the
    /// retry policy.
    pub fn http_client(&self) -> Result<HttpClient, TaskError> {
        let settings = http::settings_from_agent(&self.agent, self.info.name, self.info.version)?;
        let mut policy = RetryPolicy::default();
        if let Some(budget) = self.agent.variable(RETRY_BUDGET_VARIABLE) {
            let seconds = budget.trim().parse::<u64>().map_err(|_| {
                TaskError::new(format!(
                    "variable {RETRY_BUDGET_VARIABLE} must be a whole number of seconds, got '{budget}'"
                ))
            })?;
            policy.budget = std::time::Duration::from_secs(seconds);
        }
        Ok(HttpClient::new(http::client(&settings)?, policy))
    }
}

fn print_line(text: &str) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

fn report_failure(message: &str) {
    let message = secrets::mask(message);
    print_line(&line::log_issue(
        IssueType::Error,
        &message,
        &IssueSource::default(),
    ));
    print_line(&line::complete(TaskResult::Failed, &message));
}

/// Runs a task: reads the agent's environment (moving secrets out of it), sets up logging,
/// runs `body` on a single-threaded runtime, and reports the result. Panics are reported as
/// task failures, without a backtrace.
pub fn run<F, Fut>(info: TaskInfo, body: F) -> ExitCode
where
    F: FnOnce(TaskContext) -> Fut,
    Fut: Future<Output = Result<(), TaskError>>,
{
    std::panic::set_hook(Box::new(|panic| {
        let detail = panic
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        let place = panic
            .location()
            .map(|l| format!(" ({}:{})", l.file(), l.line()))
            .unwrap_or_default();
        report_failure(&format!(
            "internal error: {detail}{place}. This is a bug in the task; please report it with this message."
        ));
    }));
    let agent = Agent::from_process().with_manifest_labels(info.manifest);
    crate::logging::init(agent.debug());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report_failure(&format!("cannot start the task's runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(body(TaskContext { agent, info }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report_failure(error.message());
            ExitCode::FAILURE
        }
    }
}

/// Output commands, each registered and printed in one place.
pub mod out {
    use super::print_line;
    use crate::command::{line, TaskResult};
    use crate::secrets;

    /// Plain log lines, masked, with any logging command in them made inert (the text may
    /// come from a notebook or a server; see [`crate::command::neutralize`]).
    pub fn info(text: &str) {
        print_line(&crate::command::neutralize(&secrets::mask(text)));
    }

    /// Sets a job variable for later steps; a secret is registered before it is printed.
    pub fn set_variable(name: &str, value: &str, secret: bool) {
        if secret {
            secrets::register(value);
        }
        print_line(&line::set_variable(name, value, secret, false, false));
    }

    /// Sets an output variable (`<step>.<name>` for later steps).
    pub fn set_output(name: &str, value: &str, secret: bool) {
        if secret {
            secrets::register(value);
        }
        print_line(&line::set_variable(name, value, secret, true, false));
    }

    pub fn warning(text: &str) {
        print_line(&line::log_issue(
            crate::command::IssueType::Warning,
            &secrets::mask(text),
            &Default::default(),
        ));
    }

    pub fn complete(result: TaskResult, message: &str) {
        print_line(&line::complete(result, &secrets::mask(message)));
    }

    pub fn progress(percent: u8, description: &str) {
        print_line(&line::set_progress(percent, description));
    }

    pub fn upload_summary(path: &std::path::Path) {
        print_line(&line::upload_summary(&path.to_string_lossy()));
    }

    pub fn add_attachment(kind: &str, name: &str, path: &std::path::Path) {
        print_line(&line::add_attachment(kind, name, &path.to_string_lossy()));
    }

    pub fn prepend_path(dir: &std::path::Path) {
        print_line(&line::prepend_path(&dir.to_string_lossy()));
    }

    /// Opens a collapsible section; close it with [`end_group`].
    pub fn group(title: &str) {
        print_line(&line::group(&crate::command::neutralize(&secrets::mask(
            title,
        ))));
    }

    pub fn end_group() {
        print_line(&line::end_group());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer problem")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner cause")]
    struct Inner;

    #[test]
    fn errors_join_their_causes() {
        let e: TaskError = Outer(Inner).into();
        assert_eq!(e.message(), "outer problem: inner cause");
        let r: Result<(), Inner> = Err(Inner);
        assert_eq!(
            r.context("reading x").unwrap_err().message(),
            "reading x: inner cause"
        );
    }
}
