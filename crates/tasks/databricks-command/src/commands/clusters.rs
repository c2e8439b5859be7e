//! `startCluster`, `waitCluster`, `restartCluster`: bring a cluster (by id or name) to
//! RUNNING and wait, printing its state messages and events; a cluster that terminates
//! instead fails the task with the termination reason. A running cluster is left alone by
//! `startCluster` and `waitCluster`.

use std::time::{Duration, Instant};

use databricks::{Cluster, ClusterProgress, ClusterState, Error};
use task_sdk::{out, TaskError};

use crate::Cx;

/// The input naming the cluster (id or name).
const CLUSTER_INPUT: &str = "cluster";

/// Default of `clusterTimeoutMinutes`: clusters start in minutes; one stuck for half an hour
/// will not come up.
const DEFAULT_TIMEOUT_MINUTES: i64 = 30;

/// A cluster by id, else by name: exactly one cluster must have the name.
pub async fn find(cx: &Cx<'_>, given: &str, input: &str) -> Result<Cluster, TaskError> {
    match cx.ws.get_cluster(given).await {
        Ok(cluster) => return Ok(cluster),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(cx.explain(e)),
    }
    let all = cx.ws.list_clusters().await.map_err(|e| cx.explain(e))?;
    let mut named: Vec<&Cluster> = all
        .iter()
        .filter(|c| c.cluster_name.as_deref() == Some(given))
        .collect();
    if named.is_empty() {
        named = all
            .iter()
            .filter(|c| {
                c.cluster_name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(given))
            })
            .collect();
    }
    match named.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let mut names: Vec<String> = all.iter().map(Cluster::label).collect();
            names.sort();
            let listed = if names.is_empty() {
                "the workspace has no clusters".to_owned()
            } else {
                format!("its clusters: {}", shorten(&names))
            };
            Err(TaskError::new(format!(
                "input '{input}': no cluster of the workspace {} has the id or name '{given}' ({listed})",
                cx.conn.host
            )))
        }
        many => {
            let ids: Vec<String> = many.iter().map(|c| c.cluster_id.clone()).collect();
            Err(TaskError::new(format!(
                "input '{input}': {} clusters are named '{given}' ({}): give the cluster id instead",
                many.len(),
                ids.join(", ")
            )))
        }
    }
}

/// At most 20 names, then how many more.
fn shorten(names: &[String]) -> String {
    const SHOWN: usize = 20;
    if names.len() <= SHOWN {
        names.join(", ")
    } else {
        format!(
            "{} and {} more",
            names[..SHOWN].join(", "),
            names.len() - SHOWN
        )
    }
}

fn timeout(cx: &Cx<'_>) -> Result<Duration, TaskError> {
    let minutes = cx
        .agent
        .int_input_in("clusterTimeoutMinutes", 1..=24 * 60)?
        .unwrap_or(DEFAULT_TIMEOUT_MINUTES);
    Ok(Duration::from_secs(minutes as u64 * 60))
}

/// One line for an event: its type and what its details say.
fn describe_event(event: &databricks::ClusterEvent) -> String {
    let mut text = event.kind.clone();
    let d = &event.details;
    if let Some(reason) = event.reason() {
        text.push_str(&format!(": {reason}"));
    }
    if let Some(user) = d.get("user").and_then(|u| u.as_str()) {
        text.push_str(&format!(" (by {user})"));
    }
    match (
        d.get("current_num_workers").and_then(|n| n.as_u64()),
        d.get("target_num_workers").and_then(|n| n.as_u64()),
    ) {
        (Some(c), Some(t)) => text.push_str(&format!(", workers {c}/{t}")),
        (Some(c), None) => text.push_str(&format!(", workers {c}")),
        _ => {}
    }
    text
}

/// Waits for RUNNING, printing progress; the reason when it does not get there.
async fn wait_running(
    cx: &Cx<'_>,
    cluster: &Cluster,
    start_if_terminated: bool,
) -> Result<Cluster, TaskError> {
    let limit = timeout(cx)?;
    let started = Instant::now();
    let label = cluster.label();
    let result = cx
        .ws
        .wait_cluster(
            &cluster.cluster_id,
            limit,
            start_if_terminated,
            |progress| match progress {
                ClusterProgress::State(c) => {
                    let message = c.state_message.trim();
                    out::info(&format!(
                        "[{:>4} s] {}{}",
                        started.elapsed().as_secs(),
                        c.state,
                        if message.is_empty() {
                            String::new()
                        } else {
                            format!(": {message}")
                        }
                    ))
                }
                ClusterProgress::Event(e) => out::info(&format!(
                    "[{:>4} s] event {}",
                    started.elapsed().as_secs(),
                    describe_event(e)
                )),
                ClusterProgress::StartRequested => {
                    out::info(&format!("cluster {label} is terminated: starting it"))
                }
            },
        )
        .await;
    match result {
        Ok(running) => {
            out::info(&format!(
                "cluster {label} is RUNNING (after {} s)",
                started.elapsed().as_secs()
            ));
            report(&running);
            Ok(running)
        }
        Err(Error::ClusterNotRunning {
            state,
            message,
            reason,
            ..
        }) => {
            out::set_output("clusterState", state.as_str(), false);
            let mut text = format!("cluster {label} did not start: it is {state}");
            if !message.trim().is_empty() {
                text.push_str(&format!(": {}", message.trim()));
            }
            if let Some(reason) = reason {
                text.push_str(&format!(". Termination reason: {reason}"));
            }
            Err(TaskError::new(text))
        }
        Err(Error::TimedOut { what, waited }) => Err(TaskError::new(format!(
            "{what} did not happen within {} min: raise 'Cluster timeout (minutes)' (clusterTimeoutMinutes), or look at the cluster's event log in the workspace",
            waited.as_secs().div_ceil(60)
        ))),
        Err(e) => Err(cx.explain(e)),
    }
}

fn report(cluster: &Cluster) {
    out::set_output("clusterId", &cluster.cluster_id, false);
    out::set_output("clusterState", cluster.state.as_str(), false);
}

/// `startCluster`: the cluster of the `cluster` input.
pub async fn start(cx: &Cx<'_>) -> Result<(), TaskError> {
    let given = cx.agent.required_input(CLUSTER_INPUT)?;
    start_named(cx, &given, CLUSTER_INPUT).await
}

/// Starts the cluster `given` (id or name, from `input`) unless it is running, and waits.
pub async fn start_named(cx: &Cx<'_>, given: &str, input: &str) -> Result<(), TaskError> {
    let cluster = find(cx, given, input).await?;
    if cluster.state == ClusterState::Running {
        out::info(&format!(
            "cluster {} is already RUNNING: left as it is",
            cluster.label()
        ));
        report(&cluster);
        return Ok(());
    }
    wait_running(cx, &cluster, true).await.map(|_| ())
}

/// `waitCluster`: waits for a cluster that is coming up; does not start a terminated one.
pub async fn wait(cx: &Cx<'_>) -> Result<(), TaskError> {
    let given = cx.agent.required_input(CLUSTER_INPUT)?;
    let cluster = find(cx, &given, CLUSTER_INPUT).await?;
    if matches!(
        cluster.state,
        ClusterState::Terminated | ClusterState::Terminating
    ) {
        let mut text = format!(
            "cluster {} is {} and waitCluster does not start clusters: use the command startCluster to start it",
            cluster.label(),
            cluster.state
        );
        if let Some(reason) = &cluster.termination_reason {
            text.push_str(&format!(" (termination reason: {reason})"));
        }
        return Err(TaskError::new(text));
    }
    wait_running(cx, &cluster, false).await.map(|_| ())
}

/// `restartCluster`: restarts a running cluster and waits until it runs again; a terminated
/// one is started instead, one that is coming up is waited for.
pub async fn restart(cx: &Cx<'_>) -> Result<(), TaskError> {
    let given = cx.agent.required_input(CLUSTER_INPUT)?;
    let cluster = find(cx, &given, CLUSTER_INPUT).await?;
    restart_cluster(cx, &cluster).await.map(|_| ())
}

/// Restarts `cluster` (see [`restart`]) and waits for RUNNING; for other commands that need
/// a fresh cluster (installLibraries' `uninstallFirst`).
pub async fn restart_cluster(cx: &Cx<'_>, cluster: &Cluster) -> Result<Cluster, TaskError> {
    let label = cluster.label();
    match cluster.state {
        ClusterState::Running => {
            cx.ws
                .restart_cluster(&cluster.cluster_id)
                .await
                .map_err(|e| cx.explain(e))?;
            out::info(&format!("restarting cluster {label}"));
            wait_running(cx, cluster, false).await
        }
        ClusterState::Terminated | ClusterState::Terminating => {
            out::info(&format!(
                "cluster {label} is {}: starting it instead of restarting",
                cluster.state
            ));
            wait_running(cx, cluster, true).await
        }
        _ => {
            out::info(&format!(
                "cluster {label} is {} (coming up already): waiting for it instead of restarting",
                cluster.state
            ));
            wait_running(cx, cluster, false).await
        }
    }
}
