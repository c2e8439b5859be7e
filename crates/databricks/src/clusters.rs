//! Clusters API 2.1: state, start, wait.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use crate::client::Call;
use crate::jobs::api_enum;
use crate::{Error, Workspace};

api_enum! {
    /// A cluster's `state`.
    ClusterState {
        Pending = "PENDING",
        Running = "RUNNING",
        Restarting = "RESTARTING",
        Resizing = "RESIZING",
        Terminating = "TERMINATING",
        Terminated = "TERMINATED",
        Error = "ERROR",
        Unknown = "UNKNOWN",
    }
}

impl ClusterState {
    /// PENDING, RESTARTING, RESIZING: on the way to (or still) RUNNING by itself.
    pub fn is_coming_up(&self) -> bool {
        matches!(
            self,
            ClusterState::Pending | ClusterState::Restarting | ClusterState::Resizing
        )
    }
}

/// A cluster (`clusters/get`), the fields tasks use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Cluster {
    pub cluster_id: String,
    #[serde(default)]
    pub cluster_name: Option<String>,
    pub state: ClusterState,
    #[serde(default)]
    pub state_message: String,
    #[serde(default)]
    pub spark_version: Option<String>,
}

impl Workspace {
    /// A cluster by id (`GET /api/2.1/clusters/get`). An unknown id gives the API's 400
    /// `INVALID_PARAMETER_VALUE` ([`Error::is_not_found`] is true).
    pub async fn get_cluster(&self, id: &str) -> Result<Cluster, Error> {
        self.send(Call::get("/api/2.1/clusters/get").query("cluster_id", id))
            .await
    }

    /// Starts a terminated cluster (`POST /api/2.1/clusters/start`). A cluster that is
    /// already running or coming up (the API's `INVALID_STATE`) is a success. Does not wait:
    /// see [`Workspace::wait_cluster_running`].
    pub async fn start_cluster(&self, id: &str) -> Result<(), Error> {
        let call = Call::post("/api/2.1/clusters/start", json!({ "cluster_id": id })).replay_safe();
        match self.send::<serde_json::Value>(call).await {
            Ok(_) => Ok(()),
            Err(e) if e.error_code() == Some("INVALID_STATE") => {
                let cluster = self.get_cluster(id).await?;
                if cluster.state == ClusterState::Running || cluster.state.is_coming_up() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Waits until the cluster is RUNNING, starting it if it is TERMINATED, polling with a
    /// growing interval. A cluster in ERROR (or one that terminates again after the start)
    /// gives [`Error::ClusterNotRunning`]; running out of `timeout` gives [`Error::TimedOut`].
    pub async fn wait_cluster_running(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<Cluster, Error> {
        let started = Instant::now();
        let poll = self.poll();
        let mut interval = poll.first;
        let mut start_requested = false;
        loop {
            let cluster = self.get_cluster(id).await?;
            match &cluster.state {
                ClusterState::Running => return Ok(cluster),
                ClusterState::Terminated if !start_requested => {
                    tracing::info!("cluster {id} is terminated: starting it");
                    self.start_cluster(id).await?;
                    start_requested = true;
                }
                ClusterState::Error | ClusterState::Terminated => {
                    return Err(Error::ClusterNotRunning {
                        id: id.to_owned(),
                        state: cluster.state.clone(),
                        message: cluster.state_message,
                    })
                }
                // Terminating: wait for TERMINATED, then start. Others: coming up.
                _ => {}
            }
            let elapsed = started.elapsed();
            if elapsed >= timeout {
                return Err(Error::TimedOut {
                    what: format!(
                        "cluster {id} becoming RUNNING (last state {})",
                        cluster.state
                    ),
                    waited: elapsed,
                });
            }
            tokio::time::sleep(interval.min(timeout - elapsed)).await;
            interval = (interval * 2).min(poll.max);
        }
    }
}
