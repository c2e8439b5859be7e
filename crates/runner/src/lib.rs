//! `azp-local`: runs one Azure Pipelines task, or a whole pipeline YAML file, on this machine
//! with the agent's rules (shared/specs/agent-contract.md), so that a green local run means a
//! green run on a real agent.
//!
//! What it does: reads task.json, builds the task's environment as the agent does (inputs,
//! variables, secrets, service connections), starts the task's handler, interprets its
//! logging commands with task-sdk's parser, masks secrets, decides results by the agent's
//! rules; for a pipeline, expands templates and `${{ }}` as the server does (`expand` prints
//! the result), orders stages and jobs, evaluates conditions, carries variables between steps
//! and artifacts between jobs, and can start the Databricks and Azure emulators.
//!
//! What it is not: the Azure Pipelines service. No agent pools or containers; jobs run one
//! after another on this machine. Unsupported YAML is reported with its line before anything
//! runs, never silently ignored.

pub mod cli;
pub mod commands;
pub mod emulators;
pub mod endpoints;
pub mod engine;
pub mod expr;
pub mod identity;
pub mod manifest;
pub mod output;
pub mod pipeline;
pub mod process;
pub mod template;
pub mod variables;
pub mod varsfile;
pub mod yaml;

use std::path::{Path, PathBuf};

use cli::{Args, Mode, Parsed};
use endpoints::Endpoint;
use engine::{Engine, Settings};
use expr::Outcome;
use manifest::{Manifest, TaskPath};
use output::Printer;
use pipeline::{Job, LoadContext, Pipeline, Problem, Stage, Step, StepKind};
use variables::Variables;
use varsfile::{VarValue, VarsFile};

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INVALID: i32 = 2;
pub const EXIT_CANCELED: i32 = 130;

fn report(file: &Path, problems: &[Problem], kind: &str) {
    let mut problems: Vec<&Problem> = problems.iter().collect();
    problems.sort_by_key(|p| (p.pos.file, p.pos.line, p.pos.col));
    // A template used several times says the same thing at the same place once.
    problems.dedup();
    let root = std::path::absolute(file).ok();
    let cwd = std::env::current_dir().ok();
    for p in problems {
        // The pipeline as it was named; a template relative to the current folder.
        let shown = match p.pos.file {
            Some(f) if root.as_deref() != Some(f) => cwd
                .as_deref()
                .and_then(|c| f.strip_prefix(c).ok())
                .unwrap_or(f)
                .display()
                .to_string(),
            _ => file.display().to_string(),
        };
        if p.pos.line == 0 {
            eprintln!("{shown}: {kind}: {}", p.message);
        } else {
            eprintln!(
                "{shown}:{}:{}: {kind}: {}",
                p.pos.line, p.pos.col, p.message
            );
        }
    }
}

/// The environment steps inherit: azp-local's own, without variables only the agent sets.
fn base_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| {
            !["INPUT_", "SECRET_", "ENDPOINT_", "VSTS_TASKVARIABLE_"]
                .iter()
                .any(|p| k.starts_with(p))
                && k != "VSTS_SECRET_VARIABLES"
                && k != "VSTS_PUBLIC_VARIABLES"
        })
        .collect()
}

/// Runs azp-local with its arguments (without the program name); returns the exit code.
pub fn main(argv: &[String]) -> i32 {
    let args = match cli::parse(argv) {
        Ok(Parsed::Help) => {
            print!("{}", cli::USAGE);
            return EXIT_OK;
        }
        Ok(Parsed::Version) => {
            println!("azp-local {}", env!("CARGO_PKG_VERSION"));
            return EXIT_OK;
        }
        Ok(Parsed::Args(a)) => a,
        Err(e) => {
            eprintln!("azp-local: {e}\n\n{}", cli::USAGE);
            return EXIT_INVALID;
        }
    };
    process::install_cancel_handler();
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("azp-local: {message}");
            EXIT_INVALID
        }
    }
}

struct Prepared {
    settings: Settings,
    vars_file: VarsFile,
    tasks: TaskPath,
    _emulators: Option<emulators::Emulators>,
    remove_work_dir: bool,
}

fn prepare(args: &Args) -> Result<Prepared, String> {
    let tasks = TaskPath::discover(&args.tasks_dirs);
    let mut vars_file = VarsFile::default();
    for file in &args.vars_files {
        match VarsFile::load(file) {
            Ok(f) => {
                vars_file.variables.extend(f.variables);
                vars_file.groups.extend(f.groups);
                vars_file.endpoints.extend(f.endpoints);
                vars_file.tasks.extend(f.tasks);
            }
            Err(problems) => {
                report(file, &problems, "error");
                return Err(format!("the vars file {} is invalid", file.display()));
            }
        }
    }
    let mut endpoints: Vec<Endpoint> = Vec::new();
    let emulators = if args.emulators {
        let e = emulators::start()?;
        eprintln!(
            "azp-local: Databricks emulator at {}, Azure emulator at {}",
            e.databricks.url(),
            e.azure.url()
        );
        endpoints.push(e.endpoint.clone());
        Some(e)
    } else {
        None
    };
    endpoints.extend(vars_file.endpoints.iter().cloned());
    for (id, file) in &args.endpoints {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("--endpoint {id}: cannot read {}: {e}", file.display()))?;
        let json = serde_json::from_str(&text)
            .map_err(|e| format!("--endpoint {id}: {} is not JSON: {e}", file.display()))?;
        endpoints.push(Endpoint::from_json(id, &json)?);
    }
    let mut base_variables: Vec<(String, VarValue)> = emulators
        .as_ref()
        .map(|e| e.variables.clone())
        .unwrap_or_default();
    base_variables.extend(vars_file.variables.iter().cloned());
    let mut overrides: Vec<(String, VarValue)> = args
        .vars
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                VarValue {
                    value: v.clone(),
                    secret: false,
                },
            )
        })
        .collect();
    overrides.extend(args.secrets.iter().map(|(k, v)| {
        (
            k.clone(),
            VarValue {
                value: v.clone(),
                secret: true,
            },
        )
    }));
    if args.debug {
        overrides.push((
            "System.Debug".into(),
            VarValue {
                value: "true".into(),
                secret: false,
            },
        ));
    }
    let sources_dir = match &args.sources_dir {
        Some(d) => d.clone(),
        None => {
            std::env::current_dir().map_err(|e| format!("cannot read the current folder: {e}"))?
        }
    };
    let sources_dir = std::fs::canonicalize(&sources_dir)
        .map_err(|e| format!("sources folder {}: {e}", sources_dir.display()))?;
    let (work_dir, remove_work_dir) = match &args.work_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "azp-local-{}-{:08x}",
                std::process::id(),
                fastrand::u32(..)
            )),
            true,
        ),
    };
    std::fs::create_dir_all(&work_dir)
        .map_err(|e| format!("cannot create the work folder {}: {e}", work_dir.display()))?;
    let work_dir = std::fs::canonicalize(&work_dir).unwrap_or(work_dir);
    let state_dir = identity::state_dir(&sources_dir);
    let identity = identity::RunIdentity::new(&state_dir, args.attempt);
    let settings = Settings {
        identity,
        state_dir,
        sources_dir,
        work_dir,
        binaries: tasks.binaries.clone(),
        base_variables,
        groups: vars_file.groups.clone(),
        overrides,
        endpoints,
        base_env: base_env(),
    };
    Ok(Prepared {
        settings,
        vars_file,
        tasks,
        _emulators: emulators,
        remove_work_dir,
    })
}

fn run(args: &Args) -> Result<i32, String> {
    let prepared = prepare(args)?;
    let pipeline = match args.mode {
        Mode::Task => task_pipeline(args, &prepared)?,
        Mode::Expand => return Ok(expand_pipeline(Path::new(&args.target), args, &prepared)),
        Mode::Run | Mode::Check => match load_pipeline(Path::new(&args.target), args, &prepared) {
            Some(p) => p,
            None => return Ok(EXIT_INVALID),
        },
    };
    if args.mode == Mode::Check {
        println!("{}: OK", args.target);
        return Ok(EXIT_OK);
    }
    let mut printer =
        Printer::stdout(args.log_dir.clone()).map_err(|e| format!("--log-dir: {e}"))?;
    let result = Engine::new(&prepared.settings, &mut printer).run(&pipeline);
    if prepared.remove_work_dir {
        let _ = std::fs::remove_dir_all(&prepared.settings.work_dir);
    }
    Ok(match result.outcome {
        Outcome::Succeeded | Outcome::SucceededWithIssues | Outcome::Skipped => EXIT_OK,
        Outcome::Canceled => EXIT_CANCELED,
        Outcome::Failed => EXIT_FAILED,
    })
}

/// Loads and checks a pipeline file, printing problems as `file:line:col: error: …`.
fn load_pipeline(file: &Path, args: &Args, prepared: &Prepared) -> Option<Pipeline> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: error: cannot read: {e}", file.display());
            return None;
        }
    };
    let template_variables = template_variables(prepared);
    let tasks_map = &prepared.vars_file.tasks;
    let mapped = |reference: &str| tasks_map.get(reference).cloned();
    let ctx = LoadContext {
        tasks: &prepared.tasks,
        mapped: &mapped,
        template_variables: &template_variables,
        parameters: &args.params,
        repos: &args.repos,
        self_root: Some(template::self_root(file, &prepared.settings.sources_dir)),
    };
    let loaded = pipeline::load(file, &text, &ctx);
    let mut warnings = loaded.warnings;
    if let Some(p) = &loaded.pipeline {
        warnings.extend(missing_groups(p, &prepared.settings));
    }
    report(file, &warnings, "warning");
    let problems = loaded.problems;
    if !problems.is_empty() {
        report(file, &problems, "error");
        eprintln!(
            "azp-local: {} problem(s) in {}; nothing was run",
            problems.len(),
            file.display()
        );
        return None;
    }
    loaded.pipeline
}

/// What `${{ variables.x }}` sees before the pipeline defines its own: predefined, vars file,
/// `--var`.
fn template_variables(prepared: &Prepared) -> Variables {
    let mut vars = Variables::new();
    vars.set_force("System.TeamProject", "local", false);
    vars.set_force("Build.Reason", "Manual", false);
    vars.set_force(
        "Build.SourcesDirectory",
        &prepared.settings.sources_dir.display().to_string(),
        false,
    );
    for (name, v) in prepared
        .settings
        .base_variables
        .iter()
        .chain(&prepared.settings.overrides)
    {
        vars.set_force(name, &v.value, v.secret);
    }
    vars
}

/// `azp-local expand`: the pipeline with its templates and `${{ }}` expanded, as YAML.
fn expand_pipeline(file: &Path, args: &Args, prepared: &Prepared) -> i32 {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: error: cannot read: {e}", file.display());
            return EXIT_INVALID;
        }
    };
    let variables = template_variables(prepared);
    let options = template::Options {
        variables: &variables,
        parameters: &args.params,
        repos: &args.repos,
        self_root: template::self_root(file, &prepared.settings.sources_dir),
    };
    let expanded = template::expand_pipeline(file, &text, &options);
    report(file, &expanded.warnings, "warning");
    report(file, &expanded.problems, "error");
    if let Some(root) = &expanded.root {
        print!("{}", yaml::to_yaml(root));
    }
    if expanded.problems.is_empty() {
        EXIT_OK
    } else {
        EXIT_INVALID
    }
}

/// Variable groups no vars file defines: the run goes on without their variables.
fn missing_groups(p: &Pipeline, settings: &Settings) -> Vec<Problem> {
    let mut defs: Vec<&pipeline::VarDef> = p.variables.iter().collect();
    for s in &p.stages {
        defs.extend(&s.variables);
        for j in &s.jobs {
            defs.extend(&j.variables);
        }
    }
    defs.into_iter()
        .filter_map(|d| match d {
            pipeline::VarDef::Group { name, pos } if !settings.groups.contains_key(name) => Some(Problem {
                pos: *pos,
                message: format!("variable group '{name}' is not defined locally: its variables are empty (define it under 'groups:' in a vars file, --vars FILE, or pass its variables with --var NAME=VALUE)"),
            }),
            _ => None,
        })
        .collect()
}

/// `azp-local task`: a one-step pipeline.
fn task_pipeline(args: &Args, prepared: &Prepared) -> Result<Pipeline, String> {
    let (name, major) = match args.target.rsplit_once('@') {
        Some((n, m)) if m.parse::<u64>().is_ok() => (n.to_owned(), m.parse::<u64>().ok()),
        _ => (args.target.clone(), None),
    };
    let as_path = PathBuf::from(&name);
    let manifest = if as_path.join("task.json").is_file() {
        Manifest::load(&as_path).map_err(|e| e.to_string())?
    } else {
        prepared.tasks.find(&name).ok_or_else(|| {
            let dirs: Vec<String> = prepared
                .tasks
                .dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            format!(
                "no task '{name}': not a folder with a task.json, nor a task in {}",
                if dirs.is_empty() {
                    "any task folder (use --tasks-dir)".into()
                } else {
                    dirs.join(", ")
                }
            )
        })?
    };
    if let Some(m) = major {
        if m != manifest.major {
            return Err(format!(
                "task '{}' has major version {}, not {m}",
                manifest.name, manifest.major
            ));
        }
    }
    let mut inputs: Vec<(String, String)> = Vec::new();
    for (key, value) in &args.inputs {
        let input = manifest.input(key).ok_or_else(|| {
            let known: Vec<&str> = manifest.inputs.iter().map(|i| i.name.as_str()).collect();
            format!(
                "task '{}' has no input '{key}' (its inputs: {})",
                manifest.name,
                known.join(", ")
            )
        })?;
        inputs.retain(|(n, _)| n != &input.name);
        inputs.push((input.name.clone(), value.clone()));
    }
    for input in &manifest.inputs {
        let given = inputs
            .iter()
            .any(|(n, v)| n == &input.name && !v.trim().is_empty());
        let defaulted = input
            .default
            .as_deref()
            .is_some_and(|d| !d.trim().is_empty());
        if input.required && !given && !defaulted && !input.has_visible_rule {
            return Err(format!(
                "task '{}' needs input '{}' ({}): add --input {}=…",
                manifest.name, input.name, input.label, input.name
            ));
        }
    }
    let step = Step {
        kind: StepKind::Task {
            reference: format!("{}@{}", manifest.name, manifest.major),
            manifest: Box::new(manifest),
            inputs,
        },
        display_name: None,
        name: Some("task".into()),
        condition: None,
        continue_on_error: false,
        enabled: true,
        timeout_minutes: args.timeout_minutes,
        retries: 0,
        env: Vec::new(),
        pos: Default::default(),
    };
    let job = Job {
        name: "Job".into(),
        display_name: None,
        depends_on: Vec::new(),
        condition: None,
        continue_on_error: false,
        timeout_minutes: None,
        variables: Vec::new(),
        steps: vec![step],
        deployment: false,
        environment: None,
        legs: Default::default(),
        lifecycle: None,
        implicit: true,
    };
    Ok(Pipeline {
        file: PathBuf::from(&args.target),
        variables: Vec::new(),
        stages: vec![Stage {
            name: "__default".into(),
            display_name: None,
            depends_on: Vec::new(),
            condition: None,
            variables: Vec::new(),
            jobs: vec![job],
            implicit: true,
        }],
    })
}
