//! What azp-local prints: a header per stage, job and step, each step's log with `##[group]`
//! sections indented, warnings and errors highlighted (colours on a terminal only, never
//! with `NO_COLOR`), and the final table. Everything reaching here is already masked.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::commands::Shown;
use crate::expr::Outcome;

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const MAGENTA: &str = "\x1b[35m";

pub struct Printer {
    color: bool,
    depth: usize,
    log_dir: Option<PathBuf>,
    log: Option<File>,
    out: Box<dyn Write>,
}

/// One row of the final table.
#[derive(Debug, Clone)]
pub struct Row {
    pub path: String,
    pub outcome: Outcome,
    pub duration: Duration,
    pub note: String,
}

pub fn duration_text(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

impl Printer {
    pub fn stdout(log_dir: Option<PathBuf>) -> std::io::Result<Printer> {
        if let Some(dir) = &log_dir {
            std::fs::create_dir_all(dir)?;
        }
        let color = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Ok(Printer {
            color,
            depth: 0,
            log_dir,
            log: None,
            out: Box::new(std::io::stdout()),
        })
    }

    fn paint(&self, color: &str, text: &str) -> String {
        if self.color {
            format!("{color}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }

    fn println(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    pub fn stage(&mut self, title: &str) {
        let line = self.paint(&format!("{BOLD}{MAGENTA}"), &format!("━━ Stage {title}"));
        self.println(&line);
    }

    pub fn job(&mut self, title: &str) {
        let line = self.paint(&format!("{BOLD}{CYAN}"), &format!("── Job {title}"));
        self.println(&line);
    }

    pub fn note(&mut self, text: &str) {
        let line = self.paint(DIM, &format!("   {text}"));
        self.println(&line);
    }

    pub fn warning(&mut self, text: &str) {
        let line = self.paint(YELLOW, &format!("##[warning]{text}"));
        self.println(&line);
    }

    pub fn error(&mut self, text: &str) {
        let line = self.paint(RED, &format!("##[error]{text}"));
        self.println(&line);
    }

    /// Starts a step: its header, and its raw log file when `--log-dir` is set.
    pub fn step_start(&mut self, index: usize, title: &str, file_stem: &str) {
        self.depth = 0;
        let line = self.paint(BOLD, &format!("▶ {title}"));
        self.println(&line);
        self.log = self.log_dir.as_ref().and_then(|dir| {
            File::create(dir.join(format!("{index:03}-{}.log", sanitize(file_stem)))).ok()
        });
    }

    /// A raw line for the step's log file (masked).
    pub fn raw(&mut self, line: &str) {
        if let Some(log) = &mut self.log {
            let _ = writeln!(log, "{line}");
        }
    }

    pub fn shown(&mut self, shown: &Shown) {
        let indent = "  ".repeat(self.depth + 1);
        let line = match shown {
            Shown::Out(t) => format!("{indent}{t}"),
            Shown::Group(t) => {
                let l = self.paint(BOLD, &format!("{indent}▼ {t}"));
                self.depth += 1;
                l
            }
            Shown::EndGroup => {
                self.depth = self.depth.saturating_sub(1);
                return;
            }
            Shown::Section(t) => self.paint(BOLD, &format!("{indent}{t}")),
            Shown::Command(t) => self.paint(CYAN, &format!("{indent}{t}")),
            Shown::Warning(t) => self.paint(YELLOW, &format!("{indent}##[warning]{t}")),
            Shown::Error(t) => self.paint(RED, &format!("{indent}##[error]{t}")),
            Shown::Debug(t) => self.paint(DIM, &format!("{indent}##[debug]{t}")),
        };
        self.println(&line);
    }

    pub fn step_end(&mut self, outcome: Outcome, duration: Duration, note: &str) {
        self.depth = 0;
        self.log = None;
        let (mark, color) = outcome_style(outcome);
        let mut text = format!("{mark} {} ({})", outcome.as_str(), duration_text(duration));
        if !note.is_empty() {
            text = format!("{text}: {note}");
        }
        let line = self.paint(color, &text);
        self.println(&line);
    }

    pub fn table(&mut self, rows: &[Row], total: Duration, overall: Outcome) {
        self.println("");
        let width = rows
            .iter()
            .map(|r| r.outcome.as_str().len())
            .max()
            .unwrap_or(9)
            .max(6);
        let header = format!("{:<width$}  {:>8}  Step", "Result", "Time");
        let header = self.paint(BOLD, &header);
        self.println(&header);
        for row in rows {
            let (_, color) = outcome_style(row.outcome);
            let result = self.paint(color, &format!("{:<width$}", row.outcome.as_str()));
            let note = if row.note.is_empty() {
                String::new()
            } else {
                format!("  ({})", row.note)
            };
            let line = format!(
                "{result}  {:>8}  {}{note}",
                duration_text(row.duration),
                row.path
            );
            self.println(&line);
        }
        let (_, color) = outcome_style(overall);
        let summary = self.paint(
            &format!("{BOLD}{color}"),
            &format!("Run {} in {}", overall.as_str(), duration_text(total)),
        );
        self.println(&summary);
    }

    /// Writes a file into the log folder (the run's summary).
    pub fn log_file(&self, name: &str, text: &str) {
        if let Some(dir) = &self.log_dir {
            let _ = std::fs::write(Path::new(dir).join(name), text);
        }
    }
}

fn outcome_style(outcome: Outcome) -> (&'static str, &'static str) {
    match outcome {
        Outcome::Succeeded => ("✔", GREEN),
        Outcome::SucceededWithIssues => ("!", YELLOW),
        Outcome::Failed => ("✘", RED),
        Outcome::Canceled => ("■", RED),
        Outcome::Skipped => ("○", DIM),
    }
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    if s.is_empty() {
        "step".into()
    } else {
        s
    }
}
