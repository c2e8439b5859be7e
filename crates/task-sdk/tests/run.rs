//! The result rules of a task process (contract §4), on the minimal task binary.

use std::process::{Command, Output};

fn run_task(mode: &str, extra: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_minimal-task"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("INPUT_MODE", mode);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().expect("the minimal task runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn success_exits_zero_without_issues() {
    let o = run_task("succeed", &[]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("minimal task ran"));
    assert!(out.contains(
        "##vso[task.setvariable variable=minimal.result;isSecret=false;isOutput=false;]done"
    ));
    assert!(!out.contains("task.logissue"));
}

#[test]
fn failure_reports_one_error_and_failed_and_masks_secrets() {
    let o = run_task("fail", &[("SECRET_MY_TOKEN", "dapi-very-secret-1")]);
    let out = stdout(&o);
    assert_ne!(o.status.code(), Some(0));
    let lines: Vec<&str> = out.lines().collect();
    // The secret is registered before anything else is printed.
    assert_eq!(lines[0], "##vso[task.setsecret]dapi-very-secret-1", "{out}");
    let errors: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("##vso[task.logissue type=error;]"))
        .collect();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains("the workspace refused token ***: create a new token"),
        "{out}"
    );
    assert!(out.contains("##vso[task.complete result=Failed;]"));
    assert_eq!(
        out.matches("dapi-very-secret-1").count(),
        1,
        "only the setsecret line may hold it: {out}"
    );
    assert!(
        o.stderr.is_empty() || !String::from_utf8_lossy(&o.stderr).contains("dapi-very-secret-1")
    );
}

#[test]
fn panics_are_reported_as_failures_without_a_backtrace() {
    let o = run_task("panic", &[("RUST_BACKTRACE", "1")]);
    let out = stdout(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        out.contains("##vso[task.logissue type=error;]internal error: index out of bounds"),
        "{out}"
    );
    assert!(out.contains("##vso[task.complete result=Failed;]"), "{out}");
    assert!(
        !out.contains("stack backtrace") && !err.contains("stack backtrace"),
        "{out}{err}"
    );
    assert!(!err.contains("panicked at"), "{err}");
}

#[test]
fn bad_input_names_the_input() {
    let o = run_task("bogus", &[]);
    assert!(stdout(&o)
        .contains("input 'Mode' (mode) must be succeed, fail, panic or http, got 'bogus'"));
    let o = run_task("http", &[]);
    assert!(
        stdout(&o).contains("input 'URL' (url) is required but empty"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn http_mode_reports_a_refused_connection_clearly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/x");
    // A short retry budget keeps the test quick; the message must name the host.
    let o = run_task(
        "http",
        &[
            ("INPUT_URL", &url),
            ("AZDODATATASKS_RETRYBUDGETSECONDS", "2"),
        ],
    );
    let out = stdout(&o);
    assert_ne!(o.status.code(), Some(0));
    assert!(out.contains(&format!("cannot connect to {addr}")), "{out}");
}
