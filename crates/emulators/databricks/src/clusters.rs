//! Clusters: a fixed set of existing clusters that can be started and waited for.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    Pending,
    Running,
    Terminated,
}

impl ClusterState {
    fn as_str(self) -> &'static str {
        match self {
            ClusterState::Pending => "PENDING",
            ClusterState::Running => "RUNNING",
            ClusterState::Terminated => "TERMINATED",
        }
    }

    /// The capitalised word the INVALID_STATE message uses ("Running").
    fn display(self) -> &'static str {
        match self {
            ClusterState::Pending => "Pending",
            ClusterState::Running => "Running",
            ClusterState::Terminated => "Terminated",
        }
    }
}

#[derive(Debug)]
struct Cluster {
    state: ClusterState,
    /// When a PENDING cluster becomes RUNNING.
    ready_at: Option<Instant>,
    start_time: u64,
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

impl Clusters {
    pub fn new(
        running: &[String],
        terminated: &[String],
        start_delay: Duration,
        creator: &str,
        now_ms: u64,
    ) -> Self {
        let mut clusters = BTreeMap::new();
        for (ids, state) in [
            (running, ClusterState::Running),
            (terminated, ClusterState::Terminated),
        ] {
            for id in ids {
                clusters.insert(
                    id.clone(),
                    Cluster {
                        state,
                        ready_at: None,
                        start_time: now_ms,
                    },
                );
            }
        }
        Clusters {
            clusters,
            start_delay,
            creator: creator.to_string(),
        }
    }

    /// Advances PENDING clusters whose start delay has passed.
    fn tick(&mut self, now: Instant) {
        for cluster in self.clusters.values_mut() {
            if cluster.state == ClusterState::Pending && cluster.ready_at.is_some_and(|t| t <= now)
            {
                cluster.state = ClusterState::Running;
                cluster.ready_at = None;
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
            ClusterState::Pending => "Starting Spark",
            ClusterState::Running | ClusterState::Terminated => "",
        };
        json!({
            "cluster_id": cluster_id,
            "cluster_name": format!("emulator-{cluster_id}"),
            "spark_version": "15.4.x-scala2.12",
            "node_type_id": "Standard_DS3_v2",
            "driver_node_type_id": "Standard_DS3_v2",
            "num_workers": 1,
            "autotermination_minutes": 60,
            "creator_user_name": self.creator,
            "cluster_source": "UI",
            "state": cluster.state.as_str(),
            "state_message": state_message,
            "start_time": cluster.start_time,
        })
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
        Ok(())
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
