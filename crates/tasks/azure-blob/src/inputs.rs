//! The task's inputs, typed, read from a `task_sdk::Agent`.

use std::path::PathBuf;
use std::time::Duration;

use task_sdk::{Agent, PickMatch, TaskError};

/// `command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Upload,
    Download,
    Delete,
    WaitFor,
}

/// `authenticationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    ServiceConnection,
    ConnectionString,
    Sas,
}

#[derive(Debug, Clone)]
pub struct Inputs {
    pub command: Command,
    pub auth: AuthKind,
    pub container: String,
    /// A blob name prefix (or, for one blob, its name).
    pub prefix: String,
    /// `blobName`: one blob (download to a file, waitFor one blob).
    pub blob: Option<String>,
    pub source: Option<PathBuf>,
    pub destination: Option<PathBuf>,
    pub create_container: bool,
    pub overwrite: bool,
    pub incremental: bool,
    /// `checksum`: upload compares MD5 even when size and modification time match.
    pub checksum: bool,
    pub metadata: Vec<(String, String)>,
    pub concurrency: usize,
    pub dry_run: bool,
    pub delete_whole_container: bool,
    pub min_count: usize,
    pub timeout: Duration,
    pub poll: Duration,
}

/// `key=value` lines (or `;`-separated) into metadata pairs; names must be C# identifiers,
/// as Azure requires, and not the names the task keeps for its quick check.
pub fn parse_metadata(text: &str) -> Result<Vec<(String, String)>, TaskError> {
    let mut out = Vec::new();
    for part in text
        .split(['\n', ';'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            TaskError::new(format!(
                "input 'metadata': '{part}' is not key=value (one pair per line)"
            ))
        })?;
        let k = k.trim();
        let valid = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(TaskError::new(format!(
                "input 'metadata': '{k}' is not a valid metadata name (letters, digits and '_', not starting with a digit)"
            )));
        }
        let reserved = [crate::upload::SOURCE_SIZE, crate::upload::SOURCE_MTIME];
        if reserved.iter().any(|r| r.eq_ignore_ascii_case(k)) {
            return Err(TaskError::new(format!(
                "input 'metadata': the name '{k}' is the task's own (it records the source file's size and modification time to skip unchanged files): choose another name"
            )));
        }
        let v = v.trim();
        if !task_sdk::http::is_valid_header_value(v) || !v.is_ascii() {
            return Err(TaskError::new(format!(
                "input 'metadata': the value of '{k}' must be printable ASCII on one line"
            )));
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

impl Inputs {
    pub fn from_agent(agent: &Agent) -> Result<Inputs, TaskError> {
        use Command as C;
        let command = agent.pick_input(
            "command",
            C::Upload,
            &[
                ("upload", C::Upload),
                ("download", C::Download),
                ("delete", C::Delete),
                ("waitFor", C::WaitFor),
            ],
            PickMatch::IgnoreCase,
        )?;
        let auth = agent.pick_input(
            "authenticationType",
            AuthKind::ServiceConnection,
            &[
                ("serviceConnection", AuthKind::ServiceConnection),
                ("connectionString", AuthKind::ConnectionString),
                ("sasToken", AuthKind::Sas),
            ],
            PickMatch::IgnoreCase,
        )?;
        let container = agent.required_input("container")?.trim().to_owned();
        let valid_container = (3..=63).contains(&container.len())
            && container
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !container.starts_with('-')
            && !container.ends_with('-')
            && !container.contains("--");
        if !valid_container && container != "$root" && container != "$web" {
            return Err(TaskError::new(format!(
                "input 'container' is '{container}', which is not a container name: 3-63 lowercase letters, digits and single hyphens"
            )));
        }
        let prefix = agent
            .input("prefix")
            .unwrap_or_default()
            .trim()
            .trim_start_matches('/')
            .to_owned();
        let root = agent
            .variable("System.DefaultWorkingDirectory")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let rooted = |p: String| {
            let p = PathBuf::from(p);
            if p.is_relative() {
                root.join(p)
            } else {
                p
            }
        };
        let source = match command {
            C::Upload => Some(agent.path_input("sourcePath")?.ok_or_else(|| {
                TaskError::new(
                    "input 'sourcePath' is required for 'upload': the file or folder to upload",
                )
            })?),
            _ => None,
        };
        let destination = match command {
            C::Download => Some(rooted(agent.required_input("destinationPath")?)),
            _ => None,
        };
        let seconds = |name: &str, default: i64, max: i64| -> Result<Duration, TaskError> {
            Ok(Duration::from_secs(
                agent.int_input_in(name, 1..=max)?.unwrap_or(default) as u64,
            ))
        };
        Ok(Inputs {
            command,
            auth,
            container,
            prefix,
            blob: agent
                .input("blobName")
                .map(|b| b.trim().trim_start_matches('/').to_owned()),
            source,
            destination,
            create_container: agent.bool_input("createContainer", false),
            overwrite: agent.bool_input("overwrite", true),
            incremental: agent.bool_input("incremental", true),
            checksum: agent.bool_input("checksum", false),
            metadata: parse_metadata(&agent.input("metadata").unwrap_or_default())?,
            concurrency: agent.int_input_in("concurrency", 1..=64)?.unwrap_or(8) as usize,
            dry_run: agent.bool_input("dryRun", false),
            delete_whole_container: agent.bool_input("deleteWholeContainer", false),
            min_count: agent.int_input_in("minCount", 1..=1_000_000)?.unwrap_or(1) as usize,
            timeout: seconds("timeoutSeconds", 600, 7 * 24 * 3600)?,
            poll: seconds("pollSeconds", 10, 3600)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_lines() {
        let m = parse_metadata("source=adf\n run_id = 42 ;x=y").unwrap();
        assert_eq!(m[1], ("run_id".into(), "42".into()));
        assert!(parse_metadata("1bad=x").is_err());
        assert!(parse_metadata("novalue").is_err());
        let err = parse_metadata("AZDO_SRC_MTIME=1").unwrap_err();
        assert!(err.message().contains("task's own"), "{}", err.message());
    }
}
