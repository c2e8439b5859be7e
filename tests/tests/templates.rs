//! Templated pipelines written the way projects write them (tests/pipelines/templates: an
//! eng/common-style library, an MLOps repository with a template repository, a data-platform
//! repository extending a secure base template, a monorepo of sixteen services) through `azp-local check`, `expand` and `run`;
//! and a pipeline with every template mistake, each reported with its file and line.

use std::path::{Path, PathBuf};

use e2e::{repo_root, run, Run};

fn corpus() -> PathBuf {
    repo_root().join("tests/pipelines/templates")
}

/// `azp-local <command> <corpus>/<name>/azure-pipelines.yml --sources-dir <corpus>/<name> …`
fn azp(command: &str, name: &str, extra: &[&str]) -> Run {
    let dir = corpus().join(name);
    let file = dir.join("azure-pipelines.yml");
    let mut args = vec![
        command,
        file.to_str().expect("utf-8 path"),
        "--sources-dir",
        dir.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn shared_repo() -> String {
    format!(
        "shared={}",
        corpus()
            .join("shared-templates")
            .to_str()
            .expect("utf-8 path")
    )
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(corpus().join("expected").join(format!("{name}.yml")))
        .expect("expected expansion")
}

/// The 1-based line of `file` that holds `needle` (so that the test follows the fixture).
fn line_of(file: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(file).expect("fixture");
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no '{needle}' in {}", file.display()))
        + 1
}

#[test]
fn the_corpus_checks_and_expands_to_the_reviewed_yaml() {
    let repo = shared_repo();
    for (name, extra) in [
        ("eng-common", vec![]),
        ("mlops", vec!["--repo", repo.as_str()]),
        ("data-platform", vec![]),
        ("monorepo", vec![]),
    ] {
        let r = azp("check", name, &extra);
        assert_eq!(r.code, 0, "{name}: {}", r.all());
        assert!(r.stdout.contains("azure-pipelines.yml: OK"), "{}", r.all());
        assert!(!r.stderr.contains("error"), "{name}: {}", r.stderr);
        let r = azp("expand", name, &extra);
        assert_eq!(r.code, 0, "{name}: {}", r.all());
        assert_eq!(r.stdout, expected(name), "{name}: the expansion changed");
        assert!(!r.stdout.contains("${{"), "{name}: {}", r.stdout);
    }
    // `deploy: false` in an object parameter is false, as on the server: no image, no helm.
    let r = azp("expand", "monorepo", &[]);
    assert!(!r.stdout.contains("/reporting:"), "{}", r.stdout);
    assert!(!r.stdout.contains("install reporting"), "{}", r.stdout);
    assert!(r.stdout.contains("install accounts"), "{}", r.stdout);
}

#[test]
fn a_template_repository_needs_a_local_checkout() {
    let r = azp("check", "mlops", &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    let train = corpus().join("mlops/templates/stages/train.yml");
    let line = line_of(&train, "python-job.yml@shared");
    assert!(
        r.stderr.contains(&format!(
            "train.yml:{line}:15: error: template 'jobs/python-job.yml@shared' is in repository 'shared' (platform/pipeline-templates), which azp-local does not fetch: pass a local checkout with --repo shared=PATH"
        )),
        "{}",
        r.stderr
    );
    let r = azp("expand", "mlops", &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("--repo shared=PATH"), "{}", r.stderr);
}

#[test]
fn every_template_mistake_is_reported_with_its_file_and_line() {
    let dir = corpus().join("errors");
    let root = dir.join("azure-pipelines.yml");
    let t = |f: &str| dir.join("templates").join(f);
    let r = azp("check", "errors", &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    let expect = [
        (
            "azure-pipelines.yml".to_string(),
            line_of(&root, "count: many"),
            "the value 'many' of parameter 'count' is not a number",
        ),
        (
            "azure-pipelines.yml".into(),
            line_of(&root, "not-there.yml"),
            "template 'templates/not-there.yml' not found: there is no such file",
        ),
        (
            "azure-pipelines.yml".into(),
            line_of(&root, "sign.yml@tools"),
            "pass a local checkout with --repo tools=PATH",
        ),
        (
            "azure-pipelines.yml".into(),
            line_of(&root, "mode: medium"),
            "the value 'medium' of parameter 'mode' is not one of its values: fast, slow",
        ),
        (
            "azure-pipelines.yml".into(),
            line_of(&root, "colour: red"),
            "unexpected parameter 'colour': template 'templates/typed.yml' declares count, mode",
        ),
        (
            "templates/bad-function.yml".into(),
            line_of(&t("bad-function.yml"), "lowercase"),
            "unknown function 'lowercase'",
        ),
        (
            "templates/cycle-b.yml".into(),
            line_of(&t("cycle-b.yml"), "cycle-a.yml"),
            "includes itself: templates/cycle-a.yml -> templates/cycle-b.yml -> templates/cycle-a.yml",
        ),
        (
            "templates/each-over-text.yml".into(),
            line_of(&t("each-over-text.yml"), "each item"),
            "needs a sequence or a mapping, but 'parameters.name' is a string",
        ),
    ];
    for (file, line, message) in &expect {
        let found = r.stderr.lines().any(|l| {
            l.contains(&format!("{file}:{line}:")) && l.contains("error:") && l.contains(message)
        });
        assert!(found, "no {file}:{line}: … {message}\n{}", r.stderr);
    }
    assert!(
        r.stderr.contains(&format!("{} problem(s)", expect.len())),
        "every problem, and no follow-on ones: {}",
        r.stderr
    );
}

#[test]
fn templated_pipelines_run_their_script_steps() {
    let r = azp("run", "eng-common", &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    for text in [
        "build linux-x64 Release --verbosity minimal",
        "build osx-arm64 Release --verbosity minimal",
        "tests on linux",
        "summary for widget in Release",
        "sign release bits",
        "publish logs of Build_osx_arm64",
    ] {
        assert!(r.stdout.contains(text), "'{text}' not in:\n{}", r.all());
    }
    assert!(!r.stdout.contains("tests on osx"), "{}", r.stdout);
    assert_eq!(
        r.result_of("Build / Build_linux_x64 / Test linux"),
        Some("Succeeded"),
        "{}",
        r.stdout
    );

    let r = azp("run", "data-platform", &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    for text in [
        "credential scan of lakehouse",
        "prologue Load_bronze",
        "load bronze.events from abfss://lake@contoso.dfs.core.windows.net",
        "quality sessions strict=True",
        "dbt run --select sessions_daily churn_features",
        "epilogue Dbt",
    ] {
        assert!(r.stdout.contains(text), "'{text}' not in:\n{}", r.all());
    }
    let compliance = r.stdout.find("credential scan of lakehouse").unwrap();
    let ingest = r.stdout.find("prologue Load_bronze").unwrap();
    assert!(compliance < ingest, "the base template's stage runs first");
}
