//! The runtime part of a pipeline, as the service runs it: strategies (matrix, parallel),
//! `$[ ]` variables, conditions naming jobs and stages, output variables between jobs and
//! stages, deployment strategies and their hooks.

use e2e::run_pipeline;

/// Lines of stdout that start with `marker`, trimmed.
fn lines<'a>(stdout: &'a str, marker: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(marker))
        .collect()
}

#[test]
fn matrix_and_parallel_make_the_jobs_the_service_makes() {
    let yaml = r###"
jobs:
- job: Build
  displayName: Build on
  strategy:
    maxParallel: 2
    matrix:
      linux:
        os: Linux
      mac:
        os: Darwin
  steps:
  - script: echo "leg $(System.JobName) $(os) $(System.JobPositionInPhase)/$(System.TotalJobsInPhase) [$(Agent.JobName)] $(System.PhaseName)"
- job: Slice
  strategy:
    parallel: 3
  steps:
  - script: echo "slice $(System.JobName) $(System.JobPositionInPhase)/$(System.TotalJobsInPhase)"
"###;
    let (r, _d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        lines(&r.stdout, "leg "),
        [
            "leg linux Linux 1/2 [Build on linux] Build",
            "leg mac Darwin 2/2 [Build on mac] Build"
        ]
    );
    assert_eq!(
        lines(&r.stdout, "slice "),
        ["slice Job1 1/3", "slice Job2 2/3", "slice Job3 3/3"]
    );
    assert!(r.row("Build linux / ").is_some(), "{}", r.stdout);
    assert!(r.row("Slice 3 / ").is_some(), "{}", r.stdout);
}

#[test]
fn strategy_errors_name_the_line() {
    let yaml = "jobs:\n- job: A\n  strategy:\n    matrix:\n      1bad:\n        x: y\n  steps:\n  - script: echo\n- job: B\n  strategy:\n    parallel: 0\n  steps:\n  - script: echo\n- job: C\n  strategy:\n    parallel: 2\n    matrix: {a: {x: y}}\n  steps: []\n";
    let (r, d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    let file = d.path().join("azure-pipelines.yml");
    let file = file.display();
    for (line, what) in [
        (5, "matrix name '1bad' must start with a letter"),
        (11, "'parallel' must be a whole number of at least 1"),
        (16, "'matrix' or 'parallel', not both"),
    ] {
        assert!(
            r.stderr.contains(&format!("{file}:{line}:")) && r.stderr.contains(what),
            "line {line}: {what}\n{}",
            r.stderr
        );
    }
}

#[test]
fn outputs_flow_to_later_jobs_and_stages() {
    let yaml = r###"
stages:
- stage: A
  jobs:
  - job: A1
    steps:
    - script: |
        echo "##vso[task.setvariable variable=go;isOutput=true]yes"
        echo "##vso[task.setvariable variable=color;isOutput=true]blue"
      name: setvar
  - job: A2
    dependsOn: A1
    condition: eq(dependencies.A1.outputs['setvar.go'], 'yes')
    variables:
      fromA1: $[ dependencies.A1.outputs['setvar.color'] ]
      a1result: $[ dependencies.A1.result ]
    steps:
    - script: echo "same-stage $(fromA1) $(a1result)"
  - job: M
    strategy:
      matrix:
        debug: { cfg: dbg }
        release: { cfg: rel }
    steps:
    - script: echo "##vso[task.setvariable variable=out;isOutput=true]built-$(cfg)"
      name: mk
  - job: AfterM
    dependsOn: M
    variables:
      rel: $[ dependencies.M.outputs['release.mk.out'] ]
    steps:
    - script: echo "matrix-out $(rel)"
- stage: B
  dependsOn: A
  condition: eq(dependencies.A.outputs['A1.setvar.go'], 'yes')
  variables:
    stageColor: $[ stageDependencies.A.A1.outputs['setvar.color'] ]
  jobs:
  - job: B1
    variables:
      jobColor: $[ stageDependencies.A.A1.outputs['setvar.color'] ]
    steps:
    - script: echo "next-stage $(stageColor) $(jobColor)"
- stage: C
  dependsOn: A
  condition: ne(dependencies.A.outputs['A1.setvar.go'], 'yes')
  jobs:
  - job: C1
    steps:
    - script: echo never
"###;
    let (r, _d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        lines(&r.stdout, "same-stage"),
        ["same-stage blue Succeeded"]
    );
    assert_eq!(lines(&r.stdout, "matrix-out"), ["matrix-out built-rel"]);
    assert_eq!(lines(&r.stdout, "next-stage"), ["next-stage blue blue"]);
    assert_eq!(r.result_of("C / C1"), Some("Skipped"), "{}", r.stdout);
}

#[test]
fn conditions_name_jobs_and_stages() {
    let yaml = r###"
stages:
- stage: S1
  jobs:
  - job: ok
    steps:
    - script: echo fine
  - job: bad
    steps:
    - script: exit 3
  - job: onlyIfBadFailed
    dependsOn: [ok, bad]
    condition: and(succeeded('ok'), failed('bad'))
    steps:
    - script: echo cleanup-ran
  - job: onlyIfAllOk
    dependsOn: [ok, bad]
    steps:
    - script: echo never-here
  - job: whatever
    dependsOn: bad
    condition: succeededOrFailed()
    steps:
    - script: echo either-way
- stage: S2
  dependsOn: S1
  condition: failed('S1')
  jobs:
  - job: report
    steps:
    - script: echo s1-failed
- stage: S3
  condition: always()
  jobs:
  - job: last
    steps:
    - script: echo always-last
"###;
    let (r, _d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    for text in ["cleanup-ran", "either-way", "s1-failed", "always-last"] {
        assert!(r.stdout.contains(text), "{text}: {}", r.stdout);
    }
    assert!(!r.stdout.contains("never-here"));
    assert_eq!(r.result_of("S1 / onlyIfAllOk"), Some("Skipped"));
}

#[test]
fn runtime_expression_errors() {
    // A parse error is reported with its line before anything runs.
    let yaml = "variables:\n  a: $[ eq(1 ]\nsteps:\n- script: echo\n";
    let (r, d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    let at = format!("{}:2:", d.path().join("azure-pipelines.yml").display());
    assert!(
        r.stderr.contains(&at) && r.stderr.contains("invalid runtime expression"),
        "{}",
        r.stderr
    );
    // An unknown function too.
    let yaml = "jobs:\n- job: a\n  variables:\n    x: $[ nosuch(1) ]\n  steps:\n  - script: echo\n";
    let (r, d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    let at = format!("{}:4:", d.path().join("azure-pipelines.yml").display());
    assert!(
        r.stderr.contains(&at) && r.stderr.contains("unknown function 'nosuch'"),
        "{}",
        r.stderr
    );
    // A status function naming a job that is no dependency fails the job when it is judged.
    let yaml = "jobs:\n- job: a\n  steps:\n  - script: echo\n- job: b\n  dependsOn: a\n  condition: succeeded('zzz')\n  steps:\n  - script: echo never\n";
    let (r, _d) = run_pipeline(yaml, &[]);
    assert!(r.all().contains("'zzz' is not a dependency"), "{}", r.all());
    assert!(!r.stdout.contains("never\n"), "{}", r.stdout);
}

#[test]
fn runtime_variables_and_counters() {
    let yaml = r###"
variables:
  major: 3
  rev: $[ counter(variables['major'], 100) ]
  isMain: $[ eq(variables['Build.SourceBranchName'], 'never-this-branch') ]
jobs:
- job: a
  variables:
    jobRev: $[ counter('job-a', 0) ]
  steps:
  - script: echo "rev $(rev) $(isMain) $(jobRev)"
- job: b
  steps:
  - script: echo "rev $(rev)"
"###;
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-pipelines.yml");
    std::fs::write(&file, yaml).unwrap();
    let run = || {
        e2e::run_cmd(
            e2e::azp_local()
                .args(["run", file.to_str().unwrap()])
                .env("XDG_STATE_HOME", state.path()),
        )
    };
    let first = run();
    assert_eq!(first.code, 0, "{}", first.all());
    // Evaluated once per run: both jobs see the same value.
    // A job's own: once per job (its condition and its steps see one value).
    assert_eq!(lines(&first.stdout, "rev "), ["rev 100 False 0", "rev 100"]);
    let second = run();
    assert_eq!(
        lines(&second.stdout, "rev "),
        ["rev 101 False 1", "rev 101"]
    );
}

#[test]
fn deployment_strategies_run_their_hooks_in_order_and_name_their_outputs() {
    let yaml = r###"
jobs:
- job: build
  steps:
  - script: mkdir -p $(Build.ArtifactStagingDirectory)/out && echo app > $(Build.ArtifactStagingDirectory)/out/app.txt
  - publish: $(Build.ArtifactStagingDirectory)/out
    artifact: drop
- deployment: web
  dependsOn: build
  environment: staging
  strategy:
    runOnce:
      preDeploy:
        steps:
        - script: echo "hook preDeploy $(Strategy.Name)"
      deploy:
        steps:
        - script: |
            echo "hook deploy $(cat $(Pipeline.Workspace)/drop/app.txt)"
            echo "##vso[task.setvariable variable=url;isOutput=true]http://web"
          name: dep
      routeTraffic:
        steps:
        - script: echo "hook routeTraffic"
      postRouteTraffic:
        steps:
        - script: echo "hook postRouteTraffic"
      on:
        success:
          steps:
          - script: echo "hook on.success"
        failure:
          steps:
          - script: echo "hook on.failure"
- deployment: canary
  dependsOn: web
  environment: staging
  strategy:
    canary:
      increments: [10, 20]
      preDeploy:
        steps:
        - script: echo "canary preDeploy"
      deploy:
        steps:
        - script: |
            echo "canary deploy $(Strategy.Increment)"
            echo "##vso[task.setvariable variable=pct;isOutput=true]$(Strategy.Increment)"
          name: step
      postRouteTraffic:
        steps:
        - script: echo "canary check $(Strategy.Increment)"
      on:
        failure:
          steps:
          - script: echo "canary on.failure"
- deployment: rolling
  dependsOn: canary
  environment:
    name: prod
    resourceName: vm1
  strategy:
    rolling:
      maxParallel: 2
      deploy:
        steps:
        - script: exit 1
          name: roll
      on:
        failure:
          steps:
          - script: echo "rolling on.failure $(Strategy.Name)"
        success:
          steps:
          - script: echo "rolling on.success"
- job: after
  dependsOn: [web, canary]
  variables:
    url: $[ dependencies.web.outputs['web.dep.url'] ]
    first: $[ dependencies.canary.outputs['deploy_10.step.pct'] ]
    second: $[ dependencies.canary.outputs['deploy_20.step.pct'] ]
  steps:
  - script: echo "outputs $(url) $(first) $(second)"
"###;
    let (r, _d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 1, "the rolling deploy fails: {}", r.all());
    assert_eq!(
        lines(&r.stdout, "hook "),
        [
            "hook preDeploy runOnce",
            "hook deploy app",
            "hook routeTraffic",
            "hook postRouteTraffic",
            "hook on.success"
        ]
    );
    assert_eq!(
        lines(&r.stdout, "canary "),
        [
            "canary preDeploy",
            "canary deploy 10",
            "canary check 10",
            "canary deploy 20",
            "canary check 20"
        ]
    );
    assert_eq!(lines(&r.stdout, "rolling "), ["rolling on.failure rolling"]);
    assert_eq!(lines(&r.stdout, "outputs "), ["outputs http://web 10 20"]);
    assert_eq!(
        r.result_of("rolling / on.failure"),
        Some("Succeeded"),
        "{}",
        r.stdout
    );
}

#[test]
fn deployment_strategy_errors_name_the_line() {
    let yaml = "jobs:\n- deployment: d\n  environment: e\n  strategy:\n    canary:\n      increments: [ten]\n      deploy:\n        steps:\n        - script: echo\n- deployment: e\n  environment: e\n  strategy:\n    runOnce:\n      deploy:\n        steps: []\n    rolling:\n      deploy:\n        steps: []\n";
    let (r, d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    let file = d.path().join("azure-pipelines.yml");
    assert!(
        r.stderr.contains(&format!("{}:6:", file.display()))
            && r.stderr
                .contains("canary increment must be a positive whole number"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("one of 'runOnce', 'rolling' or 'canary'"),
        "{}",
        r.stderr
    );
}

#[test]
fn pipeline_start_time_formats_as_a_date_in_runtime_variables() {
    let yaml = r###"
variables:
  day: $[format('{0:yyyyMMdd}', pipeline.startTime)]
  rev: $[counter(format('{0:yyyyMMdd}', pipeline.startTime), 1)]
steps:
- script: echo "day=$(day) rev=$(rev)"
"###;
    // Its own state folder: counters are kept per sources folder, across runs.
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-pipelines.yml");
    std::fs::write(&file, yaml).unwrap();
    let r = e2e::run_cmd(
        e2e::azp_local()
            .args(["run", file.to_str().unwrap()])
            .env("XDG_STATE_HOME", state.path()),
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let line = lines(&r.stdout, "day=");
    assert_eq!(line.len(), 1, "{}", r.stdout);
    let (day, rev) = line[0]
        .strip_prefix("day=")
        .and_then(|l| l.split_once(" rev="))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        day.len() == 8 && day.starts_with("20") && day.bytes().all(|b| b.is_ascii_digit()),
        "{day}"
    );
    assert_eq!(rev, "1", "{}", r.stdout);
}
