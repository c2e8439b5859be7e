//! Clusters: a fixed set of existing clusters that can be started, restarted and waited
//! for, with their event log.
//!
//! States: TERMINATED → (start) PENDING → RUNNING; RUNNING → (restart) RESTARTING → RUNNING.
//! A cluster listed in `Options::failing_clusters` goes PENDING → TERMINATED instead, with a
//! cloud-provider `termination_reason`, as a start refused for quota does. Events are
//! recorded on each transition (STARTING, RESTARTING, RUNNING, TERMINATING with the reason).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    Pending,
    Running,
    Restarting,
    Terminated,
}

impl ClusterState {
    fn as_str(self) -> &'static str {
        match self {
            ClusterState::Pending => "PENDING",
            ClusterState::Running => "RUNNING",
            ClusterState::Restarting => "RESTARTING",
            ClusterState::Terminated => "TERMINATED",
        }
    }

    /// The capitalised word the INVALID_STATE message uses ("Running").
    fn display(self) -> &'static str {
        match self {
            ClusterState::Pending => "Pending",
            ClusterState::Running => "Running",
            ClusterState::Restarting => "Restarting",
            ClusterState::Terminated => "Terminated",
        }
    }
}

/// How long the emulator's clusters were idle before they were terminated.
const INACTIVITY_MINUTES: u32 = 120;

fn inactivity_reason() -> Value {
    json!({
        "code": "INACTIVITY",
        "type": "SUCCESS",
        "parameters": {"inactivity_duration_min": INACTIVITY_MINUTES.to_string()},
    })
}

fn launch_failure_reason() -> Value {
    json!({
        "code": "CLOUD_PROVIDER_LAUNCH_FAILURE",
        "type": "CLOUD_FAILURE",
        "parameters": {
            "azure_error_code": "QuotaExceeded",
            "azure_error_message": "Operation could not be completed as it results in exceeding approved standardDSv3Family Cores quota in region westeurope.",
        },
    })
}

#[derive(Debug)]
struct Cluster {
    name: String,
    state: ClusterState,
    /// When a PENDING or RESTARTING cluster reaches its next state.
    ready_at: Option<Instant>,
    start_time: u64,
    /// When the cluster last became RUNNING (after a start or a restart): libraries marked
    /// UNINSTALL_ON_RESTART are gone after it.
    last_restarted_time: u64,
    state_message: String,
    termination_reason: Option<Value>,
    /// Starts of this cluster fail (`Options::failing_clusters`).
    failing: bool,
    events: Vec<Value>,
}

impl Cluster {
    fn event(&mut self, cluster_id: &str, kind: &str, details: Value) {
        let mut timestamp = crate::now_ms();
        // Distinct, increasing timestamps: clients page by them.
        if let Some(last) = self.events.last().and_then(|e| e["timestamp"].as_u64()) {
            timestamp = timestamp.max(last + 1);
        }
        self.events.push(json!({
            "cluster_id": cluster_id,
            "timestamp": timestamp,
            "type": kind,
            "details": details,
        }));
    }
}

#[derive(Debug)]
pub struct Clusters {
    clusters: BTreeMap<String, Cluster>,
    start_delay: Duration,
    creator: String,
}

/// Error every cluster endpoint answers for an unknown id.
pub fn unknown(cluster_id: &str) -> ApiError {
    ApiError::invalid(format!("Cluster {cluster_id} does not exist"))
}

/// Which clusters exist and how they behave (from `Options`).
pub struct Setup<'a> {
    pub running: &'a [String],
    pub terminated: &'a [String],
    pub names: &'a HashMap<String, String>,
    pub failing: &'a [String],
    pub start_delay: Duration,
    pub creator: &'a str,
    pub now_ms: u64,
}

/// `clusters/events` query.
#[derive(Debug)]
pub struct EventQuery {
    pub start_time: Option<u64>,
    pub end_time: Option<u64>,
    pub ascending: bool,
    pub event_types: Option<Vec<String>>,
    pub offset: usize,
    pub limit: usize,
}

impl Clusters {
    pub fn new(setup: Setup<'_>) -> Self {
        let mut clusters = BTreeMap::new();
        for (ids, state) in [
            (setup.running, ClusterState::Running),
            (setup.terminated, ClusterState::Terminated),
        ] {
            for id in ids {
                let terminated = state == ClusterState::Terminated;
                clusters.insert(
                    id.clone(),
                    Cluster {
                        name: setup
                            .names
                            .get(id)
                            .cloned()
                            .unwrap_or_else(|| format!("emulator-{id}")),
                        state,
                        ready_at: None,
                        start_time: setup.now_ms,
                        last_restarted_time: setup.now_ms,
                        state_message: if terminated {
                            format!(
                                "Inactive cluster terminated (inactive for {INACTIVITY_MINUTES} minutes)."
                            )
                        } else {
                            String::new()
                        },
                        termination_reason: terminated.then(inactivity_reason),
                        failing: setup.failing.contains(id),
                        events: Vec::new(),
                    },
                );
            }
        }
        Clusters {
            clusters,
            start_delay: setup.start_delay,
            creator: setup.creator.to_string(),
        }
    }

    /// Advances PENDING and RESTARTING clusters whose delay has passed.
    fn tick(&mut self, now: Instant) {
        for (id, cluster) in self.clusters.iter_mut() {
            let due = cluster.ready_at.is_some_and(|t| t <= now);
            if !due
                || !matches!(
                    cluster.state,
                    ClusterState::Pending | ClusterState::Restarting
                )
            {
                continue;
            }
            cluster.ready_at = None;
            if cluster.failing {
                let reason = launch_failure_reason();
                cluster.state = ClusterState::Terminated;
                cluster.state_message = format!(
                    "Azure Quota Exceeded Exception: {}",
                    reason["parameters"]["azure_error_message"]
                        .as_str()
                        .unwrap_or_default()
                );
                cluster.event(id, "TERMINATING", json!({ "reason": reason }));
                cluster.termination_reason = Some(reason);
            } else {
                cluster.state = ClusterState::Running;
                cluster.last_restarted_time = crate::now_ms();
                cluster.state_message = String::new();
                cluster.event(
                    id,
                    "RUNNING",
                    json!({"current_num_workers": 1, "target_num_workers": 1}),
                );
            }
        }
    }

    pub fn exists(&self, cluster_id: &str) -> bool {
        self.clusters.contains_key(cluster_id)
    }

    pub fn get(&mut self, cluster_id: &str) -> ApiResult<Value> {
        self.tick(Instant::now());
        let cluster = self
            .clusters
            .get(cluster_id)
            .ok_or_else(|| unknown(cluster_id))?;
        Ok(self.describe(cluster_id, cluster))
    }

    fn describe(&self, cluster_id: &str, cluster: &Cluster) -> Value {
        let state_message = match cluster.state {
            ClusterState::Pending => "Starting Spark".to_owned(),
            ClusterState::Restarting => "Restarting Spark".to_owned(),
            _ => cluster.state_message.clone(),
        };
        let mut out = json!({
            "cluster_id": cluster_id,
            "cluster_name": cluster.name,
            "spark_version": "15.4.x-scala2.12",
            "node_type_id": "Standard_DS3_v2",
            "driver_node_type_id": "Standard_DS3_v2",
            "num_workers": 1,
            "autotermination_minutes": INACTIVITY_MINUTES,
            "creator_user_name": self.creator,
            "cluster_source": "UI",
            "state": cluster.state.as_str(),
            "state_message": state_message,
            "start_time": cluster.start_time,
            "last_restarted_time": cluster.last_restarted_time,
        });
        if cluster.state == ClusterState::Terminated {
            if let Some(reason) = &cluster.termination_reason {
                out["termination_reason"] = reason.clone();
            }
        }
        out
    }

    pub fn list(&mut self) -> Value {
        self.tick(Instant::now());
        let clusters: Vec<Value> = self
            .clusters
            .iter()
            .map(|(id, c)| self.describe(id, c))
            .collect();
        json!({ "clusters": clusters })
    }

    /// `clusters/start`: only a TERMINATED cluster can be started.
    pub fn start(&mut self, cluster_id: &str, now_ms: u64) -> ApiResult<()> {
        self.tick(Instant::now());
        let delay = self.start_delay;
        let creator = self.creator.clone();
        let cluster = self
            .clusters
            .get_mut(cluster_id)
            .ok_or_else(|| unknown(cluster_id))?;
        if cluster.state != ClusterState::Terminated {
            return Err(ApiError::invalid_state(format!(
                "Cluster {cluster_id} is in unexpected state {}.",
                cluster.state.display()
            )));
        }
        cluster.state = ClusterState::Pending;
        cluster.ready_at = Some(Instant::now() + delay);
        cluster.start_time = now_ms;
        cluster.termination_reason = None;
        cluster.event(cluster_id, "STARTING", json!({ "user": creator }));
        Ok(())
    }

    /// `clusters/restart`: only a RUNNING cluster can be restarted (the real API answers
    /// INVALID_STATE otherwise, a terminated cluster included).
    pub fn restart(&mut self, cluster_id: &str) -> ApiResult<()> {
        self.tick(Instant::now());
        let delay = self.start_delay;
        let creator = self.creator.clone();
        let cluster = self
            .clusters
            .get_mut(cluster_id)
            .ok_or_else(|| unknown(cluster_id))?;
        if cluster.state != ClusterState::Running {
            return Err(ApiError::invalid_state(format!(
                "Cluster {cluster_id} is in unexpected state {}.",
                cluster.state.display()
            )));
        }
        cluster.state = ClusterState::Restarting;
        cluster.ready_at = Some(Instant::now() + delay);
        cluster.event(cluster_id, "RESTARTING", json!({ "user": creator }));
        Ok(())
    }

    /// `clusters/events`: one page of the cluster's events and the request for the next.
    pub fn events(&mut self, cluster_id: &str, query: &EventQuery) -> ApiResult<Value> {
        self.tick(Instant::now());
        let cluster = self
            .clusters
            .get(cluster_id)
            .ok_or_else(|| unknown(cluster_id))?;
        let mut matching: Vec<&Value> = cluster
            .events
            .iter()
            .filter(|e| {
                let t = e["timestamp"].as_u64().unwrap_or(0);
                query.start_time.is_none_or(|s| t >= s)
                    && query.end_time.is_none_or(|end| t <= end)
                    && query.event_types.as_ref().is_none_or(|types| {
                        types.iter().any(|k| Some(k.as_str()) == e["type"].as_str())
                    })
            })
            .collect();
        if !query.ascending {
            matching.reverse();
        }
        let total = matching.len();
        let page: Vec<Value> = matching
            .into_iter()
            .skip(query.offset)
            .take(query.limit)
            .cloned()
            .collect();
        let mut out = json!({ "events": page, "total_count": total });
        if query.offset + query.limit < total {
            let mut next = json!({
                "cluster_id": cluster_id,
                "order": if query.ascending { "ASC" } else { "DESC" },
                "offset": query.offset + query.limit,
                "limit": query.limit,
            });
            if let Some(s) = query.start_time {
                next["start_time"] = json!(s);
            }
            if let Some(e) = query.end_time {
                next["end_time"] = json!(e);
            }
            out["next_page"] = next;
        }
        Ok(out)
    }

    /// Starts the cluster if it is terminated (what a job run on it does) and
    /// tells how long until it is RUNNING.
    pub fn ensure_started(&mut self, cluster_id: &str, now_ms: u64) -> Option<Duration> {
        self.tick(Instant::now());
        let state = self.clusters.get(cluster_id)?.state;
        if state == ClusterState::Terminated {
            self.start(cluster_id, now_ms).ok()?;
        }
        let cluster = self.clusters.get(cluster_id)?;
        Some(cluster.ready_at.map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(Instant::now())
        }))
    }

    pub fn dump(&mut self) -> Value {
        self.list()["clusters"].clone()
    }
}
