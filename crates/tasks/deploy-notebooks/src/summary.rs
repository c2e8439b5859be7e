//! The Markdown summary (`task.uploadsummary`) and the closing log line.

use std::fmt::Write;

use task_sdk::time::tenths;

use crate::deploy::{Options, Report};

/// Files listed per section at most; the log has them all.
const MAX_LISTED: usize = 200;

/// `uploaded 12, unchanged 288, deleted 0, failed 0, skipped 3 in 4.1 s`.
pub fn one_line(report: &Report) -> String {
    format!(
        "Uploaded {}, unchanged {}, deleted {}, failed {}, skipped {} in {} s",
        report.uploaded.len(),
        report.unchanged.len(),
        report.deleted.len(),
        report.failed.len(),
        report.skipped.len(),
        tenths(report.elapsed.as_millis(), 1000)
    )
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('`', "'")
}

fn section<'a>(md: &mut String, title: &str, lines: impl ExactSizeIterator<Item = String> + 'a) {
    let total = lines.len();
    if total == 0 {
        return;
    }
    let _ = writeln!(md, "\n<details><summary>{title} ({total})</summary>\n");
    for line in lines.take(MAX_LISTED) {
        let _ = writeln!(md, "- {line}");
    }
    if total > MAX_LISTED {
        let _ = writeln!(md, "- … and {} more (see the log)", total - MAX_LISTED);
    }
    let _ = writeln!(md, "\n</details>");
}

/// The summary page section.
pub fn markdown(opts: &Options, report: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "### Notebooks deployed to `{}`\n", escape(&opts.target));
    let _ = writeln!(
        md,
        "| Uploaded | Unchanged | Deleted | Failed | Skipped | Time |"
    );
    let _ = writeln!(md, "| ---: | ---: | ---: | ---: | ---: | ---: |");
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} | {} | {} s |",
        report.uploaded.len(),
        report.unchanged.len(),
        report.deleted.len(),
        report.failed.len(),
        report.skipped.len(),
        tenths(report.elapsed.as_millis(), 1000)
    );
    if let Some(why) = &report.clean_skipped {
        let _ = writeln!(md, "\nClean did not run: {why}.");
    }
    section(
        &mut md,
        "Failed",
        report
            .failed
            .iter()
            .map(|(s, e)| format!("`{}`: {}", escape(s), escape(e))),
    );
    section(
        &mut md,
        "Uploaded",
        report
            .uploaded
            .iter()
            .map(|(s, _)| format!("`{}`", escape(s))),
    );
    section(
        &mut md,
        "Deleted",
        report.deleted.iter().map(|s| format!("`{}`", escape(s))),
    );
    section(
        &mut md,
        "Unchanged",
        report.unchanged.iter().map(|s| format!("`{}`", escape(s))),
    );
    section(
        &mut md,
        "Skipped",
        report
            .skipped
            .iter()
            .map(|s| format!("`{}` ({})", escape(&s.source_rel), s.reason)),
    );
    md
}
