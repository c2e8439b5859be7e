//! Azure Resource Manager: resource groups, template deployments at resource group,
//! subscription and management group scope (validate, create, poll, operations, what-if,
//! cancel), and plain resources (GET/PUT/DELETE by id).
//!
//! Long-running work advances when it is polled, not by wall-clock time: a deployment is
//! `Accepted` when created, `Running` after its first poll and finishes on poll number
//! `operation_steps`. Tests are deterministic and as fast as their client's polling.

use axum::http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::{
    clock,
    http::{arm_error, empty, json as json_reply, Reply, Req},
    state::{PolledResult, State},
    template::{self, ArmError, Plan, ScopeInfo},
    Shared,
};

pub const API_VERSION: &str = "2021-04-01";

/// Where a deployment runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    ResourceGroup(String),
    Subscription,
    ManagementGroup(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Accepted,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "Accepted",
            Status::Running => "Running",
            Status::Succeeded => "Succeeded",
            Status::Failed => "Failed",
            Status::Canceled => "Canceled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Canceled)
    }
}

/// A template deployment and its progress.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    pub location: Option<String>,
    pub mode: String,
    pub template: Value,
    pub plan: Plan,
    pub status: Status,
    pub polls: u32,
    pub steps: u32,
    pub error: Option<Value>,
    pub operations: Vec<Value>,
    pub output_resources: Vec<String>,
    pub start_ms: u64,
    pub end_ms: Option<u64>,
    pub correlation_id: String,
}

impl Deployment {
    pub fn to_json(&self) -> Value {
        let end = self.end_ms.unwrap_or_else(clock::now_ms);
        let mut properties = json!({
            "templateHash": self.plan.template_hash,
            "parameters": self.plan.parameters_echo,
            "mode": self.mode,
            "provisioningState": self.status.as_str(),
            "timestamp": clock::iso(self.end_ms.unwrap_or(self.start_ms)),
            "duration": clock::duration(end.saturating_sub(self.start_ms)),
            "correlationId": self.correlation_id,
            "providers": [],
            "dependencies": [],
            "outputResources": self.output_resources.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
        });
        if self.status == Status::Succeeded {
            properties["outputs"] = Value::Object(self.plan.outputs.clone());
        }
        if let Some(error) = &self.error {
            properties["error"] = error.clone();
        }
        let mut body = json!({
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Resources/deployments",
            "properties": properties,
        });
        if let Some(location) = &self.location {
            body["location"] = json!(location);
        }
        body
    }
}

fn operation_id() -> String {
    (0..20)
        .map(|_| char::from(b'0' + fastrand::u8(0..10)))
        .collect()
}

fn retry_after(shared: &Shared) -> String {
    shared.opts.async_retry_after_secs.to_string()
}

/// The dispatcher for every path under `/subscriptions/…` and `/providers/Microsoft.Management/…`.
pub fn handle(shared: &Shared, req: &Req) -> Reply {
    if let Err(reply) = crate::entra::check_arm_bearer(shared, req) {
        return reply;
    }
    if req.query("api-version").is_none() {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    let segs: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    let is = |i: usize, lit: &str| req.seg_is(i, lit);
    if is(0, "providers")
        && is(1, "Microsoft.Management")
        && is(2, "managementGroups")
        && segs.len() >= 4
    {
        let mg = segs[3];
        if !mg.eq_ignore_ascii_case(&shared.opts.management_group_id) {
            return arm_error(
                StatusCode::NOT_FOUND,
                "ManagementGroupNotFound",
                &format!("The management group '{mg}' could not be found."),
            );
        }
        if is(4, "providers") && is(5, "Microsoft.Resources") {
            if is(6, "deployments") && segs.len() >= 8 {
                return deployment(
                    shared,
                    req,
                    Scope::ManagementGroup(mg.to_string()),
                    segs[7],
                    &segs[8..],
                );
            }
            if is(6, "operationResults") && segs.len() == 8 {
                return polled_result(shared, req, segs[7]);
            }
        }
        return not_found_path(req);
    }
    if !(is(0, "subscriptions") && segs.len() >= 2) {
        return not_found_path(req);
    }
    let sub = segs[1];
    if !sub.eq_ignore_ascii_case(&shared.opts.subscription_id) {
        return arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{sub}' could not be found."),
        );
    }
    let rest = &segs[2..];
    let is = |i: usize, lit: &str| req.seg_is(i + 2, lit);
    match rest.len() {
        0 if req.method == Method::GET => {
            return json_reply(
                StatusCode::OK,
                json!({
                    "id": format!("/subscriptions/{}", shared.opts.subscription_id),
                    "subscriptionId": shared.opts.subscription_id,
                    "displayName": shared.opts.subscription_name,
                    "state": "Enabled",
                    "tenantId": shared.opts.tenant_id,
                }),
            )
        }
        1 if is(0, "resourcegroups") && req.method == Method::GET => {
            return list_resource_groups(shared)
        }
        2 if is(0, "resourcegroups") => return resource_group(shared, req, rest[1]),
        _ => {}
    }
    if is(0, "resourcegroups")
        && is(2, "providers")
        && is(3, "Microsoft.Resources")
        && is(4, "deployments")
        && rest.len() == 5
        && req.method == Method::GET
    {
        return list_deployments(shared, Some(rest[1]));
    }
    if is(0, "providers")
        && is(1, "Microsoft.Resources")
        && is(2, "deployments")
        && rest.len() == 3
        && req.method == Method::GET
    {
        return list_deployments(shared, None);
    }
    // Deployment operations also answer without `providers/Microsoft.Resources` at resource
    // group scope: the path the REST specs (and so the official SDKs) use.
    if is(0, "resourcegroups")
        && is(2, "deployments")
        && is(4, "operations")
        && (5..=6).contains(&rest.len())
        && req.method == Method::GET
    {
        return deployment(
            shared,
            req,
            Scope::ResourceGroup(rest[1].to_string()),
            rest[3],
            &rest[4..],
        );
    }
    if is(0, "resourcegroups") && is(2, "providers") && rest.len() == 5 {
        // A resource group's resources of one type (e.g. its data factories).
        return resource(shared, req, rest[1], &rest[3..]);
    }
    if is(0, "resourcegroups") && is(2, "providers") && rest.len() >= 6 {
        let rg = rest[1];
        if is(3, "Microsoft.Resources") && is(4, "deployments") {
            return deployment(
                shared,
                req,
                Scope::ResourceGroup(rg.to_string()),
                rest[5],
                &rest[6..],
            );
        }
        if is(3, "Microsoft.DataFactory")
            && is(4, "factories")
            && crate::adf::is_factory_action(&rest[6..])
        {
            return crate::adf::handle(shared, req, rg, rest[5], &rest[6..]);
        }
        return resource(shared, req, rg, &rest[3..]);
    }
    if is(0, "providers") && is(1, "Microsoft.Resources") {
        if is(2, "deployments") && rest.len() >= 4 {
            return deployment(shared, req, Scope::Subscription, rest[3], &rest[4..]);
        }
        if is(2, "operationResults") && rest.len() == 4 {
            return polled_result(shared, req, rest[3]);
        }
    }
    not_found_path(req)
}

/// `GET …/deployments`: the deployments of a resource group, or of the subscription itself.
fn list_deployments(shared: &Shared, rg: Option<&str>) -> Reply {
    let state = shared.lock();
    if let Some(rg) = rg {
        if !state.resource_groups.contains_key(&rg.to_ascii_lowercase()) {
            return rg_not_found(rg);
        }
    }
    let wanted = match rg {
        Some(rg) => Scope::ResourceGroup(rg.to_ascii_lowercase()),
        None => Scope::Subscription,
    };
    let value: Vec<Value> = state
        .deployments
        .values()
        .filter(|d| match &d.scope {
            Scope::ResourceGroup(name) => Scope::ResourceGroup(name.to_ascii_lowercase()) == wanted,
            other => *other == wanted,
        })
        .map(Deployment::to_json)
        .collect();
    json_reply(StatusCode::OK, json!({ "value": value }))
}

fn not_found_path(req: &Req) -> Reply {
    arm_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("The emulator does not serve '{} {}'.", req.method, req.path),
    )
}

pub fn rg_not_found(rg: &str) -> Reply {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceGroupNotFound",
        &format!("Resource group '{rg}' could not be found."),
    )
}

pub fn resource_group_json(
    shared: &Shared,
    name: &str,
    location: &str,
    tags: Option<&Value>,
) -> Value {
    let mut rg = json!({
        "id": format!("/subscriptions/{}/resourceGroups/{name}", shared.opts.subscription_id),
        "name": name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": location,
        "properties": {"provisioningState": "Succeeded"},
    });
    if let Some(tags) = tags.filter(|t| t.is_object()) {
        rg["tags"] = tags.clone();
    }
    rg
}

fn list_resource_groups(shared: &Shared) -> Reply {
    let state = shared.lock();
    json_reply(
        StatusCode::OK,
        json!({"value": state.resource_groups.values().collect::<Vec<_>>()}),
    )
}

fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'))
}

fn resource_group(shared: &Shared, req: &Req, rg: &str) -> Reply {
    let key = rg.to_ascii_lowercase();
    let mut state = shared.lock();
    match req.method {
        Method::HEAD => {
            if state.resource_groups.contains_key(&key) {
                empty(StatusCode::NO_CONTENT)
            } else {
                empty(StatusCode::NOT_FOUND)
            }
        }
        Method::GET => match state.resource_groups.get(&key) {
            Some(v) => json_reply(StatusCode::OK, v.clone()),
            None => rg_not_found(rg),
        },
        Method::PUT => {
            let body = match req.json() {
                Ok(b) => b,
                Err(reply) => return reply,
            };
            if !valid_name(rg, 90) || rg.ends_with('.') {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidResourceGroup",
                    &format!("The provided resource group name '{rg}' has these invalid characters: '{}'. The name can only be a letter, digit, '-', '.', '(', ')' or '_'.", rg.chars().filter(|c| !(c.is_alphanumeric() || "-_.()".contains(*c))).collect::<String>()),
                );
            }
            let Some(location) = body
                .get("location")
                .and_then(Value::as_str)
                .filter(|l| !l.is_empty())
            else {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "LocationRequired",
                    "The location property is required for this definition.",
                );
            };
            if let Some(existing) = state.resource_groups.get_mut(&key) {
                let existing_location = existing["location"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if !existing_location.eq_ignore_ascii_case(location) {
                    return arm_error(
                        StatusCode::CONFLICT,
                        "InvalidResourceGroupLocation",
                        &format!("Invalid resource group location '{location}'. The Resource group already exists in location '{existing_location}'."),
                    );
                }
                if let Some(tags) = body.get("tags") {
                    existing["tags"] = tags.clone();
                }
                return json_reply(StatusCode::OK, existing.clone());
            }
            let value = resource_group_json(shared, rg, location, body.get("tags"));
            state.resource_groups.insert(key, value.clone());
            json_reply(StatusCode::CREATED, value)
        }
        Method::DELETE => {
            if state.resource_groups.remove(&key).is_none() {
                return rg_not_found(rg);
            }
            let prefix = format!(
                "/subscriptions/{}/resourcegroups/{key}/",
                shared.opts.subscription_id.to_ascii_lowercase()
            );
            state.resources.retain(|id, _| !id.starts_with(&prefix));
            state.deployments.retain(|id, _| !id.starts_with(&prefix));
            let op = operation_id();
            state.polled_results.insert(
                op.clone(),
                PolledResult {
                    polls: 0,
                    steps: shared.opts.operation_steps,
                    result: Value::Null,
                },
            );
            empty(StatusCode::ACCEPTED)
                .header(
                    "Location",
                    format!(
                        "{}/subscriptions/{}/providers/Microsoft.Resources/operationResults/{op}?api-version={API_VERSION}",
                        shared.url, shared.opts.subscription_id
                    ),
                )
                .header("Retry-After", retry_after(shared))
        }
        _ => arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The method is not allowed on resource groups.",
        ),
    }
}

/// `GET …/providers/Microsoft.Resources/operationResults/{id}`: 202 until done, then 200.
fn polled_result(shared: &Shared, req: &Req, op: &str) -> Reply {
    let mut state = shared.lock();
    let Some(entry) = state.polled_results.get_mut(op) else {
        return arm_error(
            StatusCode::NOT_FOUND,
            "OperationNotFound",
            &format!("The operation '{op}' could not be found."),
        );
    };
    entry.polls += 1;
    if entry.polls < entry.steps {
        let location = format!("{}{}?{}", shared.url, req.path, format_query(req));
        return empty(StatusCode::ACCEPTED)
            .header("Location", location)
            .header("Retry-After", retry_after(shared));
    }
    match &entry.result {
        Value::Null => empty(StatusCode::OK),
        result => json_reply(StatusCode::OK, result.clone()),
    }
}

fn format_query(req: &Req) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(req.query.iter())
        .finish()
}

/// Resource-group scope paths use the resource group's stored name; the key is lower case.
fn deployment_id(shared: &Shared, scope: &Scope, name: &str) -> String {
    match scope {
        Scope::ResourceGroup(rg) => format!(
            "/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Resources/deployments/{name}",
            shared.opts.subscription_id
        ),
        Scope::Subscription => format!(
            "/subscriptions/{}/providers/Microsoft.Resources/deployments/{name}",
            shared.opts.subscription_id
        ),
        Scope::ManagementGroup(mg) => format!(
            "/providers/Microsoft.Management/managementGroups/{mg}/providers/Microsoft.Resources/deployments/{name}"
        ),
    }
}

fn scope_prefix(shared: &Shared, scope: &Scope) -> String {
    match scope {
        Scope::ManagementGroup(mg) => {
            format!("/providers/Microsoft.Management/managementGroups/{mg}")
        }
        _ => format!("/subscriptions/{}", shared.opts.subscription_id),
    }
}

fn deployment(shared: &Shared, req: &Req, scope: Scope, name: &str, tail: &[&str]) -> Reply {
    let mut state = shared.lock();
    // Resource-group scope needs the group; use its stored spelling in ids.
    let scope = match scope {
        Scope::ResourceGroup(rg) => match state.resource_groups.get(&rg.to_ascii_lowercase()) {
            Some(v) => Scope::ResourceGroup(v["name"].as_str().unwrap_or(&rg).to_string()),
            None => return rg_not_found(&rg),
        },
        other => other,
    };
    let id = deployment_id(shared, &scope, name);
    let key = id.to_ascii_lowercase();
    let tail_is = |i: usize, lit: &str| tail.get(i).is_some_and(|s| s.eq_ignore_ascii_case(lit));
    match (&req.method, tail.len()) {
        (&Method::PUT, 0) => create_deployment(shared, &mut state, req, scope, name, id),
        (&Method::GET, 0) => match state.deployments.get_mut(&key) {
            Some(_) => {
                advance(shared, &mut state, &key);
                json_reply(StatusCode::OK, state.deployments[&key].to_json())
            }
            None => deployment_not_found(name),
        },
        (&Method::HEAD, 0) => empty(if state.deployments.contains_key(&key) {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::NOT_FOUND
        }),
        (&Method::DELETE, 0) => match state.deployments.get(&key) {
            Some(d) if !d.status.is_terminal() => deployment_active(d),
            Some(_) => {
                state.deployments.remove(&key);
                empty(StatusCode::NO_CONTENT)
            }
            None => empty(StatusCode::NO_CONTENT),
        },
        (&Method::POST, 1) if tail_is(0, "validate") => {
            let request = match parse_request(req, &scope) {
                Ok(r) => r,
                Err(reply) => return reply,
            };
            match plan_for(shared, &state, &scope, name, &request, &req.links) {
                Ok(plan) => json_reply(
                    StatusCode::OK,
                    json!({
                        "id": id,
                        "name": name,
                        "type": "Microsoft.Resources/deployments",
                        "properties": {
                            "templateHash": plan.template_hash,
                            "parameters": plan.parameters_echo,
                            "mode": request.mode,
                            "provisioningState": "Succeeded",
                            "timestamp": clock::iso(clock::now_ms()),
                            "duration": "PT0S",
                            "correlationId": clock::guid(),
                            "providers": [],
                            "dependencies": [],
                            "validatedResources": plan.resources.iter().map(|r| json!({"id": r.id})).collect::<Vec<_>>(),
                        }
                    }),
                ),
                Err(e) => e.reply(),
            }
        }
        (&Method::POST, 1) if tail_is(0, "whatIf") => what_if(shared, &mut state, req, &scope, name),
        (&Method::POST, 1) if tail_is(0, "cancel") => match state.deployments.get_mut(&key) {
            Some(d) if !d.status.is_terminal() => {
                d.status = Status::Canceled;
                d.end_ms = Some(clock::now_ms());
                empty(StatusCode::NO_CONTENT)
            }
            Some(d) => arm_error(
                StatusCode::CONFLICT,
                "DeploymentCannotBeCancelled",
                &format!(
                    "The deployment '{name}' cannot be cancelled because its provisioning state is '{}'. Only deployments in 'Accepted' or 'Running' state can be cancelled.",
                    d.status.as_str()
                ),
            ),
            None => deployment_not_found(name),
        },
        (&Method::POST, 1) if tail_is(0, "exportTemplate") => match state.deployments.get(&key) {
            Some(d) => json_reply(StatusCode::OK, json!({"template": d.template})),
            None => deployment_not_found(name),
        },
        (&Method::GET, 1) if tail_is(0, "operations") => match state.deployments.get(&key) {
            Some(d) => list_operations(shared, req, d),
            None => deployment_not_found(name),
        },
        (&Method::GET, 2) if tail_is(0, "operations") => match state.deployments.get(&key) {
            Some(d) => match operations_of(d).into_iter().find(|op| op["operationId"] == json!(tail[1])) {
                Some(op) => json_reply(StatusCode::OK, op),
                None => arm_error(
                    StatusCode::NOT_FOUND,
                    "DeploymentOperationNotFound",
                    &format!("Deployment operation '{}' could not be found.", tail[1]),
                ),
            },
            None => deployment_not_found(name),
        },
        (&Method::GET, 2) if tail_is(0, "operationStatuses") => {
            if !state.deployments.contains_key(&key) {
                return deployment_not_found(name);
            }
            advance(shared, &mut state, &key);
            let d = &state.deployments[&key];
            let mut body = json!({"status": d.status.as_str()});
            if let Some(error) = &d.error {
                body["error"] = error.clone();
            }
            let mut reply = json_reply(StatusCode::OK, body);
            if !d.status.is_terminal() {
                reply = reply.header("Retry-After", retry_after(shared));
            }
            reply
        }
        _ => not_found_path(req),
    }
}

fn deployment_not_found(name: &str) -> Reply {
    arm_error(
        StatusCode::NOT_FOUND,
        "DeploymentNotFound",
        &format!("Deployment '{name}' could not be found."),
    )
}

fn deployment_active(d: &Deployment) -> Reply {
    arm_error(
        StatusCode::CONFLICT,
        "DeploymentActive",
        &format!(
            "Unable to edit or replace deployment '{}': previous deployment from '{}' is still active (expiration time is '{}'). Please see https://aka.ms/arm-deploy for usage details.",
            d.name,
            clock::iso(d.start_ms),
            clock::iso(d.start_ms + 14 * 86_400_000)
        ),
    )
}

/// What a deployment request carries, whatever the call (PUT, validate, what-if).
struct DeploymentRequest {
    location: Option<String>,
    mode: String,
    template: Value,
    parameters: Value,
    /// `templateLink.uri`, which `deployment()` shows.
    template_link: Option<String>,
}

fn parse_request(req: &Req, scope: &Scope) -> Result<DeploymentRequest, Reply> {
    let body = req.json()?;
    let Some(properties) = body.get("properties").filter(|p| p.is_object()) else {
        return Err(arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: 'Required property 'properties' not found in JSON. Path '', line 1, position 1.'.",
        ));
    };
    let location = body
        .get("location")
        .and_then(Value::as_str)
        .map(str::to_string);
    if !matches!(scope, Scope::ResourceGroup(_)) && location.is_none() {
        return Err(arm_error(
            StatusCode::BAD_REQUEST,
            "LocationRequired",
            "The location property is required for this definition.",
        ));
    }
    let mode = match properties.get("mode").and_then(Value::as_str) {
        Some(m) if m.eq_ignore_ascii_case("Incremental") => "Incremental".to_string(),
        Some(m) if m.eq_ignore_ascii_case("Complete") => "Complete".to_string(),
        Some(m) => {
            return Err(arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                &format!("The request content was invalid and could not be deserialized: 'Error converting value \"{m}\" to type 'Microsoft.WindowsAzure.ResourceStack.Frontdoor.Data.Definitions.DeploymentMode'. Path 'properties.mode'.'."),
            ))
        }
        None => {
            return Err(arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: 'Required property 'mode' not found in JSON. Path 'properties'.'.",
            ))
        }
    };
    if mode == "Complete" && !matches!(scope, Scope::ResourceGroup(_)) {
        return Err(arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidDeploymentMode",
            "The deployment mode 'Complete' is not supported for deployments at this scope. Please see https://aka.ms/arm-deployment-modes for usage details.",
        ));
    }
    // Links are fetched as ARM fetches them (from loopback addresses only: see `links`).
    let link = |name: &str| {
        properties
            .get(name)
            .and_then(|l| l.get("uri"))
            .and_then(Value::as_str)
            .map(|uri| req.links.document(uri).map_err(|e| e.reply()))
    };
    let parameters = match link("parametersLink") {
        Some(doc) => doc?.get("parameters").cloned().unwrap_or(Value::Null),
        None => properties.get("parameters").cloned().unwrap_or(Value::Null),
    };
    let linked = link("templateLink").transpose()?;
    let Some(template) = linked.or_else(|| properties.get("template").cloned()) else {
        return Err(arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: the deployment must contain either 'template' or 'templateLink'.",
        ));
    };
    let template_link = properties["templateLink"]["uri"]
        .as_str()
        .map(str::to_owned);
    Ok(DeploymentRequest {
        location,
        mode,
        template,
        parameters,
        template_link,
    })
}

fn plan_for(
    shared: &Shared,
    state: &State,
    scope: &Scope,
    name: &str,
    request: &DeploymentRequest,
    links: &crate::links::Links,
) -> Result<Plan, ArmError> {
    let resource_group = match scope {
        Scope::ResourceGroup(rg) => state
            .resource_groups
            .get(&rg.to_ascii_lowercase())
            .map(|v| {
                (
                    rg.clone(),
                    v["location"].as_str().unwrap_or_default().to_string(),
                )
            }),
        _ => None,
    };
    let info = ScopeInfo {
        tenant_id: shared.opts.tenant_id.clone(),
        subscription_id: shared.opts.subscription_id.clone(),
        subscription_name: shared.opts.subscription_name.clone(),
        resource_group,
        management_group: match scope {
            Scope::ManagementGroup(mg) => Some(mg.clone()),
            _ => None,
        },
        deployment_name: name.to_string(),
    };
    template::plan(
        &request.template,
        &request.parameters,
        &info,
        links,
        request.template_link.as_deref(),
    )
}

fn create_deployment(
    shared: &Shared,
    state: &mut State,
    req: &Req,
    scope: Scope,
    name: &str,
    id: String,
) -> Reply {
    if !valid_name(name, 64) {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidDeploymentName",
            &format!("The deployment name '{name}' is invalid. It can only contain alphanumeric characters, '-', '.', '_', '(' or ')', and be at most 64 characters long."),
        );
    }
    let request = match parse_request(req, &scope) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let key = id.to_ascii_lowercase();
    let replaced = match state.deployments.get(&key) {
        Some(d) if !d.status.is_terminal() => return deployment_active(d),
        Some(_) => true,
        None => false,
    };
    let plan = match plan_for(shared, state, &scope, name, &request, &req.links) {
        Ok(p) => p,
        Err(e) => return e.reply(),
    };
    let op = operation_id();
    let deployment = Deployment {
        id: id.clone(),
        name: name.to_string(),
        scope,
        location: request.location,
        mode: request.mode,
        template: request.template,
        plan,
        status: Status::Accepted,
        polls: 0,
        steps: shared.opts.operation_steps,
        error: None,
        operations: Vec::new(),
        output_resources: Vec::new(),
        start_ms: clock::now_ms(),
        end_ms: None,
        // ARM records the client's correlation id, when it sends one, as the deployment's.
        correlation_id: req
            .header("x-ms-correlation-request-id")
            .filter(|c| !c.is_empty())
            .map_or_else(clock::guid, str::to_owned),
    };
    state.deployments.insert(key.clone(), deployment);
    state.deployments_started += 1;
    state.deployment_operations.insert(op.clone(), key.clone());
    if shared.opts.operation_steps == 0 {
        complete(shared, state, &key);
    }
    let body = state.deployments[&key].to_json();
    json_reply(
        if replaced {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        body,
    )
    .header(
        "Azure-AsyncOperation",
        format!(
            "{}{id}/operationStatuses/{op}?api-version={API_VERSION}",
            shared.url
        ),
    )
    .header("Retry-After", retry_after(shared))
}

/// One poll of a deployment: `Accepted` → `Running` → done on poll `steps`.
fn advance(shared: &Shared, state: &mut State, key: &str) {
    let Some(d) = state.deployments.get_mut(key) else {
        return;
    };
    if d.status.is_terminal() {
        return;
    }
    d.polls += 1;
    if d.polls >= d.steps {
        complete(shared, state, key);
    } else {
        d.status = Status::Running;
    }
}

fn operation(
    d: &Deployment,
    target: Option<(&str, &str, &str)>,
    state: &str,
    status_code: Option<&str>,
    error: Option<&Value>,
    operation: &str,
) -> Value {
    let op = operation_id();
    let now = clock::now_ms();
    let mut properties = json!({
        "provisioningOperation": operation,
        "provisioningState": state,
        "timestamp": clock::iso(now),
        "duration": clock::duration(now.saturating_sub(d.start_ms)),
        "trackingId": clock::guid(),
        "serviceRequestId": clock::guid(),
    });
    if let Some(code) = status_code {
        properties["statusCode"] = json!(code);
        properties["statusMessage"] = match error {
            Some(e) => json!({"status": "Failed", "error": e}),
            None => json!({"status": state}),
        };
    }
    if let Some((id, resource_type, name)) = target {
        properties["targetResource"] =
            json!({"id": id, "resourceType": resource_type, "resourceName": name});
    }
    json!({
        "id": format!("{}/operations/{op}", d.id),
        "operationId": op,
        "properties": properties,
    })
}

/// Finishes a deployment: applies its resources in order until one fails.
fn complete(shared: &Shared, state: &mut State, key: &str) {
    let Some(mut d) = state.deployments.remove(key) else {
        return;
    };
    let mut failure = None;
    let mut operations = Vec::new();
    for r in &d.plan.resources {
        let target = Some((r.id.as_str(), r.resource_type.as_str(), r.name.as_str()));
        if let Some(nested) = &r.nested {
            // A linked deployment is a deployment of its own, finished before the next
            // resource; its failure fails this one with the nested error tree.
            let (existed, result) = run_nested(shared, state, &d, &r.id, nested);
            let code = if existed { "OK" } else { "Created" };
            match result {
                Ok(()) => {
                    d.output_resources.push(r.id.clone());
                    operations.push(operation(
                        &d,
                        target,
                        "Succeeded",
                        Some(code),
                        None,
                        "Create",
                    ));
                    continue;
                }
                Err(error) => {
                    operations.push(operation(
                        &d,
                        target,
                        "Failed",
                        Some("Conflict"),
                        Some(&error),
                        "Create",
                    ));
                    failure = Some(error);
                    break;
                }
            }
        }
        if let Some(error) = &r.failure {
            operations.push(operation(
                &d,
                target,
                "Failed",
                Some(&r.failure_status),
                Some(error),
                "Create",
            ));
            failure = Some(error.clone());
            break;
        }
        let rid = r.id.to_ascii_lowercase();
        // Data Factory refuses a template's change to a started trigger, as to a PUT: the
        // reason Microsoft's pre-deployment script stops triggers.
        let started_trigger = r
            .resource_type
            .eq_ignore_ascii_case("Microsoft.DataFactory/factories/triggers")
            && state
                .resources
                .get(&rid)
                .is_some_and(|t| t["properties"]["runtimeState"] == "Started");
        if started_trigger {
            let error = json!({
                "code": "TriggerEnabledCannotUpdate",
                "message": "Cannot update enabled Trigger; the trigger needs to be disabled first. ",
            });
            operations.push(operation(
                &d,
                target,
                "Failed",
                Some("BadRequest"),
                Some(&error),
                "Create",
            ));
            failure = Some(error);
            break;
        }
        let existed;
        if r.resource_type
            .eq_ignore_ascii_case("Microsoft.Resources/resourceGroups")
            && d.scope == Scope::Subscription
        {
            let rg_key = r.name.to_ascii_lowercase();
            existed = state.resource_groups.contains_key(&rg_key);
            if !existed {
                let location = r
                    .body
                    .get("location")
                    .and_then(Value::as_str)
                    .unwrap_or("westeurope");
                let value = resource_group_json(shared, &r.name, location, r.body.get("tags"));
                state.resource_groups.insert(rg_key, value);
            }
        } else {
            let body = if crate::adf::is_adf_type(&r.resource_type) {
                let existing = state.resources.get(&rid);
                let mut stored = crate::adf::stored(&r.id, &r.resource_type, &r.body, existing);
                if r.resource_type
                    .eq_ignore_ascii_case("Microsoft.DataFactory/factories/triggers")
                {
                    // `runtimeState` is read-only: a deployed trigger is stopped.
                    stored["properties"]["runtimeState"] = json!("Stopped");
                }
                stored
            } else {
                r.body.clone()
            };
            existed = state.resources.insert(rid, body).is_some();
        }
        d.output_resources.push(r.id.clone());
        let code = if existed { "OK" } else { "Created" };
        operations.push(operation(
            &d,
            target,
            "Succeeded",
            Some(code),
            None,
            "Create",
        ));
    }
    match failure {
        Some(error) => {
            d.status = Status::Failed;
            d.error = Some(json!({
                "code": "DeploymentFailed",
                "target": d.id,
                "message": "At least one resource deployment operation failed. Please list deployment operations for details. Please see https://aka.ms/arm-deployment-operations for usage details.",
                "details": [error],
            }));
        }
        None => {
            if d.mode == "Complete" {
                if let Scope::ResourceGroup(rg) = &d.scope {
                    let prefix = format!(
                        "/subscriptions/{}/resourcegroups/{}/",
                        shared.opts.subscription_id.to_ascii_lowercase(),
                        rg.to_ascii_lowercase()
                    );
                    let keep: Vec<String> = d
                        .plan
                        .flat_resources()
                        .iter()
                        .map(|r| r.id.to_ascii_lowercase())
                        .collect();
                    state
                        .resources
                        .retain(|id, _| !id.starts_with(&prefix) || keep.contains(id));
                }
            }
            if !d.plan.outputs.is_empty() {
                operations.push(operation(
                    &d,
                    None,
                    "Succeeded",
                    Some("OK"),
                    None,
                    "EvaluateDeploymentOutput",
                ));
            }
            d.status = Status::Succeeded;
        }
    }
    d.operations = operations;
    d.end_ms = Some(clock::now_ms());
    state.deployments.insert(key.to_string(), d);
}

/// Deploys a linked deployment planned in `parent` as a deployment named after its resource,
/// to the end. Returns whether it replaced one, and its error if it failed.
fn run_nested(
    shared: &Shared,
    state: &mut State,
    parent: &Deployment,
    id: &str,
    nested: &template::Nested,
) -> (bool, Result<(), Value>) {
    let key = id.to_ascii_lowercase();
    let deployment = Deployment {
        id: id.to_owned(),
        name: nested.name.clone(),
        scope: parent.scope.clone(),
        location: parent.location.clone(),
        mode: nested.mode.clone(),
        template: nested.template.clone(),
        plan: nested.plan.clone(),
        status: Status::Accepted,
        polls: 0,
        steps: 0,
        error: None,
        operations: Vec::new(),
        output_resources: Vec::new(),
        start_ms: clock::now_ms(),
        end_ms: None,
        correlation_id: parent.correlation_id.clone(),
    };
    let existed = state.deployments.insert(key.clone(), deployment).is_some();
    complete(shared, state, &key);
    let done = &state.deployments[&key];
    let result = match done.status {
        Status::Succeeded => Ok(()),
        _ => Err(done.error.clone().unwrap_or(Value::Null)),
    };
    (existed, result)
}

/// The operations a client sees: finished ones, or the planned ones while still running.
fn operations_of(d: &Deployment) -> Vec<Value> {
    if d.status.is_terminal() {
        return d.operations.clone();
    }
    d.plan
        .resources
        .iter()
        .map(|r| {
            operation(
                d,
                Some((r.id.as_str(), r.resource_type.as_str(), r.name.as_str())),
                "Running",
                None,
                None,
                "Create",
            )
        })
        .collect()
}

fn list_operations(shared: &Shared, req: &Req, d: &Deployment) -> Reply {
    let all = operations_of(d);
    let skip: usize = req
        .query("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut page = shared.opts.operations_page_size.max(1);
    if let Some(top) = req.query("$top").and_then(|s| s.parse::<usize>().ok()) {
        page = page.min(top.max(1));
    }
    let value: Vec<Value> = all.iter().skip(skip).take(page).cloned().collect();
    let mut body = json!({"value": value});
    if skip + page < all.len() {
        body["nextLink"] = json!(format!(
            "{}{}/operations?api-version={API_VERSION}&$skiptoken={}",
            shared.url,
            d.id,
            skip + page
        ));
    }
    json_reply(StatusCode::OK, body)
}

/// The parts of a resource what-if compares.
fn comparable(resource: &Value) -> Value {
    let mut out = Map::new();
    // A child resource's name compares by its own segment: templates write `parent/child`,
    // some providers (Data Factory) answer `child`. `apiVersion` is how it was written, not
    // what it is.
    if let Some(name) = resource.get("name").and_then(Value::as_str) {
        out.insert(
            "name".into(),
            json!(name.rsplit('/').next().unwrap_or(name)),
        );
    }
    let read_only: &[&str] = match resource.get("type").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case("Microsoft.DataFactory/factories") => {
            &crate::adf::FACTORY_READ_ONLY
        }
        _ => &[],
    };
    for key in [
        "id",
        "type",
        "location",
        "tags",
        "sku",
        "kind",
        "properties",
    ] {
        if let Some(v) = resource.get(key).filter(|v| !v.is_null()) {
            let mut v = v.clone();
            if key == "properties" {
                if let Some(p) = v.as_object_mut() {
                    read_only.iter().for_each(|k| {
                        p.remove(*k);
                    });
                }
            }
            out.insert(key.to_string(), v);
        }
    }
    Value::Object(out)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// What-if's property-level delta between two JSON values.
fn diff(path: &str, before: &Value, after: &Value, out: &mut Vec<Value>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = join(path, k);
                match (b.get(k), a.get(k)) {
                    (Some(bv), None) => {
                        out.push(json!({"path": p, "propertyChangeType": "Delete", "before": bv}))
                    }
                    (None, Some(av)) => {
                        out.push(json!({"path": p, "propertyChangeType": "Create", "after": av}))
                    }
                    (Some(bv), Some(av)) => diff(&p, bv, av, out),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(b), Value::Array(a)) if b != a => {
            let mut children = Vec::new();
            for i in 0..b.len().max(a.len()) {
                let p = i.to_string();
                match (b.get(i), a.get(i)) {
                    (Some(bv), None) => children
                        .push(json!({"path": p, "propertyChangeType": "Delete", "before": bv})),
                    (None, Some(av)) => children
                        .push(json!({"path": p, "propertyChangeType": "Create", "after": av})),
                    (Some(bv), Some(av)) => diff(&p, bv, av, &mut children),
                    (None, None) => {}
                }
            }
            out.push(json!({"path": path, "propertyChangeType": "Array", "children": children}));
        }
        (b, a) if b != a => {
            out.push(json!({"path": path, "propertyChangeType": "Modify", "before": b, "after": a}))
        }
        _ => {}
    }
}

fn what_if(shared: &Shared, state: &mut State, req: &Req, scope: &Scope, name: &str) -> Reply {
    let request = match parse_request(req, scope) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let plan = match plan_for(shared, state, scope, name, &request, &req.links) {
        Ok(p) => p,
        Err(e) => return e.reply(),
    };
    let mut changes = Vec::new();
    let mut planned_ids = Vec::new();
    for r in plan.flat_resources() {
        let rid = r.id.to_ascii_lowercase();
        planned_ids.push(rid.clone());
        let after = comparable(&r.body);
        let existing = if r
            .resource_type
            .eq_ignore_ascii_case("Microsoft.Resources/resourceGroups")
            && *scope == Scope::Subscription
        {
            state.resource_groups.get(&r.name.to_ascii_lowercase())
        } else {
            state.resources.get(&rid)
        };
        match existing {
            None => {
                changes.push(json!({"resourceId": r.id, "changeType": "Create", "after": after}))
            }
            Some(existing) => {
                let before = comparable(existing);
                let strip = |v: &Value| {
                    let mut v = v.clone();
                    if let Some(m) = v.as_object_mut() {
                        for k in ["id", "name", "type", "apiVersion"] {
                            m.remove(k);
                        }
                    }
                    v
                };
                let mut delta = Vec::new();
                diff("", &strip(&before), &strip(&after), &mut delta);
                let change_type = if delta.is_empty() {
                    "NoChange"
                } else {
                    "Modify"
                };
                let mut change = json!({"resourceId": r.id, "changeType": change_type, "before": before, "after": after});
                if !delta.is_empty() {
                    change["delta"] = json!(delta);
                }
                changes.push(change);
            }
        }
    }
    if let Scope::ResourceGroup(rg) = scope {
        let prefix = format!(
            "/subscriptions/{}/resourcegroups/{}/",
            shared.opts.subscription_id.to_ascii_lowercase(),
            rg.to_ascii_lowercase()
        );
        for (id, existing) in &state.resources {
            if id.starts_with(&prefix) && !planned_ids.contains(id) {
                let change_type = if request.mode == "Complete" {
                    "Delete"
                } else {
                    "Ignore"
                };
                changes.push(json!({
                    "resourceId": existing.get("id").cloned().unwrap_or(json!(id)),
                    "changeType": change_type,
                    "before": comparable(existing),
                }));
            }
        }
    }
    let op = operation_id();
    state.polled_results.insert(
        op.clone(),
        PolledResult {
            polls: 0,
            steps: shared.opts.operation_steps,
            result: json!({"status": "Succeeded", "properties": {"changes": changes}}),
        },
    );
    empty(StatusCode::ACCEPTED)
        .header(
            "Location",
            format!(
                "{}{}/providers/Microsoft.Resources/operationResults/{op}?api-version={API_VERSION}",
                shared.url,
                scope_prefix(shared, scope)
            ),
        )
        .header("Retry-After", retry_after(shared))
}

/// Plain resources by id under a resource group: `providers/{ns}/{type}/{name}[/{type}/{name}…]`.
fn resource(shared: &Shared, req: &Req, rg: &str, provider_path: &[&str]) -> Reply {
    let mut state = shared.lock();
    let Some(group) = state.resource_groups.get(&rg.to_ascii_lowercase()) else {
        return rg_not_found(rg);
    };
    let rg_name = group["name"].as_str().unwrap_or(rg).to_string();
    if provider_path.len() % 2 == 0 && req.method == Method::GET {
        return list_resources(shared, &state, &rg_name, provider_path);
    }
    if provider_path.len() < 3 || provider_path.len() % 2 == 0 {
        return not_found_path(req);
    }
    let ns = provider_path[0];
    let types: Vec<&str> = provider_path[1..].iter().step_by(2).copied().collect();
    let names: Vec<&str> = provider_path[2..].iter().step_by(2).copied().collect();
    let resource_type = format!("{ns}/{}", types.join("/"));
    let name = names.join("/");
    let id = format!(
        "/subscriptions/{}/resourceGroups/{rg_name}/providers/{}",
        shared.opts.subscription_id,
        provider_path.join("/")
    );
    let key = id.to_ascii_lowercase();
    match req.method {
        Method::GET => match state.resources.get(&key) {
            Some(v) => json_reply(StatusCode::OK, v.clone()),
            None => resource_not_found(&resource_type, &name, &rg_name),
        },
        Method::PUT if crate::adf::is_adf_type(&resource_type) => {
            let body = match req.json() {
                Ok(b) => b,
                Err(reply) => return reply,
            };
            // A factory's objects need the factory.
            if names.len() > 1 {
                let factory_id = format!(
                    "/subscriptions/{}/resourceGroups/{rg_name}/providers/{ns}/factories/{}",
                    shared.opts.subscription_id, names[0]
                );
                if !state
                    .resources
                    .contains_key(&factory_id.to_ascii_lowercase())
                {
                    return resource_not_found(
                        "Microsoft.DataFactory/factories",
                        names[0],
                        &rg_name,
                    );
                }
            }
            if names.len() > 1 {
                let factory_key = key
                    .split("/factories/")
                    .next()
                    .map(|p| format!("{p}/factories/{}", names[0].to_ascii_lowercase()))
                    .unwrap_or_default();
                if let Err(reply) = crate::adf::check_object_write(
                    &state.resources,
                    &factory_key,
                    &types[1].to_ascii_lowercase(),
                    &key,
                    Some(&body),
                ) {
                    return reply;
                }
            }
            let mut value =
                crate::adf::stored(&id, &resource_type, &body, state.resources.get(&key));
            if types.len() == 2 && types[1].eq_ignore_ascii_case("triggers") {
                // `runtimeState` is read-only: a new trigger is stopped, an updated one keeps
                // its state (a started one was refused above).
                value["properties"]["runtimeState"] = json!("Stopped");
            }
            if names.len() > 1 {
                state.adf_writes += 1;
            }
            state.resources.insert(key, value.clone());
            // Data Factory answers 200 to a create as to an update.
            json_reply(StatusCode::OK, value)
        }
        Method::PUT => {
            let body = match req.json() {
                Ok(b) => b,
                Err(reply) => return reply,
            };
            let mut value = json!({"id": id, "name": name, "type": resource_type});
            for k in ["location", "tags", "sku", "kind", "properties"] {
                if let Some(v) = body.get(k) {
                    value[k] = v.clone();
                }
            }
            let existed = state.resources.insert(key, value.clone()).is_some();
            json_reply(
                if existed {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                },
                value,
            )
        }
        Method::DELETE => {
            if crate::adf::is_adf_type(&resource_type) && names.len() > 1 {
                if types.len() == 2
                    && types[1].eq_ignore_ascii_case("triggers")
                    && state
                        .resources
                        .get(&key)
                        .is_some_and(|t| t["properties"]["runtimeState"] == "Started")
                {
                    return crate::adf::trigger_enabled();
                }
                if state.resources.contains_key(&key) {
                    state.adf_writes += 1;
                }
            }
            let child_prefix = format!("{key}/");
            let existed = state.resources.remove(&key).is_some();
            state
                .resources
                .retain(|id, _| !id.starts_with(&child_prefix));
            empty(if existed {
                StatusCode::OK
            } else {
                StatusCode::NO_CONTENT
            })
        }
        _ => not_found_path(req),
    }
}

/// `GET …/providers/{ns}/{type}` (a resource group's resources of a type) or
/// `GET …/{type}/{name}/{child type}` (a resource's children, e.g. a factory's pipelines).
fn list_resources(shared: &Shared, state: &State, rg_name: &str, provider_path: &[&str]) -> Reply {
    let collection = format!(
        "/subscriptions/{}/resourcegroups/{}/providers/{}/",
        shared.opts.subscription_id,
        rg_name,
        provider_path.join("/")
    )
    .to_ascii_lowercase();
    if provider_path.len() > 2 {
        let parent = collection[..collection.len() - 1]
            .rsplit_once('/')
            .map_or("", |(p, _)| p);
        if !state.resources.contains_key(parent) {
            let names: Vec<&str> = provider_path[2..].iter().step_by(2).copied().collect();
            let types: Vec<&str> = provider_path[1..provider_path.len() - 1]
                .iter()
                .step_by(2)
                .copied()
                .collect();
            return resource_not_found(
                &format!("{}/{}", provider_path[0], types.join("/")),
                &names.join("/"),
                rg_name,
            );
        }
    }
    let value: Vec<Value> = state
        .resources
        .range(collection.clone()..)
        .take_while(|(id, _)| id.starts_with(&collection))
        .filter(|(id, _)| !id[collection.len()..].contains('/'))
        .map(|(_, v)| v.clone())
        .collect();
    json_reply(StatusCode::OK, json!({ "value": value }))
}

pub fn resource_not_found(resource_type: &str, name: &str, rg: &str) -> Reply {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        &format!("The Resource '{resource_type}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"),
    )
}
