//! Clusters API 2.1: state, list, start, restart, events, and waiting for RUNNING.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

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

/// Why a cluster terminated (`termination_reason`): a code such as
/// `CLOUD_PROVIDER_LAUNCH_FAILURE`, its type (`CLOUD_FAILURE`, `CLIENT_ERROR`, …) and
/// parameters that explain it (`azure_error_message`, `inactivity_duration_min`, …).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct TerminationReason {
    #[serde(default)]
    pub code: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

impl fmt::Display for TerminationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.code.is_empty() {
            "UNKNOWN"
        } else {
            &self.code
        })?;
        if !self.kind.is_empty() {
            write!(f, " ({})", self.kind)?;
        }
        let params: Vec<String> = self
            .parameters
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        if !params.is_empty() {
            write!(f, "; {}", params.join("; "))?;
        }
        Ok(())
    }
}

/// A cluster (`clusters/get`, `clusters/list`), the fields tasks use.
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
    /// Set once the cluster terminated (also after a failed start).
    #[serde(default)]
    pub termination_reason: Option<TerminationReason>,
}

impl Cluster {
    /// `name (id)`, or the id alone, for messages.
    pub fn label(&self) -> String {
        match self.cluster_name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => format!("'{name}' ({})", self.cluster_id),
            None => self.cluster_id.clone(),
        }
    }
}

/// One entry of a cluster's event log (`clusters/events`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClusterEvent {
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub timestamp: u64,
    /// `STARTING`, `RUNNING`, `RESTARTING`, `TERMINATING`, `INIT_SCRIPTS_FINISHED`, …
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub details: Value,
}

impl ClusterEvent {
    /// The event's termination reason, when it has one (`TERMINATING` events).
    pub fn reason(&self) -> Option<TerminationReason> {
        self.details
            .get("reason")
            .and_then(|r| serde_json::from_value(r.clone()).ok())
    }
}

/// What [`Workspace::wait_cluster`] reports while it waits.
#[derive(Debug)]
pub enum ClusterProgress<'a> {
    /// The first state seen, and each change of state or state message.
    State(&'a Cluster),
    /// An event logged since the wait began.
    Event(&'a ClusterEvent),
    /// The cluster was terminated and the wait asked the service to start it.
    StartRequested,
}

#[derive(Deserialize)]
struct ClusterList {
    #[serde(default)]
    clusters: Vec<Cluster>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct EventPage {
    #[serde(default)]
    events: Vec<ClusterEvent>,
}

/// Most events one wait reads per poll (the API's page size is at most 500).
const EVENT_PAGE: u32 = 50;

impl Workspace {
    /// A cluster by id (`GET /api/2.1/clusters/get`). An unknown id gives the API's 400
    /// `INVALID_PARAMETER_VALUE` ([`Error::is_not_found`] is true).
    pub async fn get_cluster(&self, id: &str) -> Result<Cluster, Error> {
        self.send(Call::get("/api/2.1/clusters/get").query("cluster_id", id))
            .await
    }

    /// Every cluster of the workspace (`GET /api/2.1/clusters/list`, all pages).
    pub async fn list_clusters(&self) -> Result<Vec<Cluster>, Error> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut call = Call::get("/api/2.1/clusters/list").query("page_size", "100");
            if let Some(t) = &token {
                call = call.query("page_token", t.clone());
            }
            let page: ClusterList = self.send(call).await?;
            all.extend(page.clusters);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(all),
            }
        }
    }

    /// Starts a terminated cluster (`POST /api/2.1/clusters/start`). A cluster that is
    /// already running or coming up (the API's `INVALID_STATE`) is a success. Does not wait:
    /// see [`Workspace::wait_cluster`].
    pub async fn start_cluster(&self, id: &str) -> Result<(), Error> {
        let call = Call::post("/api/2.1/clusters/start", json!({ "cluster_id": id })).replay_safe();
        match self.send::<Value>(call).await {
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

    /// Restarts a RUNNING cluster (`POST /api/2.1/clusters/restart`); any other state is the
    /// API's 400 `INVALID_STATE`. Not replayed after an ambiguous failure (a second restart
    /// would interrupt the first one's start).
    pub async fn restart_cluster(&self, id: &str) -> Result<(), Error> {
        let call = Call::post("/api/2.1/clusters/restart", json!({ "cluster_id": id }));
        self.send::<Value>(call).await.map(|_| ())
    }

    /// The cluster's events from `since_ms` on, oldest first (`POST /api/2.1/clusters/events`,
    /// at most [`EVENT_PAGE`] of them: a wait reads the rest on its next poll).
    pub async fn cluster_events(
        &self,
        id: &str,
        since_ms: u64,
    ) -> Result<Vec<ClusterEvent>, Error> {
        let body = json!({
            "cluster_id": id,
            "start_time": since_ms,
            "order": "ASC",
            "limit": EVENT_PAGE,
        });
        let page: EventPage = self
            .send(Call::post("/api/2.1/clusters/events", body).replay_safe())
            .await?;
        Ok(page.events)
    }

    /// Waits until the cluster is RUNNING (see [`Workspace::wait_cluster`]), starting it
    /// when it is terminated.
    pub async fn wait_cluster_running(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<Cluster, Error> {
        self.wait_cluster(id, timeout, true, |_| {}).await
    }

    /// Waits until the cluster is RUNNING, polling with a growing interval and reporting
    /// state changes and new events to `observe`. A TERMINATED cluster is started once when
    /// `start_if_terminated` (TERMINATING: after it terminated); otherwise, or when it
    /// terminates again after the start, or is in ERROR, the wait ends with
    /// [`Error::ClusterNotRunning`] carrying the termination reason. Running out of `timeout`
    /// gives [`Error::TimedOut`].
    pub async fn wait_cluster(
        &self,
        id: &str,
        timeout: Duration,
        start_if_terminated: bool,
        mut observe: impl FnMut(ClusterProgress<'_>),
    ) -> Result<Cluster, Error> {
        let started = Instant::now();
        let poll = self.poll();
        let mut interval = poll.first;
        let mut start_requested = false;
        let mut last: Option<(ClusterState, String)> = None;
        // Events from a little before the wait began: the one that explains a start that
        // failed a moment ago included.
        let mut events_since = crate::now_ms().saturating_sub(60_000);
        let mut seen_events: Vec<(u64, String)> = Vec::new();
        loop {
            let cluster = self.get_cluster(id).await?;
            let now_state = (cluster.state.clone(), cluster.state_message.clone());
            if last.as_ref() != Some(&now_state) {
                observe(ClusterProgress::State(&cluster));
                last = Some(now_state);
            }
            // Events are context, not the wait's subject: failing to read them is not fatal.
            if let Ok(events) = self.cluster_events(id, events_since).await {
                for event in &events {
                    let key = (event.timestamp, event.kind.clone());
                    if seen_events.contains(&key) {
                        continue;
                    }
                    observe(ClusterProgress::Event(event));
                    events_since = events_since.max(event.timestamp);
                    seen_events.push(key);
                }
            }
            match &cluster.state {
                ClusterState::Running => return Ok(cluster),
                ClusterState::Terminated if start_if_terminated && !start_requested => {
                    self.start_cluster(id).await?;
                    observe(ClusterProgress::StartRequested);
                    start_requested = true;
                    // Look again at once: the state the start led to (PENDING) is news.
                    continue;
                }
                ClusterState::Error | ClusterState::Terminated => {
                    return Err(Error::ClusterNotRunning {
                        id: id.to_owned(),
                        state: cluster.state.clone(),
                        message: cluster.state_message,
                        reason: cluster.termination_reason.map(Box::new),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn termination_reasons_read_and_print() {
        let c: Cluster = serde_json::from_str(
            r#"{"cluster_id":"c1","cluster_name":"etl","state":"TERMINATED","state_message":"boom",
                "termination_reason":{"code":"CLOUD_PROVIDER_LAUNCH_FAILURE","type":"CLOUD_FAILURE",
                "parameters":{"azure_error_code":"QuotaExceeded"}}}"#,
        )
        .unwrap();
        assert_eq!(c.label(), "'etl' (c1)");
        assert_eq!(
            c.termination_reason.unwrap().to_string(),
            "CLOUD_PROVIDER_LAUNCH_FAILURE (CLOUD_FAILURE); azure_error_code: QuotaExceeded"
        );
    }
}
