//! The `deploynotebooks` task: deploys a local folder of notebooks (and, optionally, other
//! files) to a workspace folder.
//!
//! - [`scan`] reads the source and decides what each file becomes (the old task's mapping by
//!   extension, or by the Databricks header), hashing content; oversize files and name
//!   collisions are reported before any upload.
//! - [`deploy`] compares with the workspace (a listing and the manifest of the last deploy,
//!   [`manifest`]), creates each missing folder once, uploads concurrently (the HTTP client
//!   honours 429/`Retry-After` and retries transient failures), records the new manifest, and
//!   cleans only when every upload succeeded.
//! - [`summary`] writes the Markdown summary shown on the run's page.
//!
//! It does not talk HTTP itself (the `databricks` crate does) and never deletes anything
//! outside the target folder.

pub mod deploy;
pub mod manifest;
pub mod scan;
pub mod summary;

use databricks_task_common::Connection;
use task_sdk::{out, TaskContext, TaskError};

/// The task's body.
pub async fn run(ctx: TaskContext) -> Result<(), TaskError> {
    let agent = &ctx.agent;
    let source = std::path::PathBuf::from(agent.required_input("notebooksFolderPath")?);
    let source = if source.is_relative() {
        match agent.variable("System.DefaultWorkingDirectory") {
            Some(root) => std::path::Path::new(&root).join(source),
            None => source,
        }
    } else {
        source
    };
    let clean = agent.bool_input("clean", false);
    let target = deploy::target_folder(&agent.required_input("workspaceFolder")?, clean)?;
    let detect_raw = agent.input("detectNotebooks").unwrap_or_default();
    let detect = scan::Detect::parse(&detect_raw).ok_or_else(|| {
        TaskError::new(format!(
            "input 'Which files are notebooks' (detectNotebooks) must be 'extension' or 'header', got '{detect_raw}'"
        ))
    })?;
    let concurrency = agent.int_input_in("concurrency", 1..=64)?.unwrap_or(8) as usize;
    let opts = deploy::Options {
        source,
        target,
        detect,
        incremental: agent.bool_input("incremental", true),
        clean,
        concurrency,
    };

    let scanned = scan::scan(&opts.source, opts.detect)?;
    out::info(&format!(
        "Deploying {} file(s) from {} to {}{}{}",
        scanned.items.len(),
        opts.source.display(),
        opts.target,
        if opts.incremental {
            " (incremental)"
        } else {
            ""
        },
        if opts.clean {
            ", removing what the source does not have"
        } else {
            ""
        },
    ));
    for (link, target) in &scanned.followed_links {
        out::info(&format!(
            "Following the link {link} to the folder {}",
            target.display()
        ));
    }
    if !scanned.skipped.is_empty() {
        out::group(&format!(
            "Skipped: {} file(s) not deployed",
            scanned.skipped.len()
        ));
        for s in &scanned.skipped {
            out::info(&format!("  {} ({})", s.source_rel, s.reason));
        }
        out::end_group();
    }

    let http = ctx.http_client()?;
    let conn = Connection::resolve(agent, &http)?;
    let ws = conn.workspace(http)?;
    let report = deploy::deploy(&ws, &conn, &opts, scanned).await?;

    out::set_output("uploadedCount", &report.uploaded.len().to_string(), false);
    out::set_output("unchangedCount", &report.unchanged.len().to_string(), false);
    out::set_output("deletedCount", &report.deleted.len().to_string(), false);
    if let Some(dir) = agent.variable("Agent.TempDirectory") {
        let name = format!(
            "deploynotebooks-{}.md",
            agent
                .variable("System.TaskInstanceId")
                .unwrap_or_else(|| std::process::id().to_string())
        );
        let path = std::path::Path::new(&dir).join(name);
        match std::fs::write(&path, summary::markdown(&opts, &report)) {
            Ok(()) => out::upload_summary(&path),
            Err(e) => out::warning(&format!(
                "could not write the summary {}: {e}",
                path.display()
            )),
        }
    }
    let line = summary::one_line(&report);
    if report.failed.is_empty() {
        out::info(&line);
        Ok(())
    } else {
        let mut message = format!(
            "{} of {} upload(s) failed; the others stay deployed{}:",
            report.failed.len(),
            report.failed.len() + report.uploaded.len(),
            if opts.clean {
                " and nothing was deleted"
            } else {
                ""
            }
        );
        for (source, reason) in &report.failed {
            message.push_str(&format!("\n  {source}: {reason}"));
        }
        Err(TaskError::new(message))
    }
}
