//! Repos API 2.0: Git folders — find by path or id, create from a URL, check out a branch or a
//! tag. The API cannot check out an arbitrary commit (only branch heads and tags).

use serde::Deserialize;
use serde_json::json;
use task_sdk::http::Method;

use crate::client::Call;
use crate::{Error, Workspace};

/// A Git folder as the API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Repo {
    pub id: u64,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub provider: String,
    /// `None` when the head is detached (a tag was checked out).
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub head_commit_id: String,
}

/// What to check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    Branch(String),
    Tag(String),
}

/// The `provider` values the API accepts, in its spelling.
pub const GIT_PROVIDERS: [&str; 8] = [
    "gitHub",
    "bitbucketCloud",
    "gitLab",
    "azureDevOpsServices",
    "gitHubEnterprise",
    "bitbucketServer",
    "gitLabEnterpriseEdition",
    "awsCodeCommit",
];

/// The provider of a Git URL, guessed from its host (`None` when the host says nothing).
pub fn provider_for_url(url: &str) -> Option<&'static str> {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or_default()
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "github.com" => Some("gitHub"),
        "gitlab.com" => Some("gitLab"),
        "bitbucket.org" => Some("bitbucketCloud"),
        h if h == "dev.azure.com" || h.ends_with(".visualstudio.com") => {
            Some("azureDevOpsServices")
        }
        h if h.starts_with("git-codecommit.") => Some("awsCodeCommit"),
        _ => None,
    }
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    repos: Vec<Repo>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// A workspace path as the Repos API lists it (without the `/Workspace` mount prefix).
fn repo_path(path: &str) -> &str {
    let p = path.trim_end_matches('/');
    p.strip_prefix("/Workspace")
        .filter(|r| r.starts_with('/'))
        .unwrap_or(p)
}

impl Workspace {
    pub async fn get_repo(&self, id: u64) -> Result<Repo, Error> {
        self.send(Call::new(Method::GET, format!("/api/2.0/repos/{id}")))
            .await
    }

    /// The Git folder at exactly `path` (with or without `/Workspace`), if any.
    pub async fn find_repo_by_path(&self, path: &str) -> Result<Option<Repo>, Error> {
        let wanted = repo_path(path);
        let mut token: Option<String> = None;
        loop {
            let mut call = Call::get("/api/2.0/repos").query("path_prefix", wanted);
            if let Some(t) = &token {
                call = call.query("next_page_token", t.clone());
            }
            let page: Page = self.send(call).await?;
            if let Some(r) = page
                .repos
                .into_iter()
                .find(|r| repo_path(&r.path) == wanted)
            {
                return Ok(Some(r));
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(None),
            }
        }
    }

    /// Clones `url` into a new Git folder at `path`.
    pub async fn create_repo(&self, url: &str, provider: &str, path: &str) -> Result<Repo, Error> {
        let body = json!({ "url": url, "provider": provider, "path": repo_path(path) });
        self.send(Call::post("/api/2.0/repos", body)).await
    }

    /// Checks out `git_ref` (pulling a branch's latest commit). Replaying is harmless.
    pub async fn update_repo(&self, id: u64, git_ref: &GitRef) -> Result<Repo, Error> {
        let body = match git_ref {
            GitRef::Branch(b) => json!({ "branch": b }),
            GitRef::Tag(t) => json!({ "tag": t }),
        };
        let call = Call::new(Method::PATCH, format!("/api/2.0/repos/{id}"))
            .json(body)
            .replay_safe();
        self.send(call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_and_paths() {
        assert_eq!(
            provider_for_url("https://github.com/acme/etl.git"),
            Some("gitHub")
        );
        assert_eq!(
            provider_for_url("https://acme@dev.azure.com/acme/p/_git/etl"),
            Some("azureDevOpsServices")
        );
        assert_eq!(
            provider_for_url("https://acme.visualstudio.com/p/_git/etl"),
            Some("azureDevOpsServices")
        );
        assert_eq!(provider_for_url("https://git.internal/etl"), None);
        assert_eq!(repo_path("/Workspace/Repos/ci/etl/"), "/Repos/ci/etl");
        assert_eq!(repo_path("/Repos/ci/etl"), "/Repos/ci/etl");
    }
}
