//! Pipelines through azp-local: ordering, conditions, artifacts between jobs, YAML errors
//! reported with file and line before anything runs, unknown tasks, cancellation.

use e2e::{azp_local, run_pipeline};

#[test]
fn stages_and_jobs_follow_depends_on_and_conditions() {
    let yaml = r###"
variables:
  deploy: 'yes'
stages:
- stage: Build
  jobs:
  - job: second
    dependsOn: first
    steps:
    - script: echo order-second
  - job: first
    steps:
    - script: echo order-first
- stage: Deploy
  condition: and(succeeded(), eq(variables['deploy'], 'YES'))
  jobs:
  - job: d
    steps:
    - script: echo deployed
- stage: Never
  condition: eq(variables.deploy, 'no')
  jobs:
  - job: n
    steps:
    - script: echo never-runs
"###;
    let (r, _d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let first = r.stdout.find("order-first").expect("first ran");
    let second = r.stdout.find("order-second").expect("second ran");
    assert!(first < second, "dependsOn orders jobs");
    assert!(r.stdout.contains("deployed"));
    assert!(!r.stdout.contains("never-runs"));
    assert_eq!(r.result_of("Never / n"), Some("Skipped"));
}

#[test]
fn step_conditions_after_a_failure() {
    let yaml = r###"
jobs:
- job: a
  steps:
  - script: exit 4
    displayName: breaks
  - script: echo default-condition
  - script: echo on-failure
    condition: failed()
  - script: echo on-either
    condition: succeededOrFailed()
  - script: echo always-runs
    condition: always()
  - script: echo disabled
    enabled: false
- job: b
  dependsOn: a
  steps:
  - script: echo b-runs
- job: c
  dependsOn: a
  condition: failed()
  steps:
  - script: echo c-runs-after-failure
"###;
    let (r, _d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    for (text, ran) in [
        ("default-condition", false),
        ("on-failure", true),
        ("on-either", true),
        ("always-runs", true),
        ("disabled", false),
        ("b-runs", false),
        ("c-runs-after-failure", true),
    ] {
        assert_eq!(
            r.stdout.lines().any(|l| l.trim() == text),
            ran,
            "{text}: {}",
            r.stdout
        );
    }
    assert_eq!(r.result_of("a / breaks"), Some("Failed"));
    assert!(r.stdout.contains("Run Failed"));
}

#[test]
fn artifacts_pass_between_jobs_and_deployments_download_them() {
    let yaml = r###"
stages:
- stage: CI
  jobs:
  - job: build
    steps:
    - script: mkdir -p out && echo payload > out/file.txt
      workingDirectory: $(Build.BinariesDirectory)
    - publish: $(Build.BinariesDirectory)/out
      artifact: drop
- stage: CD
  jobs:
  - deployment: deploy
    environment: test
    strategy:
      runOnce:
        deploy:
          steps:
          - script: cat $(Pipeline.Workspace)/drop/file.txt
  - job: plain
    steps:
    - script: test ! -e $(Pipeline.Workspace)/drop && echo no-implicit-download
    - download: current
      artifact: drop
    - script: cat $(Pipeline.Workspace)/drop/file.txt
"###;
    let (r, _d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        r.stdout.lines().filter(|l| l.trim() == "payload").count(),
        2,
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("no-implicit-download"));
}

#[test]
fn outputs_between_steps_and_template_expressions() {
    let yaml = r###"
variables:
  who: world
steps:
- bash: echo "##vso[task.setvariable variable=answer;isOutput=true]42"
  name: calc
- bash: echo "answer=$(calc.answer) greeting=${{ variables.who }} ${{ variables['who'] }}"
  env:
    MAPPED: $(calc.answer)
- bash: echo "mapped=$MAPPED"
  env:
    MAPPED: $(calc.answer)
"###;
    let (r, _d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("answer=42 greeting=world world"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("mapped=42"));
}

#[test]
fn secrets_are_masked_and_reach_scripts_only_through_env() {
    let yaml = r###"
steps:
- bash: |
    echo "env=[$TOKEN]"
    echo "macro=$(token)"
  env:
    MAPPED_TOKEN: $(token)
- bash: echo "mapped=$MAPPED_TOKEN"
  env:
    MAPPED_TOKEN: $(token)
"###;
    let (r, _d) = run_pipeline(yaml, &["--secret", "token=abc123secret"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("env=[]"), "{}", r.stdout);
    assert!(r.stdout.contains("macro=***") && r.stdout.contains("mapped=***"));
    assert!(!r.all().contains("abc123secret"));
}

#[test]
fn yaml_errors_name_file_and_line_and_nothing_runs() {
    let yaml = "jobs:\n- job: a\n  steps:\n  - script: echo should-not-run\n    displayname: typo\n- job: b\n  dependsOn: missing\n  steps:\n  - task: emit@1\n    inputs:\n      nosuchinput: x\n  - task: emit@7\n";
    let (r, dir) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(!r.stdout.contains("should-not-run"));
    let file = dir.path().join("azure-pipelines.yml");
    let f = file.display();
    assert!(
        r.stderr
            .contains(&format!("{f}:5:5: error: unknown key 'displayname'")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("{f}:7:14: error: job 'b' depends on 'missing'")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!(
            "{f}:11:7: error: task 'emit' has no input 'nosuchinput'"
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!(
            "{f}:12:11: error: task 'emit' has major version 1"
        )) && r.stderr.contains("not 7"),
        "{}",
        r.stderr
    );
}

#[test]
fn yaml_syntax_error_has_a_line() {
    let (r, dir) = run_pipeline("steps:\n- script: [unclosed\n", &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains(&format!(
            "{}:",
            dir.path().join("azure-pipelines.yml").display()
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("YAML syntax"), "{}", r.stderr);
}

#[test]
fn an_unknown_variable_group_is_a_warning_naming_what_to_pass() {
    let (r, _d) = run_pipeline(
        "variables:\n- group: nowhere\nsteps:\n- script: echo ran-without-the-group\n",
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains(":2:10: warning: variable group 'nowhere' is not defined locally"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--vars FILE") && r.stderr.contains("--var NAME=VALUE"));
    assert!(r.stdout.contains("ran-without-the-group"));
}

#[test]
fn unknown_tasks_are_skipped_visibly_unless_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let vars = dir.path().join("vars.yml");
    std::fs::write(
        &vars,
        "tasks:\n  Mapped@1: echo \"mapped ran with $INPUT_SOMEINPUT\"\n  Skipped@0: skip\n",
    )
    .unwrap();
    let yaml = "steps:\n- task: NotHere@3\n- task: Mapped@1\n  inputs:\n    someInput: $(v)\n- task: Skipped@0\n";
    let (r, _d) = run_pipeline(yaml, &["--vars", vars.to_str().unwrap(), "--var", "v=val"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains("warning: task 'NotHere@3' is not available locally"),
        "{}",
        r.stderr
    );
    assert!(r
        .stdout
        .contains("##[warning]task 'NotHere@3' is not available"));
    assert!(r.stdout.contains("mapped ran with val"));
    assert_eq!(r.result_of("NotHere@3"), Some("Skipped"));
    assert_eq!(r.result_of("Skipped@0"), Some("Skipped"));
}

#[test]
fn log_dir_keeps_one_raw_log_per_step() {
    let logs = tempfile::tempdir().unwrap();
    let (r, _d) = run_pipeline(
        "steps:\n- script: echo one\n  name: first\n- script: echo two\n",
        &["--log-dir", logs.path().to_str().unwrap()],
    );
    assert_eq!(r.code, 0);
    let mut names: Vec<String> = std::fs::read_dir(logs.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("001-first"));
    assert_eq!(
        std::fs::read_to_string(logs.path().join(&names[0]))
            .unwrap()
            .trim(),
        "one"
    );
}

#[test]
fn sigterm_forwards_sigint_to_the_running_step_and_cancels() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yml");
    std::fs::write(&file, "steps:\n- task: sleeper@1\n- script: echo after-cancel\n- script: echo cleanup-on-cancel\n  condition: always()\n").unwrap();
    let mut child = azp_local()
        .args([
            "run",
            file.to_str().unwrap(),
            "--tasks-dir",
            e2e::conformance_dir().to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("ready") {
            break;
        }
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    seen.extend(lines.map_while(Result::ok));
    let code = child.wait().unwrap().code();
    let out = seen.join("\n");
    assert_eq!(code, Some(130), "{out}");
    assert!(
        out.contains("got SIGINT"),
        "the step got SIGINT first: {out}"
    );
    assert!(!out.lines().any(|l| l.trim() == "after-cancel"), "{out}");
    assert!(
        out.lines().any(|l| l.trim() == "cleanup-on-cancel"),
        "always() steps run after a cancel: {out}"
    );
}

#[test]
fn failed_steps_are_retried_by_retry_count_on_task_failure() {
    let yaml = "jobs:\n- job: a\n  container: ubuntu:22.04\n  steps:\n  - bash: |\n      n=$(cat $(Agent.TempDirectory)/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > $(Agent.TempDirectory)/count\n      echo \"attempt-$n\"; test $n -ge 3\n    displayName: flaky\n    retryCountOnTaskFailure: 3\n  - bash: exit 1\n    displayName: broken\n    retryCountOnTaskFailure: 1\n";
    let (r, _d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("attempt-3") && !r.stdout.contains("attempt-4"),
        "{}",
        r.stdout
    );
    assert_eq!(r.result_of("a / flaky"), Some("Succeeded"));
    assert!(
        r.row("a / broken").unwrap().contains("attempt 2"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("'container' is ignored"), "{}", r.stderr);
}
