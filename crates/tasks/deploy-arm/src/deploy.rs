//! The task's flow: resolve the scope, build the deployment, then validate, preview (what-if),
//! deploy and wait, or delete a resource group; report errors with the whole ARM error tree
//! and the failed operations, and outputs as variables.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use azure::{
    Arm, ArmError, ArmErrorTree, Credential, Deployment, DeploymentMode, DeploymentRequest,
    Operation, ParametersSource, Scope, TemplateSource, WaitOptions,
};
use serde_json::{Map, Value};
use task_sdk::http::{Method, Request};
use task_sdk::{out, Agent, AzureAuth, AzureRmConnection, HttpClient, Replay, TaskError};

use crate::artifacts;
use crate::files;
use crate::inputs::{Action, Inputs, Mode, ScopeKind, TemplateInput};
use crate::naming;
use crate::outputs;
use crate::overrides::{self, ServicePrincipal, SpnAccess};
use crate::whatif;
use task_sdk::CancelSignal;

/// The deployment, ready to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub request: DeploymentRequest,
    /// The template's file path or URL, for a generated deployment name.
    pub template_source: String,
    /// The parameters `overrideParameters` set.
    pub overridden: Vec<String>,
    /// The template file, for a template given as a file (its folder is what staging uploads).
    pub template_path: Option<PathBuf>,
}

/// Downloads a template or parameters file for `URL of the file` with overrides (their types
/// come from the template). No credentials are sent: these URLs carry their own SAS token.
/// Redirects (a repository's "raw" link, typically) are followed, to https only.
async fn download(http: &HttpClient, url: &str, what: &'static str) -> Result<Value, TaskError> {
    const MAX_REDIRECTS: usize = 5;
    let shown = url.split('?').next().unwrap_or(url).to_owned();
    let input = match what {
        "template" => "input 'Template link' (csmFileLink)",
        _ => "input 'Template parameters link' (csmParametersFileLink)",
    };
    let failed = |detail: String| {
        TaskError::new(format!(
            "{input}: cannot download the {what} from '{shown}' ({detail}): check the link, that the agent can reach it, and that its SAS token (if any) is valid and not expired"
        ))
    };
    let mut current = url::Url::parse(url).map_err(|e| failed(e.to_string()))?;
    let mut redirects = 0;
    let response = loop {
        let response = http
            .send(
                Request::from_url(Method::GET, current.clone()),
                Replay::Safe,
            )
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status().as_u16();
        let location = response
            .header("location")
            .filter(|_| matches!(status, 301 | 302 | 303 | 307 | 308));
        let Some(location) = location else {
            break response;
        };
        redirects += 1;
        if redirects > MAX_REDIRECTS {
            return Err(failed(format!("more than {MAX_REDIRECTS} redirects")));
        }
        let next = current
            .join(location)
            .map_err(|e| failed(format!("invalid redirect: {e}")))?;
        if !task_sdk::http::is_secure_or_loopback(&next) {
            return Err(failed(
                "it redirects to a plain-http address; use an https link".into(),
            ));
        }
        register_link_secret(next.as_str());
        current = next;
    };
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("HTTP {status}")));
    }
    Ok(files::parse_json_text(
        response.bytes(),
        Path::new(&shown),
        what,
    )?)
}

/// A SAS token in a link is a secret: mask the query before anything could print it.
fn register_link_secret(url: &str) {
    if let Some((_, query)) = url.split_once('?') {
        if !query.is_empty() {
            task_sdk::secrets::register(query);
        }
    }
}

fn service_principal(conn: &AzureRmConnection) -> Option<ServicePrincipal<'_>> {
    match &conn.auth {
        AzureAuth::ServicePrincipalSecret { client_id, secret } => Some(ServicePrincipal {
            id: client_id,
            key: Some(secret),
        }),
        AzureAuth::ServicePrincipalCertificate { client_id, .. }
        | AzureAuth::WorkloadIdentityFederation { client_id, .. } => Some(ServicePrincipal {
            id: client_id,
            key: None,
        }),
        AzureAuth::ManagedIdentity { .. } => None,
    }
}

/// Reads the template and parameters, applies `overrideParameters`, and builds the request.
pub async fn prepare(
    inputs: &Inputs,
    conn: &AzureRmConnection,
    http: &HttpClient,
) -> Result<Prepared, TaskError> {
    let mode = match inputs.mode {
        Mode::Complete => DeploymentMode::Complete,
        Mode::WhatIf if inputs.what_if_complete => DeploymentMode::Complete,
        _ => DeploymentMode::Incremental,
    };
    let spn = if inputs.add_spn_to_environment {
        SpnAccess::On(service_principal(conn))
    } else {
        SpnAccess::Off
    };
    let mut overridden = Vec::new();
    let mut apply =
        |template: &Value, parameters: &mut Map<String, Value>| -> Result<(), TaskError> {
            let applied = overrides::apply(&inputs.overrides, template, parameters, spn)?;
            for w in &applied.warnings {
                out::warning(w);
            }
            overridden = applied.names;
            Ok(())
        };
    let mut template_path = None;
    let (template, parameters, template_source) = match &inputs.template {
        TemplateInput::Files {
            template,
            parameters,
        } => {
            let path = files::find_single_file(&inputs.root, template, "template")?;
            out::info(&format!("Template: {}", path.display()));
            let template_json = files::read_json_file(&path, "template")?;
            if !template_json.is_object() {
                return Err(TaskError::new(format!(
                    "the template '{}' is not a JSON object: is it an ARM template?",
                    path.display()
                )));
            }
            let mut params = Map::new();
            if let Some(pattern) = parameters {
                let ppath = files::find_single_file(&inputs.root, pattern, "parameters file")?;
                out::info(&format!("Parameters file: {}", ppath.display()));
                let file = files::read_json_file(&ppath, "parameters file")?;
                params = overrides::sanitize_parameters(&files::parameters_object(
                    &file,
                    &ppath,
                    "input 'Template parameters' (csmParametersFile)",
                )?);
            }
            apply(&template_json, &mut params)?;
            template_path = Some(path.clone());
            (
                TemplateSource::Inline(template_json),
                ParametersSource::Inline(Value::Object(params)),
                path.display().to_string(),
            )
        }
        TemplateInput::Links {
            template,
            parameters,
        } => {
            register_link_secret(template);
            if let Some(p) = parameters {
                register_link_secret(p);
            }
            if inputs.overrides.trim().is_empty() {
                (
                    TemplateSource::Link(template.clone()),
                    parameters
                        .clone()
                        .map(ParametersSource::Link)
                        .unwrap_or(ParametersSource::None),
                    template.clone(),
                )
            } else {
                // Overrides need the template's parameter types and the file's other values:
                // download both, send the parameters inline (as the Microsoft task does).
                let template_json = download(http, template, "template").await?;
                let mut params = Map::new();
                if let Some(p) = parameters {
                    let file = download(http, p, "parameters file").await?;
                    params = overrides::sanitize_parameters(&files::parameters_object(
                        &file,
                        Path::new(p.split('?').next().unwrap_or(p)),
                        "input 'Template parameters link' (csmParametersFileLink)",
                    )?);
                }
                apply(&template_json, &mut params)?;
                (
                    TemplateSource::Link(template.clone()),
                    ParametersSource::Inline(Value::Object(params)),
                    template.clone(),
                )
            }
        }
    };
    let mut request = DeploymentRequest {
        template,
        parameters,
        mode,
        location: None,
    };
    if inputs.scope != ScopeKind::ResourceGroup {
        if let Some(location) = &inputs.location {
            request = request.with_location(location.clone());
        }
    }
    Ok(Prepared {
        request,
        template_source,
        overridden,
        template_path,
    })
}

fn resolve_scope(inputs: &Inputs, conn: &AzureRmConnection) -> Result<Scope, TaskError> {
    let subscription = || {
        inputs
            .subscription
            .clone()
            .or_else(|| conn.subscription_id.clone())
            .ok_or_else(|| {
                TaskError::new(format!(
                    "no subscription: set the input 'Subscription' (subscriptionName), or use a service connection with a subscription (connection '{}' has none)",
                    conn.id
                ))
            })
    };
    Ok(match inputs.scope {
        ScopeKind::ResourceGroup => Scope::ResourceGroup {
            subscription: subscription()?,
            group: inputs.resource_group.clone().unwrap_or_default(),
        },
        ScopeKind::Subscription => Scope::Subscription {
            subscription: subscription()?,
        },
        ScopeKind::ManagementGroup => Scope::ManagementGroup {
            group: conn.management_group_id.clone().ok_or_else(|| {
                TaskError::new(format!(
                    "deployment scope 'Management Group' needs a service connection at management group scope; connection '{}' names no management group",
                    conn.id
                ))
            })?,
        },
    })
}

fn wait_options(inputs: &Inputs) -> WaitOptions {
    WaitOptions {
        timeout: inputs.timeout,
        ..WaitOptions::default()
    }
}

/// One line for each failed operation: resource type, name, status code and the error tree.
pub fn render_failed_operations(operations: &[Operation]) -> String {
    let mut out = String::new();
    for op in operations.iter().filter(|o| o.failed()) {
        let kind = op.resource_type.as_deref().unwrap_or("(unknown type)");
        let name = op.resource_name.as_deref().unwrap_or("(unnamed)");
        let status = op.status_code.as_deref().unwrap_or("no status code");
        out.push_str(&format!("  {kind} '{name}' failed ({status})"));
        if let Some(id) = &op.resource_id {
            out.push_str(&format!(": {id}"));
        }
        out.push('\n');
        if let Some(tree) = &op.error {
            for line in tree.render().lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}

/// The deployment failed: print its error tree and failed operations, return the task error.
/// The Azure portal's page of a deployment, for the public cloud (other clouds have other
/// portals, and Azure Stack or an emulator none).
pub fn portal_link(environment: &str, deployment_id: &str) -> Option<String> {
    if !environment.eq_ignore_ascii_case("AzureCloud") || deployment_id.is_empty() {
        return None;
    }
    Some(format!(
        "https://portal.azure.com/#blade/HubsExtension/DeploymentDetailsBlade/overview/id/{}",
        deployment_id.replace('/', "%2F")
    ))
}

async fn report_failed(
    arm: &Arm,
    scope: &Scope,
    name: &str,
    deployment: &Deployment,
    environment: &str,
) -> TaskError {
    let tree = deployment.error.clone().unwrap_or_else(|| {
        ArmErrorTree::leaf(
            deployment.provisioning_state.to_string(),
            "the deployment did not succeed and gave no error",
        )
    });
    out::info(&format!(
        "Deployment '{name}' ended {}. Error:\n{}",
        deployment.provisioning_state,
        tree.render()
    ));
    let mut message = format!(
        "deployment '{name}' {}:\n{}",
        match deployment.provisioning_state {
            azure::ProvisioningState::Canceled => "was cancelled".to_owned(),
            ref s => format!("ended {s}"),
        },
        tree.render()
    );
    match arm.list_operations(scope, name).await {
        Ok(ops) => {
            let failed = render_failed_operations(&ops);
            if !failed.is_empty() {
                out::info(&format!("Failed operations:\n{}", failed.trim_end()));
                message.push_str(&format!("\nFailed operations:\n{}", failed.trim_end()));
            }
        }
        Err(e) => out::warning(&format!("could not list the deployment's operations: {e}")),
    }
    append_policy_hint(&mut message, &tree);
    if let Some(link) = portal_link(environment, &deployment.id) {
        out::info(&format!("The deployment in the Azure portal: {link}"));
    }
    TaskError::new(message)
}

fn append_policy_hint(message: &mut String, tree: &ArmErrorTree) {
    let assignments = tree.policy_assignments();
    if !assignments.is_empty() {
        message.push_str(&format!(
            "\nDenied by Azure Policy: assignment {}. Change the template to comply, or ask for an exemption.",
            assignments
                .iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}

/// An ARM call failed: the error (with its whole tree, which ArmError's message holds), and a
/// policy hint when a policy denied it.
fn arm_failure(context: &str, error: ArmError) -> TaskError {
    let mut message = format!("{context}: {error}");
    if let Some(tree) = error.tree() {
        append_policy_hint(&mut message, tree);
    }
    if error.code() == Some("InvalidContentLink") {
        message.push_str("\nAzure Resource Manager could not download the link named above: check the input 'Template link' (csmFileLink) or 'Template parameters link' (csmParametersFileLink), or a linked template's templateLink (built from '_artifactsLocation' and '_artifactsLocationSasToken' when the template's folder is staged). ARM fetches it itself, so it must be reachable from Azure (not only from the agent: no private network or localhost address), the file must exist at that path, and a storage link needs a valid SAS token.");
    }
    TaskError::new(message)
}

fn summary_path(agent: &Agent, name: &str) -> PathBuf {
    let dir = agent
        .variable("Agent.TempDirectory")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    dir.join(format!("deployarm-whatif-{name}.md"))
}

fn write_summary(agent: &Agent, name: &str, markdown: &str) {
    let path = summary_path(agent, name);
    match std::fs::write(&path, task_sdk::secrets::mask(markdown)) {
        Ok(()) => out::upload_summary(&path),
        Err(e) => out::warning(&format!(
            "could not write the what-if summary to '{}': {e}",
            path.display()
        )),
    }
}

/// The resource group before the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Existed,
    /// Created by this run: ARM may not see it everywhere yet.
    Created,
    /// Missing, and not created (what-if).
    Missing,
}

/// A resource group created a moment ago may not be visible to every ARM front end yet
/// (the Microsoft task retries on `ResourceGroupNotFound` too): retry a few times, 3 s apart.
async fn retry_new_group<T, F, Fut>(group: Group, mut call: F) -> Result<T, ArmError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ArmError>>,
{
    let mut retries = 0;
    loop {
        match call().await {
            Err(e)
                if group == Group::Created
                    && retries < 3
                    && e.code() == Some("ResourceGroupNotFound") =>
            {
                retries += 1;
                out::info("The new resource group is not visible to Azure Resource Manager yet; retrying in 3 s.");
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            other => return other,
        }
    }
}

async fn ensure_resource_group(
    arm: &Arm,
    inputs: &Inputs,
    subscription: &str,
    group: &str,
) -> Result<Group, TaskError> {
    out::info(&format!("Checking if the resource group '{group}' exists."));
    let exists = arm
        .resource_group_exists(subscription, group)
        .await
        .map_err(|e| arm_failure("cannot check the resource group", e))?;
    if exists {
        out::info(&format!("Resource group '{group}' exists."));
        return Ok(Group::Existed);
    }
    if inputs.mode == Mode::WhatIf {
        return Ok(Group::Missing);
    }
    let location = inputs.location.as_deref().ok_or_else(|| {
        TaskError::new(format!(
            "the resource group '{group}' does not exist, and input 'Location' (location) is empty: give a location to create it"
        ))
    })?;
    out::info(&format!(
        "Creating resource group '{group}' in '{location}'."
    ));
    arm.create_resource_group(subscription, group, location)
        .await
        .map_err(|e| arm_failure("cannot create the resource group", e))?;
    out::info("Resource group created.");
    Ok(Group::Created)
}

async fn unless_cancelled<T>(
    cancel: &CancelSignal,
    work: impl std::future::Future<Output = Result<T, TaskError>>,
) -> Result<T, TaskError> {
    tokio::select! {
        r = work => r,
        _ = cancel.cancelled() => Err(TaskError::new("the pipeline was cancelled before the deployment started; nothing was deployed")),
    }
}

/// Runs the task against the agent's environment, with `http` for every call.
pub async fn run(agent: &Agent, http: HttpClient, cancel: &CancelSignal) -> Result<(), TaskError> {
    let inputs = Inputs::from_agent(agent)?;
    run_with(agent, &inputs, http, cancel).await
}

/// [`run`] with inputs already read (tests adjust them, e.g. a timeout in seconds).
pub async fn run_with(
    agent: &Agent,
    inputs: &Inputs,
    http: HttpClient,
    cancel: &CancelSignal,
) -> Result<(), TaskError> {
    let conn = agent.azure_rm(&inputs.connection)?;
    let scope = resolve_scope(inputs, &conn)?;
    let credential = Credential::from_agent(agent, &conn, &http)?;
    let arm = Arm::new(&conn, credential.clone(), http.clone())?;
    out::info(&format!("Deployment scope: {scope}"));

    if let (
        ScopeKind::ResourceGroup,
        Action::DeleteResourceGroup,
        Scope::ResourceGroup {
            subscription,
            group,
        },
    ) = (inputs.scope, inputs.action, &scope)
    {
        return unless_cancelled(
            cancel,
            delete_resource_group(&arm, inputs, subscription, group),
        )
        .await;
    }

    // Inputs and files first: a mistake there fails before anything changes in Azure.
    let mut prepared = unless_cancelled(cancel, prepare(inputs, &conn, &http)).await?;
    if !prepared.overridden.is_empty() {
        out::info(&format!(
            "Overridden parameters: {}",
            prepared.overridden.join(", ")
        ));
    }
    let name = match &inputs.deployment_name {
        Some(n) => {
            naming::validate_deployment_name(n)?;
            n.clone()
        }
        None => naming::generate_deployment_name(
            &prepared.template_source,
            SystemTime::now(),
            &naming::unique_suffix(),
        ),
    };
    out::info(&format!("Deployment name: {name}"));
    out::set_output("deploymentName", &name, false);

    // Staging comes before anything changes in Azure Resource Manager.
    if let Some(artifacts) = &inputs.artifacts {
        let stage = stage_artifacts(
            inputs,
            artifacts,
            &mut prepared,
            &name,
            &conn,
            credential,
            &http,
        );
        unless_cancelled(cancel, stage).await?;
    }

    let mut group_state = Group::Existed;
    if let Scope::ResourceGroup {
        subscription,
        group,
    } = &scope
    {
        group_state = unless_cancelled(
            cancel,
            ensure_resource_group(&arm, inputs, subscription, group),
        )
        .await?;
        if group_state == Group::Missing {
            // What-if needs the resource group; creating it would not be a preview.
            let note = format!(
                "The resource group '{group}' does not exist: a deployment would create it (in the location given) and every resource of the template. What-if cannot preview the resources until it exists."
            );
            out::warning(&note);
            write_summary(
                agent,
                &name,
                &format!("## What-if of deployment `{name}`\n\n{note}\n"),
            );
            return Ok(());
        }
    }

    let job = Job {
        agent,
        arm: &arm,
        inputs,
        scope: &scope,
        name: &name,
        prepared: &prepared,
        group: group_state,
        environment: &conn.environment,
    };
    match inputs.mode {
        Mode::Validation => unless_cancelled(cancel, job.validate_only()).await,
        Mode::WhatIf => unless_cancelled(cancel, job.what_if()).await,
        Mode::Incremental | Mode::Complete => job.deploy(cancel).await,
    }
}

/// Uploads the template's folder and passes `_artifactsLocation` and
/// `_artifactsLocationSasToken` (see [`artifacts`]).
async fn stage_artifacts(
    inputs: &Inputs,
    staging: &crate::inputs::Artifacts,
    prepared: &mut Prepared,
    name: &str,
    conn: &AzureRmConnection,
    credential: Credential,
    http: &HttpClient,
) -> Result<(), TaskError> {
    let (Some(path), TemplateSource::Inline(template)) =
        (&prepared.template_path, &prepared.request.template)
    else {
        out::warning("input 'artifactsStorageAccount' applies to a template given as a file (csmFile); a template given by URL must link files that are already reachable: nothing was staged.");
        return Ok(());
    };
    if !artifacts::applies(template) {
        return Ok(());
    }
    // Everything next to the template is uploaded: not the whole working directory (sources,
    // .git, build output) by accident.
    if path.parent() == Some(inputs.root.as_path()) {
        return Err(TaskError::new(format!(
            "input 'artifactsStorageAccount': the template '{}' is at the top of the working directory, so staging its folder would upload the whole working directory: move the template and the files it links into a folder of their own",
            path.display()
        )));
    }
    // A folder per run, so that concurrent runs do not mix: a generated deployment name is
    // already unique; a fixed one gets a suffix.
    let default_prefix = match &inputs.deployment_name {
        Some(_) => format!("{name}-{}", naming::unique_suffix()),
        None => name.to_owned(),
    };
    let staged = artifacts::stage(
        staging,
        path,
        &default_prefix,
        inputs.timeout,
        conn,
        credential,
        http,
    )
    .await?;
    let template = template.clone();
    if let ParametersSource::Inline(Value::Object(parameters)) = &mut prepared.request.parameters {
        artifacts::apply(&template, parameters, &staged);
    }
    Ok(())
}

async fn delete_resource_group(
    arm: &Arm,
    inputs: &Inputs,
    subscription: &str,
    group: &str,
) -> Result<(), TaskError> {
    let exists = arm
        .resource_group_exists(subscription, group)
        .await
        .map_err(|e| arm_failure("cannot check the resource group", e))?;
    if !exists {
        out::warning(&format!(
            "The resource group '{group}' does not exist; nothing to delete."
        ));
        return Ok(());
    }
    out::info(&format!("Deleting resource group '{group}'."));
    arm.delete_resource_group(subscription, group, &wait_options(inputs))
        .await
        .map_err(|e| arm_failure(&format!("could not delete the resource group '{group}'"), e))?;
    out::info(&format!("Deleted resource group '{group}'."));
    Ok(())
}

/// One deployment's context: where, what, and with which client.
struct Job<'a> {
    agent: &'a Agent,
    arm: &'a Arm,
    inputs: &'a Inputs,
    scope: &'a Scope,
    name: &'a str,
    prepared: &'a Prepared,
    group: Group,
    /// The connection's cloud (`AzureCloud`, …), for portal links.
    environment: &'a str,
}

impl Job<'_> {
    async fn validate(&self) -> Result<(), ArmError> {
        retry_new_group(self.group, || {
            self.arm
                .validate(self.scope, self.name, &self.prepared.request)
        })
        .await
    }

    async fn validate_only(&self) -> Result<(), TaskError> {
        out::info("Starting template validation (mode Validation: nothing is deployed).");
        self.validate()
            .await
            .map_err(|e| arm_failure("template validation failed", e))?;
        out::info("Template deployment validation was completed successfully.");
        Ok(())
    }

    async fn what_if(&self) -> Result<(), TaskError> {
        out::info("Starting what-if (nothing is deployed).");
        let wait = wait_options(self.inputs);
        let result = retry_new_group(self.group, || {
            self.arm
                .what_if(self.scope, self.name, &self.prepared.request, &wait)
        })
        .await
        .map_err(|e| arm_failure("what-if failed", e))?;
        let name = self.name;
        out::group(&format!(
            "What-if of deployment '{name}': {}",
            whatif::summary_line(&result)
        ));
        out::info(whatif::render_text(&result).trim_end());
        out::end_group();
        out::info(&format!("What-if: {}.", whatif::summary_line(&result)));
        write_summary(
            self.agent,
            name,
            &whatif::render_markdown(
                &result,
                &format!("What-if of deployment `{name}` at {}", self.scope),
            ),
        );
        Ok(())
    }

    async fn deploy(&self, cancel: &CancelSignal) -> Result<(), TaskError> {
        let (name, inputs) = (self.name, self.inputs);
        unless_cancelled(cancel, async {
            out::info("Starting template validation.");
            self.validate()
                .await
                .map_err(|e| arm_failure("template validation failed; nothing was deployed", e))?;
            out::info("Template deployment validation was completed successfully.");
            Ok(())
        })
        .await?;
        out::info(&format!(
            "Starting deployment '{name}' ({} mode).",
            self.prepared.request.mode.as_str()
        ));
        let started = retry_new_group(self.group, || {
            self.arm.deploy(self.scope, name, &self.prepared.request)
        })
        .await
        .map_err(|e| arm_failure("the deployment could not start", e))?;
        match &inputs.timeout {
            Some(t) => out::info(&format!(
                "Waiting for deployment '{name}' to finish (timeout {} min).",
                t.as_secs() / 60
            )),
            None => out::info(&format!("Waiting for deployment '{name}' to finish.")),
        }
        let started_at = std::time::Instant::now();
        let done = match self
            .arm
            .wait_deployment(&started, &wait_options(inputs), cancel.cancelled())
            .await
        {
            Ok(d) => d,
            Err(e @ (ArmError::TimedOut { .. } | ArmError::Cancelled { .. })) => {
                return Err(TaskError::new(e.to_string()));
            }
            Err(e) => {
                return Err(arm_failure(
                    &format!("waiting for deployment '{name}' failed"),
                    e,
                ))
            }
        };
        if !done.succeeded() {
            return Err(report_failed(self.arm, self.scope, name, &done, self.environment).await);
        }
        out::info(&format!(
            "Successfully deployed the template in {}.",
            human_duration(started_at.elapsed())
        ));
        if let (Some(prefix), Some(outputs)) = (&inputs.outputs_prefix, &done.outputs) {
            for var in outputs::output_variables(prefix, outputs, inputs.use_without_json) {
                out::set_variable(&var.name, &var.value, var.secret);
            }
            out::info(&format!(
                "Updated variable '{prefix}' with the deployment's outputs (and '{prefix}.<output>.value' for each)."
            ));
        }
        Ok(())
    }
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{}.{} s", s, d.subsec_millis() / 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_links_only_for_the_public_cloud() {
        let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Resources/deployments/d";
        assert_eq!(
            portal_link("AzureCloud", id).unwrap(),
            "https://portal.azure.com/#blade/HubsExtension/DeploymentDetailsBlade/overview/id/%2Fsubscriptions%2Fs%2FresourceGroups%2Frg%2Fproviders%2FMicrosoft.Resources%2Fdeployments%2Fd"
        );
        assert!(portal_link("AzureStack", id).is_none());
        assert!(portal_link("AzureCloud", "").is_none());
    }

    #[test]
    fn failed_operations_name_type_resource_status_and_error() {
        let op = |state: &str, error: Option<ArmErrorTree>| Operation {
            operation_id: "1".into(),
            provisioning_operation: Some("Create".into()),
            provisioning_state: state.into(),
            status_code: Some("Conflict".into()),
            resource_type: Some("Microsoft.Storage/storageAccounts".into()),
            resource_name: Some("st1".into()),
            resource_id: None,
            error,
            timestamp: None,
            duration: None,
        };
        let mut inner = ArmErrorTree::leaf("Outer", "outer message");
        inner
            .details
            .push(ArmErrorTree::leaf("Inner", "the real cause"));
        let text = render_failed_operations(&[op("Succeeded", None), op("Failed", Some(inner))]);
        assert_eq!(
            text,
            "  Microsoft.Storage/storageAccounts 'st1' failed (Conflict)\n    Outer: outer message\n      Inner: the real cause\n"
        );
    }
}
