//! Conformance of azp-local with the agent contract (shared/specs/agent-contract.md §1–4):
//! each test runs a small task from tests/conformance through the real `azp-local` and checks
//! that its output is read the way the agent reads it.

use e2e::{conformance_dir, run_pipeline, run_task};
use serde_json::Value;

fn lines(input: &[&str]) -> String {
    format!("lines={}", input.join("\n"))
}

// ---- §1 handlers ----------------------------------------------------------------------

#[test]
fn handler_priority_prefers_node20_over_older_node_handlers() {
    let r = run_task("priority", &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("picked Node20_1") && !r.stdout.contains("picked Node16"),
        "{}",
        r.stdout
    );
}

#[test]
fn end_of_life_node_handler_warns_on_every_run() {
    let r = run_task("node16only", &["--input", "lines=hi"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("end-of-life"), "{}", r.stdout);
}

#[test]
fn process_only_task_cannot_run_on_linux() {
    let r = run_task("processonly", &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("not capable of running this task"),
        "{}",
        r.stdout
    );
}

// ---- §2 what reaches the task ------------------------------------------------------------

fn probe(args: &[&str]) -> (Value, e2e::Run, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.json");
    let endpoints = dir.path().join("vars.yml");
    std::fs::write(
        &endpoints,
        "endpoints:\n  0c0ffee0-0000-4000-8000-000000000001:\n    name: named-conn\n    url: https://management.example/\n    scheme: ServicePrincipal\n    auth: {serviceprincipalid: app-id, serviceprincipalkey: spn-secret-value, tenantid: tenant}\n    data: {subscriptionId: sub-1}\n  0c0ffee0-0000-4000-8000-000000000002:\n    url: https://other.example/\n    scheme: ServicePrincipal\n    auth: {serviceprincipalkey: other-secret}\n",
    )
    .unwrap();
    let out_arg = format!("out={}", out.display());
    let vars_arg = endpoints.display().to_string();
    let mut all: Vec<&str> = vec!["--input", &out_arg, "--vars", &vars_arg];
    all.extend_from_slice(args);
    let r = run_task("envprobe", &all);
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(&out).unwrap_or_else(|_| panic!("no env written: {}", r.all())),
    )
    .unwrap();
    (json, r, dir)
}

fn env<'a>(probe: &'a Value, key: &str) -> Option<&'a str> {
    probe["env"][key].as_str()
}

#[test]
fn inputs_defaults_trimmed_aliases_macros_once_and_file_paths() {
    let (p, r, _d) = probe(&[
        "--input",
        "azureSubscription=named-conn",
        "--input",
        "macro=$(a.b) $(nested) $(unknown.var)",
        "--input",
        "relative=some/file.txt",
        "--var",
        "a.b=A",
        "--var",
        "nested=$(a.b)-not-again",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    // Defaults apply, trimmed.
    assert_eq!(env(&p, "INPUT_TEXT"), Some("default text"));
    assert_eq!(env(&p, "INPUT_FLAG"), Some("false"));
    // An alias names the input; a connection given by name reaches the task as its id.
    assert_eq!(
        env(&p, "INPUT_CONNECTEDSERVICENAME"),
        Some("0c0ffee0-0000-4000-8000-000000000001")
    );
    // Variables referring to variables are resolved when the job starts; unknown macros
    // stay as written.
    assert_eq!(env(&p, "INPUT_MACRO"), Some("A A-not-again $(unknown.var)"));
    // filePath inputs are rooted at System.DefaultWorkingDirectory.
    let cwd = p["cwd"].as_str().unwrap();
    assert_eq!(
        env(&p, "INPUT_RELATIVE"),
        Some(format!("{cwd}/some/file.txt").as_str())
    );
    assert_eq!(env(&p, "SYSTEM_DEFAULTWORKINGDIRECTORY"), Some(cwd));
}

#[test]
fn macros_expand_once_not_again_in_the_substituted_value() {
    // A value set at run time holding `$(x)` is substituted as it is: one expansion only.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.json");
    let yaml = format!(
        "variables:\n  x: X\nsteps:\n- bash: d='$'; echo \"##vso[task.setvariable variable=holder]${{d}}(x)\"\n- task: envprobe@1\n  inputs:\n    out: {}\n    macro: '[$(holder)] [$(x)]'\n",
        out.display()
    );
    let (r, _d) = run_pipeline(&yaml, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let p: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(env(&p, "INPUT_MACRO"), Some("[$(x)] [X]"));
}

#[test]
fn variables_public_and_secret() {
    let (p, r, _d) = probe(&[
        "--var",
        "my.var name=v1",
        "--secret",
        "db.password=hunter22",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(env(&p, "MY_VAR_NAME"), Some("v1"));
    assert_eq!(env(&p, "SECRET_DB_PASSWORD"), Some("hunter22"));
    assert_eq!(
        env(&p, "DB_PASSWORD"),
        None,
        "a secret is not a public variable"
    );
    let public: Vec<String> =
        serde_json::from_str(env(&p, "VSTS_PUBLIC_VARIABLES").unwrap()).unwrap();
    assert!(public.contains(&"my.var name".to_string()));
    assert!(!public.contains(&"db.password".to_string()));
    let secrets: Vec<String> =
        serde_json::from_str(env(&p, "VSTS_SECRET_VARIABLES").unwrap()).unwrap();
    // System.AccessToken is a secret variable on the agent too.
    assert!(
        secrets.contains(&"db.password".to_string())
            && !secrets.contains(&"my.var name".to_string()),
        "{secrets:?}"
    );
}

#[test]
fn only_the_named_service_connection_and_systemvssconnection_reach_the_task() {
    let (p, r, _d) = probe(&[
        "--input",
        "connectedServiceName=0c0ffee0-0000-4000-8000-000000000001",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let id = "0c0ffee0-0000-4000-8000-000000000001";
    assert_eq!(
        env(&p, &format!("ENDPOINT_URL_{id}")),
        Some("https://management.example/")
    );
    assert_eq!(
        env(&p, &format!("ENDPOINT_AUTH_SCHEME_{id}")),
        Some("ServicePrincipal")
    );
    assert_eq!(
        env(
            &p,
            &format!("ENDPOINT_AUTH_PARAMETER_{id}_SERVICEPRINCIPALKEY")
        ),
        Some("spn-secret-value")
    );
    assert_eq!(
        env(&p, &format!("ENDPOINT_DATA_{id}_SUBSCRIPTIONID")),
        Some("sub-1")
    );
    let auth: Value =
        serde_json::from_str(env(&p, &format!("ENDPOINT_AUTH_{id}")).unwrap()).unwrap();
    assert_eq!(auth["scheme"], "ServicePrincipal");
    assert_eq!(auth["parameters"]["tenantid"], "tenant");
    let keys: Vec<&String> = p["env"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("ENDPOINT_URL_"))
        .collect();
    assert_eq!(
        keys.len(),
        2,
        "the named connection and SYSTEMVSSCONNECTION only: {keys:?}"
    );
    assert!(env(&p, "ENDPOINT_URL_SYSTEMVSSCONNECTION").is_some());
    assert!(env(&p, "ENDPOINT_AUTH_SYSTEMVSSCONNECTION")
        .unwrap()
        .contains("AccessToken"));
}

#[test]
fn unknown_service_connection_fails_the_step_with_a_hint() {
    let (_, r) = {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env.json");
        let r = run_task(
            "envprobe",
            &[
                "--input",
                &format!("out={}", out.display()),
                "--input",
                "connectedServiceName=nope",
            ],
        );
        (out.exists(), r)
    };
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("service connection 'nope'"),
        "{}",
        r.stdout
    );
}

#[test]
fn agent_variables_always_present() {
    let (p, r, _d) = probe(&[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(env(&p, "TF_BUILD"), Some("True"));
    for key in [
        "AGENT_TEMPDIRECTORY",
        "AGENT_OS",
        "AGENT_OSARCHITECTURE",
        "BUILD_SOURCESDIRECTORY",
        "SYSTEM_DEBUG",
        "SYSTEM_TEAMPROJECTID",
        "SYSTEM_PLANID",
        "SYSTEM_JOBID",
        "SYSTEM_HOSTTYPE",
        "SYSTEM_COLLECTIONURI",
        "PIPELINE_WORKSPACE",
    ] {
        assert!(env(&p, key).is_some_and(|v| !v.is_empty()), "{key} missing");
    }
    assert_eq!(env(&p, "AGENT_OS"), Some("Linux"));
    assert!(std::path::Path::new(env(&p, "AGENT_TEMPDIRECTORY").unwrap()).is_absolute());
}

#[test]
fn required_input_and_unknown_input_are_refused_before_running() {
    let r = run_task("envprobe", &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("needs input 'out'"), "{}", r.stderr);
    let r = run_task("envprobe", &["--input", "out=/tmp/x", "--input", "bogus=1"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("has no input 'bogus'"), "{}", r.stderr);
}

// ---- §3 logging commands and §4 results ---------------------------------------------------

#[test]
fn exit_zero_without_complete_succeeds() {
    let r = run_task("emit", &["--input", "lines=hello"]);
    assert_eq!(r.code, 0);
    assert_eq!(
        r.result_of("Conformance emit"),
        Some("Succeeded"),
        "{}",
        r.stdout
    );
}

#[test]
fn complete_results_merge_to_the_worst() {
    let r = run_task(
        "emit",
        &[
            "--input",
            &lines(&[
                "##vso[task.complete result=SucceededWithIssues;]half",
                "##vso[task.complete result=Succeeded;]fine",
            ]),
        ],
    );
    assert_eq!(r.code, 0);
    assert_eq!(
        r.result_of("Conformance emit"),
        Some("SucceededWithIssues"),
        "{}",
        r.stdout
    );
    let r = run_task(
        "emit",
        &[
            "--input",
            &lines(&[
                "##vso[task.complete result=Failed;]bad",
                "##vso[task.complete result=Succeeded;]",
            ]),
        ],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.result_of("Conformance emit"), Some("Failed"));
}

#[test]
fn nonzero_exit_fails_even_after_succeeded() {
    let r = run_task(
        "emit",
        &[
            "--input",
            &lines(&["##vso[task.complete result=Succeeded;]all good"]),
            "--input",
            "exitCode=2",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(r.result_of("Conformance emit"), Some("Failed"));
    assert!(r.row("Conformance emit").unwrap().contains("exit code 2"));
}

#[test]
fn logissue_error_alone_does_not_fail() {
    let r = run_task(
        "emit",
        &[
            "--input",
            &lines(&[
                "##vso[task.logissue type=error;]something odd",
                "##vso[task.issue type=warning;]careful",
            ]),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.result_of("Conformance emit"), Some("Succeeded"));
    assert!(r.stdout.contains("##[error]something odd"));
    assert!(r.stdout.contains("##[warning]careful"));
    assert!(r
        .row("Conformance emit")
        .unwrap()
        .contains("1 error(s), 1 warning(s)"));
}

#[test]
fn bad_logging_commands_fail_the_task_but_unknown_areas_only_warn() {
    for bad in [
        "##vso[task.notacommand]x",
        "##vso[task.complete result=Splendid;]",
        "##vso[task.logissue type=info;]x",
        "##vso[task.setvariable]no name",
        "##vso[task.setprogress value=abc;]x",
    ] {
        let r = run_task("emit", &["--input", &lines(&[bad])]);
        assert_eq!(r.code, 1, "{bad} should fail: {}", r.all());
        assert_eq!(r.result_of("Conformance emit"), Some("Failed"), "{bad}");
    }
    let r = run_task("emit", &["--input", &lines(&["##vso[mystery.area]x"])]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("not a recognized logging command area"));
}

#[test]
fn commands_are_found_anywhere_in_a_line_and_on_stderr() {
    let r = run_task(
        "emit",
        &[
            "--input",
            &lines(&[
                ">>>   ##vso[task.logissue type=warning;]prefixed",
                "stderr:##vso[task.complete result=Failed;]from stderr",
            ]),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("##[warning]prefixed"));
    assert!(
        !r.stdout.contains(">>>"),
        "a command line is not printed as output"
    );
}

#[test]
fn message_unescaping_follows_the_agent() {
    let r = run_task(
        "emit",
        &[
            "--input",
            &lines(&["##vso[task.logissue type=warning;]a%3Bb%5Dc%AZP25d"]),
        ],
    );
    assert!(r.stdout.contains("##[warning]a;b]c%d"), "{}", r.stdout);
}

#[test]
fn multi_line_secret_variable_is_an_error() {
    let r = run_task(
        "emit",
        &[
            "--input",
            &lines(&["##vso[task.setvariable variable=k;issecret=true;]line1%0Aline2"]),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.all());
}

#[test]
fn setsecret_and_secret_variables_are_masked_everywhere() {
    let logs = tempfile::tempdir().unwrap();
    let r = run_task(
        "emit",
        &[
            "--input",
            &lines(&[
                "token is s3cr3t-value",
                "##vso[task.setsecret]fresh-secret",
                "now fresh-secret and s3cr3t-value",
                // stderr is another pipe: a secret registered on stdout may race it, as on
                // the agent; a variable secret is masked on both from the start.
                "stderr:err s3cr3t-value",
            ]),
            "--secret",
            "api.key=s3cr3t-value",
            "--log-dir",
            logs.path().to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        !r.all().contains("s3cr3t-value") && !r.all().contains("fresh-secret"),
        "{}",
        r.all()
    );
    assert!(
        r.stdout.contains("token is ***") && r.stdout.contains("now *** and ***"),
        "{}",
        r.stdout
    );
    for entry in std::fs::read_dir(logs.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(
            !text.contains("s3cr3t-value") && !text.contains("fresh-secret"),
            "raw log leaks: {text}"
        );
    }
}

#[test]
fn group_sections_are_indented() {
    let r = run_task(
        "emit",
        &[
            "--input",
            &lines(&[
                "before",
                "##[group]Details",
                "inside",
                "##[endgroup]",
                "after",
            ]),
        ],
    );
    let out = &r.stdout;
    let line_of = |t: &str| {
        out.lines()
            .find(|l| l.trim_end().ends_with(t))
            .unwrap_or_else(|| panic!("{t}: {out}"))
            .to_owned()
    };
    let indent = |l: &str| l.len() - l.trim_start().len();
    assert!(indent(&line_of("inside")) > indent(&line_of("before")));
    assert_eq!(indent(&line_of("after")), indent(&line_of("before")));
    assert!(out.contains("▼ Details"));
}

// ---- §2 variables between steps -------------------------------------------------------------

#[test]
fn set_variables_reach_later_steps_only_and_outputs_are_prefixed_and_read_only() {
    let yaml = r###"
steps:
- task: emit@1
  name: first
  inputs:
    lines: |
      ##vso[task.setvariable variable=plain]p1
      ##vso[task.setvariable variable=out;isoutput=true]o1
      ##vso[task.setvariable variable=declaredOut]d1
      ##vso[task.setvariable variable=ro;isreadonly=true]r1
      ##vso[task.setvariable variable=sec;issecret=true]hidden-value
      ##vso[task.prependpath]/opt/first-tool
      ##vso[task.prependpath]/opt/second-tool
- script: |
    echo "plain=$PLAIN same-step-macro=$(plain)"
    echo 'out=$(first.out) bare-out=$(out) declared=$(first.declaredOut) bare-declared=$(declaredOut)'
    echo "sec-env=[$SEC] sec-macro=$(sec)"
    echo "path=$PATH"
    echo "##vso[task.setvariable variable=ro]changed"
    echo "##vso[task.setvariable variable=first.out]changed"
- script: echo "ro=$(ro) first.out=$(first.out)"
"###;
    let (r, _d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let out = &r.stdout;
    assert!(out.contains("plain=p1 same-step-macro=p1"), "{out}");
    assert!(
        out.contains("out=o1 bare-out=$(out) declared=d1 bare-declared=$(declaredOut)"),
        "{out}"
    );
    assert!(
        out.contains("sec-env=[] sec-macro=***"),
        "a secret is not in the environment of a script: {out}"
    );
    assert!(
        out.contains("path=/opt/second-tool:/opt/first-tool:"),
        "newest prepended first: {out}"
    );
    assert!(
        out.contains("ro=r1 first.out=o1"),
        "read-only variables keep their values: {out}"
    );
    assert!(
        out.contains("read-only"),
        "a warning names the read-only variable: {out}"
    );
    assert!(!out.contains("hidden-value"));
}

#[test]
fn set_variable_does_not_change_the_running_process() {
    let yaml = "steps:\n- script: |\n    echo \"##vso[task.setvariable variable=later]x\"\n    echo \"now=[$LATER]\"\n- script: echo \"then=[$LATER]\"\n";
    let (r, _d) = run_pipeline(yaml, &[]);
    assert!(
        r.stdout.contains("now=[]") && r.stdout.contains("then=[x]"),
        "{}",
        r.stdout
    );
}

#[test]
fn task_json_restrictions_limit_settable_variables() {
    let yaml = "steps:\n- task: restricted@1\n  inputs:\n    lines: |\n      ##vso[task.setvariable variable=allowedOne]yes\n      ##vso[task.setvariable variable=forbidden]no\n- script: echo 'a=$(allowedOne) f=$(forbidden)'\n";
    let (r, _d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("a=yes f=$(forbidden)"), "{}", r.stdout);
    assert!(r.stdout.contains("not allowed to set variable 'forbidden'"));
}

#[test]
fn continue_on_error_turns_failed_into_succeeded_with_issues() {
    let yaml = "steps:\n- task: emit@1\n  continueOnError: true\n  inputs:\n    exitCode: 3\n- script: echo next-step-ran\n";
    let (r, _d) = run_pipeline(yaml, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.result_of("Conformance emit"), Some("SucceededWithIssues"));
    assert!(r.stdout.contains("next-step-ran"));
}

#[test]
fn fixtures_are_valid_task_folders() {
    for entry in std::fs::read_dir(conformance_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("task.json")).unwrap()).unwrap();
        assert!(
            json["id"].as_str().is_some_and(|id| id.len() == 36),
            "{}",
            dir.display()
        );
        assert!(json["friendlyName"].as_str().is_some_and(|n| n.len() <= 40));
    }
}
