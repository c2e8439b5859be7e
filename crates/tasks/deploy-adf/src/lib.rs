//! The `deployadf` task: deploys a Data Factory from the collaboration branch's Git JSON (the
//! folders ADF Studio's Git integration writes) through Data Factory's REST API, without the
//! `adf_publish` branch or ARM templates: every object after what it references, one
//! dependency level at a time with bounded concurrency, only what changed (incremental), with
//! per-environment values from a config file, include/exclude filters, optional deletion of
//! what is not in source, and the triggers stopped and restarted around the writes. A summary
//! page lists what was done; `dryRun` prints the same plan and writes nothing.
//!
//! `triggersOnly: stop|start` does only the trigger part, around a `deployarm` of the
//! `adf_publish` templates.
//!
//! Modules: [`source`] (the Git JSON), [`config`] (the config file), [`plan`] (order and
//! diff); this file reads inputs and carries the plan out with the `azure` crate's client.

pub mod config;
pub mod plan;
pub mod source;

use std::collections::BTreeMap;
use std::path::PathBuf;

use azure::{Credential, DataFactory, FactoryRef};
use serde_json::{json, Value};
use task_sdk::{out, Agent, TaskError};

use crate::plan::Plan;
use crate::source::{Key, Kind};

/// `triggersOnly`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggersOnly {
    Stop,
    Start,
}

/// The task's inputs, typed.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub connection: String,
    pub subscription: Option<String>,
    pub resource_group: String,
    pub factory: String,
    pub location: Option<String>,
    pub create_factory: bool,
    pub root: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub incremental: bool,
    pub delete_not_in_source: bool,
    pub stop_all_triggers: bool,
    pub dry_run: bool,
    pub triggers_only: Option<TriggersOnly>,
    pub concurrency: usize,
}

fn list(agent: &Agent, name: &str) -> Vec<String> {
    agent
        .input(name)
        .unwrap_or_default()
        .split([',', '\n', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn required(agent: &Agent, names: &[&str], label: &str) -> Result<String, TaskError> {
    names.iter().find_map(|n| agent.input(n)).ok_or_else(|| {
        TaskError::new(format!(
            "input '{label}' ({}) is required but empty: set it in the task's inputs",
            names.join(", alias ")
        ))
    })
}

impl Inputs {
    pub fn from_agent(agent: &Agent) -> Result<Inputs, TaskError> {
        let triggers_only = match agent.input("triggersOnly").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("none") => None,
            Some("stop") => Some(TriggersOnly::Stop),
            Some("start") => Some(TriggersOnly::Start),
            Some(other) => {
                return Err(TaskError::new(format!(
                    "input 'Triggers only' (triggersOnly) is '{other}': use stop, start or leave it empty"
                )))
            }
        };
        let root = agent.path_input("rootFolder")?;
        if root.is_none() && triggers_only.is_none() {
            return Err(TaskError::new(
                "input 'Git root folder' (rootFolder) is required but empty: set it to the factory's folder in the repository (the one holding linkedService/, pipeline/, …)",
            ));
        }
        for pattern in list(agent, "includeObjects")
            .iter()
            .chain(&list(agent, "excludeObjects"))
        {
            let kind = pattern.split('.').next().unwrap_or_default();
            if !kind.contains(['*', '?']) && Kind::parse(kind).is_none() {
                return Err(TaskError::new(format!(
                    "the include/exclude pattern '{pattern}' names the type '{kind}', which is not one of {}: write type.name, e.g. pipeline.PL_*",
                    Kind::ALL.map(Kind::folder).join(", ")
                )));
            }
        }
        Ok(Inputs {
            connection: required(
                agent,
                &[
                    "ConnectedServiceName",
                    "azureSubscription",
                    "azureResourceManagerConnection",
                ],
                "Azure Resource Manager connection",
            )?,
            subscription: agent.input("subscriptionId"),
            resource_group: required(agent, &["resourceGroupName"], "Resource group")?,
            factory: required(agent, &["dataFactoryName", "factoryName"], "Data factory")?,
            location: agent.input("location"),
            create_factory: agent.bool_input("createFactory", false),
            root,
            config_file: agent.path_input("configFile")?,
            include: list(agent, "includeObjects"),
            exclude: list(agent, "excludeObjects"),
            incremental: agent.bool_input("incremental", true),
            delete_not_in_source: agent.bool_input("deleteNotInSource", false),
            stop_all_triggers: agent.bool_input("stopAllTriggers", false),
            dry_run: agent.bool_input("dryRun", false),
            triggers_only,
            concurrency: agent.int_input_in("concurrency", 1..=32)?.unwrap_or(8) as usize,
        })
    }

    /// Whether the include/exclude filters let `key` through.
    pub fn selected(&self, key: &Key) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| source::matches(p, key)))
            && !self.exclude.iter().any(|p| source::matches(p, key))
    }
}

fn fail(e: azure::AdfError) -> TaskError {
    TaskError::new(e.to_string())
}

/// The factory's objects of every type, by key. The collections are listed at once (a
/// redeploy that writes nothing costs little more than these reads), then each managed
/// virtual network's private endpoints.
async fn existing_objects(
    adf: &DataFactory,
    factory: &FactoryRef,
) -> Result<BTreeMap<(Kind, String), (Key, Value)>, TaskError> {
    let mut lists = tokio::task::JoinSet::new();
    for kind in Kind::ALL {
        if kind == Kind::ManagedPrivateEndpoint {
            continue;
        }
        let (adf, factory) = (adf.clone(), factory.clone());
        lists.spawn(async move {
            let r = adf.list_objects(&factory, &[kind.collection()]).await;
            (kind, r)
        });
    }
    let mut all = BTreeMap::new();
    let mut vnets = Vec::new();
    while let Some(done) = lists.join_next().await {
        let (kind, listed) = done.map_err(|e| {
            TaskError::new(format!(
                "listing the factory's objects stopped unexpectedly: {e}"
            ))
        })?;
        for v in listed.map_err(fail)? {
            let key = Key::new(kind, v["name"].as_str().unwrap_or_default());
            if kind == Kind::ManagedVirtualNetwork {
                vnets.push(key.name.clone());
            }
            all.insert(key.lower(), (key, v));
        }
    }
    for vnet in vnets {
        let endpoints = adf
            .list_objects(
                factory,
                &[
                    Kind::ManagedVirtualNetwork.collection(),
                    &vnet,
                    "managedPrivateEndpoints",
                ],
            )
            .await
            .map_err(fail)?;
        for e in endpoints {
            let k = Key::new(
                Kind::ManagedPrivateEndpoint,
                &format!("{vnet}/{}", e["name"].as_str().unwrap_or_default()),
            );
            all.insert(k.lower(), (k, e));
        }
    }
    Ok(all)
}

/// What was done, for the log and the summary page: the plan when it all went through, or
/// what was done before a failure, the failure, and the triggers started again after it.
#[derive(Debug, Default)]
struct Report {
    created: Vec<String>,
    updated: Vec<String>,
    unchanged: Vec<String>,
    deleted: Vec<String>,
    stopped: Vec<String>,
    started: Vec<String>,
    factory: Option<String>,
    /// After a failure: the triggers started again, and the writes never made.
    restarted: Vec<String>,
    not_written: usize,
    failure: Option<String>,
}

impl Report {
    fn of_plan(plan: &Plan, factory: Option<String>) -> Report {
        let names = |w: &[&plan::Write]| w.iter().map(|w| w.key.to_string()).collect();
        let writes: Vec<&plan::Write> = plan.writes().collect();
        Report {
            created: names(
                &writes
                    .iter()
                    .copied()
                    .filter(|w| w.create)
                    .collect::<Vec<_>>(),
            ),
            updated: names(
                &writes
                    .iter()
                    .copied()
                    .filter(|w| !w.create)
                    .collect::<Vec<_>>(),
            ),
            unchanged: plan.unchanged.iter().map(Key::to_string).collect(),
            deleted: plan.deletes.iter().flatten().map(Key::to_string).collect(),
            stopped: plan.stop.iter().map(|t| format!("trigger.{t}")).collect(),
            started: plan.start.iter().map(|t| format!("trigger.{t}")).collect(),
            factory,
            ..Report::default()
        }
    }

    /// How many were created, updated, unchanged, deleted, and triggers stopped and started.
    fn tally(&self) -> [usize; 6] {
        [
            self.created.len(),
            self.updated.len(),
            self.unchanged.len(),
            self.deleted.len(),
            self.stopped.len(),
            self.started.len(),
        ]
    }

    fn markdown(&self, title: &str) -> String {
        let mut md = format!("## {title}\n\n");
        if let Some(f) = &self.failure {
            md.push_str(&format!("**Failed**: {f}\n\nDone before the failure:\n\n"));
        }
        if let Some(f) = &self.factory {
            md.push_str(&format!("- Factory: {f}\n"));
        }
        for (label, items) in [
            ("Created", &self.created),
            ("Updated", &self.updated),
            ("Unchanged", &self.unchanged),
            ("Deleted", &self.deleted),
            ("Triggers stopped", &self.stopped),
            ("Triggers started", &self.started),
        ] {
            md.push_str(&format!("- {label}: {}\n", items.len()));
        }
        if self.failure.is_some() {
            md.push_str(&format!(
                "- Not written (the deploy stopped first): {}\n- Triggers restarted after the failure: {}\n",
                self.not_written,
                self.restarted.len()
            ));
        }
        for (label, items) in [
            ("Created", &self.created),
            ("Updated", &self.updated),
            ("Deleted", &self.deleted),
            ("Triggers stopped", &self.stopped),
            ("Triggers started", &self.started),
            ("Triggers restarted after the failure", &self.restarted),
        ] {
            if !items.is_empty() {
                md.push_str(&format!("\n### {label}\n\n"));
                for i in items {
                    md.push_str(&format!("- `{i}`\n"));
                }
            }
        }
        md
    }
}

fn upload_summary(agent: &Agent, markdown: &str) {
    let dir = agent
        .variable("Agent.TempDirectory")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("deployadf-summary-{}.md", std::process::id()));
    match std::fs::write(&path, markdown) {
        Ok(()) => out::upload_summary(&path),
        Err(e) => out::warning(&format!("could not write the summary page: {e}")),
    }
}

/// Runs the task against the agent's environment.
pub async fn run(agent: &Agent, http: task_sdk::HttpClient) -> Result<(), TaskError> {
    let inputs = Inputs::from_agent(agent)?;
    let conn = agent.azure_rm(&inputs.connection)?;
    let (subscription, credential) = Credential::for_subscription(
        agent,
        &conn,
        inputs.subscription.as_deref(),
        "subscriptionId",
        &http,
    )?;
    let adf = DataFactory::new(&conn, credential, http).map_err(fail)?;
    let factory = FactoryRef {
        subscription,
        resource_group: inputs.resource_group.clone(),
        name: inputs.factory.clone(),
    };
    // Everything that can fail on the user's files fails before Azure is asked anything.
    let mut source = match &inputs.root {
        Some(root) => Some(source::load(root).map_err(TaskError::new)?),
        None => None,
    };
    if let (Some(source), Some(file)) = (&mut source, &inputs.config_file) {
        let text = std::fs::read_to_string(file).map_err(|e| {
            TaskError::new(format!(
                "cannot read the config file '{}': {e}",
                file.display()
            ))
        })?;
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let changes = config::parse(&name, &text, &|v| agent.variable(v), &|e| {
            agent.env(e).map(str::to_owned)
        })
        .map_err(TaskError::new)?;
        let factory_doc = source.factory.as_mut().map(|(file, doc)| {
            let name = doc["name"].as_str().map(str::to_owned).unwrap_or_else(|| {
                file.trim_start_matches("factory/")
                    .trim_end_matches(".json")
                    .to_owned()
            });
            (name, doc)
        });
        let n = match factory_doc {
            Some((name, doc)) => config::apply(&changes, &mut source.objects, Some((&name, doc))),
            None => config::apply(&changes, &mut source.objects, None),
        }
        .map_err(TaskError::new)?;
        out::info(&format!(
            "Config file '{name}': {} line(s) changed {n} object(s).",
            changes.len()
        ));
    }
    let current = adf.get_factory(&factory).await.map_err(fail)?;
    if let Some(mode) = inputs.triggers_only {
        let Some(_) = current else {
            return Err(TaskError::new(format!("{factory} does not exist")));
        };
        return triggers_only(&adf, &factory, &inputs, source.as_ref(), mode).await;
    }
    let source = source.expect("rootFolder is required unless triggersOnly");
    // The factory itself: created when missing (createFactory), its global parameters from
    // factory/<name>.json.
    let mut factory_body = None;
    let existing = match &current {
        Some(_) => existing_objects(&adf, &factory).await?,
        None if inputs.create_factory => BTreeMap::new(),
        None => {
            return Err(TaskError::new(format!(
                "{factory} does not exist: create it, or set 'Create the factory' (createFactory) to true with a location"
            )))
        }
    };
    let wanted_globals = source
        .factory
        .as_ref()
        .and_then(|(_, doc)| doc["properties"].get("globalParameters").cloned());
    match &current {
        None => {
            let location = inputs
                .location
                .clone()
                .or_else(|| source.factory.as_ref().and_then(|(_, d)| d["location"].as_str().map(str::to_owned)))
                .ok_or_else(|| TaskError::new("the factory does not exist and no location is set: set the input 'Location' (location)"))?;
            let mut body = json!({"location": location, "properties": {}});
            if let Some(g) = &wanted_globals {
                body["properties"]["globalParameters"] = g.clone();
            }
            if let Some(identity) = source.factory.as_ref().and_then(|(_, d)| d.get("identity")) {
                body["identity"] = identity.clone();
            }
            factory_body = Some(("created", body));
        }
        Some(cur) => {
            if let Some(g) = &wanted_globals {
                let now = cur["properties"]
                    .get("globalParameters")
                    .cloned()
                    .unwrap_or(json!({}));
                if plan::normalised(Kind::Pipeline, &now) != plan::normalised(Kind::Pipeline, g) {
                    let mut body =
                        json!({"location": cur["location"], "properties": cur["properties"]});
                    for k in ["provisioningState", "createTime", "version"] {
                        body["properties"].as_object_mut().map(|m| m.remove(k));
                    }
                    body["properties"]["globalParameters"] = g.clone();
                    for k in ["identity", "tags"] {
                        if let Some(v) = cur.get(k).filter(|v| !v.is_null()) {
                            body[k] = v.clone();
                        }
                    }
                    factory_body = Some(("global parameters updated", body));
                }
            }
        }
    }
    let plan = plan::plan(&plan::Inputs {
        source: &source.objects,
        selected: &|k| inputs.selected(k),
        existing: &existing,
        incremental: inputs.incremental,
        delete_not_in_source: inputs.delete_not_in_source,
        stop_all_triggers: inputs.stop_all_triggers,
    })
    .map_err(TaskError::new)?;
    let report = Report::of_plan(
        &plan,
        factory_body.as_ref().map(|(what, _)| what.to_string()),
    );
    print_plan(&plan, &report, inputs.dry_run);
    if inputs.dry_run {
        upload_summary(
            agent,
            &report.markdown(&format!(
                "Data Factory deploy plan (dry run): {}",
                factory.name
            )),
        );
        out::info("Dry run: nothing was written.");
        return Ok(());
    }
    let mut done = Report {
        unchanged: report.unchanged.clone(),
        ..Report::default()
    };
    if let Err(failure) = apply(
        &adf,
        &factory,
        &plan,
        factory_body.as_ref(),
        &inputs,
        &mut done,
    )
    .await
    {
        done.not_written = plan.writes().count() - done.created.len() - done.updated.len();
        done.failure = Some(failure.clone());
        upload_summary(
            agent,
            &done.markdown(&format!("Data Factory deploy failed: {}", factory.name)),
        );
        return Err(TaskError::new(failure));
    }
    upload_summary(
        agent,
        &report.markdown(&format!("Data Factory deploy: {}", factory.name)),
    );
    let [created, updated, unchanged, deleted, stopped, started] = report.tally();
    out::info(&format!(
        "Deployed {factory}: {created} created, {updated} updated, {unchanged} unchanged, {deleted} deleted; {stopped} trigger(s) stopped, {started} started."
    ));
    Ok(())
}

/// Carries the plan out, recording in `done` what went through. After a failed write the
/// triggers it stopped are started again (those not being deleted).
async fn apply(
    adf: &DataFactory,
    factory: &FactoryRef,
    plan: &Plan,
    factory_body: Option<&(&str, Value)>,
    inputs: &Inputs,
    done: &mut Report,
) -> Result<(), String> {
    if let Some((what, body)) = factory_body {
        adf.put_factory(factory, body)
            .await
            .map_err(|e| e.to_string())?;
        done.factory = Some(what.to_string());
    }
    for t in &plan.stop {
        adf.set_trigger(factory, t, false)
            .await
            .map_err(|e| format!("{e}; nothing else was changed"))?;
        out::info(&format!("Stopped trigger '{t}'."));
        done.stopped.push(format!("trigger.{t}"));
    }
    if let Err(e) = execute(adf, factory, plan, inputs.concurrency, done).await {
        let mut message = e;
        let restart: Vec<&String> = plan
            .stop
            .iter()
            .filter(|t| {
                !plan
                    .deletes
                    .iter()
                    .flatten()
                    .any(|k| k.kind == Kind::Trigger && k.name.eq_ignore_ascii_case(t))
            })
            .collect();
        for t in restart {
            match adf.set_trigger(factory, t, true).await {
                Ok(()) => {
                    out::info(&format!("Restarted trigger '{t}' after the failure."));
                    done.restarted.push(format!("trigger.{t}"));
                }
                Err(e) => message.push_str(&format!("; restarting trigger '{t}' failed too: {e}")),
            }
        }
        return Err(message);
    }
    for t in &plan.start {
        adf.set_trigger(factory, t, true)
            .await
            .map_err(|e| e.to_string())?;
        out::info(&format!("Started trigger '{t}'."));
        done.started.push(format!("trigger.{t}"));
    }
    Ok(())
}

fn print_plan(plan: &Plan, report: &Report, dry_run: bool) {
    let verb = if dry_run { "would be" } else { "will be" };
    if let Some(f) = &report.factory {
        out::info(&format!("The factory {verb} {f}."));
    }
    for t in &plan.stop {
        out::info(&format!("Trigger '{t}' {verb} stopped."));
    }
    for (i, level) in plan.levels.iter().enumerate() {
        for w in level {
            let what = if w.create { "created" } else { "updated" };
            out::info(&format!(
                "[level {}] {} ({}) {verb} {what}.",
                i + 1,
                w.key,
                w.file
            ));
        }
    }
    for k in plan.deletes.iter().flatten() {
        out::info(&format!("{k} {verb} deleted (not in source)."));
    }
    for t in &plan.start {
        out::info(&format!("Trigger '{t}' {verb} started."));
    }
    let [created, updated, unchanged, deleted, stopped, started] = report.tally();
    out::info(&format!(
        "Plan: {created} to create, {updated} to update, {unchanged} unchanged, {deleted} to delete, {stopped} trigger(s) to stop, {started} to start."
    ));
}

/// The writes level by level (at most `concurrency` at once), then the deletions, dependents
/// first, each recorded in `done`. The first failure stops it after the level's calls in
/// flight end.
async fn execute(
    adf: &DataFactory,
    factory: &FactoryRef,
    plan: &Plan,
    concurrency: usize,
    done: &mut Report,
) -> Result<(), String> {
    for level in &plan.levels {
        let mut pending = level.iter();
        let mut running = tokio::task::JoinSet::new();
        let mut failure: Option<String> = None;
        loop {
            while failure.is_none() && running.len() < concurrency {
                let Some(w) = pending.next() else { break };
                let (adf, factory, w) = (adf.clone(), factory.clone(), w.clone());
                running.spawn(async move {
                    let r = adf.put_object(&factory, &w.key.path(), &w.properties).await;
                    (w, r)
                });
            }
            let Some(finished) = running.join_next().await else {
                break;
            };
            match finished {
                Ok((w, Ok(_))) => {
                    out::info(&format!(
                        "{} {}.",
                        w.key,
                        if w.create { "created" } else { "updated" }
                    ));
                    let list = if w.create {
                        &mut done.created
                    } else {
                        &mut done.updated
                    };
                    list.push(w.key.to_string());
                }
                Ok((w, Err(e))) => {
                    failure.get_or_insert(format!("{} ({}): {e}", w.key, w.file));
                }
                Err(e) => {
                    failure.get_or_insert(format!("a write stopped unexpectedly: {e}"));
                }
            }
        }
        if let Some(f) = failure {
            return Err(format!("the deploy stopped: {f}"));
        }
    }
    for level in &plan.deletes {
        for k in level {
            adf.delete_object(factory, &k.path()).await.map_err(|e| {
                format!("the deploy stopped while deleting what is not in source: {k}: {e}")
            })?;
            out::info(&format!("{k} deleted (not in source)."));
            done.deleted.push(k.to_string());
        }
    }
    Ok(())
}

/// `triggersOnly`: stop the started triggers (all, or those the filters select), or start the
/// triggers the source marks `runtimeState: Started` (all stopped ones the filters select
/// when there is no source).
async fn triggers_only(
    adf: &DataFactory,
    factory: &FactoryRef,
    inputs: &Inputs,
    source: Option<&source::Source>,
    mode: TriggersOnly,
) -> Result<(), TaskError> {
    let triggers = adf
        .list_objects(factory, &["triggers"])
        .await
        .map_err(fail)?;
    let state = |t: &Value| {
        t["properties"]["runtimeState"]
            .as_str()
            .unwrap_or("Stopped")
            .to_owned()
    };
    let mut changed = Vec::new();
    for t in &triggers {
        let name = t["name"].as_str().unwrap_or_default();
        let key = Key::new(Kind::Trigger, name);
        if !inputs.selected(&key) {
            continue;
        }
        let want = match mode {
            TriggersOnly::Stop => state(t) == "Started",
            TriggersOnly::Start => {
                state(t) != "Started"
                    && source.is_none_or(|s| {
                        s.objects.iter().any(|o| {
                            o.key.kind == Kind::Trigger
                                && o.key.name.eq_ignore_ascii_case(name)
                                && o.properties["runtimeState"] == "Started"
                        })
                    })
            }
        };
        if want {
            adf.set_trigger(factory, name, mode == TriggersOnly::Start)
                .await
                .map_err(fail)?;
            out::info(&format!(
                "Trigger '{name}' {}.",
                if mode == TriggersOnly::Start {
                    "started"
                } else {
                    "stopped"
                }
            ));
            changed.push(name.to_owned());
        }
    }
    out::set_output("triggers", &changed.join(","), false);
    out::info(&format!(
        "{} trigger(s) {}.",
        changed.len(),
        if mode == TriggersOnly::Start {
            "started"
        } else {
            "stopped"
        }
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(extra: &[(&str, &str)]) -> Result<Inputs, TaskError> {
        let root = std::env::temp_dir().display().to_string();
        let mut vars = vec![
            ("INPUT_CONNECTEDSERVICENAME".to_owned(), "c".to_owned()),
            ("INPUT_RESOURCEGROUPNAME".to_owned(), "rg".to_owned()),
            ("INPUT_DATAFACTORYNAME".to_owned(), "adf".to_owned()),
            ("INPUT_ROOTFOLDER".to_owned(), root),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Inputs::from_agent(&Agent::from_vars(vars))
    }

    #[test]
    fn defaults_filters_and_errors() {
        let i = inputs(&[]).unwrap();
        assert!(i.incremental && !i.delete_not_in_source && !i.dry_run && !i.create_factory);
        assert_eq!((i.concurrency, i.triggers_only), (8, None));
        let i = inputs(&[
            ("INPUT_INCLUDEOBJECTS", "pipeline.PL_*\ndataset.*"),
            ("INPUT_EXCLUDEOBJECTS", "pipeline.PL_Old*"),
            ("INPUT_TRIGGERSONLY", "Stop"),
        ])
        .unwrap();
        assert_eq!(i.triggers_only, Some(TriggersOnly::Stop));
        assert!(i.selected(&Key::new(Kind::Pipeline, "PL_New")));
        assert!(!i.selected(&Key::new(Kind::Pipeline, "PL_Old1")));
        assert!(!i.selected(&Key::new(Kind::Trigger, "T")));
        let e = inputs(&[("INPUT_TRIGGERSONLY", "pause")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("triggersOnly") && e.contains("'pause'"), "{e}");
        let e = inputs(&[("INPUT_INCLUDEOBJECTS", "pipelines.x")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'pipelines'") && e.contains("pipeline.PL_*"),
            "{e}"
        );
        let e = inputs(&[("INPUT_CONCURRENCY", "0")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("concurrency"), "{e}");
    }
}
