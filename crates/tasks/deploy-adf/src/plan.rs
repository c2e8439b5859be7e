//! What a deploy will do, decided before anything is written: objects in dependency levels
//! (each after everything it references), what is unchanged, what goes, and which triggers
//! are stopped and started. A reference to an object that is neither deployed nor in the
//! factory, or a reference cycle, fails here.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use crate::source::{dependencies, Key, Kind, Object};

/// One object to write.
#[derive(Debug, Clone)]
pub struct Write {
    pub key: Key,
    pub file: String,
    pub properties: Value,
    pub create: bool,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub levels: Vec<Vec<Write>>,
    pub unchanged: Vec<Key>,
    /// Dependents first.
    pub deletes: Vec<Vec<Key>>,
    /// Triggers to stop before writing.
    pub stop: Vec<String>,
    /// Triggers to start afterwards.
    pub start: Vec<String>,
}

impl Plan {
    pub fn writes(&self) -> impl Iterator<Item = &Write> {
        self.levels.iter().flatten()
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
            && self.deletes.is_empty()
            && self.stop.is_empty()
            && self.start.is_empty()
    }
}

/// An object's properties as compared: without read-only `runtimeState` and without nulls.
pub fn normalised(kind: Kind, properties: &Value) -> Value {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    let mut v = strip(properties);
    if kind == Kind::Trigger {
        if let Some(m) = v.as_object_mut() {
            m.remove("runtimeState");
        }
    }
    v
}

fn started(properties: &Value) -> bool {
    properties.get("runtimeState").and_then(Value::as_str) == Some("Started")
}

/// Levels of `nodes` by their edges within `nodes` (`deps` of each); a cycle is an error
/// naming it.
fn levels(
    nodes: &[Key],
    deps: &HashMap<(Kind, String), Vec<Key>>,
) -> Result<Vec<Vec<Key>>, Vec<Key>> {
    let inside: HashSet<(Kind, String)> = nodes.iter().map(Key::lower).collect();
    let mut level: HashMap<(Kind, String), usize> = HashMap::new();
    // Depth-first with colours; the grey path is the cycle when one is met.
    fn visit(
        key: &Key,
        deps: &HashMap<(Kind, String), Vec<Key>>,
        inside: &HashSet<(Kind, String)>,
        level: &mut HashMap<(Kind, String), usize>,
        path: &mut Vec<Key>,
    ) -> Result<usize, Vec<Key>> {
        if let Some(l) = level.get(&key.lower()) {
            return Ok(*l);
        }
        if let Some(i) = path.iter().position(|k| k.lower() == key.lower()) {
            let mut cycle = path[i..].to_vec();
            cycle.push(key.clone());
            return Err(cycle);
        }
        path.push(key.clone());
        let mut l = 0;
        for d in deps.get(&key.lower()).into_iter().flatten() {
            if inside.contains(&d.lower()) {
                l = l.max(visit(d, deps, inside, level, path)? + 1);
            }
        }
        path.pop();
        level.insert(key.lower(), l);
        Ok(l)
    }
    let mut out: Vec<Vec<Key>> = Vec::new();
    for key in nodes {
        let l = visit(key, deps, &inside, &mut level, &mut Vec::new())?;
        if out.len() <= l {
            out.resize(l + 1, Vec::new());
        }
        out[l].push(key.clone());
    }
    Ok(out)
}

/// What the deploy needs to decide.
pub struct Inputs<'a> {
    /// Every source object (after the config file), selected or not.
    pub source: &'a [Object],
    pub selected: &'a dyn Fn(&Key) -> bool,
    /// The factory's objects by key, as `GET` answers them (`properties` inside).
    pub existing: &'a BTreeMap<(Kind, String), (Key, Value)>,
    pub incremental: bool,
    pub delete_not_in_source: bool,
    pub stop_all_triggers: bool,
}

pub fn plan(i: &Inputs) -> Result<Plan, String> {
    let selected: Vec<&Object> = i.source.iter().filter(|o| (i.selected)(&o.key)).collect();
    let in_source: HashMap<(Kind, String), &Object> =
        i.source.iter().map(|o| (o.key.lower(), o)).collect();
    let chosen: HashSet<(Kind, String)> = selected.iter().map(|o| o.key.lower()).collect();
    let mut deps: HashMap<(Kind, String), Vec<Key>> = HashMap::new();
    let mut missing = Vec::new();
    for o in &selected {
        let d = dependencies(&o.key, &o.properties);
        for r in &d {
            let l = r.lower();
            if chosen.contains(&l) || i.existing.contains_key(&l) {
                continue;
            }
            missing.push(match in_source.get(&l) {
                Some(s) => format!(
                    "{} ({}) references {r}, which is left out by the include/exclude filters and is not in the factory: deploy it too (it is in '{}')",
                    o.key, o.file, s.file
                ),
                None => format!(
                    "{} ({}) references {r}, which is neither in the source nor in the factory",
                    o.key, o.file
                ),
            });
        }
        deps.insert(o.key.lower(), d);
    }
    if !missing.is_empty() {
        return Err(format!(
            "nothing was deployed: {} missing reference(s):\n  {}",
            missing.len(),
            missing.join("\n  ")
        ));
    }
    let keys: Vec<Key> = selected.iter().map(|o| o.key.clone()).collect();
    let ordered = levels(&keys, &deps).map_err(|cycle| {
        let files: Vec<String> = cycle
            .iter()
            .take(cycle.len() - 1)
            .map(|k| format!("{k} ({})", in_source[&k.lower()].file))
            .collect();
        format!(
            "nothing was deployed: a reference cycle: {} → back to {}",
            files.join(" → "),
            cycle[0]
        )
    })?;
    let mut plan = Plan::default();
    let mut touched_triggers = Vec::new();
    for level in ordered {
        let mut writes = Vec::new();
        for key in level {
            let o = in_source[&key.lower()];
            let existing = i.existing.get(&key.lower());
            let same = existing.is_some_and(|(_, v)| {
                normalised(key.kind, &v["properties"]) == normalised(key.kind, &o.properties)
            });
            if same && i.incremental {
                plan.unchanged.push(key);
                continue;
            }
            let mut properties = o.properties.clone();
            if key.kind == Kind::Trigger {
                touched_triggers.push(key.name.clone());
                if let Some(m) = properties.as_object_mut() {
                    m.remove("runtimeState");
                }
            }
            writes.push(Write {
                key,
                file: o.file.clone(),
                properties,
                create: existing.is_none(),
            });
        }
        if !writes.is_empty() {
            plan.levels.push(writes);
        }
    }
    let mut deleted_triggers = Vec::new();
    if i.delete_not_in_source {
        let gone: Vec<Key> = i
            .existing
            .iter()
            .filter(|(l, (k, _))| {
                !in_source.contains_key(*l)
                    && (i.selected)(k)
                    // A managed virtual network stays: Data Factory keeps it for its runtimes.
                    && k.kind != Kind::ManagedVirtualNetwork
            })
            .map(|(_, (k, _))| k.clone())
            .collect();
        let mut gone_deps = HashMap::new();
        for k in &gone {
            let props = &i.existing[&k.lower()].1["properties"];
            gone_deps.insert(k.lower(), dependencies(k, props));
        }
        if let Ok(mut by_level) = levels(&gone, &gone_deps) {
            // Dependents (higher levels) first.
            by_level.reverse();
            plan.deletes = by_level.into_iter().filter(|l| !l.is_empty()).collect();
        } else {
            plan.deletes = vec![gone.clone()];
        }
        deleted_triggers = gone
            .iter()
            .filter(|k| k.kind == Kind::Trigger)
            .map(|k| k.name.clone())
            .collect();
    }
    let started_now: Vec<&Key> = i
        .existing
        .values()
        .filter(|(k, v)| k.kind == Kind::Trigger && started(&v["properties"]))
        .map(|(k, _)| k)
        .collect();
    let lower = |names: &[String]| -> HashSet<String> {
        names.iter().map(|n| n.to_ascii_lowercase()).collect()
    };
    let touched = lower(&touched_triggers);
    let deleted = lower(&deleted_triggers);
    for k in &started_now {
        let l = k.name.to_ascii_lowercase();
        if i.stop_all_triggers || touched.contains(&l) || deleted.contains(&l) {
            plan.stop.push(k.name.clone());
        }
    }
    let stopped = lower(&plan.stop);
    for k in &started_now {
        let l = k.name.to_ascii_lowercase();
        if stopped.contains(&l) && !deleted.contains(&l) {
            plan.start.push(k.name.clone());
        }
    }
    let is_started: HashSet<String> = started_now
        .iter()
        .map(|k| k.name.to_ascii_lowercase())
        .collect();
    for o in &selected {
        let l = o.key.name.to_ascii_lowercase();
        if o.key.kind == Kind::Trigger
            && started(&o.properties)
            && (!is_started.contains(&l) || stopped.contains(&l))
            && !plan.start.iter().any(|s| s.eq_ignore_ascii_case(&l))
        {
            plan.start.push(o.key.name.clone());
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: Kind, name: &str, properties: Value) -> Object {
        Object {
            key: Key::new(kind, name),
            file: format!("{}/{name}.json", kind.folder()),
            properties,
        }
    }

    fn r(name: &str, t: &str) -> Value {
        json!({"referenceName": name, "type": t})
    }

    fn run(
        source: &[Object],
        existing: &BTreeMap<(Kind, String), (Key, Value)>,
    ) -> Result<Plan, String> {
        plan(&Inputs {
            source,
            selected: &|_| true,
            existing,
            incremental: true,
            delete_not_in_source: false,
            stop_all_triggers: false,
        })
    }

    #[test]
    fn levels_follow_references() {
        let source = vec![
            obj(
                Kind::Trigger,
                "TR",
                json!({"pipelines": [{"pipelineReference": r("parent", "PipelineReference")}]}),
            ),
            obj(
                Kind::Pipeline,
                "parent",
                json!({"activities": [{"typeProperties": {"pipeline": r("child", "PipelineReference")}}]}),
            ),
            obj(
                Kind::Pipeline,
                "child",
                json!({"activities": [{"inputs": [r("DS", "DatasetReference")]}]}),
            ),
            obj(
                Kind::Dataset,
                "DS",
                json!({"linkedServiceName": r("LS", "LinkedServiceReference")}),
            ),
            obj(
                Kind::LinkedService,
                "LS",
                json!({"connectVia": r("IR", "IntegrationRuntimeReference")}),
            ),
            obj(Kind::IntegrationRuntime, "IR", json!({"type": "Managed"})),
        ];
        let p = run(&source, &BTreeMap::new()).unwrap();
        let names: Vec<Vec<String>> = p
            .levels
            .iter()
            .map(|l| l.iter().map(|w| w.key.name.clone()).collect())
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["IR"],
                vec!["LS"],
                vec!["DS"],
                vec!["child"],
                vec!["parent"],
                vec!["TR"]
            ]
        );
    }

    #[test]
    fn missing_references_and_cycles_fail() {
        let source = vec![obj(
            Kind::Dataset,
            "DS",
            json!({"linkedServiceName": r("LS_gone", "LinkedServiceReference")}),
        )];
        let e = run(&source, &BTreeMap::new()).unwrap_err();
        assert!(
            e.contains("dataset.DS (dataset/DS.json) references linkedService.LS_gone"),
            "{e}"
        );
        let mut existing = BTreeMap::new();
        let k = Key::new(Kind::LinkedService, "ls_gone");
        existing.insert(k.lower(), (k, json!({"properties": {}})));
        assert!(run(&source, &existing).is_ok(), "in the factory: fine");
        let source = vec![
            obj(
                Kind::Pipeline,
                "a",
                json!({"x": r("b", "PipelineReference")}),
            ),
            obj(
                Kind::Pipeline,
                "b",
                json!({"x": r("a", "PipelineReference")}),
            ),
        ];
        let e = run(&source, &BTreeMap::new()).unwrap_err();
        assert!(
            e.contains("cycle") && e.contains("pipeline.a (pipeline/a.json)"),
            "{e}"
        );
    }
}
