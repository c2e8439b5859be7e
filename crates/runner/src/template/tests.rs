//! Template expansion, feature by feature, with files on disk; each error case checks the
//! file and line it names.

use std::path::{Path, PathBuf};

use super::*;
use crate::yaml::to_yaml;

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new(files: &[(&str, &str)]) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), files);
        Repo { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn expand(&self, root: &str) -> Expanded {
        self.expand_with(root, &[])
    }

    fn expand_with(&self, root: &str, repos: &[(String, PathBuf)]) -> Expanded {
        let file = self.path(root);
        let text = std::fs::read_to_string(&file).unwrap();
        let mut vars = Variables::new();
        vars.set_force("Build.Reason", "Manual", false);
        let options = Options {
            variables: &vars,
            parameters: &[],
            repos,
            self_root: self.dir.path().to_path_buf(),
        };
        expand_pipeline(&file, &text, &options)
    }

    /// The expansion as YAML; panics on any problem.
    fn yaml(&self, root: &str) -> String {
        let e = self.expand(root);
        assert!(e.problems.is_empty(), "{:?}", e.problems);
        to_yaml(e.root.as_ref().unwrap())
    }

    /// The problems as `file:line: message`, files relative to the repository.
    fn errors(&self, root: &str) -> Vec<String> {
        shown(&self.expand(root).problems, self.dir.path())
    }
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn shown(problems: &[crate::pipeline::Problem], root: &Path) -> Vec<String> {
    problems
        .iter()
        .map(|p| {
            let file = p.pos.file.map_or(String::new(), |f| {
                f.strip_prefix(root).unwrap_or(f).display().to_string()
            });
            format!("{file}:{}: {}", p.pos.line, p.message)
        })
        .collect()
}

fn has(errors: &[String], prefix: &str, needle: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(prefix) && e.contains(needle)),
        "no '{prefix}…{needle}' in {errors:#?}"
    );
}

#[test]
fn step_templates_with_parameters_and_relative_paths() {
    let r = Repo::new(&[
        (
            "ci/azure-pipelines.yml",
            "steps:\n- template: ../templates/greet.yml\n  parameters:\n    who: world\n- template: ../templates/greet.yml\n",
        ),
        (
            "templates/greet.yml",
            "parameters:\n- name: who\n  type: string\n  default: nobody\n- name: times\n  type: number\n  default: 2\nsteps:\n- script: echo hello ${{ parameters.who }} x${{ parameters.times }}\n- template: inner/bye.yml\n",
        ),
        ("templates/inner/bye.yml", "steps:\n- script: echo bye\n"),
    ]);
    assert_eq!(
        r.yaml("ci/azure-pipelines.yml"),
        "steps:\n  - script: echo hello world x2\n  - script: echo bye\n  - script: echo hello nobody x2\n  - script: echo bye\n"
    );
}

#[test]
fn parameter_types_defaults_and_values() {
    let r = Repo::new(&[
        (
            "p.yml",
            "steps:\n- template: t.yml\n  parameters:\n    n: 1.5\n    b: TRUE\n    o: {k: [1, 2]}\n    s: ${{ 'x' }}\n    one: {script: echo one}\n    list:\n    - script: echo a\n    - bash: echo b\n    env: dev\n",
        ),
        (
            "t.yml",
            "parameters:\n- name: n\n  type: number\n- name: b\n  type: boolean\n- name: o\n  type: object\n- name: s\n  type: string\n- name: one\n  type: step\n- name: list\n  type: stepList\n- name: env\n  type: string\n  values: [dev, prod]\n- name: d\n  type: boolean\n  default: false\nsteps:\n- script: echo ${{ parameters.n }} ${{ parameters.b }} ${{ parameters.o.k[1] }} ${{ parameters.s }} ${{ parameters.env }} ${{ parameters.d }}\n- ${{ parameters.one }}\n- ${{ parameters.list }}\n",
        ),
    ]);
    assert_eq!(
        r.yaml("p.yml"),
        "steps:\n  - script: echo 1.5 True 2 x dev False\n  - script: echo one\n  - script: echo a\n  - bash: echo b\n"
    );
}

#[test]
fn parameter_errors_name_file_and_line() {
    let r = Repo::new(&[
        (
            "p.yml",
            "steps:\n- template: t.yml\n  parameters:\n    n: ten\n    b: maybe\n    env: qa\n    list: {script: x}\n    extra: 1\n- template: t.yml\n",
        ),
        (
            "t.yml",
            "parameters:\n- name: n\n  type: number\n- name: b\n  type: boolean\n  default: true\n- name: env\n  type: string\n  default: dev\n  values: [dev, prod]\n- name: list\n  type: stepList\n  default: []\n- name: bad\n  type: strng\n  default: x\n- name: wrongDefault\n  type: number\n  default: abc\nsteps:\n- script: echo\n",
        ),
    ]);
    let e = r.errors("p.yml");
    has(
        &e,
        "p.yml:4:",
        "the value 'ten' of parameter 'n' is not a number",
    );
    has(&e, "p.yml:5:", "'maybe' of parameter 'b' is not a boolean");
    has(
        &e,
        "p.yml:6:",
        "'qa' of parameter 'env' is not one of its values: dev, prod",
    );
    has(
        &e,
        "p.yml:7:",
        "parameter 'list' expects a list of steps, not a mapping",
    );
    has(&e, "p.yml:8:", "unexpected parameter 'extra'");
    has(
        &e,
        "p.yml:9:",
        "a value for the 'n' parameter must be provided",
    );
    has(&e, "t.yml:15:", "unknown type 'strng'");
    has(&e, "t.yml:19:", "the default of parameter 'wrongDefault'");
    // Not reported twice as missing when the value was wrong.
    assert!(
        !e.iter()
            .any(|x| x.starts_with("p.yml:2:") && x.contains("'n'")),
        "{e:#?}"
    );
}

#[test]
fn conditional_insertion_in_mappings_and_sequences() {
    let r = Repo::new(&[(
        "p.yml",
        "parameters:\n- name: env\n  default: test\nvariables:\n  ${{ if eq(parameters.env, 'prod') }}:\n    size: big\n  ${{ elseif eq(parameters.env, 'test') }}:\n    size: medium\n  ${{ else }}:\n    size: small\nsteps:\n- ${{ if eq(parameters.env, 'prod') }}:\n  - script: echo prod\n- ${{ elseif startsWith(parameters.env, 'te') }}:\n  - script: echo test-1\n  - script: echo test-2\n- ${{ else }}:\n  - script: echo other\n- script: echo always\n  ${{ if ne(parameters.env, 'prod') }}:\n    displayName: not prod\n- ${{ if false }}:\n    script: never\n",
    )]);
    assert_eq!(
        r.yaml("p.yml"),
        "variables:\n  size: medium\nsteps:\n  - script: echo test-1\n  - script: echo test-2\n  - script: echo always\n    displayName: not prod\n"
    );
    let r = Repo::new(&[(
        "p.yml",
        "steps:\n- ${{ else }}:\n  - script: x\n- script: y\n  ${{ elseif true }}:\n    a: b\n",
    )]);
    let e = r.errors("p.yml");
    has(&e, "p.yml:2:", "'${{ else }}' must follow");
    has(&e, "p.yml:5:", "'${{ elseif }}' must follow");
}

#[test]
fn each_over_sequences_and_mappings() {
    let r = Repo::new(&[(
        "p.yml",
        "parameters:\n- name: regions\n  type: object\n  default: [eu, us]\n- name: tags\n  type: object\n  default: {team: data, tier: gold}\nsteps:\n- ${{ each r in parameters.regions }}:\n  - script: deploy ${{ r }}\n    env:\n      ${{ each t in parameters.tags }}:\n        TAG_${{ upper(t.key) }}: ${{ t.value }}-${{ r }}\n",
    )]);
    assert_eq!(
        r.yaml("p.yml"),
        "steps:\n  - script: deploy eu\n    env:\n      TAG_TEAM: data-eu\n      TAG_TIER: gold-eu\n  - script: deploy us\n    env:\n      TAG_TEAM: data-us\n      TAG_TIER: gold-us\n"
    );
}

#[test]
fn each_over_a_non_sequence_is_an_error() {
    let r = Repo::new(&[
        ("p.yml", "steps:\n- template: t.yml\n"),
        (
            "t.yml",
            "parameters:\n- name: name\n  default: text\nsteps:\n- script: a\n- ${{ each x in parameters.name }}:\n  - script: ${{ x }}\n- ${{ each x in parameters.nothing }}:\n  - script: ${{ x }}\n- ${{ each x parameters.name }}:\n  - script: b\n",
        ),
    ]);
    let e = r.errors("p.yml");
    has(
        &e,
        "t.yml:6:",
        "needs a sequence or a mapping, but 'parameters.name' is a string",
    );
    // Over nothing (a parameter that is not there): no items, no error.
    assert!(!e.iter().any(|x| x.starts_with("t.yml:8:")), "{e:#?}");
    has(
        &e,
        "t.yml:10:",
        "must read '${{ each NAME in EXPRESSION }}'",
    );
}

#[test]
fn insert_and_whole_value_expressions() {
    let r = Repo::new(&[
        (
            "p.yml",
            "jobs:\n- template: j.yml\n  parameters:\n    pool: {vmImage: ubuntu-latest}\n    steps:\n    - script: one\n    - template: s.yml\n",
        ),
        ("s.yml", "steps:\n- script: from-s\n"),
        (
            "j.yml",
            "parameters:\n- name: pool\n  type: object\n- name: steps\n  type: stepList\njobs:\n- job: a\n  pool:\n    ${{ insert }}: ${{ parameters.pool }}\n    demands: [x]\n  steps: ${{ parameters.steps }}\n- job: b\n  steps:\n  - ${{ each s in parameters.steps }}:\n    - ${{ each pair in s }}:\n        ${{ pair.key }}: ${{ pair.value }}\n      displayName: wrapped\n",
        ),
    ]);
    assert_eq!(
        r.yaml("p.yml"),
        "jobs:\n  - job: a\n    pool:\n      vmImage: ubuntu-latest\n      demands:\n        - x\n    steps:\n      - script: one\n      - script: from-s\n  - job: b\n    steps:\n      - script: one\n        displayName: wrapped\n      - script: from-s\n        displayName: wrapped\n"
    );
}

#[test]
fn variable_templates_and_compile_time_variables() {
    let r = Repo::new(&[
        (
            "p.yml",
            "variables:\n- template: vars.yml\n  parameters:\n    env: prod\n- name: local\n  value: ${{ variables.region }}-x\nstages:\n- stage: s\n  variables:\n    stageVar: ${{ variables.local }}\n  jobs:\n  - job: j\n    steps:\n    - script: echo ${{ variables.stageVar }} ${{ variables['Build.Reason'] }} ${{ variables.env }}\n",
        ),
        (
            "vars.yml",
            "parameters:\n- name: env\n  type: string\nvariables:\n  env: ${{ parameters.env }}\n  region: westeurope\n",
        ),
    ]);
    assert_eq!(
        r.yaml("p.yml"),
        "variables:\n  - name: env\n    value: prod\n  - name: region\n    value: westeurope\n  - name: local\n    value: westeurope-x\nstages:\n  - stage: s\n    variables:\n      stageVar: westeurope-x\n    jobs:\n      - job: j\n        steps:\n          - script: echo westeurope-x Manual prod\n"
    );
}

#[test]
fn stage_and_job_templates() {
    let r = Repo::new(&[
        (
            "p.yml",
            "stages:\n- template: stages.yml\n  parameters:\n    names: [a, b]\n",
        ),
        (
            "stages.yml",
            "parameters:\n- name: names\n  type: object\nstages:\n- ${{ each n in parameters.names }}:\n  - stage: S_${{ n }}\n    jobs:\n    - template: jobs.yml\n      parameters:\n        name: ${{ n }}\n",
        ),
        (
            "jobs.yml",
            "parameters:\n- name: name\njobs:\n- job: J_${{ parameters.name }}\n  steps:\n  - script: echo ${{ parameters.name }}\n",
        ),
    ]);
    assert_eq!(
        r.yaml("p.yml"),
        "stages:\n  - stage: S_a\n    jobs:\n      - job: J_a\n        steps:\n          - script: echo a\n  - stage: S_b\n    jobs:\n      - job: J_b\n        steps:\n          - script: echo b\n"
    );
}

#[test]
fn a_template_holds_parameters_and_one_kind_only() {
    let r = Repo::new(&[
        (
            "p.yml",
            "jobs:\n- template: steps.yml\n- template: mixed.yml\nsteps:\n- template: x.yml\n  inputs: {}\n",
        ),
        ("steps.yml", "steps:\n- script: a\n"),
        ("mixed.yml", "jobs:\n- job: a\npool: x\n"),
        ("x.yml", "steps: []\n"),
    ]);
    let e = r.errors("p.yml");
    has(
        &e,
        "steps.yml:1:",
        "'steps' is not allowed in a template used in 'jobs'",
    );
    has(&e, "p.yml:2:", "template 'steps.yml' has no 'jobs:'");
    has(&e, "mixed.yml:3:", "'pool' is not allowed");
    has(
        &e,
        "p.yml:6:",
        "a template reference has only 'template' and 'parameters', not 'inputs'",
    );
}

#[test]
fn extends_with_a_template_and_nested_extends() {
    let r = Repo::new(&[
        (
            "p.yml",
            "trigger: none\nvariables:\n  mine: 1\nextends:\n  template: base/secure.yml\n  parameters:\n    steps:\n    - script: user step\n",
        ),
        (
            "base/secure.yml",
            "parameters:\n- name: steps\n  type: stepList\nextends:\n  template: root.yml\n  parameters:\n    inner:\n    - script: prologue\n    - ${{ each s in parameters.steps }}:\n      - ${{ s }}\n",
        ),
        (
            "base/root.yml",
            "parameters:\n- name: inner\n  type: stepList\nvariables:\n- name: fromBase\n  value: yes\nsteps: ${{ parameters.inner }}\n",
        ),
    ]);
    assert_eq!(
        r.yaml("p.yml"),
        "trigger: none\nvariables:\n  - name: mine\n    value: 1\n  - name: fromBase\n    value: yes\nsteps:\n  - script: prologue\n  - script: user step\n"
    );
    let r = Repo::new(&[
        (
            "p.yml",
            "steps:\n- script: x\nextends:\n  template: e.yml\n",
        ),
        ("e.yml", "steps:\n- script: y\n"),
    ]);
    let e = r.errors("p.yml");
    has(
        &e,
        "p.yml:1:",
        "a pipeline with 'extends' has no 'steps' of its own",
    );
}

#[test]
fn missing_templates_cycles_and_limits() {
    let r = Repo::new(&[
        (
            "p.yml",
            "steps:\n- script: a\n- template: nope.yml\n- template: c/a.yml\n",
        ),
        ("c/a.yml", "steps:\n- template: b.yml\n"),
        ("c/b.yml", "steps:\n- script: b\n- template: a.yml\n"),
    ]);
    let e = r.errors("p.yml");
    has(
        &e,
        "p.yml:3:",
        "template 'nope.yml' not found: there is no such file",
    );
    has(
        &e,
        "c/b.yml:3:",
        "includes itself: c/a.yml -> c/b.yml -> c/a.yml",
    );

    // 21 templates inside each other: one too deep.
    let mut files: Vec<(String, String)> =
        vec![("p.yml".into(), "steps:\n- template: d1.yml\n".into())];
    for i in 1..=21 {
        files.push((
            format!("d{i}.yml"),
            format!("steps:\n- template: d{}.yml\n", i + 1),
        ));
    }
    files.push(("d22.yml".into(), "steps:\n- script: deep\n".into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let r = Repo::new(&refs);
    let e = r.errors("p.yml");
    has(&e, "d19.yml:2:", "nested more than 20 levels deep");

    // 101 different files: one too many.
    let mut root = String::from("steps:\n");
    let mut files: Vec<(String, String)> = Vec::new();
    for i in 1..=101 {
        root.push_str(&format!("- template: f{i}.yml\n"));
        files.push((format!("f{i}.yml"), format!("steps:\n- script: f{i}\n")));
    }
    files.push(("p.yml".into(), root));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let r = Repo::new(&refs);
    let e = r.errors("p.yml");
    assert_eq!(e.len(), 1, "{e:#?}");
    has(&e, "p.yml:102:", "at most 100 template files");
}

#[test]
fn expression_errors_inside_a_template_name_that_file() {
    let r = Repo::new(&[
        ("p.yml", "steps:\n- template: t/t.yml\n"),
        (
            "t/t.yml",
            "steps:\n- script: ok\n- script: echo ${{ lowercase('X') }}\n- script: ${{ parameters.x }} ${{ succeeded() }}\n- script: ${{ eq(1 }}\n- script: ${{ split('a,b', ',') }} inline\n",
        ),
    ]);
    let e = r.errors("p.yml");
    has(&e, "t/t.yml:3:", "unknown function 'lowercase'");
    has(
        &e,
        "t/t.yml:4:",
        "succeeded() can be used only in a condition",
    );
    has(&e, "t/t.yml:5:", "expected ',' or ')'");
    has(
        &e,
        "t/t.yml:6:",
        "is an array, which cannot be part of a text",
    );
}

#[test]
fn templates_from_other_repositories() {
    let tools = tempfile::tempdir().unwrap();
    write(
        tools.path(),
        &[
            ("steps/build.yml", "steps:\n- template: common/setup.yml\n- script: build\n- template: lint.yml@self\n"),
            ("steps/common/setup.yml", "steps:\n- template: /root-step.yml\n"),
            ("root-step.yml", "steps:\n- script: tools-root\n"),
        ],
    );
    let r = Repo::new(&[
        (
            "ci/p.yml",
            "resources:\n  repositories:\n  - repository: tools\n    type: github\n    name: contoso/tools\n    endpoint: gh\nsteps:\n- template: steps/build.yml@tools\n",
        ),
        ("lint.yml", "steps:\n- script: self-lint\n"),
    ]);
    let repos = vec![("tools".to_string(), tools.path().to_path_buf())];
    let e = r.expand_with("ci/p.yml", &repos);
    assert!(e.problems.is_empty(), "{:?}", e.problems);
    let yaml = to_yaml(e.root.as_ref().unwrap());
    assert!(
        yaml.ends_with(
            "steps:\n  - script: tools-root\n  - script: build\n  - script: self-lint\n"
        ),
        "{yaml}"
    );
    // Without --repo: an error naming the alias and the option.
    let e = r.errors("ci/p.yml");
    has(&e, "ci/p.yml:8:", "repository 'tools' (contoso/tools), which azp-local does not fetch: pass a local checkout with --repo tools=PATH");
    // An alias nobody declared.
    let r = Repo::new(&[("p.yml", "steps:\n- template: x.yml@nowhere\n")]);
    has(
        &r.errors("p.yml"),
        "p.yml:2:",
        "no repository 'nowhere' is declared under resources.repositories",
    );
}

#[test]
fn unfetchable_resources_are_warnings() {
    let r = Repo::new(&[(
        "p.yml",
        "resources:\n  repositories:\n  - repository: other\n    type: git\n    name: proj/other\n  pipelines:\n  - pipeline: upstream\n    source: Upstream-CI\nsteps:\n- checkout: other\n",
    )]);
    let e = r.expand("p.yml");
    assert!(e.problems.is_empty(), "{:?}", e.problems);
    let w = shown(&e.warnings, r.dir.path());
    has(
        &w,
        "p.yml:3:",
        "repository 'other' (proj/other) is not available locally",
    );
    has(&w, "p.yml:3:", "--repo other=PATH");
    has(
        &w,
        "p.yml:7:",
        "resources.pipelines 'upstream' is not fetched",
    );
    has(&w, "p.yml:7:", "--var");
}

#[test]
fn pipeline_parameters_from_the_command_line() {
    let r = Repo::new(&[(
        "p.yml",
        "parameters:\n- name: env\n  values: [dev, prod]\n- name: n\n  type: number\n  default: 1\n- name: regions\n  type: object\n  default: [eu]\nsteps:\n- ${{ each r in parameters.regions }}:\n  - script: echo ${{ parameters.env }} ${{ parameters.n }} ${{ r }}\n",
    )]);
    let run = |given: &[(&str, &str)]| {
        let file = r.path("p.yml");
        let text = std::fs::read_to_string(&file).unwrap();
        let vars = Variables::new();
        let given: Vec<(String, String)> = given
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let options = Options {
            variables: &vars,
            parameters: &given,
            repos: &[],
            self_root: r.dir.path().to_path_buf(),
        };
        expand_pipeline(&file, &text, &options)
    };
    let e = run(&[("env", "prod"), ("n", "3"), ("regions", "[us, asia]")]);
    assert!(e.problems.is_empty(), "{:?}", e.problems);
    assert_eq!(
        to_yaml(e.root.as_ref().unwrap()),
        "steps:\n  - script: echo prod 3 us\n  - script: echo prod 3 asia\n"
    );
    let e = run(&[]);
    let messages: Vec<&str> = e.problems.iter().map(|p| p.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("'env' parameter must be provided")
                && m.contains("--param env=VALUE")),
        "{messages:?}"
    );
    let e = run(&[("env", "qa"), ("other", "x")]);
    let messages: Vec<&str> = e.problems.iter().map(|p| p.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("'qa' of parameter 'env'")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("unexpected parameter 'other'")),
        "{messages:?}"
    );
}
