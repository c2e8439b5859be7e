//! Log output in the agent's conventions, through `tracing`:
//! error → `task.logissue type=error`, warn → `task.logissue type=warning`, info → a plain
//! line, debug and trace → `task.debug`, printed only when `System.Debug` is true. Every line
//! is masked against the registered secrets. Events from dependencies (hyper, rustls, …) are
//! shown only from warn up: their debug chatter is not the user's business.
//!
//! The subscriber is written directly on `tracing`'s trait rather than on
//! tracing-subscriber: tasks use events, not spans, and the registry costs binary size.

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::command::{line, IssueSource, IssueType};
use crate::secrets::mask;

const DEPENDENCIES: &[&str] = &["rustls", "tokio", "axum", "tower", "hyper"];

/// The subscriber that writes agent log lines to stdout.
pub struct AgentSubscriber {
    debug: bool,
}

impl AgentSubscriber {
    pub fn new(debug: bool) -> AgentSubscriber {
        AgentSubscriber { debug }
    }

    /// The line an event becomes, or `None` when it is not shown.
    pub fn render(&self, level: Level, target: &str, message: &str) -> Option<String> {
        let ours = !DEPENDENCIES.iter().any(|dep| target.starts_with(dep));
        if !ours && level > Level::WARN {
            return None;
        }
        let message = mask(message);
        Some(match level {
            Level::ERROR => line::log_issue(IssueType::Error, &message, &IssueSource::default()),
            Level::WARN => line::log_issue(IssueType::Warning, &message, &IssueSource::default()),
            Level::INFO => crate::command::neutralize(&message),
            _ if self.debug => line::debug(&message),
            _ => return None,
        })
    }
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    // An f64 field (none of our events has one) is written as JSON writes numbers (`1e+300`):
    // the default, `{:?}`, would bring core's float formatting into every task binary
    // (BENCHMARKS.md, "Binary size after the cuts").
    fn record_f64(&mut self, field: &Field, value: f64) {
        let text = match serde_json::Number::from_f64(value) {
            Some(number) => number.to_string(),
            None if value.is_nan() => "NaN".to_owned(),
            None if value > 0.0 => "inf".to_owned(),
            None => "-inf".to_owned(),
        };
        self.record_str(field, &text);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

impl Subscriber for AgentSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.debug || *metadata.level() <= Level::INFO
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(if self.debug {
            LevelFilter::TRACE
        } else {
            LevelFilter::INFO
        })
    }

    // Spans carry no output here: one id serves them all.
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        visitor.message.push_str(&visitor.fields);
        let meta = event.metadata();
        if let Some(line) = self.render(*meta.level(), meta.target(), &visitor.message) {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let _ = writeln!(out, "{line}");
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Installs the subscriber for the whole process (once; later calls do nothing).
pub fn init(debug: bool) {
    let _ = tracing::subscriber::set_global_default(AgentSubscriber::new(debug));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_agent_conventions() {
        let quiet = AgentSubscriber::new(false);
        assert_eq!(
            quiet
                .render(Level::ERROR, "deploy_notebooks", "boom")
                .unwrap(),
            "##vso[task.logissue type=error;]boom"
        );
        assert_eq!(
            quiet.render(Level::WARN, "databricks", "careful").unwrap(),
            "##vso[task.logissue type=warning;]careful"
        );
        assert_eq!(
            quiet.render(Level::INFO, "databricks", "hello").unwrap(),
            "hello"
        );
        assert_eq!(quiet.render(Level::DEBUG, "databricks", "detail"), None);
        let loud = AgentSubscriber::new(true);
        assert_eq!(
            loud.render(Level::DEBUG, "databricks", "detail").unwrap(),
            "##vso[task.debug]detail"
        );
        assert_eq!(
            loud.render(Level::DEBUG, "hyper_util::client", "pool"),
            None
        );
        assert!(loud
            .render(Level::WARN, "hyper_util::client", "odd")
            .is_some());
    }

    /// Records each event's message and fields as [`AgentSubscriber`] builds them.
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut visitor = MessageVisitor::default();
            event.record(&mut visitor);
            visitor.message.push_str(&visitor.fields);
            self.0.lock().unwrap().push(visitor.message);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn float_fields_are_written() {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        tracing::subscriber::with_default(Capture(lines.clone()), || {
            tracing::info!(ratio = 0.25, whole = 3.0, huge = 1e300, "m");
            tracing::info!(
                nan = f64::NAN,
                up = f64::INFINITY,
                down = f64::NEG_INFINITY,
                "n"
            );
        });
        assert_eq!(
            *lines.lock().unwrap(),
            [
                "m ratio=0.25 whole=3.0 huge=1e+300",
                "n nan=NaN up=inf down=-inf"
            ]
        );
    }

    #[test]
    fn lines_are_masked() {
        crate::secrets::register("layer-secret-99");
        let subscriber = AgentSubscriber::new(false);
        assert_eq!(
            subscriber
                .render(Level::INFO, "x", "token layer-secret-99")
                .unwrap(),
            "token ***"
        );
    }
}
