//! Cluster libraries: install, uninstall and their status, as a state machine.
//!
//! A library installs only on a RUNNING cluster: PENDING, then INSTALLING, then INSTALLED (or
//! FAILED with a message) after [`crate::Options::library_install_delay`]. It fails when it is
//! named in [`crate::Options::failing_libraries`] (a PyPI package, Maven coordinates or a
//! path), or when its file (wheel, JAR, requirements.txt) is not in the workspace, a volume or
//! DBFS. Uninstalling marks it UNINSTALL_ON_RESTART; it is gone once the cluster has started
//! again (its `last_restarted_time` moved past the uninstall).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};

/// The kinds of library the API knows (`egg` is gone from current runtimes).
const KINDS: [&str; 6] = ["whl", "jar", "pypi", "maven", "requirements", "cran"];

#[derive(Debug)]
struct Entry {
    library: Value,
    requested: Instant,
    /// When the cluster was first seen RUNNING after the request.
    running_since: Option<Instant>,
    failure: Option<String>,
    uninstalled_at_ms: Option<u64>,
}

/// What the library state needs to know about a cluster, read from `clusters/get`.
pub struct ClusterView {
    pub running: bool,
    /// When it last became RUNNING.
    pub start_time_ms: u64,
}

#[derive(Debug, Default)]
pub struct Libraries {
    by_cluster: BTreeMap<String, Vec<Entry>>,
}

/// The file a library installs from, if any.
fn file_of(library: &Value) -> Option<&str> {
    ["whl", "jar", "requirements", "egg"]
        .iter()
        .find_map(|k| library.get(*k).and_then(Value::as_str))
}

/// The names [`crate::Options::failing_libraries`] is matched against.
fn names_of(library: &Value) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(p) = library.pointer("/pypi/package").and_then(Value::as_str) {
        names.push(p.to_owned());
        let bare: String = p
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        names.push(bare);
    }
    if let Some(m) = library
        .pointer("/maven/coordinates")
        .and_then(Value::as_str)
    {
        names.push(m.to_owned());
    }
    if let Some(f) = file_of(library) {
        names.push(f.to_owned());
    }
    names
}

/// Checks one library of an install or uninstall request.
pub fn validate(library: &Value) -> ApiResult<()> {
    let Some(obj) = library.as_object() else {
        return Err(ApiError::invalid("Each library must be an object."));
    };
    let kinds: Vec<&String> = obj.keys().filter(|k| KINDS.contains(&k.as_str())).collect();
    if kinds.len() != 1 {
        return Err(ApiError::invalid(format!(
            "Each library must set exactly one of {}; got {}.",
            KINDS.join(", "),
            library
        )));
    }
    let ok = match kinds[0].as_str() {
        "pypi" => library
            .pointer("/pypi/package")
            .and_then(Value::as_str)
            .is_some_and(|p| !p.is_empty()),
        "maven" => library
            .pointer("/maven/coordinates")
            .and_then(Value::as_str)
            .is_some_and(|c| c.split(':').count() >= 3),
        "cran" => library
            .pointer("/cran/package")
            .and_then(Value::as_str)
            .is_some_and(|p| !p.is_empty()),
        _ => file_of(library).is_some_and(|p| !p.is_empty()),
    };
    if !ok {
        return Err(ApiError::invalid(format!(
            "Invalid library specification: {library}"
        )));
    }
    Ok(())
}

impl Libraries {
    pub fn install(&mut self, cluster_id: &str, libraries: &[Value]) -> ApiResult<()> {
        for l in libraries {
            validate(l)?;
        }
        let entries = self.by_cluster.entry(cluster_id.to_owned()).or_default();
        for library in libraries {
            // Installing what is already there (and not being uninstalled) is a no-op.
            if entries
                .iter()
                .any(|e| &e.library == library && e.uninstalled_at_ms.is_none())
            {
                continue;
            }
            entries.push(Entry {
                library: library.clone(),
                requested: Instant::now(),
                running_since: None,
                failure: None,
                uninstalled_at_ms: None,
            });
        }
        Ok(())
    }

    pub fn uninstall(
        &mut self,
        cluster_id: &str,
        libraries: &[Value],
        now_ms: u64,
    ) -> ApiResult<()> {
        for l in libraries {
            validate(l)?;
        }
        if let Some(entries) = self.by_cluster.get_mut(cluster_id) {
            for e in entries
                .iter_mut()
                .filter(|e| libraries.contains(&e.library))
            {
                e.uninstalled_at_ms.get_or_insert(now_ms);
            }
        }
        Ok(())
    }

    /// `cluster-status`: advances the state machine and describes every library.
    pub fn status(
        &mut self,
        cluster_id: &str,
        cluster: ClusterView,
        delay: Duration,
        failing: &[String],
        file_exists: impl Fn(&str) -> bool,
    ) -> Value {
        let now = Instant::now();
        let entries = self.by_cluster.entry(cluster_id.to_owned()).or_default();
        // A restart completes the uninstalls asked for before it.
        entries.retain(|e| {
            e.uninstalled_at_ms
                .is_none_or(|t| cluster.start_time_ms <= t)
        });
        let mut statuses = Vec::new();
        for e in entries.iter_mut() {
            if cluster.running && e.running_since.is_none() {
                e.running_since = Some(now.max(e.requested));
            }
            let status = if e.uninstalled_at_ms.is_some() {
                "UNINSTALL_ON_RESTART"
            } else {
                match e.running_since {
                    None => "PENDING",
                    Some(t) if now < t + delay / 3 => "PENDING",
                    Some(t) if now < t + delay => "INSTALLING",
                    Some(_) => {
                        if e.failure.is_none() {
                            e.failure = failure_of(&e.library, failing, &file_exists);
                        }
                        if e.failure.is_some() {
                            "FAILED"
                        } else {
                            "INSTALLED"
                        }
                    }
                }
            };
            let mut s = json!({
                "library": e.library,
                "status": status,
                "is_library_for_all_clusters": false,
            });
            if let (Some(msg), "FAILED") = (&e.failure, status) {
                s["messages"] = json!([msg]);
            }
            statuses.push(s);
        }
        let mut answer = json!({ "cluster_id": cluster_id });
        if !statuses.is_empty() {
            answer["library_statuses"] = json!(statuses);
        }
        answer
    }

    /// The files the libraries of `cluster_id` install from.
    pub fn files(&self, cluster_id: &str) -> Vec<String> {
        self.by_cluster
            .get(cluster_id)
            .map(|es| {
                es.iter()
                    .filter_map(|e| file_of(&e.library).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn dump(&self) -> Value {
        self.by_cluster
            .iter()
            .map(|(c, es)| {
                (
                    c.clone(),
                    json!(es.iter().map(|e| &e.library).collect::<Vec<_>>()),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

fn failure_of(
    library: &Value,
    failing: &[String],
    file_exists: &impl Fn(&str) -> bool,
) -> Option<String> {
    let names = names_of(library);
    if let Some(name) = names.iter().find(|n| failing.iter().any(|f| f == *n)) {
        return Some(if library.get("pypi").is_some() {
            format!("Library installation attempted on the driver node of cluster and failed. Pip could not find a version that satisfies the requirement. Error Code: DRIVER_LIBRARY_INSTALLATION_FAILURE. Error Message: org.apache.spark.SparkException: Process List(pip, install, {name}) exited with code 1. ERROR: No matching distribution found for {name}")
        } else {
            format!("Library installation attempted on the driver node of cluster and failed. Error Code: DRIVER_LIBRARY_INSTALLATION_FAILURE. Error Message: Library resolution failed for {name}")
        });
    }
    let file = file_of(library)?;
    (!file_exists(file)).then(|| {
        format!("Library installation attempted on the driver node of cluster and failed. Error Code: FILE_NOT_FOUND_FAILURE. Error Message: java.io.FileNotFoundException: {file} (No such file or directory)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(running: bool, start: u64) -> ClusterView {
        ClusterView {
            running,
            start_time_ms: start,
        }
    }

    #[test]
    fn libraries_install_fail_and_uninstall_on_restart() {
        let mut l = Libraries::default();
        let ok = json!({"pypi": {"package": "requests==2.32.0"}});
        let bad = json!({"pypi": {"package": "no-such-pkg"}});
        let missing = json!({"whl": "/Volumes/m/s/v/x.whl"});
        l.install("c", &[ok.clone(), bad.clone(), missing.clone()])
            .unwrap();
        let failing = vec!["no-such-pkg".to_owned()];
        let s = l.status("c", view(false, 1), Duration::ZERO, &failing, |_| false);
        assert_eq!(s["library_statuses"][0]["status"], "PENDING");
        let s = l.status("c", view(true, 1), Duration::ZERO, &failing, |_| false);
        let st: Vec<&str> = s["library_statuses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["status"].as_str().unwrap())
            .collect();
        assert_eq!(st, ["INSTALLED", "FAILED", "FAILED"]);
        assert!(s["library_statuses"][1]["messages"][0]
            .as_str()
            .unwrap()
            .contains("no-such-pkg"));
        assert!(s["library_statuses"][2]["messages"][0]
            .as_str()
            .unwrap()
            .contains("x.whl"));
        l.uninstall("c", std::slice::from_ref(&ok), 10).unwrap();
        let s = l.status("c", view(true, 1), Duration::ZERO, &failing, |_| false);
        assert_eq!(s["library_statuses"][0]["status"], "UNINSTALL_ON_RESTART");
        let s = l.status("c", view(true, 11), Duration::ZERO, &failing, |_| false);
        assert_eq!(s["library_statuses"].as_array().unwrap().len(), 2);
        assert!(validate(&json!({"whl": "a", "jar": "b"})).is_err());
        assert!(validate(&json!({"maven": {"coordinates": "g:a"}})).is_err());
    }
}
