//! `installLibraries`: wheels, JARs, requirements files (from a volume, the workspace or
//! DBFS), PyPI packages and Maven coordinates on a cluster; waits until each is INSTALLED,
//! or fails with the library's own error.
//!
//! Local files can be uploaded first (`uploadPath` to the `uploadTarget` folder, with
//! uploadFiles' code); each uploaded `.whl`/`.jar` is then installed. `uninstallFirst`
//! uninstalls what is on the cluster for the same libraries (other versions of a wheel, JAR,
//! PyPI project or Maven artifact, and the same files, whose content may have changed) and
//! restarts the cluster before installing: what the old `uninstallcodefromcluster` and
//! `waitforclusterreboot` tasks did.

use std::path::Path;
use std::time::{Duration, Instant};

use databricks::{ClusterState, Library, LibraryStatus};
use task_sdk::{out, TaskError};

use super::clusters;
use super::upload::{self, Overwrite, Target};
use crate::Cx;

const LIBRARIES: &str = "libraries";
const DEFAULT_TIMEOUT_MINUTES: i64 = 30;

fn check_remote_path(line: usize, path: &str) -> Result<String, TaskError> {
    let p = path.trim();
    if p.starts_with("/Volumes/") || p.starts_with("/Workspace/") || p.starts_with("dbfs:/") {
        Ok(p.to_owned())
    } else {
        Err(TaskError::new(format!(
            "input '{LIBRARIES}', line {line}: '{p}' is not a path the cluster can read: use /Volumes/…, /Workspace/… or dbfs:/… (upload a local file with 'uploadPath' first)"
        )))
    }
}

/// One library per line: a path ending in `.whl`, `.jar` or `.txt` (requirements), or
/// `pypi:<package>[==version]`, `maven:<group>:<artifact>:<version>`; the kinds may also be
/// spelled as prefixes (`whl:`, `jar:`, `requirements:`).
pub fn parse_libraries(text: &str) -> Result<Vec<Library>, TaskError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let n = i + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (kind, rest) = match line.split_once(':') {
            Some((k, r))
                if ["pypi", "maven", "whl", "jar", "requirements"]
                    .contains(&k.to_ascii_lowercase().as_str()) =>
            {
                (k.to_ascii_lowercase(), r.trim())
            }
            _ => (String::new(), line),
        };
        let lib = match kind.as_str() {
            "pypi" => {
                if rest.is_empty() || rest.contains(char::is_whitespace) {
                    return Err(TaskError::new(format!(
                        "input '{LIBRARIES}', line {n}: '{line}' is not pypi:<package>[==version]"
                    )));
                }
                Library::Pypi {
                    package: rest.to_owned(),
                    repo: None,
                }
            }
            "maven" => {
                if rest.split(':').filter(|p| !p.is_empty()).count() < 3 {
                    return Err(TaskError::new(format!(
                        "input '{LIBRARIES}', line {n}: '{line}' is not maven:<group>:<artifact>:<version>"
                    )));
                }
                Library::Maven {
                    coordinates: rest.to_owned(),
                    repo: None,
                    exclusions: Vec::new(),
                }
            }
            "whl" => Library::Whl(check_remote_path(n, rest)?),
            "jar" => Library::Jar(check_remote_path(n, rest)?),
            "requirements" => Library::Requirements(check_remote_path(n, rest)?),
            _ => {
                let lower = rest.to_ascii_lowercase();
                if lower.ends_with(".whl") {
                    Library::Whl(check_remote_path(n, rest)?)
                } else if lower.ends_with(".jar") {
                    Library::Jar(check_remote_path(n, rest)?)
                } else if lower.ends_with(".txt") {
                    Library::Requirements(check_remote_path(n, rest)?)
                } else {
                    return Err(TaskError::new(format!(
                        "input '{LIBRARIES}', line {n}: '{line}' is not a library: give a .whl, .jar or requirements .txt path, pypi:<package> or maven:<group>:<artifact>:<version>"
                    )));
                }
            }
        };
        if !out.contains(&lib) {
            out.push(lib);
        }
    }
    Ok(out)
}

/// Uploads `uploadPath` to `uploadTarget` and returns the wheels and JARs it put there.
async fn upload_first(cx: &Cx<'_>, local: &Path) -> Result<Vec<Library>, TaskError> {
    let given = cx.agent.input("uploadTarget").unwrap_or_default();
    if given.trim().is_empty() {
        return Err(TaskError::new(
            "input 'uploadTarget' is required with 'uploadPath': the /Volumes/…, /Workspace/… or dbfs:/… folder to upload to",
        ));
    }
    let target = Target::parse("uploadTarget", &given)?;
    let mut libs = Vec::new();
    let mut files = Vec::new();
    let names: Vec<String> = if local.is_dir() {
        std::fs::read_dir(local)
            .map_err(|e| {
                TaskError::new(format!(
                    "input 'uploadPath': {} cannot be read ({e})",
                    local.display()
                ))
            })?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    } else {
        local
            .file_name()
            .map(|n| vec![n.to_string_lossy().into_owned()])
            .unwrap_or_default()
    };
    for name in names {
        let lower = name.to_ascii_lowercase();
        let remote = target.display(&format!("{}/{name}", target_root(&target)));
        if lower.ends_with(".whl") {
            libs.push(Library::Whl(remote));
            files.push(name);
        } else if lower.ends_with(".jar") {
            libs.push(Library::Jar(remote));
            files.push(name);
        }
    }
    if libs.is_empty() {
        return Err(TaskError::new(format!(
            "input 'uploadPath': {} holds no .whl or .jar file to install",
            local.display()
        )));
    }
    libs.sort_by_key(|l| l.to_string());
    upload::upload(
        cx,
        local,
        &target,
        Overwrite::IfChanged,
        upload::parallel(cx)?,
    )
    .await?;
    Ok(libs)
}

fn target_root(target: &Target) -> String {
    match target {
        Target::Volume(p) | Target::Workspace(p) | Target::Dbfs(p) => {
            p.trim_end_matches('/').to_owned()
        }
    }
}

fn status_of<'a>(statuses: &'a [LibraryStatus], lib: &Library) -> Option<&'a LibraryStatus> {
    statuses.iter().find(|s| s.library.as_ref() == Some(lib))
}

pub async fn run(cx: &Cx<'_>) -> Result<(), TaskError> {
    let mut libraries = parse_libraries(&cx.agent.input(LIBRARIES).unwrap_or_default())?;
    let upload_path = cx.agent.path_input("uploadPath")?;
    if libraries.is_empty() && upload_path.is_none() {
        return Err(TaskError::new(format!(
            "nothing to install: give libraries in '{LIBRARIES}' (one per line) or local wheels/JARs in 'uploadPath'"
        )));
    }
    let uninstall_first = cx.agent.bool_input("uninstallFirst", false);
    let minutes = cx
        .agent
        .int_input_in("libraryTimeoutMinutes", 1..=24 * 60)?
        .unwrap_or(DEFAULT_TIMEOUT_MINUTES);
    let given = cx.agent.required_input("cluster")?;
    let mut cluster = clusters::find(cx, &given, "cluster").await?;
    if let Some(local) = upload_path {
        for lib in upload_first(cx, &local).await? {
            if !libraries.contains(&lib) {
                libraries.push(lib);
            }
        }
    }
    if uninstall_first {
        let statuses = cx
            .ws
            .library_statuses(&cluster.cluster_id)
            .await
            .map_err(|e| cx.explain(e))?;
        let previous: Vec<Library> = statuses
            .iter()
            .filter(|s| s.status != "UNINSTALL_ON_RESTART")
            .filter_map(|s| s.library.clone())
            .filter(|l| libraries.iter().any(|r| r.same_library(l)))
            .collect();
        if previous.is_empty() {
            out::info("uninstallFirst: no earlier version of these libraries is on the cluster");
        } else {
            for l in &previous {
                out::info(&format!("uninstalling {l}"));
            }
            cx.ws
                .uninstall_libraries(&cluster.cluster_id, &previous)
                .await
                .map_err(|e| cx.explain(e))?;
        }
        let pending_removal =
            !previous.is_empty() || statuses.iter().any(|s| s.status == "UNINSTALL_ON_RESTART");
        if pending_removal {
            out::info(&format!(
                "restarting cluster {} so that the uninstalls take effect",
                cluster.label()
            ));
            cluster = clusters::restart_cluster(cx, &cluster).await?;
        }
    }
    for l in &libraries {
        out::info(&format!("installing {l} on cluster {}", cluster.label()));
    }
    cx.ws
        .install_libraries(&cluster.cluster_id, &libraries)
        .await
        .map_err(|e| cx.explain(e))?;
    if matches!(
        cluster.state,
        ClusterState::Terminated | ClusterState::Terminating
    ) {
        out::warning(&format!(
            "cluster {} is {}: the libraries install when it starts (not waited for); use startCluster first to wait for them",
            cluster.label(),
            cluster.state
        ));
        return Ok(());
    }
    wait(
        cx,
        &cluster.cluster_id,
        &cluster.label(),
        &libraries,
        Duration::from_secs(minutes as u64 * 60),
    )
    .await
}

/// Polls the cluster's library statuses until every library in `libraries` is final.
async fn wait(
    cx: &Cx<'_>,
    cluster_id: &str,
    label: &str,
    libraries: &[Library],
    limit: Duration,
) -> Result<(), TaskError> {
    let started = Instant::now();
    let mut interval = Duration::from_millis(500);
    let mut last: Vec<Option<String>> = vec![None; libraries.len()];
    loop {
        let statuses = cx
            .ws
            .library_statuses(cluster_id)
            .await
            .map_err(|e| cx.explain(e))?;
        let mut all_final = true;
        for (i, lib) in libraries.iter().enumerate() {
            let status = status_of(&statuses, lib);
            let text = status.map_or("PENDING", |s| s.status.as_str()).to_owned();
            if last[i].as_deref() != Some(text.as_str()) {
                out::info(&format!(
                    "[{:>4} s] {lib}: {text}",
                    started.elapsed().as_secs()
                ));
                last[i] = Some(text);
            }
            all_final &= status.is_some_and(LibraryStatus::is_final);
        }
        if all_final {
            let mut failures = Vec::new();
            for lib in libraries {
                let s = status_of(&statuses, lib).expect("final means present");
                match s.status.as_str() {
                    "INSTALLED" => {}
                    "UNINSTALL_ON_RESTART" => failures.push(format!(
                        "{lib} is marked for uninstall on the next restart (install it with uninstallFirst, or restart the cluster first)"
                    )),
                    other => {
                        let why = s.messages.iter().map(|m| m.trim()).collect::<Vec<_>>().join(" | ");
                        failures.push(format!(
                            "{lib} is {other}{}",
                            if why.is_empty() { String::new() } else { format!(": {why}") }
                        ));
                    }
                }
            }
            if failures.is_empty() {
                out::info(&format!(
                    "{} librar{} installed on cluster {label}",
                    libraries.len(),
                    if libraries.len() == 1 { "y" } else { "ies" }
                ));
                return Ok(());
            }
            return Err(TaskError::new(format!(
                "{} of {} librar{} did not install on cluster {label}: {}",
                failures.len(),
                libraries.len(),
                if libraries.len() == 1 { "y" } else { "ies" },
                failures.join("; ")
            )));
        }
        if started.elapsed() >= limit {
            let waiting: Vec<String> = libraries
                .iter()
                .filter(|l| !status_of(&statuses, l).is_some_and(LibraryStatus::is_final))
                .map(|l| l.to_string())
                .collect();
            return Err(TaskError::new(format!(
                "libraries still installing after {} min: {}; raise 'libraryTimeoutMinutes' or look at the cluster's Libraries tab",
                limit.as_secs() / 60,
                waiting.join(", ")
            )));
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_lines() {
        let libs = parse_libraries(
            "# deps\n/Volumes/m/s/v/etl-1.0-py3-none-any.whl\ndbfs:/jars/x.jar\n/Workspace/Shared/requirements.txt\npypi:requests==2.32.3\nmaven:com.acme:etl:1.0\nwhl:/Volumes/m/s/v/odd.name\n",
        )
        .unwrap();
        assert_eq!(libs.len(), 6);
        assert_eq!(
            libs[3],
            Library::Pypi {
                package: "requests==2.32.3".into(),
                repo: None
            }
        );
        assert_eq!(libs[5], Library::Whl("/Volumes/m/s/v/odd.name".into()));
        for bad in ["./dist/x.whl", "maven:g:a", "pypi:", "numpy"] {
            let e = parse_libraries(bad).unwrap_err().message().to_owned();
            assert!(e.contains("line 1"), "{bad}: {e}");
        }
    }
}
