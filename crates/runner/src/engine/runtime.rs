//! What the service knows between jobs: the copies (legs) a job's strategy makes, each
//! finished job's result and output variables, and the `dependencies` /
//! `stageDependencies` contexts that conditions and `$[ ]` expressions read them through.

use std::path::PathBuf;

use crate::expr::{Outcome, Scope, Val};
use crate::pipeline::{Job, Legs};
use crate::variables::Variables;

/// One copy of a job, as the service makes it from `strategy`.
#[derive(Debug, Clone)]
pub(super) struct Leg {
    /// `System.JobName`: the matrix key, `Job<N>` for `parallel`, `__default` otherwise.
    pub name: String,
    /// Appended to the job's display name (`Build linux`, `Test 2`), if a copy.
    pub suffix: Option<String>,
    /// `System.JobPositionInPhase` and `System.TotalJobsInPhase`.
    pub position: u64,
    pub total: u64,
    /// The matrix entry's variables.
    pub variables: Vec<(String, String)>,
    /// What prefixes this copy's output variables for later jobs (`<leg>.<step>.<var>`).
    pub output_prefix: Option<String>,
}

/// The copies the service makes of `job`.
pub(super) fn legs(job: &Job) -> Vec<Leg> {
    match &job.legs {
        Legs::Matrix { legs, .. } => {
            let total = legs.len() as u64;
            legs.iter()
                .enumerate()
                .map(|(i, (name, vars))| Leg {
                    name: name.clone(),
                    suffix: Some(name.clone()),
                    position: i as u64 + 1,
                    total,
                    variables: vars.clone(),
                    output_prefix: Some(name.clone()),
                })
                .collect()
        }
        Legs::Parallel(n) => (1..=*n)
            .map(|i| Leg {
                name: format!("Job{i}"),
                suffix: Some(i.to_string()),
                position: i,
                total: *n,
                variables: Vec::new(),
                output_prefix: Some(format!("Job{i}")),
            })
            .collect(),
        Legs::One => vec![Leg {
            // A deployment's hook jobs are named after it (`<job>.<step>.<var>` outputs).
            name: if job.deployment {
                job.name.clone()
            } else {
                "__default".into()
            },
            suffix: None,
            position: 1,
            total: 1,
            variables: Vec::new(),
            output_prefix: None,
        }],
    }
}

/// A finished job: its result and its output variables (`[<leg>.]<step>.<var>`).
#[derive(Debug, Clone)]
pub(super) struct JobRecord {
    pub name: String,
    pub result: Outcome,
    pub outputs: Vec<(String, String)>,
}

/// A finished stage and its jobs.
#[derive(Debug, Clone)]
pub(super) struct StageRecord {
    pub name: String,
    pub result: Outcome,
    pub jobs: Vec<JobRecord>,
}

fn find<'a, T>(items: &'a [T], name: &str, key: impl Fn(&T) -> &str) -> Option<&'a T> {
    items.iter().find(|i| key(i).eq_ignore_ascii_case(name))
}

fn outputs_value(outputs: &[(String, String)]) -> Val {
    Val::Object(
        outputs
            .iter()
            .map(|(k, v)| (k.clone(), Val::Str(v.clone())))
            .collect(),
    )
}

fn job_value(job: &JobRecord) -> Val {
    Val::Object(vec![
        ("result".into(), Val::Str(job.result.as_str().into())),
        ("outputs".into(), outputs_value(&job.outputs)),
    ])
}

/// `stageDependencies`: each stage in `depends_on` with its jobs' results and outputs.
fn stage_dependencies(stages: &[StageRecord], depends_on: &[String]) -> Val {
    Val::Object(
        depends_on
            .iter()
            .filter_map(|d| find(stages, d, |s| &s.name))
            .map(|s| {
                (
                    s.name.clone(),
                    Val::Object(
                        s.jobs
                            .iter()
                            .map(|j| (j.name.clone(), job_value(j)))
                            .collect(),
                    ),
                )
            })
            .collect(),
    )
}

/// The `pipeline` context of runtime expressions: `pipeline.startTime` (a date that
/// `format('{0:yyyyMMdd}', pipeline.startTime)` formats, as in `counter` build numbers).
pub(super) fn pipeline_context(identity: &crate::identity::RunIdentity) -> (String, Val) {
    (
        "pipeline".into(),
        Val::Object(vec![(
            "startTime".into(),
            Val::Str(identity.start_time.clone()),
        )]),
    )
}

/// The contexts of a job's condition and `$[ ]` variables: `dependencies` (the jobs of its
/// stage it depends on) and `stageDependencies` (the stages its stage depends on).
pub(super) fn job_contexts(
    done: &[JobRecord],
    depends_on: &[String],
    stages: &[StageRecord],
    stage_depends_on: &[String],
) -> Vec<(String, Val)> {
    let deps = Val::Object(
        depends_on
            .iter()
            .map(|d| match find(done, d, |j| &j.name) {
                Some(j) => (j.name.clone(), job_value(j)),
                None => (
                    d.clone(),
                    job_value(&JobRecord {
                        name: d.clone(),
                        result: Outcome::Skipped,
                        outputs: Vec::new(),
                    }),
                ),
            })
            .collect(),
    );
    vec![
        ("dependencies".into(), deps),
        (
            "stageDependencies".into(),
            stage_dependencies(stages, stage_depends_on),
        ),
    ]
}

/// The contexts of a stage's condition and `$[ ]` variables: `dependencies.<stage>` with the
/// stage's result and its jobs' outputs as `<job>.<step>.<var>`, and `stageDependencies`.
pub(super) fn stage_contexts(stages: &[StageRecord], depends_on: &[String]) -> Vec<(String, Val)> {
    let deps = Val::Object(
        depends_on
            .iter()
            .filter_map(|d| find(stages, d, |s| &s.name))
            .map(|s| {
                let outputs: Vec<(String, String)> = s
                    .jobs
                    .iter()
                    .flat_map(|j| {
                        j.outputs
                            .iter()
                            .map(move |(k, v)| (format!("{}.{k}", j.name), v.clone()))
                    })
                    .collect();
                (
                    s.name.clone(),
                    Val::Object(vec![
                        ("result".into(), Val::Str(s.result.as_str().into())),
                        ("outputs".into(), outputs_value(&outputs)),
                    ]),
                )
            })
            .collect(),
    );
    vec![
        ("dependencies".into(), deps),
        (
            "stageDependencies".into(),
            stage_dependencies(stages, depends_on),
        ),
    ]
}

/// The scope of a job's or stage's condition and of `$[ ]` variables: variables, the
/// dependency contexts, the dependencies' outcomes, counters.
pub(super) struct RuntimeScope<'a> {
    pub vars: &'a Variables,
    pub contexts: &'a [(String, Val)],
    pub deps: Vec<(String, Outcome)>,
    pub canceled: bool,
    /// Where `counter()` keeps its values (per sources folder); `None`: no counters here.
    pub counters: Option<PathBuf>,
}

impl Scope for RuntimeScope<'_> {
    fn variable(&self, name: &str) -> Option<String> {
        self.vars.value(name).map(str::to_owned)
    }
    fn context(&self, name: &str) -> Option<Val> {
        self.contexts
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
    fn outcomes(&self, names: &[String]) -> Result<Vec<Outcome>, String> {
        if names.is_empty() {
            return Ok(self.deps.iter().map(|(_, o)| *o).collect());
        }
        names
            .iter()
            .map(|n| {
                self.dependency(n).ok_or_else(|| {
                    format!("'{n}' is not a dependency (add it to dependsOn to judge its result)")
                })
            })
            .collect()
    }
    fn dependency(&self, name: &str) -> Option<Outcome> {
        self.deps
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, o)| *o)
    }
    fn canceled(&self) -> bool {
        self.canceled
    }
    fn counter(&self, prefix: &str, seed: i64) -> Result<i64, String> {
        let dir = self
            .counters
            .as_ref()
            .ok_or("counter() can be used only in a variable's $[ ] expression")?;
        next_counter(dir, prefix, seed)
    }
}

/// `counter(prefix, seed)`: `seed` the first time a prefix is seen, one more each time
/// after; kept in `dir/counters.json` like the build id, per sources folder.
pub(super) fn next_counter(dir: &std::path::Path, prefix: &str, seed: i64) -> Result<i64, String> {
    let file = dir.join("counters.json");
    let mut map: serde_json::Map<String, serde_json::Value> = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let next = match map.get(prefix).and_then(serde_json::Value::as_i64) {
        Some(last) => last + 1,
        None => seed,
    };
    map.insert(prefix.to_owned(), next.into());
    std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&file, serde_json::Value::Object(map).to_string()))
        .map_err(|e| format!("counter(): cannot write {}: {e}", file.display()))?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Expression;

    fn job(name: &str, result: Outcome, outputs: &[(&str, &str)]) -> JobRecord {
        JobRecord {
            name: name.into(),
            result,
            outputs: outputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn eval(text: &str, contexts: &[(String, Val)], deps: Vec<(String, Outcome)>) -> String {
        let vars = Variables::new();
        let scope = RuntimeScope {
            vars: &vars,
            contexts,
            deps,
            canceled: false,
            counters: None,
        };
        Expression::parse(text)
            .unwrap()
            .eval(&scope)
            .unwrap()
            .to_text()
    }

    #[test]
    fn job_contexts_hold_results_and_outputs() {
        let done = vec![
            job(
                "A",
                Outcome::Succeeded,
                &[("setvar.x", "1"), ("debug.setvar.y", "2")],
            ),
            job("B", Outcome::Failed, &[]),
        ];
        let stages = vec![StageRecord {
            name: "Build".into(),
            result: Outcome::Succeeded,
            jobs: vec![job("J", Outcome::Succeeded, &[("s.v", "from-stage")])],
        }];
        let c = job_contexts(&done, &["A".into(), "B".into()], &stages, &["build".into()]);
        let deps = vec![
            ("A".into(), Outcome::Succeeded),
            ("B".into(), Outcome::Failed),
        ];
        assert_eq!(
            eval("dependencies.A.outputs['setvar.x']", &c, deps.clone()),
            "1"
        );
        assert_eq!(
            eval("dependencies.a.outputs['DEBUG.setvar.y']", &c, deps.clone()),
            "2"
        );
        assert_eq!(eval("dependencies.B.result", &c, deps.clone()), "Failed");
        assert_eq!(
            eval("stageDependencies.Build.J.outputs['s.v']", &c, deps.clone()),
            "from-stage"
        );
        assert_eq!(
            eval("dependencies.A.outputs['none.x']", &c, deps.clone()),
            ""
        );
        assert_eq!(eval("and(succeeded('A'), failed('B'))", &c, deps), "True");
    }

    #[test]
    fn stage_contexts_prefix_outputs_with_the_job() {
        let stages = vec![StageRecord {
            name: "A".into(),
            result: Outcome::SucceededWithIssues,
            jobs: vec![job("A1", Outcome::Succeeded, &[("printvar.go", "true")])],
        }];
        let c = stage_contexts(&stages, &["A".into()]);
        let deps = vec![("A".into(), Outcome::SucceededWithIssues)];
        assert_eq!(
            eval("dependencies.A.outputs['A1.printvar.go']", &c, deps.clone()),
            "true"
        );
        assert_eq!(
            eval("dependencies.A.result", &c, deps.clone()),
            "SucceededWithIssues"
        );
        assert_eq!(
            eval("stageDependencies.A.A1.outputs['printvar.go']", &c, deps),
            "true"
        );
    }

    #[test]
    fn unknown_dependency_in_a_status_function_is_an_error() {
        let vars = Variables::new();
        let scope = RuntimeScope {
            vars: &vars,
            contexts: &[],
            deps: vec![("A".into(), Outcome::Succeeded)],
            canceled: false,
            counters: None,
        };
        let err = Expression::parse("succeeded('Nope')")
            .unwrap()
            .eval(&scope)
            .unwrap_err();
        assert!(err.contains("'Nope' is not a dependency"), "{err}");
    }

    #[test]
    fn counters_start_at_the_seed_and_count_per_prefix() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(next_counter(dir.path(), "a", 100).unwrap(), 100);
        assert_eq!(next_counter(dir.path(), "a", 100).unwrap(), 101);
        assert_eq!(next_counter(dir.path(), "b", 0).unwrap(), 0);
        assert_eq!(next_counter(dir.path(), "a", 5).unwrap(), 102);
    }

    #[test]
    fn legs_are_named_as_the_service_names_them() {
        let mut j = Job {
            name: "Test".into(),
            display_name: None,
            depends_on: Vec::new(),
            condition: None,
            continue_on_error: false,
            timeout_minutes: None,
            variables: Vec::new(),
            steps: Vec::new(),
            deployment: false,
            environment: None,
            legs: Legs::Parallel(3),
            lifecycle: None,
            implicit: false,
        };
        let l = legs(&j);
        assert_eq!(
            l.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["Job1", "Job2", "Job3"]
        );
        assert_eq!((l[1].position, l[1].total), (2, 3));
        j.legs = Legs::Matrix {
            legs: vec![("linux".into(), vec![("os".into(), "l".into())])],
            max_parallel: Some(2),
        };
        let l = legs(&j);
        assert_eq!(l[0].name, "linux");
        assert_eq!(l[0].output_prefix.as_deref(), Some("linux"));
        j.legs = Legs::One;
        assert_eq!(legs(&j)[0].name, "__default");
        assert_eq!(legs(&j)[0].output_prefix, None);
    }
}
