//! `updateGitFolder`: a Git folder (by workspace path or id) to a branch (its latest commit)
//! or a tag; created from `repoUrl` (and `gitProvider`, guessed from the URL's host) when
//! the path has none. Reports the head before and after.
//!
//! The Repos API checks out branches and tags only, not an arbitrary commit: a `commit`
//! input is refused with what to do instead (tag the commit).

use databricks::{provider_for_url, GitRef, Repo, GIT_PROVIDERS};
use task_sdk::{out, TaskError};

use crate::Cx;

const FOLDER: &str = "gitFolder";

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

/// Whether `url`'s authority has `user:password@`.
fn has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

fn describe(repo: &Repo) -> String {
    match &repo.branch {
        Some(b) => format!("branch {b} at {}", short(&repo.head_commit_id)),
        None => format!("detached head at {}", short(&repo.head_commit_id)),
    }
}

/// The ref to check out, from `branch`, `tag` (exactly one); `commit` is refused.
fn git_ref(cx: &Cx<'_>) -> Result<GitRef, TaskError> {
    let get = |n: &str| {
        cx.agent
            .input(n)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if let Some(commit) = get("commit") {
        return Err(TaskError::new(format!(
            "input 'commit' is '{commit}': the Databricks Repos API checks out branches and tags only, not a commit; tag the commit (git tag <name> {commit} && git push origin <name>) and give the tag in 'tag'"
        )));
    }
    match (get("branch"), get("tag")) {
        (Some(b), None) => Ok(GitRef::Branch(b)),
        (None, Some(t)) => Ok(GitRef::Tag(t)),
        (Some(_), Some(_)) => Err(TaskError::new(
            "inputs 'branch' and 'tag' are both set: give one of them",
        )),
        (None, None) => Err(TaskError::new(
            "input 'branch' or 'tag' is required: what to check out in the Git folder",
        )),
    }
}

/// The Git folder `given` (an id, or a workspace path), created when missing and a URL is
/// given. `Ok((repo, created))`.
async fn resolve(cx: &Cx<'_>, given: &str) -> Result<(Repo, bool), TaskError> {
    if let Ok(id) = given.parse::<u64>() {
        return match cx.ws.get_repo(id).await {
            Ok(repo) => Ok((repo, false)),
            Err(e) if e.is_not_found() => Err(TaskError::new(format!(
                "input '{FOLDER}': no Git folder has the id {id} in {}",
                cx.conn.host
            ))),
            Err(e) => Err(cx.explain(e)),
        };
    }
    if !given.starts_with('/') {
        return Err(TaskError::new(format!(
            "input '{FOLDER}' is '{given}': give the Git folder's workspace path (e.g. /Workspace/Repos/ci/etl) or its numeric id"
        )));
    }
    if let Some(repo) = cx
        .ws
        .find_repo_by_path(given)
        .await
        .map_err(|e| cx.explain(e))?
    {
        return Ok((repo, false));
    }
    let Some(url) = cx
        .agent
        .input("repoUrl")
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
    else {
        return Err(TaskError::new(format!(
            "there is no Git folder at {given}: give 'repoUrl' (and 'gitProvider' if the host is not GitHub, GitLab, Bitbucket or Azure DevOps) to create it, or fix the path"
        )));
    };
    if has_password(&url) {
        // Not quoted: the password is usually a token.
        return Err(TaskError::new(
            "input 'repoUrl' carries a password or token (https://user:password@host/…): Databricks would keep it with the Git folder for everyone to see; give the URL without it and set up Git credentials for the identity in Databricks (Settings > Linked accounts, or the Git credentials API)",
        ));
    }
    let provider = match cx.agent.input("gitProvider").map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()) {
        Some(p) => GIT_PROVIDERS
            .iter()
            .find(|k| k.eq_ignore_ascii_case(&p))
            .copied()
            .ok_or_else(|| {
                TaskError::new(format!(
                    "input 'gitProvider' is '{p}': use one of {}",
                    GIT_PROVIDERS.join(", ")
                ))
            })?,
        None => provider_for_url(&url).ok_or_else(|| {
            TaskError::new(format!(
                "input 'gitProvider' is required: the host of '{url}' does not tell the provider (one of {})",
                GIT_PROVIDERS.join(", ")
            ))
        })?,
    };
    let repo = cx
        .ws
        .create_repo(&url, provider, given)
        .await
        .map_err(|e| {
            TaskError::new(format!(
                "creating the Git folder {given} from {url} failed: {}",
                cx.explain(e).message()
            ))
        })?;
    out::info(&format!(
        "created Git folder {} from {url} ({provider}): {}",
        repo.path,
        describe(&repo)
    ));
    Ok((repo, true))
}

pub async fn run(cx: &Cx<'_>) -> Result<(), TaskError> {
    let given = cx.agent.required_input(FOLDER)?.trim().to_owned();
    let wanted = git_ref(cx)?;
    let (repo, _created) = resolve(cx, &given).await?;
    let before = describe(&repo);
    let updated = cx.ws.update_repo(repo.id, &wanted).await.map_err(|e| {
        let what = match &wanted {
            GitRef::Branch(b) => format!("branch '{b}'"),
            GitRef::Tag(t) => format!("tag '{t}'"),
        };
        TaskError::new(format!(
            "checking out {what} in the Git folder {} failed (it is still on {before}): {}",
            repo.path,
            cx.explain(e).message()
        ))
    })?;
    let after = describe(&updated);
    if updated.head_commit_id == repo.head_commit_id && updated.branch == repo.branch {
        out::info(&format!("Git folder {}: already on {after}", updated.path));
    } else {
        out::info(&format!("Git folder {}: {before} -> {after}", updated.path));
    }
    out::set_output("previousHeadCommit", &repo.head_commit_id, false);
    out::set_output("headCommit", &updated.head_commit_id, false);
    out::set_output("repoId", &updated.id.to_string(), false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::has_password;

    #[test]
    fn passwords_in_urls() {
        assert!(has_password("https://ci:tok@github.com/a/b.git"));
        // Azure DevOps clone URLs name the organisation as the user: no password.
        assert!(!has_password("https://acme@dev.azure.com/acme/p/_git/r"));
        assert!(!has_password("https://github.com/a/b.git?x=a:b@c"));
        assert!(!has_password("git@github.com:a/b.git"));
    }
}
