//! Template validation and planning: parameters checked against the template's `parameters`
//! section with ARM's own error codes and messages, then resources and outputs evaluated.

use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use crate::expr::{self, eval_value, Ctx};
use crate::http::{json as json_reply, Reply};
use crate::links::Links;

/// An ARM error with its HTTP status; `error` is the object inside `{"error": …}`.
#[derive(Debug, Clone)]
pub struct ArmError {
    pub status: StatusCode,
    pub error: Value,
    /// Not an error: planning needs the linked document at this URI first (see `links`).
    pub fetch: Option<String>,
}

impl ArmError {
    pub fn reply(&self) -> Reply {
        let mut reply = json_reply(self.status, json!({ "error": self.error }));
        reply.fetch = self.fetch.clone();
        reply
    }

    pub fn fetch_first(uri: &str) -> ArmError {
        ArmError {
            status: StatusCode::BAD_REQUEST,
            error: Value::Null,
            fetch: Some(uri.to_owned()),
        }
    }
}

/// How deep linked deployments may nest.
const MAX_NESTING: u32 = 10;

fn template_violation(inner: &str, line: usize, column: usize, path: &str) -> ArmError {
    ArmError {
        fetch: None,
        status: StatusCode::BAD_REQUEST,
        error: json!({
            "code": "InvalidTemplate",
            "message": format!("Deployment template validation failed: '{inner}'."),
            "additionalInfo": [{
                "type": "TemplateViolation",
                "info": {"lineNumber": line, "linePosition": column, "path": path}
            }]
        }),
    }
}

/// Where the template runs, as expressions see it.
pub struct ScopeInfo {
    pub tenant_id: String,
    pub subscription_id: String,
    pub subscription_name: String,
    /// `(name, location)` at resource-group scope.
    pub resource_group: Option<(String, String)>,
    pub management_group: Option<String>,
    pub deployment_name: String,
}

impl ScopeInfo {
    /// The id prefix resources of this scope live under, without a trailing slash.
    fn base(&self) -> String {
        match (&self.management_group, &self.resource_group) {
            (Some(mg), _) => format!("/providers/Microsoft.Management/managementGroups/{mg}"),
            (None, Some((rg, _))) => {
                format!(
                    "/subscriptions/{}/resourceGroups/{rg}",
                    self.subscription_id
                )
            }
            (None, None) => format!("/subscriptions/{}", self.subscription_id),
        }
    }
}

/// One resource the deployment will create or update.
#[derive(Debug, Clone)]
pub struct PlannedResource {
    pub id: String,
    pub resource_type: String,
    pub name: String,
    /// What is stored: id, name, type, apiVersion, location, tags, sku, kind, properties.
    pub body: Value,
    /// The error the emulator is told to fail this resource with (`properties.emulatorFailure`).
    pub failure: Option<Value>,
    pub failure_status: String,
    /// A linked deployment (`Microsoft.Resources/deployments` with `templateLink`): deployed
    /// as a deployment of its own.
    pub nested: Option<Box<Nested>>,
}

/// A linked deployment, planned.
#[derive(Debug, Clone)]
pub struct Nested {
    pub name: String,
    pub mode: String,
    pub template: Value,
    pub plan: Plan,
}

/// A validated, evaluated template.
#[derive(Debug, Clone)]
pub struct Plan {
    pub parameters_echo: Map<String, Value>,
    pub resources: Vec<PlannedResource>,
    pub outputs: Map<String, Value>,
    pub template_hash: String,
}

impl Plan {
    /// The resources a deployment of this plan writes, those of linked deployments included
    /// (in their place), the deployments themselves not.
    pub fn flat_resources(&self) -> Vec<&PlannedResource> {
        let mut out = Vec::new();
        for r in &self.resources {
            match &r.nested {
                Some(n) => out.extend(n.plan.flat_resources()),
                None => out.push(r),
            }
        }
        out
    }
}

/// ARM's display name of a declared parameter or output type.
fn display_type(declared: &str) -> &'static str {
    match declared.to_ascii_lowercase().as_str() {
        "securestring" => "SecureString",
        "int" => "Int",
        "bool" => "Bool",
        "array" => "Array",
        "object" => "Object",
        "secureobject" => "SecureObject",
        _ => "String",
    }
}

fn is_secure(declared: &str) -> bool {
    declared.to_ascii_lowercase().starts_with("secure")
}

/// The JToken type name ARM prints for a JSON value.
fn jtoken_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "Integer",
        Value::Number(_) => "Float",
        Value::String(_) => "String",
        Value::Array(_) => "Array",
        Value::Object(_) => "Object",
    }
}

fn expected_jtoken(declared: &str) -> &'static str {
    match declared.to_ascii_lowercase().as_str() {
        "int" => "Integer",
        "bool" => "Boolean",
        "array" => "Array",
        "object" | "secureobject" => "Object",
        _ => "String",
    }
}

/// Line 1 and a column in the template written compactly, the way the Microsoft task sends it:
/// ARM reports positions of the template it received.
fn position_of(template: &Value, needle: &str) -> (usize, usize) {
    let text = template.to_string();
    let from = text.find("\"parameters\":{").unwrap_or(0);
    let column = text[from..]
        .find(&format!("\"{needle}\":"))
        .map(|i| from + i + 1)
        .unwrap_or(1);
    (1, column)
}

fn lookup_ci<'v>(map: &'v Map<String, Value>, name: &str) -> Option<(&'v String, &'v Value)> {
    map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))
}

/// Validates parameters and evaluates the template; linked deployments are planned from the
/// documents in `links` (or planning asks for one to be fetched first).
pub fn plan(
    template: &Value,
    supplied: &Value,
    scope: &ScopeInfo,
    links: &Links,
    template_link: Option<&str>,
) -> Result<Plan, ArmError> {
    plan_at(template, supplied, scope, links, template_link, 0)
}

fn plan_at(
    template: &Value,
    supplied: &Value,
    scope: &ScopeInfo,
    links: &Links,
    template_link: Option<&str>,
    depth: u32,
) -> Result<Plan, ArmError> {
    let Some(tpl) = template.as_object() else {
        return Err(template_violation(
            "The template is not valid: the deployment template must be a JSON object",
            0,
            0,
            "properties.template",
        ));
    };
    let resources_raw = match tpl.get("resources") {
        Some(Value::Array(items)) => items.clone(),
        // languageVersion 2.0: symbolic names map to resources.
        Some(Value::Object(map)) => map.values().cloned().collect(),
        _ => {
            return Err(template_violation(
                "Required property 'resources' not found in JSON. Path 'properties.template', line 1, position 1",
                1,
                1,
                "properties.template",
            ))
        }
    };
    let empty = Map::new();
    let declared = tpl
        .get("parameters")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let supplied = supplied.as_object().unwrap_or(&empty);

    let unknown: Vec<&str> = supplied
        .keys()
        .filter(|k| lookup_ci(declared, k).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let supported: Vec<&str> = declared.keys().map(String::as_str).collect();
        return Err(template_violation(
            &format!(
                "The template parameters '{}' in the parameters file are not valid; they are not present in the original template and can therefore not be provided at deployment time. The only supported parameters for this template are '{}'. Please see https://aka.ms/arm-deploy/#parameter-file for usage details.",
                unknown.join(", "),
                supported.join(", ")
            ),
            0,
            0,
            "",
        ));
    }

    let rg_value = scope.resource_group.as_ref().map(|(name, location)| {
        json!({
            "id": format!("/subscriptions/{}/resourceGroups/{name}", scope.subscription_id),
            "name": name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": location,
            "properties": {"provisioningState": "Succeeded"}
        })
    });
    let subscription = json!({
        "id": format!("/subscriptions/{}", scope.subscription_id),
        "subscriptionId": scope.subscription_id,
        "tenantId": scope.tenant_id,
        "displayName": scope.subscription_name,
    });
    let deployment = json!({
        "name": scope.deployment_name,
        "properties": {"templateLink": template_link.map(|uri| json!({"uri": uri}))},
    });
    let variables = tpl
        .get("variables")
        .and_then(Value::as_object)
        .unwrap_or(&empty);

    // Supplied values first, then defaults, which may refer to other parameters.
    let mut values = Map::new();
    let mut defaults = Vec::new();
    for (name, decl) in declared {
        let declared_type = decl.get("type").and_then(Value::as_str).unwrap_or("string");
        let entry = lookup_ci(supplied, name).map(|(_, v)| v);
        let given = entry.and_then(|e| {
            e.get("value").cloned().or_else(|| {
                // A Key Vault reference resolves to a stand-in value.
                e.get("reference").map(|r| {
                    let secret = r
                        .get("secretName")
                        .and_then(Value::as_str)
                        .unwrap_or("secret");
                    json!(format!("emulated-keyvault-secret:{secret}"))
                })
            })
        });
        match given {
            Some(value) => {
                let expected = expected_jtoken(declared_type);
                let actual = jtoken_type(&value);
                if expected != actual {
                    let (line, column) = position_of(template, name);
                    return Err(template_violation(
                        &format!(
                            "Template parameter JToken type is not valid. Expected '{expected}'. Actual '{actual}'. Please see https://aka.ms/arm-create-parameter-file for usage details."
                        ),
                        line,
                        column,
                        &format!("properties.template.parameters.{name}"),
                    ));
                }
                values.insert(name.clone(), value);
            }
            None => match decl.get("defaultValue") {
                Some(default) => defaults.push((name.clone(), default.clone())),
                None => {
                    let (line, column) = position_of(template, name);
                    return Err(template_violation(
                        &format!(
                            "The value for the template parameter '{name}' at line '{line}' and column '{column}' is not provided. Please see https://aka.ms/arm-create-parameter-file for usage details."
                        ),
                        line,
                        column,
                        &format!("properties.template.parameters.{name}"),
                    ));
                }
            },
        }
    }
    for (name, default) in defaults {
        let ctx = Ctx {
            params: &values,
            variables,
            resource_group: rg_value.clone(),
            subscription: subscription.clone(),
            deployment: deployment.clone(),
            tenant_id: scope.tenant_id.clone(),
            subscription_id: scope.subscription_id.clone(),
            resource_group_name: scope.resource_group.as_ref().map(|(n, _)| n.clone()),
        };
        let value = eval_value(&default, &ctx).map_err(|m| {
            let (line, column) = position_of(template, &name);
            template_violation(
                &format!("The template parameter '{name}' at line '{line}' and column '{column}' is not valid: {m}. Please see https://aka.ms/arm-functions for usage details."),
                line,
                column,
                &format!("properties.template.parameters.{name}"),
            )
        })?;
        values.insert(name, value);
    }
    for (name, decl) in declared {
        if let (Some(allowed), Some(value)) = (
            decl.get("allowedValues").and_then(Value::as_array),
            values.get(name),
        ) {
            if !allowed.contains(value) {
                let (line, column) = position_of(template, name);
                let list: Vec<String> = allowed
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect();
                let shown = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string);
                return Err(template_violation(
                    &format!(
                        "The provided value '{shown}' for the template parameter '{name}' at line '{line}' and column '{column}' is not valid. The parameter value is not part of the allowed value(s): '{}'.",
                        list.join(",")
                    ),
                    line,
                    column,
                    &format!("properties.template.parameters.{name}"),
                ));
            }
        }
    }

    let ctx = Ctx {
        params: &values,
        variables,
        resource_group: rg_value,
        subscription,
        deployment,
        tenant_id: scope.tenant_id.clone(),
        subscription_id: scope.subscription_id.clone(),
        resource_group_name: scope.resource_group.as_ref().map(|(n, _)| n.clone()),
    };

    let mut parameters_echo = Map::new();
    for (name, decl) in declared {
        let declared_type = decl.get("type").and_then(Value::as_str).unwrap_or("string");
        let mut echo = json!({"type": display_type(declared_type)});
        if !is_secure(declared_type) {
            echo["value"] = values.get(name).cloned().unwrap_or(Value::Null);
        }
        parameters_echo.insert(name.clone(), echo);
    }

    let mut resources = Vec::new();
    let mut pending: Vec<(Value, Option<(String, String)>)> =
        resources_raw.into_iter().map(|r| (r, None)).collect();
    pending.reverse();
    while let Some((raw, parent)) = pending.pop() {
        let Some(mut planned) = plan_resource(&raw, parent.as_ref(), &ctx, scope, template)? else {
            continue;
        };
        planned.nested = plan_linked(&planned, scope, links, depth)?;
        if let Some(children) = raw.get("resources").and_then(Value::as_array) {
            for child in children.iter().rev() {
                pending.push((
                    child.clone(),
                    Some((planned.resource_type.clone(), planned.name.clone())),
                ));
            }
        }
        resources.push(planned);
    }

    let policy: Vec<Value> = resources
        .iter()
        .filter_map(|r| {
            let f = r.failure.as_ref()?;
            (f.get("code").and_then(Value::as_str) == Some("RequestDisallowedByPolicy"))
                .then(|| policy_error(r, f, scope))
        })
        .collect();
    if !policy.is_empty() {
        return Err(ArmError {
            fetch: None,
            status: StatusCode::BAD_REQUEST,
            error: json!({
                "code": "InvalidTemplateDeployment",
                "message": "The template deployment failed because of policy violation. Please see details for more information.",
                "details": policy,
            }),
        });
    }

    let mut outputs = Map::new();
    if let Some(declared_outputs) = tpl.get("outputs").and_then(Value::as_object) {
        for (name, output) in declared_outputs {
            let declared_type = output
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("string");
            let value = eval_value(output.get("value").unwrap_or(&Value::Null), &ctx).map_err(|m| {
                template_violation(
                    &format!("The template output '{name}' is not valid: {m}. Please see https://aka.ms/arm-functions for usage details."),
                    1,
                    1,
                    &format!("properties.template.outputs.{name}"),
                )
            })?;
            let mut echo = json!({"type": display_type(declared_type)});
            if !is_secure(declared_type) {
                echo["value"] = value;
            }
            outputs.insert(name.clone(), echo);
        }
    }

    Ok(Plan {
        parameters_echo,
        resources,
        outputs,
        template_hash: expr::fnv(&template.to_string()).to_string(),
    })
}

fn plan_resource(
    raw: &Value,
    parent: Option<&(String, String)>,
    ctx: &Ctx<'_>,
    scope: &ScopeInfo,
    template: &Value,
) -> Result<Option<PlannedResource>, ArmError> {
    let label = raw
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let invalid = |m: &str| {
        template_violation(
            &format!("The template resource '{label}' at line '1' and column '1' is not valid: {m}. Please see https://aka.ms/arm-functions for usage details."),
            1,
            1,
            "properties.template.resources",
        )
    };
    if let Some(condition) = raw.get("condition") {
        let c = eval_value(condition, ctx).map_err(|m| invalid(&m))?;
        if c == Value::Bool(false) {
            return Ok(None);
        }
    }
    let mut evaluated = serde_json::Map::new();
    for key in [
        "type",
        "name",
        "apiVersion",
        "location",
        "tags",
        "sku",
        "kind",
        "properties",
    ] {
        if let Some(v) = raw.get(key) {
            evaluated.insert(
                key.to_string(),
                eval_value(v, ctx).map_err(|m| invalid(&m))?,
            );
        }
    }
    for key in ["type", "name", "apiVersion"] {
        if !evaluated.get(key).is_some_and(Value::is_string) {
            return Err(template_violation(
                &format!("The template resource '{label}' at line '1' and column '1' is not valid: Required property '{key}' not found in JSON"),
                1,
                1,
                "properties.template.resources",
            ));
        }
    }
    let mut resource_type = evaluated["type"].as_str().unwrap_or_default().to_string();
    let mut name = evaluated["name"].as_str().unwrap_or_default().to_string();
    if let Some((parent_type, parent_name)) = parent {
        if !resource_type.contains('/') {
            resource_type = format!("{parent_type}/{resource_type}");
            if !name.contains('/') {
                name = format!("{parent_name}/{name}");
            }
        }
    }
    let id = if resource_type.eq_ignore_ascii_case("Microsoft.Resources/resourceGroups")
        && scope.resource_group.is_none()
        && scope.management_group.is_none()
    {
        format!(
            "/subscriptions/{}/resourceGroups/{name}",
            scope.subscription_id
        )
    } else {
        match expr::provider_path(&resource_type, &name) {
            Some(path) => format!("{}/{path}", scope.base()),
            None => {
                let _ = template;
                return Err(template_violation(
                    &format!("The template resource '{name}' for type '{resource_type}' at line '1' and column '1' has incorrect segment lengths. A nested resource type must have identical number of segments as its resource name. A root resource type must have segment length one greater than its resource name. Please see https://aka.ms/arm-syntax-resources for usage details."),
                    1,
                    1,
                    "properties.template.resources",
                ));
            }
        }
    };
    let failure = evaluated
        .get("properties")
        .and_then(|p| p.get("emulatorFailure"))
        .filter(|f| !f.is_null())
        .cloned();
    let failure_status = failure
        .as_ref()
        .and_then(|f| f.get("statusCode"))
        .and_then(Value::as_str)
        .unwrap_or("BadRequest")
        .to_string();
    let failure = failure.map(|f| {
        let mut error = json!({
            "code": f.get("code").and_then(Value::as_str).unwrap_or("ResourceDeploymentFailure"),
            "message": f.get("message").and_then(Value::as_str).unwrap_or("The resource operation completed with terminal provisioning state 'Failed'."),
        });
        for key in ["details", "additionalInfo", "target", "policyAssignment", "policyDefinition"] {
            if let Some(v) = f.get(key) {
                error[key] = v.clone();
            }
        }
        error
    });
    evaluated.insert("id".into(), json!(id));
    evaluated.insert("name".into(), json!(name));
    evaluated.insert("type".into(), json!(resource_type));
    Ok(Some(PlannedResource {
        id,
        resource_type,
        name,
        body: Value::Object(evaluated),
        failure,
        failure_status,
        nested: None,
    }))
}

/// A `Microsoft.Resources/deployments` resource with `templateLink`: its template (and
/// `parametersLink`) fetched, planned as a deployment of its own in the same scope (ARM's
/// inner expression scope, the only one linked templates have).
fn plan_linked(
    resource: &PlannedResource,
    scope: &ScopeInfo,
    links: &Links,
    depth: u32,
) -> Result<Option<Box<Nested>>, ArmError> {
    if !resource
        .resource_type
        .eq_ignore_ascii_case("Microsoft.Resources/deployments")
    {
        return Ok(None);
    }
    let properties = &resource.body["properties"];
    let Some(uri) = properties["templateLink"]["uri"].as_str() else {
        return Ok(None);
    };
    if depth >= MAX_NESTING {
        return Err(template_violation(
            &format!(
                "The deployment '{}' nests linked templates more than {MAX_NESTING} levels deep",
                resource.name
            ),
            1,
            1,
            "properties.template.resources",
        ));
    }
    let template = links.document(uri)?;
    let parameters = match properties["parametersLink"]["uri"].as_str() {
        Some(p) => links
            .document(p)?
            .get("parameters")
            .cloned()
            .unwrap_or(Value::Null),
        None => properties.get("parameters").cloned().unwrap_or(Value::Null),
    };
    let nested_scope = ScopeInfo {
        tenant_id: scope.tenant_id.clone(),
        subscription_id: scope.subscription_id.clone(),
        subscription_name: scope.subscription_name.clone(),
        resource_group: scope.resource_group.clone(),
        management_group: scope.management_group.clone(),
        deployment_name: resource.name.clone(),
    };
    let plan = plan_at(
        &template,
        &parameters,
        &nested_scope,
        links,
        Some(uri),
        depth + 1,
    )?;
    Ok(Some(Box::new(Nested {
        name: resource.name.clone(),
        mode: properties["mode"]
            .as_str()
            .filter(|m| m.eq_ignore_ascii_case("Complete"))
            .map_or("Incremental", |_| "Complete")
            .to_owned(),
        template,
        plan,
    })))
}

/// `RequestDisallowedByPolicy` as ARM reports a deny policy, naming the policy assignment.
fn policy_error(resource: &PlannedResource, failure: &Value, scope: &ScopeInfo) -> Value {
    let assignment = failure
        .get("policyAssignment")
        .and_then(Value::as_str)
        .unwrap_or("emulator-deny-assignment");
    let definition = failure
        .get("policyDefinition")
        .and_then(Value::as_str)
        .unwrap_or("emulator-deny-definition");
    let assignment_scope = format!("/subscriptions/{}", scope.subscription_id);
    let assignment_id = format!(
        "{assignment_scope}/providers/Microsoft.Authorization/policyAssignments/{assignment}"
    );
    let definition_id =
        format!("/providers/Microsoft.Authorization/policyDefinitions/{definition}");
    let identifiers = json!([{
        "policyAssignment": {"name": assignment, "id": assignment_id},
        "policyDefinition": {"name": definition, "id": definition_id}
    }]);
    let message = failure
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "Resource '{}' was disallowed by policy. Policy identifiers: '{identifiers}'.",
                resource.name
            )
        });
    let mut info = json!({
        "policyDefinitionDisplayName": definition,
        "policyDefinitionId": definition_id,
        "policyDefinitionName": definition,
        "policyDefinitionEffect": "deny",
        "policyAssignmentId": assignment_id,
        "policyAssignmentName": assignment,
        "policyAssignmentDisplayName": assignment,
        "policyAssignmentScope": assignment_scope,
        "policyAssignmentParameters": {},
        "policyExemptionIds": [],
    });
    if let Some(extra) = failure.get("additionalInfo") {
        info["emulatorAdditionalInfo"] = extra.clone();
    }
    json!({
        "code": "RequestDisallowedByPolicy",
        "target": resource.name,
        "message": message,
        "additionalInfo": [{"type": "PolicyViolation", "info": info}],
    })
}
