//! The configuredatabricks binary run as the agent runs it, against the emulator and against
//! servers that are not Databricks.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use databricks_emulator::{Emulator, Options};
use databricks_task_common::testing::Job;
use task_sdk::TaskResult;

const BIN: &str = env!("CARGO_BIN_EXE_configure-databricks");
const TOKEN: &str = "dapi-configure-test-0123456789";

fn emulator() -> Emulator {
    Emulator::start_blocking(Options {
        tokens: vec![TOKEN.to_owned()],
        python: Some(Default::default()),
        ..Options::default()
    })
    .expect("the emulator starts")
}

/// A loopback server answering every request with `status`, `content_type` and `body`.
fn fixed_server(status: &'static str, content_type: &'static str, body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    url
}

fn run(job: &mut Job, inputs: &[(&str, &str)]) -> databricks_task_common::testing::StepRun {
    job.run(Path::new(BIN), inputs)
}

#[test]
fn pat_mode_checks_sets_variables_and_writes_the_profile() {
    let emu = emulator();
    let mut job = Job::new();
    let home = job.home();
    std::fs::write(
        home.join(".databrickscfg"),
        "[DEFAULT]\nhost = https://other\ntoken = keep-me\n",
    )
    .unwrap();
    let url = format!("{}/?o=123", emu.url());
    let step = run(&mut job, &[("url", &url), ("token", TOKEN)]);
    assert_eq!(step.result(), TaskResult::Succeeded, "{}", step.log());
    let vars = step.variables();
    assert_eq!(vars["Databricks.Host"], (emu.url(), false, false));
    assert_eq!(vars["Databricks.Token"], (TOKEN.to_owned(), true, false));
    assert_eq!(vars["host"], (emu.url(), false, true));
    assert!(step.stdout.contains("Connected to"), "{}", step.log());
    assert!(step.stdout.contains("emulator@example.com"));
    step.assert_no_secret(TOKEN);

    let cfg = std::fs::read_to_string(home.join(".databrickscfg")).unwrap();
    assert!(
        cfg.starts_with("[DEFAULT]\nhost = https://other\ntoken = keep-me\n"),
        "{cfg}"
    );
    assert!(
        cfg.contains(&format!("[AZDO]\nhost = {}\ntoken = {TOKEN}\n", emu.url())),
        "{cfg}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join(".databrickscfg"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn the_profile_is_optional() {
    let emu = emulator();
    let mut job = Job::new();
    let step = run(
        &mut job,
        &[
            ("url", &emu.url()),
            ("token", TOKEN),
            ("writeDatabricksCfg", "false"),
        ],
    );
    assert_eq!(step.result(), TaskResult::Succeeded, "{}", step.log());
    assert!(!job.home().join(".databrickscfg").exists());
}

fn assert_fails_with(step: &databricks_task_common::testing::StepRun, needle: &str) {
    assert_eq!(step.result(), TaskResult::Failed, "{}", step.log());
    let errors = step.errors();
    assert_eq!(errors.len(), 1, "{}", step.log());
    assert!(
        errors[0].contains(needle),
        "expected '{needle}' in: {}",
        errors[0]
    );
    assert!(
        step.variable("Databricks.Token").is_none(),
        "{}",
        step.log()
    );
}

#[test]
fn a_wrong_token_gets_the_403_message() {
    let emu = emulator();
    let mut job = Job::new();
    let wrong = "dapi-wrong-token-9876543210";
    let step = run(&mut job, &[("url", &emu.url()), ("token", wrong)]);
    assert_fails_with(&step, "refused the token (HTTP 403, invalid access token)");
    assert!(step.errors()[0].contains("Create a new personal access token"));
    step.assert_no_secret(wrong);
    assert!(!job.home().join(".databrickscfg").exists());
}

#[test]
fn a_401_gets_its_own_message() {
    let url = fixed_server(
        "401 Unauthorized",
        "application/json",
        r#"{"error_code":"UNAUTHENTICATED","message":"Credential was not sent or was of an unsupported type for this API."}"#,
    );
    let mut job = Job::new();
    let step = run(&mut job, &[("url", &url), ("token", "dapi-some-token-000")]);
    assert_fails_with(&step, "received no usable token (HTTP 401)");
}

#[test]
fn a_host_that_is_not_databricks_is_named() {
    let html = fixed_server(
        "200 OK",
        "text/html",
        "<!DOCTYPE html><html><head><title>Contoso intranet</title></head><body>hi</body></html>",
    );
    let mut job = Job::new();
    let step = run(
        &mut job,
        &[("url", &html), ("token", "dapi-some-token-000")],
    );
    assert_fails_with(&step, "does not answer like a Databricks workspace");
    assert!(
        step.errors()[0].contains("Contoso intranet"),
        "{}",
        step.log()
    );

    let not_found = fixed_server(
        "404 Not Found",
        "text/html",
        "<html><title>404 Not Found</title></html>",
    );
    let step = run(
        &mut job,
        &[("url", &not_found), ("token", "dapi-some-token-000")],
    );
    assert_fails_with(
        &step,
        "does not answer like a Databricks workspace (HTTP 404",
    );
}

#[test]
fn dns_failure_gets_its_own_message() {
    let mut job = Job::new();
    let step = run(
        &mut job,
        &[
            (
                "url",
                "https://adb-0000000000000000.0.azuredatabricks.invalid",
            ),
            ("token", "dapi-x-token-000"),
        ],
    );
    assert_fails_with(&step, "does not resolve (DNS lookup failed)");
}

#[test]
fn input_mistakes_are_caught_before_any_request() {
    let mut job = Job::new();
    let step = run(
        &mut job,
        &[
            ("url", "http://adb-1.azuredatabricks.net"),
            ("token", "dapi-x-token-000"),
        ],
    );
    assert_fails_with(&step, "https is required");
    let step = run(&mut job, &[("url", "https://adb-1.azuredatabricks.net")]);
    assert_fails_with(&step, "input 'Access token' (token) is required");
    let step = run(&mut job, &[("token", "dapi-x-token-000")]);
    assert_fails_with(&step, "input 'Workspace URL' (url) is required");
    let step = run(
        &mut job,
        &[
            ("url", "https://portal.azure.com/#home"),
            ("token", "dapi-x-token-000"),
        ],
    );
    assert_fails_with(&step, "is the Azure portal");
    // An international host name: its ASCII form is given, not a parser's complaint.
    let step = run(
        &mut job,
        &[
            ("url", "https://dätä.example.com/?o=1"),
            ("token", "dapi-x-token-000"),
        ],
    );
    assert_fails_with(
        &step,
        "only ASCII (punycode) host names are accepted: use its punycode form, https://xn--dt-viab.example.com",
    );
    assert!(!step.errors()[0].contains("international domain name"));
}
