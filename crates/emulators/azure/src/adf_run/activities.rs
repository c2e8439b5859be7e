//! Activities that reach outside the factory: `DatabricksNotebook` (a real run on the
//! Databricks workspace its linked service names, when that is a local emulator), and the note
//! for activity types the emulator does not execute.

use std::{collections::BTreeMap, time::Duration};

use databricks::{Auth, Compute, SubmitRun, Workspace};
use serde_json::{json, Value};
use task_sdk::{http::HttpSettings, HttpClient, RetryPolicy};

use super::{expr, name_of, End, Run};

/// An activity type the emulator does not execute: succeeds with a note in its output, or
/// fails under `--adf-strict`.
pub(super) fn not_executed(run: &Run, kind: &str) -> End {
    let note = format!("not executed: {kind} activities are not emulated");
    if run.shared().is_some_and(|s| s.opts.adf_strict) {
        return End::fail(
            "NotSupported",
            format!("The emulator does not execute {kind} activities (--adf-strict)."),
        );
    }
    End::ok(json!({ "emulator": note }))
}

/// `http(s)://127.0.0.1|localhost[:port]`: a workspace the emulator may call.
fn is_local(domain: &str) -> bool {
    url::Url::parse(domain).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
    })
}

pub(super) async fn databricks_notebook(
    run: &Run,
    activity: &Value,
    props: &Value,
    activity_run_id: &str,
) -> End {
    let name = name_of(activity);
    let Some(shared) = run.shared() else {
        return End::fail("InternalServerError", "The emulator is stopping.");
    };
    let service = activity["linkedServiceName"]["referenceName"]
        .as_str()
        .unwrap_or_default();
    let key = format!(
        "{}/linkedservices/{}",
        run.factory_id.to_ascii_lowercase(),
        service.to_ascii_lowercase()
    );
    let linked = shared.lock().resources.get(&key).cloned();
    let Some(linked) = linked else {
        return End::fail(
            "2105",
            format!("The linked service '{service}' of activity '{name}' does not exist in the factory."),
        );
    };
    let tp = &linked["properties"]["typeProperties"];
    let domain = expr::text(&tp["domain"]);
    if !is_local(&domain) {
        if shared.opts.adf_strict {
            return End::fail(
                "NotSupported",
                format!("The linked service '{service}' points at '{domain}', which is not a local Databricks emulator (--adf-strict)."),
            );
        }
        return End::ok(json!({
            "emulator": format!("not executed: the linked service '{service}' points at '{domain}', not at a local Databricks emulator"),
        }));
    }
    let token = match tp.get("accessToken") {
        Some(t) if t["type"] == "SecureString" => t["value"].as_str().unwrap_or_default().to_string(),
        Some(t) => {
            return End::fail(
                "2105",
                format!(
                    "The emulator supports a SecureString accessToken on linked service '{service}', not '{}'.",
                    t["type"].as_str().unwrap_or("?")
                ),
            )
        }
        // Managed identity (`authentication: MSI`): a token the emulator issues to the
        // factory for the Azure Databricks resource, as Entra ID does for the real one.
        None => {
            let mut state = shared.lock();
            crate::entra::issue_access_token(
                &shared,
                &mut state,
                crate::entra::DATABRICKS_RESOURCE,
                &run.factory_id,
                "managed_identity",
            )
            .0
        }
    };
    let compute = match tp["existingClusterId"].as_str() {
        Some(id) if !id.is_empty() => Compute::ExistingCluster(id.to_string()),
        _ => match tp["newClusterVersion"].as_str() {
            Some(version) => Compute::NewCluster(json!({
                "spark_version": version,
                "node_type_id": tp["newClusterNodeType"],
                "num_workers": expr::text(&tp["newClusterNumOfWorker"]).parse::<u64>().unwrap_or(1),
            })),
            None => Compute::Serverless,
        },
    };
    let http = match task_sdk::http::Client::new(&HttpSettings::default()) {
        Ok(c) => HttpClient::new(c, RetryPolicy::default()),
        Err(e) => {
            return End::fail(
                "InternalServerError",
                format!("The emulator's HTTP client could not start: {e}"),
            )
        }
    };
    let workspace = match Workspace::new(&domain, Auth::Token(token), http) {
        Ok(w) => w.with_poll_interval(Duration::from_millis(50), Duration::from_millis(500)),
        Err(e) => return End::fail("2105", format!("Linked service '{service}': {e}")),
    };
    let base_parameters: BTreeMap<String, String> = props["baseParameters"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), expr::text(v)))
        .collect();
    let submit = SubmitRun {
        run_name: format!(
            "ADF_{}_{}_{name}_{}",
            run.pipeline["DataFactory"].as_str().unwrap_or(""),
            run.pipeline_name,
            run.run_id
        ),
        notebook_path: expr::text(&props["notebookPath"]),
        base_parameters,
        compute,
        timeout_seconds: None,
        idempotency_token: Some(activity_run_id.chars().take(64).collect()),
    };
    let result = async {
        let id = workspace.submit_run(&submit).await?;
        let finished = workspace.wait_run(id, None, |_| {}).await?;
        let output = match finished.task(databricks::SUBMIT_TASK_KEY) {
            Some(task) => workspace.get_run_output(task.run_id).await?,
            None => Default::default(),
        };
        Ok::<_, databricks::Error>((finished, output))
    }
    .await;
    let (finished, output) = match result {
        Ok(r) => r,
        Err(e) => return End::fail("3204", format!("Databricks: {e}")),
    };
    let run_page = finished.run_page_url.clone().unwrap_or_default();
    let duration = finished.end_time.saturating_sub(finished.start_time) / 1000;
    if !finished.state.is_success() {
        let message = output
            .error
            .clone()
            .or_else(|| Some(finished.state.state_message.clone()).filter(|m| !m.is_empty()))
            .unwrap_or_else(|| "The notebook run did not succeed.".into());
        let mut end = End::fail("3204", message);
        end.output = json!({"runPageUrl": run_page, "executionDuration": duration});
        return end;
    }
    let exit = output.notebook_output.and_then(|o| o.result);
    // Data Factory hands a JSON exit value to expressions as JSON, anything else as text.
    let run_output = exit.map(|text| match serde_json::from_str::<Value>(&text) {
        Ok(v @ (Value::Object(_) | Value::Array(_))) => v,
        _ => Value::String(text),
    });
    let mut out = json!({
        "runPageUrl": run_page,
        "effectiveIntegrationRuntime": "AutoResolveIntegrationRuntime (Emulator)",
        "executionDuration": duration,
    });
    if let Some(v) = run_output {
        out["runOutput"] = v;
    }
    End::ok(out)
}
