//! The `configuredatabricks` task: checks a workspace URL and credentials (a personal access
//! token, or an Entra ID token from an AzureRM service connection) with one cheap call, then
//! hands the connection to later steps through job variables (`Databricks.Host`, the secret
//! `Databricks.Token`, and `Databricks.TokenExpiresOn` for Entra tokens) and, optionally, the
//! `[AZDO]` profile of `~/.databrickscfg`.
//!
//! It installs nothing (no pip, no CLI): the old extension's Python step is gone.

pub mod databrickscfg;

use std::time::{SystemTime, UNIX_EPOCH};

use databricks::{Auth, Error, Workspace};
use databricks_task_common::connection::format_utc;
use databricks_task_common::{
    entra_credential, workspace_url, HOST_VARIABLE, TOKEN_EXPIRES_VARIABLE, TOKEN_VARIABLE,
};
use task_sdk::{out, TaskContext, TaskError};

/// The task's body.
pub async fn run(ctx: TaskContext) -> Result<(), TaskError> {
    let agent = &ctx.agent;
    let host = workspace_url(&agent.required_input("url")?)?;
    let http = ctx.http_client()?;
    let token_input = agent.input("token");
    let credential = entra_credential(agent, &http)?;
    let (token, expires_on) = match (token_input, credential) {
        (Some(_), Some(_)) => {
            return Err(TaskError::new(
                "both 'Access token' (token) and 'Azure service connection' (azureSubscription) are set: keep only one",
            ))
        }
        (Some(token), None) => {
            task_sdk::secrets::register(&token);
            (token, None)
        }
        (None, Some(credential)) => {
            let token = azure::databricks_token(&credential).await?;
            task_sdk::secrets::register(&token.token);
            (token.token, Some(token.expires_on))
        }
        (None, None) => {
            return Err(TaskError::new(
                "input 'Access token' (token) is required but empty: give a Databricks personal access token (from a secret variable, e.g. $(DATABRICKS_TOKEN)), or an Azure service connection in 'Azure service connection' (azureSubscription)",
            ))
        }
    };
    let ws = Workspace::new(&host, Auth::Token(token.clone()), http)?;
    let entra = expires_on.is_some();
    let user = ws
        .check_credentials()
        .await
        .map_err(|e| credential_error(&host, entra, e))?;
    out::info(&format!(
        "Connected to {host} as {}",
        if user.user_name.is_empty() {
            "(unnamed user)"
        } else {
            &user.user_name
        }
    ));

    out::set_variable(HOST_VARIABLE, &host, false);
    out::set_variable(TOKEN_VARIABLE, &token, true);
    match expires_on {
        Some(at) => {
            let secs = at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            out::set_variable(TOKEN_EXPIRES_VARIABLE, &secs.to_string(), false);
            let left = at
                .duration_since(SystemTime::now())
                .map(|d| d.as_secs() / 60)
                .unwrap_or(0);
            out::info(&format!(
                "The Microsoft Entra ID token is valid until {} (about {left} min); later steps that start after that must get their own (input azureSubscription)",
                format_utc(at)
            ));
        }
        // A personal access token: clear the expiry an earlier configure step may have set.
        None => out::set_variable(TOKEN_EXPIRES_VARIABLE, "", false),
    }
    out::set_output("host", &host, false);
    out::info(&format!(
        "Set the job variables {HOST_VARIABLE} and {TOKEN_VARIABLE} (secret) for later steps. For the Databricks CLI in a script step: env: {{ DATABRICKS_HOST: $({HOST_VARIABLE}), DATABRICKS_TOKEN: $({TOKEN_VARIABLE}) }}"
    ));

    if agent.bool_input("writeDatabricksCfg", true) {
        let home = agent.env("HOME").or_else(|| agent.env("USERPROFILE"));
        let Some(path) = databrickscfg::default_path(home) else {
            out::warning("HOME is not set: the [AZDO] profile of ~/.databrickscfg was not written");
            return Ok(());
        };
        databrickscfg::write_profile(&path, databrickscfg::PROFILE, &host, &token).map_err(|e| {
            TaskError::new(format!(
                "cannot write the [{}] profile to {}: {e}. Turn off 'Write the [AZDO] profile' (writeDatabricksCfg) if no later step needs it",
                databrickscfg::PROFILE,
                path.display()
            ))
        })?;
        out::info(&format!(
            "Wrote the [{}] profile to {} (mode 0600)",
            databrickscfg::PROFILE,
            path.display()
        ));
    }
    Ok(())
}

/// What a failed credential check means, with what to do. DNS failures, hosts that are not
/// workspaces, 401 and 403 each get their own message.
pub fn credential_error(host: &str, entra: bool, error: Error) -> TaskError {
    let message = match &error {
        Error::Transport(send) if send.is_dns() => format!(
            "the host of {host} does not resolve (DNS lookup failed): check the workspace URL for typos (it looks like https://adb-<workspace id>.<n>.azuredatabricks.net); on a self-hosted agent, also check its DNS and proxy settings"
        ),
        Error::Transport(send) => format!(
            "cannot reach {host}: {send}. Check the URL, and on a self-hosted agent its firewall and proxy settings"
        ),
        Error::UnexpectedBody { status, summary, .. } => format!(
            "{host} does not answer like a Databricks workspace (HTTP {status}, {summary}): check that the URL is the workspace URL (https://adb-<workspace id>.<n>.azuredatabricks.net), not a portal or proxy page"
        ),
        Error::Api { status: 404, .. } => format!(
            "{host} has no Databricks API (HTTP 404 on /api/2.0/preview/scim/v2/Me): check that the URL is the workspace URL (https://adb-<workspace id>.<n>.azuredatabricks.net)"
        ),
        Error::Auth { status: 401, .. } if entra => format!(
            "{host} did not accept the Microsoft Entra ID token (HTTP 401): the service connection's identity is probably not a user of this workspace. Add the service principal or managed identity to the workspace (Settings > Identity and access > Service principals)"
        ),
        Error::Auth { status: 401, .. } => format!(
            "{host} received no usable token (HTTP 401): the token is empty or malformed. Check that 'Access token' gets the secret variable's value (a secret variable must be named in the task, e.g. token: $(DATABRICKS_TOKEN), and the variable must exist in this stage)"
        ),
        Error::Auth { .. } if entra => format!(
            "{host} refused the Microsoft Entra ID token (HTTP 403, invalid access token): the service connection's identity is not a user of this workspace, or the token is for another tenant. Add the service principal or managed identity to the workspace"
        ),
        Error::Auth { .. } => format!(
            "{host} refused the token (HTTP 403, invalid access token): it is wrong, expired or revoked, or it belongs to another workspace (tokens are per workspace). Create a new personal access token in this workspace (Settings > Developer > Access tokens) and update the secret variable"
        ),
        Error::Forbidden { detail, .. } => format!(
            "{host} accepts the token but denies access (HTTP 403: {detail}): the workspace may restrict access by IP (IP access lists block the agent's address) or the user may be disabled. Ask a workspace admin"
        ),
        _ => return TaskError::from(error),
    };
    TaskError::new(message)
}
