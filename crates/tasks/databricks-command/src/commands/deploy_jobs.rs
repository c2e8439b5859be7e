//! `deployJobs`: job definitions from a file or folder (Jobs API 2.2 JSON, `name` and the
//! other settings) made true in the workspace, matched by name: missing jobs are created,
//! changed ones `reset`, the rest left alone. Optionally, jobs that are not in the
//! definitions are deleted — only among those a name prefix or a tag selects (never every job
//! of a workspace) and only after every create and reset succeeded. `$(variable)` in string
//! values is replaced by the pipeline variable. A dry run prints the plan and changes nothing.
//!
//! "Changed" means: a setting the definition gives differs from the job's (objects compared
//! key by key, arrays element by element), or the job has a top-level setting the definition
//! does not give that is not one the service fills in by itself (empty values, `format`,
//! `max_concurrent_runs: 1`, `run_as`, …). Settings the service adds inside tasks are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use databricks::{Job, JobId};
use serde_json::Value;
use task_sdk::{out, Agent, TaskError};

use crate::Cx;

/// One job definition and where it came from.
#[derive(Debug, Clone)]
pub struct Definition {
    pub name: String,
    pub settings: Value,
    pub source: PathBuf,
}

/// What the deploy does to one job.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create {
        name: String,
    },
    Reset {
        job_id: JobId,
        name: String,
        changed: Vec<String>,
    },
    Unchanged {
        job_id: JobId,
        name: String,
    },
    Delete {
        job_id: JobId,
        name: String,
    },
}

/// Which jobs a deploy may delete.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteScope {
    Prefix(String),
    Tag { key: String, value: Option<String> },
}

impl DeleteScope {
    fn selects(&self, job: &Job) -> bool {
        match self {
            DeleteScope::Prefix(p) => job.name().starts_with(p.as_str()),
            DeleteScope::Tag { key, value } => job
                .tags()
                .get(key)
                .is_some_and(|v| value.as_ref().is_none_or(|want| want == v)),
        }
    }
}

/// Replaces `$(name)` in `text` with the pipeline variable; unknown names are collected.
fn expand(text: &str, agent: &Agent, unknown: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        match (valid, valid.then(|| agent.variable(name)).flatten()) {
            (true, Some(value)) => out.push_str(&value),
            (true, None) => {
                unknown.push(name.to_owned());
                out.push_str(&rest[start..start + 3 + end]);
            }
            (false, _) => out.push_str(&rest[start..start + 3 + end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn expand_value(value: &mut Value, agent: &Agent, unknown: &mut Vec<String>) {
    match value {
        Value::String(s) => *s = expand(s, agent, unknown),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| expand_value(v, agent, unknown)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|v| expand_value(v, agent, unknown)),
        _ => {}
    }
}

/// The `.json` files of `path` (itself, or a folder searched recursively), sorted.
fn json_files(path: &Path) -> Result<Vec<PathBuf>, TaskError> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut found = Vec::new();
    let mut dirs = vec![path.to_owned()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            TaskError::new(format!("cannot read the folder {}: {e}", dir.display()))
        })?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
            {
                found.push(p);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Reads the definitions: each file holds one job's settings (or `jobs/get`'s form with a
/// `settings` object), or an array of them. Names must be present and unique.
pub fn load(path: &Path, agent: &Agent) -> Result<Vec<Definition>, TaskError> {
    let files = json_files(path)?;
    if files.is_empty() {
        return Err(TaskError::new(format!(
            "input 'Job definitions (file or folder)' (jobsPath): {} has no .json files",
            path.display()
        )));
    }
    let mut defs: Vec<Definition> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| TaskError::new(format!("cannot read {}: {e}", file.display())))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| TaskError::new(format!("{} is not valid JSON: {e}", file.display())))?;
        let items = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        for (i, item) in items.into_iter().enumerate() {
            let mut settings = match item {
                Value::Object(mut obj) => match obj.remove("settings") {
                    Some(s @ Value::Object(_)) => s,
                    _ => Value::Object(obj),
                },
                _ => {
                    return Err(TaskError::new(format!(
                        "{} (item {}): a job definition must be a JSON object with the job's settings (name, tasks, …)",
                        file.display(),
                        i + 1
                    )))
                }
            };
            let mut unknown = Vec::new();
            expand_value(&mut settings, agent, &mut unknown);
            if !unknown.is_empty() {
                unknown.sort();
                unknown.dedup();
                return Err(TaskError::new(format!(
                    "{}: $({}) is not a pipeline variable: define it, or remove it from the file",
                    file.display(),
                    unknown.join("), $(")
                )));
            }
            let Some(name) = settings
                .get("name")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
            else {
                return Err(TaskError::new(format!(
                    "{}: a job definition needs a \"name\": jobs are matched by name",
                    file.display()
                )));
            };
            if let Some(first) = defs.iter().find(|d| d.name == name) {
                return Err(TaskError::new(format!(
                    "the job name '{name}' is defined twice, in {} and {}: names must be unique",
                    first.source.display(),
                    file.display()
                )));
            }
            defs.push(Definition {
                name,
                settings,
                source: file.clone(),
            });
        }
    }
    Ok(defs)
}

/// Whether `remote` has everything `source` says (see the module doc).
fn covers(remote: Option<&Value>, source: &Value) -> bool {
    match (source, remote) {
        (Value::Null, None) => true,
        (Value::Object(s), Some(Value::Object(r))) => s.iter().all(|(k, v)| covers(r.get(k), v)),
        (Value::Array(s), Some(Value::Array(r))) => {
            s.len() == r.len() && s.iter().zip(r).all(|(a, b)| covers(Some(b), a))
        }
        (Value::Number(a), Some(Value::Number(b))) => a.as_f64() == b.as_f64(),
        (s, Some(r)) => s == r,
        (_, None) => false,
    }
}

/// Top-level settings the service fills in by itself, and values that mean "not set".
fn is_service_default(key: &str, value: &Value) -> bool {
    let empty = match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    };
    empty
        || matches!(
            key,
            "format"
                | "run_as"
                | "run_as_user_name"
                | "edit_mode"
                | "deployment"
                | "creator_user_name"
        )
        || (key == "max_concurrent_runs" && value.as_u64() == Some(1))
}

/// The top-level settings in which `remote` differs from `source`; empty when unchanged.
pub fn changes(remote: &Value, source: &Value) -> Vec<String> {
    let mut changed: Vec<String> = Vec::new();
    let (Some(s), Some(r)) = (source.as_object(), remote.as_object()) else {
        return vec!["settings".to_owned()];
    };
    for (k, v) in s {
        if !covers(r.get(k), v) {
            changed.push(k.clone());
        }
    }
    for (k, v) in r {
        if !s.contains_key(k) && !is_service_default(k, v) {
            changed.push(format!("{k} (not in the definition)"));
        }
    }
    changed
}

/// Reads the inputs and the workspace, and decides what to do. Nothing is changed here.
pub async fn plan(
    cx: &Cx<'_>,
    defs: &[Definition],
    delete: Option<&DeleteScope>,
) -> Result<Vec<Action>, TaskError> {
    let remote = cx.ws.list_jobs(None).await.map_err(|e| cx.explain(e))?;
    let mut by_name: BTreeMap<&str, Vec<&Job>> = BTreeMap::new();
    for job in &remote {
        by_name.entry(job.name()).or_default().push(job);
    }
    let mut actions = Vec::new();
    let mut ambiguous = Vec::new();
    for def in defs {
        match by_name.get(def.name.as_str()).map(Vec::as_slice) {
            None | Some([]) => actions.push(Action::Create {
                name: def.name.clone(),
            }),
            Some([one]) => {
                let full = cx.ws.get_job(one.job_id).await.map_err(|e| cx.explain(e))?;
                let changed = changes(&full.settings, &def.settings);
                actions.push(if changed.is_empty() {
                    Action::Unchanged {
                        job_id: one.job_id,
                        name: def.name.clone(),
                    }
                } else {
                    Action::Reset {
                        job_id: one.job_id,
                        name: def.name.clone(),
                        changed,
                    }
                });
            }
            Some(many) => ambiguous.push(format!(
                "'{}' (jobs {})",
                def.name,
                many.iter()
                    .map(|j| j.job_id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    if !ambiguous.is_empty() {
        return Err(TaskError::new(format!(
            "several jobs of the workspace have the name of one definition, so the deploy cannot tell which to update: {}. Delete or rename the extra jobs; nothing was changed",
            ambiguous.join("; ")
        )));
    }
    if let Some(scope) = delete {
        for job in &remote {
            if scope.selects(job) && !defs.iter().any(|d| d.name == job.name()) {
                actions.push(Action::Delete {
                    job_id: job.job_id,
                    name: job.name().to_owned(),
                });
            }
        }
    }
    Ok(actions)
}

fn describe(action: &Action) -> String {
    match action {
        Action::Create { name } => format!("create '{name}'"),
        Action::Reset {
            job_id,
            name,
            changed,
        } => format!("reset '{name}' (job {job_id}): {}", changed.join(", ")),
        Action::Unchanged { job_id, name } => format!("unchanged '{name}' (job {job_id})"),
        Action::Delete { job_id, name } => format!("delete '{name}' (job {job_id})"),
    }
}

fn delete_scope(agent: &Agent) -> Result<Option<DeleteScope>, TaskError> {
    if !agent.bool_input("deleteMissing", false) {
        return Ok(None);
    }
    match (agent.input("deletePrefix"), agent.input("deleteTag")) {
        (Some(_), Some(_)) => Err(TaskError::new(
            "give only one of 'Delete only jobs whose name starts with' (deletePrefix) and 'Delete only jobs with the tag' (deleteTag)",
        )),
        (Some(prefix), None) => Ok(Some(DeleteScope::Prefix(prefix))),
        (None, Some(tag)) => {
            let (key, value) = match tag.split_once('=') {
                Some((k, v)) => (k.trim().to_owned(), Some(v.trim().to_owned())),
                None => (tag.clone(), None),
            };
            if key.is_empty() {
                return Err(TaskError::new(format!(
                    "input 'Delete only jobs with the tag' (deleteTag) is '{tag}': write key or key=value"
                )));
            }
            Ok(Some(DeleteScope::Tag { key, value }))
        }
        (None, None) => Err(TaskError::new(
            "'Delete jobs not in the definitions' (deleteMissing) needs a limit: set 'Delete only jobs whose name starts with' (deletePrefix) or 'Delete only jobs with the tag' (deleteTag); the task never deletes from all jobs of a workspace",
        )),
    }
}

/// The command's body.
pub async fn run(cx: &Cx<'_>) -> Result<(), TaskError> {
    let agent = cx.agent;
    let path = agent.path_input("jobsPath")?.ok_or_else(|| {
        TaskError::new("input 'Job definitions (file or folder)' (jobsPath) is required but empty: set it in the task's inputs")
    })?;
    let scope = delete_scope(agent)?;
    let dry_run = agent.bool_input("dryRun", false);
    let defs = load(&path, agent)?;
    let actions = plan(cx, &defs, scope.as_ref()).await?;

    out::info(&format!(
        "{} for {} job definition(s) from {}:",
        if dry_run { "Plan (dry run)" } else { "Plan" },
        defs.len(),
        path.display()
    ));
    for action in &actions {
        out::info(&format!("  {}", describe(action)));
    }
    if dry_run {
        out::info("dry run: nothing was changed");
        return Ok(());
    }

    let mut ids: BTreeMap<String, JobId> = BTreeMap::new();
    let mut done: Vec<String> = Vec::new();
    let failed = |done: &[String], what: String| {
        let mut text = what;
        text.push_str(if done.is_empty() {
            ". Nothing was changed before it"
        } else {
            ". Done before it: "
        });
        text.push_str(&done.join("; "));
        text.push_str(". No job was deleted");
        TaskError::new(text)
    };
    // The plan has one action per definition, in order, then the deletions.
    for (def, action) in defs.iter().zip(&actions) {
        match action {
            Action::Create { name } => {
                let id = cx.ws.create_job_with(&def.settings).await.map_err(|e| {
                    failed(
                        &done,
                        format!(
                            "creating job '{name}' (from {}) failed: {}",
                            def.source.display(),
                            cx.explain(e).message()
                        ),
                    )
                })?;
                out::info(&format!("created '{name}': job {id}"));
                done.push(format!("created '{name}' (job {id})"));
                ids.insert(name.clone(), id);
            }
            Action::Reset { job_id, name, .. } => {
                cx.ws.reset_job(*job_id, &def.settings).await.map_err(|e| {
                    failed(
                        &done,
                        format!(
                            "resetting job '{name}' ({job_id}, from {}) failed: {}",
                            def.source.display(),
                            cx.explain(e).message()
                        ),
                    )
                })?;
                out::info(&format!("reset '{name}' (job {job_id})"));
                done.push(format!("reset '{name}' (job {job_id})"));
                ids.insert(name.clone(), *job_id);
            }
            Action::Unchanged { job_id, name } => {
                ids.insert(name.clone(), *job_id);
            }
            Action::Delete { .. } => {}
        }
    }
    // Deletions only now: every definition is in place.
    for action in &actions {
        if let Action::Delete { job_id, name } = action {
            cx.ws.delete_job(*job_id).await.map_err(|e| {
                TaskError::new(format!(
                    "every job definition was deployed, but deleting job '{name}' ({job_id}) failed: {}",
                    cx.explain(e).message()
                ))
            })?;
            out::info(&format!("deleted '{name}' (job {job_id})"));
        }
    }
    let count = |f: fn(&Action) -> bool| actions.iter().filter(|a| f(a)).count();
    out::info(&format!(
        "jobs: {} created, {} reset, {} unchanged, {} deleted",
        count(|a| matches!(a, Action::Create { .. })),
        count(|a| matches!(a, Action::Reset { .. })),
        count(|a| matches!(a, Action::Unchanged { .. })),
        count(|a| matches!(a, Action::Delete { .. })),
    ));
    let map: serde_json::Map<String, Value> = ids
        .into_iter()
        .map(|(k, v)| (k, Value::from(v.0)))
        .collect();
    out::set_output("jobIds", &Value::Object(map).to_string(), false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_ignore_what_the_service_adds() {
        let source = json!({"name": "a", "tasks": [{"task_key": "t", "notebook_task": {"notebook_path": "/x"}}]});
        let remote = json!({"name": "a", "format": "MULTI_TASK", "max_concurrent_runs": 1,
            "email_notifications": {}, "timeout_seconds": 0,
            "tasks": [{"task_key": "t", "run_if": "ALL_SUCCESS", "notebook_task": {"notebook_path": "/x", "source": "WORKSPACE"}}]});
        assert!(changes(&remote, &source).is_empty());
        let edited = json!({"name": "a", "tasks": [{"task_key": "t", "notebook_task": {"notebook_path": "/y"}}]});
        assert_eq!(changes(&remote, &edited), vec!["tasks"]);
        let scheduled = json!({"name": "a", "schedule": {"quartz_cron_expression": "0 0 * * * ?"},
            "tasks": source["tasks"].clone()});
        assert_eq!(
            changes(&scheduled, &source),
            vec!["schedule (not in the definition)"]
        );
    }

    #[test]
    fn variables_expand_in_strings_and_unknown_ones_are_named() {
        let agent = Agent::from_vars([("ENV_NAME", "prod"), ("CLUSTER_ID", "c-1")]);
        let mut unknown = Vec::new();
        assert_eq!(
            expand(
                "etl-$(env.name)-$(CLUSTER_ID) $(nope) $(",
                &agent,
                &mut unknown
            ),
            "etl-prod-c-1 $(nope) $("
        );
        assert_eq!(unknown, vec!["nope"]);
    }
}
