//! Git folders (the Repos API) over declared Git remotes.
//!
//! A remote is a URL with branches and tags, each pointing at a commit; declare them with
//! [`crate::Options::git_remotes`] or `POST /emulator/git-remotes` (which may also move a
//! branch, as a push would). A URL nobody declared is a remote with one branch, `main`, at a
//! commit derived from the URL. Checking out a branch or tag the remote does not have is
//! refused, as the service refuses it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};

/// The `provider` values the API accepts (case-insensitive).
pub const PROVIDERS: [&str; 8] = [
    "gitHub",
    "bitbucketCloud",
    "gitLab",
    "azureDevOpsServices",
    "gitHubEnterprise",
    "bitbucketServer",
    "gitLabEnterpriseEdition",
    "awsCodeCommit",
];

/// A Git remote the emulator can clone.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GitRemote {
    pub url: String,
    /// Branch name → commit id.
    #[serde(default)]
    pub branches: BTreeMap<String, String>,
    /// Tag name → commit id.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct Repo {
    id: u64,
    path: String,
    url: String,
    provider: String,
    /// `None` after a tag checkout (a detached head).
    branch: Option<String>,
    head: String,
}

impl Repo {
    fn info(&self) -> Value {
        let mut v = json!({
            "id": self.id, "path": self.path, "url": self.url,
            "provider": self.provider, "head_commit_id": self.head,
        });
        if let Some(b) = &self.branch {
            v["branch"] = json!(b);
        }
        v
    }
}

#[derive(Debug)]
pub struct Repos {
    remotes: BTreeMap<String, GitRemote>,
    repos: BTreeMap<u64, Repo>,
    next_id: u64,
}

fn not_found(id: u64) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        format!("Repo {id} does not exist."),
    )
}

/// A stable 40-hex commit id for a URL nobody declared.
fn derived_commit(url: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}{:016x}{:08x}", h.rotate_left(17), (h >> 7) as u32)
}

impl Repos {
    pub fn new(remotes: &[GitRemote]) -> Repos {
        let mut r = Repos {
            remotes: BTreeMap::new(),
            repos: BTreeMap::new(),
            next_id: 4_000_000_000_000_000,
        };
        for remote in remotes {
            r.declare(remote.clone());
        }
        r
    }

    /// Declares a remote or replaces its refs.
    pub fn declare(&mut self, remote: GitRemote) {
        self.remotes
            .insert(remote.url.trim_end_matches('/').to_owned(), remote);
    }

    fn remote(&self, url: &str) -> GitRemote {
        self.remotes
            .get(url.trim_end_matches('/'))
            .cloned()
            .unwrap_or_else(|| GitRemote {
                url: url.to_owned(),
                branches: [("main".to_owned(), derived_commit(url))].into(),
                tags: BTreeMap::new(),
            })
    }

    pub fn create(
        &mut self,
        url: &str,
        provider: &str,
        path: Option<&str>,
        user: &str,
    ) -> ApiResult<Value> {
        if url.is_empty() {
            return Err(ApiError::invalid("Missing required field: url"));
        }
        let provider = PROVIDERS
            .iter()
            .find(|p| p.eq_ignore_ascii_case(provider))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid Git provider '{provider}'. Expected one of: {}.",
                    PROVIDERS.join(", ")
                ))
            })?;
        let name = url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("repo")
            .trim_end_matches(".git")
            .to_owned();
        let path = match path {
            Some(p) if !p.is_empty() => p.strip_prefix("/Workspace").unwrap_or(p).to_owned(),
            _ => format!("/Users/{user}/{name}"),
        };
        let valid = path.starts_with("/Repos/") && path.matches('/').count() >= 3
            || path.starts_with("/Users/") && path.matches('/').count() >= 3
            || path.starts_with("/Shared/");
        if !valid {
            return Err(ApiError::invalid(format!(
                "Invalid repo path {path}: a Git folder goes under /Repos/<folder>/, /Users/<user>/ or /Shared/."
            )));
        }
        if self.repos.values().any(|r| r.path == path) {
            return Err(ApiError::already_exists(format!(
                "Repo already exists at path {path}."
            )));
        }
        let remote = self.remote(url);
        let (branch, head) = remote
            .branches
            .get("main")
            .map(|c| ("main".to_owned(), c.clone()))
            .or_else(|| {
                remote
                    .branches
                    .iter()
                    .next()
                    .map(|(b, c)| (b.clone(), c.clone()))
            })
            .ok_or_else(|| ApiError::invalid(format!("The remote repository {url} is empty.")))?;
        self.next_id += 1;
        let repo = Repo {
            id: self.next_id,
            path,
            url: url.to_owned(),
            provider: (*provider).to_owned(),
            branch: Some(branch),
            head,
        };
        let info = repo.info();
        self.repos.insert(repo.id, repo);
        Ok(info)
    }

    pub fn get(&self, id: u64) -> ApiResult<Value> {
        self.repos
            .get(&id)
            .map(Repo::info)
            .ok_or_else(|| not_found(id))
    }

    pub fn list(&self, path_prefix: Option<&str>) -> Value {
        let prefix = path_prefix.map(|p| p.strip_prefix("/Workspace").unwrap_or(p));
        let repos: Vec<Value> = self
            .repos
            .values()
            .filter(|r| prefix.is_none_or(|p| r.path.starts_with(p)))
            .map(Repo::info)
            .collect();
        if repos.is_empty() {
            json!({})
        } else {
            json!({ "repos": repos })
        }
    }

    /// `PATCH repos/{id}`: check out a branch (pulling its latest commit) or a tag.
    pub fn update(&mut self, id: u64, branch: Option<&str>, tag: Option<&str>) -> ApiResult<Value> {
        let repo = self.repos.get(&id).ok_or_else(|| not_found(id))?;
        let remote = self.remote(&repo.url);
        let (new_branch, head) = match (branch, tag) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "Only one of branch and tag can be given.",
                ))
            }
            (Some(b), None) => {
                let head = remote.branches.get(b).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Error checking out branch {b}: the branch does not exist in the remote repository {}.",
                        repo.url
                    ))
                })?;
                (Some(b.to_owned()), head.clone())
            }
            (None, Some(t)) => {
                let head = remote.tags.get(t).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Error checking out tag {t}: the tag does not exist in the remote repository {}.",
                        repo.url
                    ))
                })?;
                (None, head.clone())
            }
            (None, None) => return Ok(repo.info()),
        };
        let repo = self.repos.get_mut(&id).expect("looked up above");
        repo.branch = new_branch;
        repo.head = head;
        Ok(repo.info())
    }

    pub fn delete(&mut self, id: u64) -> ApiResult<()> {
        self.repos
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| not_found(id))
    }

    pub fn dump(&self) -> Value {
        json!(self.repos.values().map(Repo::info).collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_checkout_and_unknown_refs() {
        let remote = GitRemote {
            url: "https://github.com/acme/etl".into(),
            branches: [
                ("main".into(), "a".repeat(40)),
                ("dev".into(), "b".repeat(40)),
            ]
            .into(),
            tags: [("v1".into(), "c".repeat(40))].into(),
        };
        let mut r = Repos::new(&[remote]);
        let info = r
            .create(
                "https://github.com/acme/etl",
                "github",
                Some("/Repos/ci/etl"),
                "me",
            )
            .unwrap();
        assert_eq!(info["provider"], "gitHub");
        assert_eq!(info["head_commit_id"], "a".repeat(40));
        let id = info["id"].as_u64().unwrap();
        let e = r
            .create(
                "https://github.com/acme/etl",
                "gitHub",
                Some("/Repos/ci/etl"),
                "me",
            )
            .unwrap_err();
        assert_eq!(e.error_code, "RESOURCE_ALREADY_EXISTS");
        assert_eq!(
            r.update(id, Some("dev"), None).unwrap()["head_commit_id"],
            "b".repeat(40)
        );
        let tagged = r.update(id, None, Some("v1")).unwrap();
        assert!(tagged.get("branch").is_none());
        let e = r.update(id, Some("nope"), None).unwrap_err();
        assert!(e.message.contains("nope"));
        assert!(r.create("u", "svn", None, "me").is_err());
        assert_eq!(r.list(Some("/Workspace/Repos/ci"))["repos"][0]["id"], id);
    }
}
