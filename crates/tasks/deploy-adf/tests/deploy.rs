//! The `deploy-adf` binary run as the agent runs it, against the Azure emulator's Data Factory.

use azure_emulator::{FaultRule, Options, Scheme, SeedFactory};
use azure_task_testkit::{Env, Outcome, CONNECTION};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_deploy-adf");
const RG: &str = "rg-sales";
const FACTORY: &str = "adf-sales-platform";

fn env(scheme: Scheme) -> Env {
    Env::with_options(
        scheme,
        Options {
            // The resource group (with another factory in it); ours is created by the task.
            factories: vec![SeedFactory {
                resource_group: RG.into(),
                location: "westeurope".into(),
                name: "adf-other".into(),
                pipelines: vec![],
            }],
            ..Options::default()
        },
    )
}

fn fixture() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../tests/factories/sales-platform")
        .display()
        .to_string()
}

fn deploy(env: &Env, root: &str, extra: &[(&str, &str)]) -> Outcome {
    let mut inputs = vec![
        ("ConnectedServiceName", CONNECTION),
        ("resourceGroupName", RG),
        ("dataFactoryName", FACTORY),
        ("createFactory", "true"),
        ("location", "westeurope"),
        ("rootFolder", root),
    ];
    inputs.extend_from_slice(extra);
    env.run(BIN, &inputs)
}

fn writes(env: &Env) -> u64 {
    env.emulator.state()["adfWrites"].as_u64().unwrap()
}

/// The factory's object of `collection` named `name`, from the emulator's state.
fn object(env: &Env, collection: &str, name: &str) -> Option<Value> {
    let suffix = format!("/factories/{FACTORY}/{collection}/{name}").to_ascii_lowercase();
    env.emulator.state()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["id"]
                .as_str()
                .unwrap()
                .to_ascii_lowercase()
                .ends_with(&suffix)
        })
        .cloned()
}

/// The summary page the run uploaded.
fn summary(out: &Outcome) -> String {
    let c = out
        .commands
        .iter()
        .find(|c| c.name() == "task.uploadsummary")
        .unwrap_or_else(|| panic!("a summary page: {}", out.dump()));
    std::fs::read_to_string(&c.data).unwrap()
}

fn factory_objects(env: &Env) -> usize {
    let marker = format!("/factories/{FACTORY}/").to_ascii_lowercase();
    env.emulator.state()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["id"]
                .as_str()
                .unwrap()
                .to_ascii_lowercase()
                .contains(&marker)
        })
        .count()
}

#[test]
fn the_test_factory_deploys_then_redeploys_with_no_write_under_wif() {
    let env = env(Scheme::WorkloadIdentityFederation);
    let out = deploy(&env, &fixture(), &[]);
    assert!(out.succeeded(), "{}", out.dump());
    out.assert_no_secret(&env.secrets());
    assert_eq!(factory_objects(&env), 41, "{}", out.log());
    let factory = env.emulator.state()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == FACTORY)
        .cloned()
        .unwrap();
    assert_eq!(
        factory["properties"]["globalParameters"]["environment"]["value"],
        "dev"
    );
    // Triggers the source marks Started are started; the others stay stopped.
    let state =
        |t: &str| object(&env, "triggers", t).unwrap()["properties"]["runtimeState"].clone();
    assert_eq!(state("TR_Daily_0300"), "Started");
    assert_eq!(state("TR_Hourly_ShopFloor"), "Started");
    assert_eq!(state("TR_Crm_Drop"), "Stopped");
    // Order: a pipeline's ExecutePipeline children and datasets come first.
    let log = out.log();
    let at = |s: &str| log.find(s).unwrap_or_else(|| panic!("{s} not in {log}"));
    assert!(
        at("managedVirtualNetwork.default created")
            < at("integrationRuntime.ir-managed-vnet created")
    );
    assert!(at("linkedService.LS_KeyVault created") < at("linkedService.LS_SalesSql created"));
    assert!(at("pipeline.PL_Ingest_Orders created") < at("pipeline.PL_Load_All created"));
    assert!(at("pipeline.PL_Load_All created") < at("pipeline.PL_Master_Daily created"));
    let page = summary(&out);
    assert!(
        page.contains("- Created: 41") && page.contains("`pipeline.PL_Master_Daily`"),
        "{page}"
    );
    assert!(page.contains("- Triggers started: 2"), "{page}");
    let before = writes(&env);
    let again = deploy(&env, &fixture(), &[]);
    assert!(again.succeeded(), "{}", again.dump());
    assert_eq!(
        writes(&env),
        before,
        "a second deploy writes nothing: {}",
        again.log()
    );
    assert!(
        again.log().contains("0 created, 0 updated, 41 unchanged"),
        "{}",
        again.log()
    );
}

#[test]
fn a_missing_reference_or_a_cycle_fails_before_anything_is_written() {
    let env = env(Scheme::ServicePrincipal);
    env.write(
        "f/linkedService/LS_A.json",
        r#"{"name": "LS_A", "properties": {"type": "AzureBlobFS", "typeProperties": {}}}"#,
    );
    env.write("f/dataset/DS_A.json", r#"{"name": "DS_A", "properties": {"type": "Parquet", "linkedServiceName": {"referenceName": "LS_Gone", "type": "LinkedServiceReference"}}}"#);
    let root = env.root().join("f").display().to_string();
    let out = deploy(&env, &root, &[]);
    assert!(out.failed(), "{}", out.dump());
    let f = out.failure();
    assert!(
        f.contains("dataset.DS_A") && f.contains("dataset/DS_A.json") && f.contains("LS_Gone"),
        "{f}"
    );
    assert_eq!(writes(&env), 0);
    assert!(
        !env.emulator.state()["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == FACTORY),
        "the factory was not created"
    );

    env.write("f/dataset/DS_A.json", r#"{"name": "DS_A", "properties": {"type": "Parquet", "linkedServiceName": {"referenceName": "LS_A", "type": "LinkedServiceReference"}}}"#);
    env.write("f/pipeline/P1.json", r#"{"name": "P1", "properties": {"activities": [{"name": "x", "type": "ExecutePipeline", "typeProperties": {"pipeline": {"referenceName": "P2", "type": "PipelineReference"}}}]}}"#);
    env.write("f/pipeline/P2.json", r#"{"name": "P2", "properties": {"activities": [{"name": "x", "type": "ExecutePipeline", "typeProperties": {"pipeline": {"referenceName": "P1", "type": "PipelineReference"}}}]}}"#);
    let out = deploy(&env, &root, &[]);
    assert!(out.failed(), "{}", out.dump());
    assert!(
        out.failure().contains("cycle") && out.failure().contains("pipeline/P1.json"),
        "{}",
        out.failure()
    );
    assert_eq!(writes(&env), 0);
}

#[test]
fn config_overrides_selective_and_delete_not_in_source_with_dry_run() {
    let env = env(Scheme::ServicePrincipal);
    env.write(
        "prd.csv",
        "type,name,path,value\nlinkedService,LS_Lake,typeProperties.url,https://$(lakeAccount).dfs.core.windows.net/\npipeline,PL_Ingest_O?ders,parameters.loadDate.defaultValue,$Env:LOAD_DATE\nfactory,adf-sales-*,globalParameters.environment.value,prd\n",
    );
    // $(lakeAccount) is a pipeline variable, $Env:LOAD_DATE the agent's environment.
    let mut extra = vec![("configFile", "prd.csv")];
    extra.push(("includeObjects", "*"));
    let out = {
        let mut inputs = vec![
            ("ConnectedServiceName", CONNECTION),
            ("resourceGroupName", RG),
            ("dataFactoryName", FACTORY),
            ("createFactory", "true"),
            ("location", "westeurope"),
        ];
        let root = fixture();
        inputs.push(("rootFolder", &root));
        inputs.extend_from_slice(&extra);
        let mut cmd = std::process::Command::new(BIN);
        cmd.env_clear()
            .envs(env.vars(&inputs))
            .env("LAKEACCOUNT", "stsalesprd")
            .env("LOAD_DATE", "2026-12-01")
            .current_dir(env.root());
        Outcome::from_output(cmd.output().unwrap())
    };
    assert!(out.succeeded(), "{}", out.dump());
    assert_eq!(
        object(&env, "linkedservices", "LS_Lake").unwrap()["properties"]["typeProperties"]["url"],
        "https://stsalesprd.dfs.core.windows.net/"
    );
    assert_eq!(
        object(&env, "pipelines", "PL_Ingest_Orders").unwrap()["properties"]["parameters"]
            ["loadDate"]["defaultValue"],
        "2026-12-01"
    );
    let factory = env.emulator.state()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == FACTORY)
        .cloned()
        .unwrap();
    assert_eq!(
        factory["properties"]["globalParameters"]["environment"]["value"],
        "prd"
    );
    // An unknown path names the line.
    env.write(
        "bad.csv",
        "type,name,path,value\nlinkedService,LS_Lake,typeProperties.uri,x\n",
    );
    let before = writes(&env);
    let out = deploy(&env, &fixture(), &[("configFile", "bad.csv")]);
    assert!(
        out.failed() && out.failure().contains("bad.csv, line 2"),
        "{}",
        out.dump()
    );
    assert_eq!(writes(&env), before);

    // Selective: only the datasets of the lake, from a source where they changed.
    let copy = env.root().join("copy");
    copy_dir(std::path::Path::new(&fixture()), &copy);
    let ds = copy.join("dataset/DS_Raw_Orders.json");
    std::fs::write(
        &ds,
        std::fs::read_to_string(&ds)
            .unwrap()
            .replace("snappy", "gzip"),
    )
    .unwrap();
    let ls = copy.join("linkedService/LS_CrmRest.json");
    std::fs::write(
        &ls,
        std::fs::read_to_string(&ls)
            .unwrap()
            .replace("/api/v2", "/api/v3"),
    )
    .unwrap();
    std::fs::remove_file(copy.join("pipeline/PL_Ingest_Crm.json")).unwrap();
    std::fs::remove_file(copy.join("trigger/TR_Crm_Drop.json")).unwrap();
    let copy = copy.display().to_string();
    let before = writes(&env);
    let out = deploy(&env, &copy, &[("includeObjects", "dataset.DS_Raw_*")]);
    assert!(out.succeeded(), "{}", out.dump());
    assert!(
        out.log().contains("dataset.DS_Raw_Orders updated"),
        "{}",
        out.log()
    );
    assert!(!out.log().contains("LS_CrmRest updated"), "{}", out.log());
    assert!(writes(&env) > before);

    // Delete not in source: the dry run lists, writes nothing; the real one deletes
    // dependents first.
    let before = writes(&env);
    let out = deploy(
        &env,
        &copy,
        &[("deleteNotInSource", "true"), ("dryRun", "true")],
    );
    assert!(out.succeeded(), "{}", out.dump());
    assert!(
        out.log().contains("trigger.TR_Crm_Drop would be deleted"),
        "{}",
        out.log()
    );
    assert!(
        out.log()
            .contains("pipeline.PL_Ingest_Crm would be deleted"),
        "{}",
        out.log()
    );
    assert_eq!(writes(&env), before);
    let out = deploy(&env, &copy, &[("deleteNotInSource", "true")]);
    assert!(out.succeeded(), "{}", out.dump());
    let log = out.log();
    assert!(
        log.find("trigger.TR_Crm_Drop deleted").unwrap()
            < log.find("pipeline.PL_Ingest_Crm deleted").unwrap(),
        "{log}"
    );
    assert!(object(&env, "pipelines", "PL_Ingest_Crm").is_none());
    assert!(object(&env, "pipelines", "PL_Ingest_Orders").is_some());
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn started_triggers_are_stopped_for_an_update_and_restarted_even_after_a_failure() {
    let env = env(Scheme::ServicePrincipal);
    assert!(deploy(&env, &fixture(), &[]).succeeded());
    let copy = env.root().join("copy");
    copy_dir(std::path::Path::new(&fixture()), &copy);
    let t = copy.join("trigger/TR_Daily_0300.json");
    std::fs::write(
        &t,
        std::fs::read_to_string(&t)
            .unwrap()
            .replace("\"UTC\"", "\"W. Europe Standard Time\""),
    )
    .unwrap();
    let copy = copy.display().to_string();
    let out = deploy(&env, &copy, &[]);
    assert!(out.succeeded(), "{}", out.dump());
    let log = out.log();
    assert!(
        log.contains("Stopped trigger 'TR_Daily_0300'")
            && log.contains("trigger.TR_Daily_0300 updated")
            && log.contains("Started trigger 'TR_Daily_0300'"),
        "{log}"
    );
    assert!(
        !log.contains("Stopped trigger 'TR_Hourly_ShopFloor'"),
        "only touched triggers stop: {log}"
    );

    // A write that fails: the stopped triggers are started again.
    let p = env.root().join("copy/pipeline/PL_Master_Daily.json");
    std::fs::write(
        &p,
        std::fs::read_to_string(&p)
            .unwrap()
            .replace("pending", "waiting"),
    )
    .unwrap();
    env.emulator.add_fault(
        "PUT /subscriptions/*/pipelines/PL_Master_Daily 400"
            .parse::<FaultRule>()
            .unwrap(),
    );
    let out = deploy(&env, &copy, &[("stopAllTriggers", "true")]);
    assert!(out.failed(), "{}", out.dump());
    assert!(
        out.failure().contains("PL_Master_Daily"),
        "{}",
        out.failure()
    );
    assert!(
        out.log()
            .contains("Restarted trigger 'TR_Hourly_ShopFloor' after the failure"),
        "{}",
        out.log()
    );
    // The summary page says what was done before the failure, what failed, and which
    // triggers run again.
    let page = summary(&out);
    assert!(
        page.starts_with("## Data Factory deploy failed: adf-sales-platform"),
        "{page}"
    );
    assert!(
        page.contains("**Failed**: the deploy stopped: pipeline.PL_Master_Daily (pipeline/PL_Master_Daily.json)"),
        "{page}"
    );
    assert!(
        page.contains("- Created: 0\n- Updated: 0\n- Unchanged: 40\n"),
        "{page}"
    );
    assert!(
        page.contains("- Not written (the deploy stopped first): 1\n"),
        "{page}"
    );
    assert!(
        page.contains("- Triggers stopped: 2\n- Triggers started: 0\n"),
        "{page}"
    );
    assert!(
        page.contains("- Triggers restarted after the failure: 2\n"),
        "{page}"
    );
    assert!(
        page.contains("### Triggers restarted after the failure\n\n")
            && page.contains("- `trigger.TR_Hourly_ShopFloor`")
            && page.contains("- `trigger.TR_Daily_0300`"),
        "{page}"
    );
    for t in ["TR_Daily_0300", "TR_Hourly_ShopFloor"] {
        assert_eq!(
            object(&env, "triggers", t).unwrap()["properties"]["runtimeState"],
            "Started",
            "{t}"
        );
    }

    // triggersOnly around an ARM deployment.
    let out = env.run(
        BIN,
        &[
            ("ConnectedServiceName", CONNECTION),
            ("resourceGroupName", RG),
            ("dataFactoryName", FACTORY),
            ("triggersOnly", "stop"),
        ],
    );
    assert!(out.succeeded(), "{}", out.dump());
    assert_eq!(
        object(&env, "triggers", "TR_Daily_0300").unwrap()["properties"]["runtimeState"],
        "Stopped"
    );
    let out = env.run(
        BIN,
        &[
            ("ConnectedServiceName", CONNECTION),
            ("resourceGroupName", RG),
            ("dataFactoryName", FACTORY),
            ("triggersOnly", "start"),
            ("rootFolder", &fixture()),
        ],
    );
    assert!(out.succeeded(), "{}", out.dump());
    assert_eq!(
        object(&env, "triggers", "TR_Daily_0300").unwrap()["properties"]["runtimeState"],
        "Started"
    );
    assert_eq!(
        object(&env, "triggers", "TR_Crm_Drop").unwrap()["properties"]["runtimeState"],
        "Stopped"
    );
}

#[test]
fn a_storm_of_429_and_503_is_ridden_out() {
    let env = env(Scheme::ServicePrincipal);
    for rule in [
        "PUT /subscriptions/*/datasets/* 429 retry-after=1 times=4",
        "PUT /subscriptions/*/pipelines/* 503 times=3",
        "GET /subscriptions/*/factories/adf-sales-platform 503 times=1",
        "POST /subscriptions/*/triggers/*/start 429 retry-after=1 times=1",
    ] {
        env.emulator.add_fault(rule.parse::<FaultRule>().unwrap());
    }
    let out = deploy(&env, &fixture(), &[]);
    assert!(out.succeeded(), "{}", out.dump());
    assert_eq!(factory_objects(&env), 41);
    // Every fault fired (a rule is removed once it has fired `times` times).
    assert!(
        env.emulator.fault_rules().is_empty(),
        "{:?}",
        env.emulator.fault_rules()
    );
}
