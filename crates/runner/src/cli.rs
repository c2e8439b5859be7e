//! Command line: `azp-local run …` and `azp-local task …`, parsed by hand (two commands and
//! a dozen options do not need a parser crate).

use std::path::PathBuf;

pub const USAGE: &str = "\
azp-local: run Azure Pipelines tasks and pipeline YAML on this machine, the way the agent does

USAGE:
  azp-local run <azure-pipelines.yml> [OPTIONS]
  azp-local task <task folder | name[@major]> [--input NAME=VALUE]... [OPTIONS]
  azp-local check <azure-pipelines.yml> [OPTIONS]     (load and validate only)
  azp-local expand <azure-pipelines.yml> [OPTIONS]    (print it with templates expanded)

OPTIONS:
  --vars FILE            variables, secrets, variable groups, service connections and task
                         mappings (see docs/azp-local.md); repeatable, later files win
  --var NAME=VALUE       a variable (overrides the YAML and the vars file)
  --secret NAME=VALUE    a secret variable (masked as *** in all output);
                         --secret NAME takes the value from the environment variable NAME
  --param NAME=VALUE     a value for one of the pipeline's own parameters (YAML for an
                         object or a list: --param 'regions=[eu, us]'); default: its default
  --repo ALIAS=PATH      a local checkout of repository ALIAS of resources.repositories
                         (templates 'file.yml@ALIAS'); repeatable
  --endpoint ID=FILE     a service connection from a JSON file
                         {\"url\", \"scheme\", \"auth\": {…}, \"data\": {…}, \"name\"}
  --emulators            start the Databricks and Azure emulators and define DATABRICKS_URL,
                         DATABRICKS_TOKEN, DATABRICKS_CLUSTER_ID, AZURE_RM_CONNECTION, …
  --log-dir DIR          keep each step's raw (masked) log in DIR
  --tasks-dir DIR        where task folders are (repeatable; also $AZP_LOCAL_TASKS)
  --sources-dir DIR      the checkout (default: the current folder)
  --work-dir DIR         the pipeline workspace root (default: a temporary folder, removed)
  --debug                System.Debug=true: show task.debug and processed commands
  --attempt N            System.JobAttempt of every job (default 1), as a re-run raises it
  --input NAME=VALUE     (task) an input, by name or alias
  --timeout MINUTES      (task) the step's timeoutInMinutes
  -h, --help             this help
  -V, --version          the version

EXIT CODE: 0 succeeded (also with issues), 1 failed, 2 invalid command line or YAML, 130 canceled
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Run,
    Check,
    Expand,
    Task,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub mode: Mode,
    pub target: String,
    pub vars_files: Vec<PathBuf>,
    pub vars: Vec<(String, String)>,
    pub secrets: Vec<(String, String)>,
    pub endpoints: Vec<(String, PathBuf)>,
    /// `--param NAME=VALUE`: values of the pipeline's own `parameters:`.
    pub params: Vec<(String, String)>,
    /// `--repo ALIAS=PATH`: local checkouts of `resources.repositories`.
    pub repos: Vec<(String, PathBuf)>,
    pub inputs: Vec<(String, String)>,
    pub emulators: bool,
    pub log_dir: Option<PathBuf>,
    pub tasks_dirs: Vec<PathBuf>,
    pub sources_dir: Option<PathBuf>,
    pub work_dir: Option<PathBuf>,
    pub debug: bool,
    pub timeout_minutes: Option<u64>,
    /// `System.JobAttempt`: 1 unless `--attempt N`.
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Help,
    Version,
    Args(Box<Args>),
}

fn pair(option: &str, value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("{option} expects NAME=VALUE, got '{value}'")),
    }
}

pub fn parse(argv: &[String]) -> Result<Parsed, String> {
    let mut it = argv.iter();
    let mode = match it.next().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => return Ok(Parsed::Help),
        Some("-V" | "--version") => return Ok(Parsed::Version),
        Some("run") => Mode::Run,
        Some("check") => Mode::Check,
        Some("expand") => Mode::Expand,
        Some("task") => Mode::Task,
        Some(other) => {
            return Err(format!(
                "unknown command '{other}' (expected run, check, expand or task)"
            ))
        }
    };
    let mut args = Args {
        mode,
        target: String::new(),
        vars_files: Vec::new(),
        vars: Vec::new(),
        secrets: Vec::new(),
        endpoints: Vec::new(),
        params: Vec::new(),
        repos: Vec::new(),
        inputs: Vec::new(),
        emulators: false,
        log_dir: None,
        tasks_dirs: Vec::new(),
        sources_dir: None,
        work_dir: None,
        debug: false,
        timeout_minutes: None,
        attempt: 1,
    };
    let mut target = None;
    while let Some(arg) = it.next() {
        // Both `--opt value` and `--opt=value`.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let value = |it: &mut std::slice::Iter<'_, String>| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--emulators" => args.emulators = true,
            "--debug" => args.debug = true,
            "--vars" => args.vars_files.push(value(&mut it)?.into()),
            "--var" => args.vars.push(pair("--var", &value(&mut it)?)?),
            "--secret" => {
                let v = value(&mut it)?;
                let p = match v.split_once('=') {
                    Some(_) => pair("--secret", &v)?,
                    None => {
                        let from_env = std::env::var(&v).map_err(|_| {
                            format!("--secret {v}: no '=' and no environment variable {v}")
                        })?;
                        (v, from_env)
                    }
                };
                args.secrets.push(p);
            }
            "--endpoint" => {
                let (id, file) = pair("--endpoint", &value(&mut it)?)?;
                args.endpoints.push((id, file.into()));
            }
            "--param" => args.params.push(pair("--param", &value(&mut it)?)?),
            "--repo" => {
                let (alias, path) = pair("--repo", &value(&mut it)?)?;
                args.repos.push((alias, path.into()));
            }
            "--input" | "-i" => args.inputs.push(pair("--input", &value(&mut it)?)?),
            "--log-dir" => args.log_dir = Some(value(&mut it)?.into()),
            "--tasks-dir" => args.tasks_dirs.push(value(&mut it)?.into()),
            "--sources-dir" => args.sources_dir = Some(value(&mut it)?.into()),
            "--work-dir" => args.work_dir = Some(value(&mut it)?.into()),
            "--attempt" => {
                let v = value(&mut it)?;
                args.attempt =
                    v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        format!("--attempt expects a whole number from 1, got '{v}'")
                    })?;
            }
            "--timeout" => {
                let v = value(&mut it)?;
                args.timeout_minutes = Some(
                    v.parse()
                        .map_err(|_| format!("--timeout expects minutes, got '{v}'"))?,
                );
            }
            other if other.starts_with('-') => return Err(format!("unknown option '{other}'")),
            _ if target.is_none() => target = Some(arg.clone()),
            _ => return Err(format!("unexpected argument '{arg}'")),
        }
    }
    args.target = target.ok_or_else(|| match args.mode {
        Mode::Task => "task: which task? Give a task folder or a task name".to_owned(),
        _ => "which pipeline? Give the path of an azure-pipelines.yml".to_owned(),
    })?;
    if args.mode != Mode::Task && (!args.inputs.is_empty() || args.timeout_minutes.is_some()) {
        return Err("--input and --timeout are options of 'azp-local task'".into());
    }
    Ok(Parsed::Args(Box::new(args)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Parsed, String> {
        parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_run() {
        let Parsed::Args(a) = args(&[
            "run",
            "p.yml",
            "--var",
            "a=b=c",
            "--secret=s=1",
            "--emulators",
            "--log-dir",
            "logs",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.mode, Mode::Run);
        assert_eq!(a.target, "p.yml");
        assert_eq!(a.vars, vec![("a".into(), "b=c".into())]);
        assert_eq!(a.secrets, vec![("s".into(), "1".into())]);
        assert!(a.emulators);
        assert_eq!(a.log_dir, Some("logs".into()));
        assert_eq!(a.attempt, 1);
        let Parsed::Args(a) = args(&["run", "p.yml", "--attempt", "3"]).unwrap() else {
            panic!()
        };
        assert_eq!(a.attempt, 3);
    }

    #[test]
    fn rejects_mistakes() {
        assert!(args(&["run"]).is_err());
        assert!(args(&["run", "p.yml", "--var", "novalue"]).is_err());
        assert!(args(&["run", "p.yml", "--bogus"]).is_err());
        assert!(args(&["run", "p.yml", "--input", "a=b"]).is_err());
        assert!(args(&["run", "p.yml", "--attempt", "0"])
            .unwrap_err()
            .contains("--attempt"));
        assert!(args(&["run", "p.yml", "--attempt", "x"]).is_err());
        assert_eq!(args(&[]).unwrap(), Parsed::Help);
    }
}
