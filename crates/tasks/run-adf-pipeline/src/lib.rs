//! The `runadfpipeline` task: start an Azure Data Factory pipeline run with parameters, wait
//! for it through `Queued`, `InProgress` and `Canceling` (a queued run is not a failure, unlike
//! the seed's `Invoke-ADFPipeline.ps1`), print every failed activity's error, and cancel the
//! run when the pipeline is cancelled or the timeout runs out. The run id is an output
//! variable.
//!
//! It is not a Data Factory client (that is the `azure` crate's [`azure::DataFactory`]); the
//! binary hands [`run`] the agent snapshot, the HTTP client and the cancellation signal.

use std::time::{Duration, SystemTime};

use azure::{
    ActivityRun, AdfError, Credential, DataFactory, FactoryRef, PipelineRun, RunStatus,
    RunWaitOptions,
};
use serde_json::Value;
use task_sdk::time::tenths;
use task_sdk::{out, Agent, TaskError};

use task_sdk::CancelSignal;

/// The task's inputs, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    pub connection: String,
    pub subscription: Option<String>,
    pub resource_group: String,
    pub factory: String,
    pub pipeline: String,
    /// A JSON object (`{}` when the input is empty).
    pub parameters: Value,
    pub wait: bool,
    pub timeout: Option<Duration>,
    pub poll_interval: Duration,
}

fn required_any(agent: &Agent, names: &[&str], label: &str) -> Result<String, TaskError> {
    agent.input_any(names).ok_or_else(|| {
        TaskError::new(format!(
            "input '{label}' ({}) is required but empty: set it in the task's inputs",
            names.join(", alias ")
        ))
    })
}

impl Inputs {
    pub fn from_agent(agent: &Agent) -> Result<Inputs, TaskError> {
        let parameters = match agent.input("pipelineParameters") {
            None => Value::Object(Default::default()),
            Some(text) => match serde_json::from_str::<Value>(&text) {
                Ok(v @ Value::Object(_)) => v,
                Ok(other) => {
                    return Err(TaskError::new(format!(
                        "input 'Pipeline parameters' (pipelineParameters) must be a JSON object such as {{\"name\": \"value\"}}, not a JSON {}",
                        match other {
                            Value::Array(_) => "array",
                            Value::String(_) => "string",
                            Value::Number(_) => "number",
                            Value::Bool(_) => "boolean",
                            _ => "null",
                        }
                    )))
                }
                Err(e) => {
                    return Err(TaskError::new(format!(
                        "input 'Pipeline parameters' (pipelineParameters) is not valid JSON: {e}"
                    )))
                }
            },
        };
        let minutes = agent
            .int_input_in("timeoutInMinutes", 0..=43_200)?
            .unwrap_or(0);
        let poll = agent
            .int_input_in("pollIntervalSeconds", 1..=300)?
            .unwrap_or(15);
        Ok(Inputs {
            connection: required_any(
                agent,
                &[
                    "ConnectedServiceName",
                    "azureSubscription",
                    "azureResourceManagerConnection",
                ],
                "Azure Resource Manager connection",
            )?,
            subscription: agent.input_any(&["subscriptionId"]),
            resource_group: required_any(agent, &["resourceGroupName"], "Resource group")?,
            factory: required_any(agent, &["dataFactoryName", "factoryName"], "Data factory")?,
            pipeline: required_any(agent, &["pipelineName"], "Pipeline")?,
            parameters,
            wait: agent.bool_input("waitForCompletion", true),
            timeout: (minutes > 0).then(|| Duration::from_secs(minutes as u64 * 60)),
            poll_interval: Duration::from_secs(poll as u64),
        })
    }
}

/// One block per failed activity: name, type, error code, failure type and message.
pub fn render_failed_activities(activities: &[ActivityRun]) -> String {
    let mut out = String::new();
    for a in activities.iter().filter(|a| a.failed()) {
        out.push_str(&format!(
            "  Activity '{}' ({}) failed",
            a.name, a.activity_type
        ));
        match &a.error {
            Some(e) => {
                let kind = if e.failure_type.is_empty() {
                    String::new()
                } else {
                    format!(", {}", e.failure_type)
                };
                out.push_str(&format!(" with error {}{kind}:\n", e.error_code));
                for line in e.message.lines() {
                    out.push_str(&format!("    {line}\n"));
                }
            }
            None => out.push_str(" without an error message\n"),
        }
    }
    out
}

/// Data Factory Studio's monitoring page of a run, for the public cloud.
pub fn monitor_link(environment: &str, factory: &FactoryRef, run_id: &str) -> Option<String> {
    if !environment.eq_ignore_ascii_case("AzureCloud") {
        return None;
    }
    let id = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.DataFactory/factories/{}",
        factory.subscription, factory.resource_group, factory.name
    );
    Some(format!(
        "https://adf.azure.com/en/monitoring/pipelineruns/{run_id}?factory={}",
        id.replace('/', "%2F")
    ))
}

fn describe(run: &PipelineRun) -> String {
    let mut text = format!("Pipeline run {} is {}", run.run_id, run.status);
    if let Some(ms) = run.duration_ms.filter(|_| run.status.is_terminal()) {
        text.push_str(&format!(" after {} s", tenths(u128::from(ms), 1000)));
    }
    if !run.message.is_empty() && run.status.is_terminal() && run.status != RunStatus::Succeeded {
        text.push_str(&format!(": {}", run.message));
    }
    text
}

/// The failed activities of a run, printed; returned for the failure message.
async fn failed_activities(
    adf: &DataFactory,
    factory: &FactoryRef,
    run: &PipelineRun,
    started: SystemTime,
) -> String {
    // A window wide enough for any activity of this run, with slack for clock skew.
    let after = started - Duration::from_secs(3600);
    let before = SystemTime::now() + Duration::from_secs(3600);
    match adf
        .query_activity_runs(factory, &run.run_id, after, before)
        .await
    {
        Ok(activities) => {
            let text = render_failed_activities(&activities);
            if !text.is_empty() {
                out::info(&format!("Failed activities:\n{}", text.trim_end()));
            }
            text
        }
        Err(e) => {
            out::warning(&format!("could not list the run's activities: {e}"));
            String::new()
        }
    }
}

/// A 404 from `createRun` names the input that is wrong: the resource group, the factory
/// or the pipeline (ARM answers `ResourceGroupNotFound` / `ResourceNotFound` for the first
/// two; Data Factory its own 404 for a pipeline it does not have).
fn explain_not_found(error: AdfError, factory: &FactoryRef, pipeline: &str) -> TaskError {
    let AdfError::Api {
        status: 404,
        code,
        message,
        ..
    } = &error
    else {
        return error.into();
    };
    let (subscription, group, name) = (
        &factory.subscription,
        &factory.resource_group,
        &factory.name,
    );
    TaskError::new(match code.as_str() {
        "ResourceGroupNotFound" => format!(
            "input 'Resource group' (resourceGroupName): subscription '{subscription}' has no resource group '{group}' ({message}). Check the name, and the subscription (input subscriptionId, or the service connection's)"
        ),
        "ResourceNotFound" => format!(
            "input 'Data factory' (dataFactoryName): resource group '{group}' has no data factory '{name}' ({message}). Check the name, and that the factory was deployed before this step (e.g. by an ARM deployment of the factory)"
        ),
        _ => format!(
            "input 'Pipeline' (pipelineName): data factory '{name}' has no pipeline '{pipeline}' ({code}: {message}). Check the name, and that the pipeline was published (Data Factory Studio: Publish) or deployed with the factory's ARM template"
        ),
    })
}

/// Runs the task against the agent's environment.
pub async fn run(
    agent: &Agent,
    http: task_sdk::HttpClient,
    cancel: &CancelSignal,
) -> Result<(), TaskError> {
    let inputs = Inputs::from_agent(agent)?;
    run_with(agent, &inputs, http, cancel).await
}

/// [`run`] with inputs already read (tests adjust them, e.g. a timeout in seconds).
pub async fn run_with(
    agent: &Agent,
    inputs: &Inputs,
    http: task_sdk::HttpClient,
    cancel: &CancelSignal,
) -> Result<(), TaskError> {
    let conn = agent.azure_rm(&inputs.connection)?;
    let (subscription, credential) = Credential::for_subscription(
        agent,
        &conn,
        inputs.subscription.as_deref(),
        "subscriptionId",
        &http,
    )?;
    let adf = DataFactory::new(&conn, credential, http)?;
    let factory = FactoryRef {
        subscription,
        resource_group: inputs.resource_group.clone(),
        name: inputs.factory.clone(),
    };
    let started = SystemTime::now();
    out::info(&format!(
        "Starting pipeline '{}' of {factory}.",
        inputs.pipeline
    ));
    let run_id = tokio::select! {
        r = adf.create_run(&factory, &inputs.pipeline, &inputs.parameters) => {
            r.map_err(|e| explain_not_found(e, &factory, &inputs.pipeline))?
        }
        _ = cancel.cancelled() => return Err(TaskError::new("the pipeline was cancelled before the Data Factory run started")),
    };
    out::set_output("runId", &run_id.0, false);
    out::info(&format!("Pipeline run id: {run_id}"));
    if let Some(link) = monitor_link(&conn.environment, &factory, &run_id.0) {
        out::info(&format!("Monitor the run: {link}"));
    }
    if !inputs.wait {
        out::info("Not waiting for the run to end (waitForCompletion is false).");
        return Ok(());
    }
    let wait = RunWaitOptions {
        poll_interval: inputs.poll_interval,
        timeout: inputs.timeout,
    };
    let result = adf
        .wait_run(&factory, &run_id, &wait, cancel.cancelled(), |run| {
            out::info(&describe(run))
        })
        .await;
    let run = match result {
        Ok(run) => run,
        Err(e @ (AdfError::TimedOut { .. } | AdfError::Cancelled { .. })) => {
            out::set_output("runStatus", "Canceling", false);
            return Err(TaskError::new(e.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    out::set_output("runStatus", &run.status.to_string(), false);
    match run.status {
        RunStatus::Succeeded => {
            out::info(&format!("Pipeline '{}' succeeded.", inputs.pipeline));
            Ok(())
        }
        RunStatus::Cancelled => Err(TaskError::new(format!(
            "pipeline run {run_id} of '{}' was cancelled{}",
            inputs.pipeline,
            if run.message.is_empty() {
                String::new()
            } else {
                format!(": {}", run.message)
            }
        ))),
        _ => {
            let activities = failed_activities(&adf, &factory, &run, started).await;
            let mut message = format!(
                "pipeline run {run_id} of '{}' ended {}",
                inputs.pipeline, run.status
            );
            if !run.message.is_empty() {
                message.push_str(&format!(": {}", run.message));
            }
            if !activities.is_empty() {
                message.push_str(&format!("\nFailed activities:\n{}", activities.trim_end()));
            }
            Err(TaskError::new(message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure::ActivityError;

    fn agent(vars: &[(&str, &str)]) -> Agent {
        Agent::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    const BASE: [(&str, &str); 4] = [
        ("INPUT_CONNECTEDSERVICENAME", "c"),
        ("INPUT_RESOURCEGROUPNAME", "rg"),
        ("INPUT_DATAFACTORYNAME", "adf"),
        ("INPUT_PIPELINENAME", "p"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Result<Inputs, TaskError> {
        let mut v = BASE.to_vec();
        v.extend_from_slice(extra);
        Inputs::from_agent(&agent(&v))
    }

    #[test]
    fn inputs_defaults_and_aliases() {
        let i = with(&[]).unwrap();
        assert!(i.wait);
        assert_eq!(i.parameters, serde_json::json!({}));
        assert_eq!(i.timeout, None);
        assert_eq!(i.poll_interval, Duration::from_secs(15));
        let i = Inputs::from_agent(&agent(&[
            ("INPUT_AZURESUBSCRIPTION", "c2"),
            ("INPUT_RESOURCEGROUPNAME", "rg"),
            ("INPUT_FACTORYNAME", "f"),
            ("INPUT_PIPELINENAME", "p"),
            (
                "INPUT_PIPELINEPARAMETERS",
                "{\"data_file_name\": \"x.csv\"}",
            ),
            ("INPUT_WAITFORCOMPLETION", "false"),
            ("INPUT_TIMEOUTINMINUTES", "2"),
        ]))
        .unwrap();
        assert_eq!(i.connection, "c2");
        assert_eq!(i.factory, "f");
        assert_eq!(i.parameters["data_file_name"], "x.csv");
        assert!(!i.wait);
        assert_eq!(i.timeout, Some(Duration::from_secs(120)));
    }

    #[test]
    fn input_errors() {
        let e = with(&[("INPUT_PIPELINEPARAMETERS", "[1]")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("must be a JSON object") && e.contains("array"),
            "{e}"
        );
        let e = with(&[("INPUT_PIPELINEPARAMETERS", "{oops")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid JSON"), "{e}");
        let e = Inputs::from_agent(&agent(&BASE[..3]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'Pipeline' (pipelineName)"), "{e}");
        let e = with(&[("INPUT_POLLINTERVALSECONDS", "0")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("between 1 and 300"), "{e}");
    }

    #[test]
    fn monitor_links() {
        let f = FactoryRef {
            subscription: "s".into(),
            resource_group: "rg".into(),
            name: "adf".into(),
        };
        assert_eq!(
            monitor_link("AzureCloud", &f, "r1").unwrap(),
            "https://adf.azure.com/en/monitoring/pipelineruns/r1?factory=%2Fsubscriptions%2Fs%2FresourceGroups%2Frg%2Fproviders%2FMicrosoft.DataFactory%2Ffactories%2Fadf"
        );
        assert!(monitor_link("AzureUSGovernment", &f, "r1").is_none());
    }

    #[test]
    fn failed_activities_are_rendered() {
        let activities = vec![
            ActivityRun {
                name: "Copy".into(),
                activity_type: "Copy".into(),
                status: "Succeeded".into(),
                error: None,
                duration_ms: Some(5),
            },
            ActivityRun {
                name: "PrepareData".into(),
                activity_type: "DatabricksNotebook".into(),
                status: "Failed".into(),
                error: Some(ActivityError {
                    error_code: "3204".into(),
                    message: "Notebook failed\nline two".into(),
                    failure_type: "UserError".into(),
                }),
                duration_ms: None,
            },
        ];
        assert_eq!(
            render_failed_activities(&activities),
            "  Activity 'PrepareData' (DatabricksNotebook) failed with error 3204, UserError:\n    Notebook failed\n    line two\n"
        );
    }
}
