//! The deployadf benchmark (BENCHMARKS.md), not a test: `scripts/bench/deploy-adf.sh` runs it
//! with `--ignored --nocapture`. A generated factory of 300 objects (20 linked services, 80
//! datasets, 200 pipelines in 20 `ExecutePipeline` chains of 10) is deployed to the Azure
//! emulator answering every request after 100 ms, then deployed again unchanged; each run is
//! timed with `/usr/bin/time` (wall clock and peak RSS). A second run does the same with Azure
//! Resource Manager's documented write throttling (a bucket of 200 writes per subscription
//! refilled at 10 a second: 429 with `Retry-After` beyond it). It prints the measures and
//! asserts only what was written, never how fast.

use std::time::Duration;

use azure_emulator::{Options, Scheme, SeedFactory, WriteLimit};
use azure_task_testkit::{Env, Outcome, CONNECTION};

const BIN: &str = env!("CARGO_BIN_EXE_deploy-adf");
const LATENCY_MS: u64 = 100;
const CHAINS: usize = 20;
const CHAIN_LENGTH: usize = 10;

fn generate(env: &Env) {
    for l in 0..20 {
        env.write(
            &format!("gen/linkedService/LS_{l:02}.json"),
            format!(r#"{{"name": "LS_{l:02}", "properties": {{"type": "AzureBlobFS", "typeProperties": {{"url": "https://st{l:02}.dfs.core.windows.net/"}}}}}}"#),
        );
    }
    for d in 0..80 {
        env.write(
            &format!("gen/dataset/DS_{d:02}.json"),
            format!(r#"{{"name": "DS_{d:02}", "properties": {{"type": "Parquet", "linkedServiceName": {{"referenceName": "LS_{:02}", "type": "LinkedServiceReference"}}, "typeProperties": {{"location": {{"type": "AzureBlobFSLocation", "fileSystem": "raw", "folderPath": "t{d:02}"}}}}}}}}"#, d % 20),
        );
    }
    for c in 0..CHAINS {
        for i in 0..CHAIN_LENGTH {
            let ds = (c * CHAIN_LENGTH + i) % 80;
            let next = if i + 1 < CHAIN_LENGTH {
                format!(
                    r#", {{"name": "Next", "type": "ExecutePipeline", "dependsOn": [{{"activity": "Copy", "dependencyConditions": ["Succeeded"]}}], "typeProperties": {{"pipeline": {{"referenceName": "PL_{c:02}_{:02}", "type": "PipelineReference"}}, "waitOnCompletion": true}}}}"#,
                    i + 1
                )
            } else {
                String::new()
            };
            env.write(
                &format!("gen/pipeline/PL_{c:02}_{i:02}.json"),
                format!(r#"{{"name": "PL_{c:02}_{i:02}", "properties": {{"activities": [{{"name": "Copy", "type": "Copy", "inputs": [{{"referenceName": "DS_{ds:02}", "type": "DatasetReference"}}], "outputs": [{{"referenceName": "DS_{:02}", "type": "DatasetReference"}}], "typeProperties": {{"source": {{"type": "ParquetSource"}}, "sink": {{"type": "ParquetSink"}}}}}}{next}]}}}}"#, (ds + 1) % 80),
            );
        }
    }
}

/// Runs the task under `/usr/bin/time`: (outcome, seconds, peak RSS in KiB).
fn timed(env: &Env, inputs: &[(&str, &str)]) -> (Outcome, f64, u64) {
    let report = env.root().join("time.txt");
    let output = std::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(&report)
        .arg(BIN)
        .env_clear()
        .envs(env.vars(inputs))
        .current_dir(env.root())
        .output()
        .expect("/usr/bin/time runs (apt-get install time)");
    let text = std::fs::read_to_string(&report).unwrap();
    let mut parts = text.split_whitespace();
    let secs: f64 = parts.next().unwrap().parse().unwrap();
    let kib: u64 = parts.next().unwrap().parse().unwrap();
    (Outcome::from_output(output), secs, kib)
}

#[test]
#[ignore = "a benchmark: scripts/bench/deploy-adf.sh"]
fn bench_300_objects_with_100ms_latency() {
    bench(None);
}

#[test]
#[ignore = "a benchmark: scripts/bench/deploy-adf.sh"]
fn bench_300_objects_with_100ms_latency_and_arm_write_throttling() {
    bench(Some(WriteLimit::ARM));
}

fn bench(limit: Option<WriteLimit>) {
    let env = Env::with_options(
        Scheme::ServicePrincipal,
        Options {
            latency: Duration::from_millis(LATENCY_MS),
            factories: vec![SeedFactory {
                resource_group: "rg-bench".into(),
                location: "westeurope".into(),
                name: "adf-bench".into(),
                pipelines: vec![],
            }],
            arm_write_limit: limit,
            ..Options::default()
        },
    );
    generate(&env);
    let concurrency = std::env::var("DEPLOYADF_CONCURRENCY").unwrap_or_else(|_| "8".into());
    let inputs = [
        ("ConnectedServiceName", CONNECTION),
        ("resourceGroupName", "rg-bench"),
        ("dataFactoryName", "adf-bench"),
        ("rootFolder", "gen"),
        ("concurrency", concurrency.as_str()),
    ];
    let (full, full_s, full_kib) = timed(&env, &inputs);
    assert!(full.succeeded(), "{}", full.dump());
    assert!(full.log().contains("300 created"), "{}", full.log());
    let writes = env.emulator.state()["adfWrites"].as_u64().unwrap();
    let throttled = env.emulator.state()["writesThrottled"].as_u64().unwrap();
    let (again, again_s, again_kib) = timed(&env, &inputs);
    assert!(again.succeeded(), "{}", again.dump());
    assert_eq!(env.emulator.state()["adfWrites"].as_u64().unwrap(), writes);
    // Levels: linked services, datasets, then the 10 pipelines of each chain (last first).
    let depth = 2 + CHAIN_LENGTH;
    let latency_s = LATENCY_MS as f64 / 1000.0;
    println!(
        "deployadf benchmark: 300 objects, {LATENCY_MS} ms latency, concurrency {concurrency}, {}",
        match limit {
            None => "no write limit".to_owned(),
            Some(l) => format!(
                "ARM write limit: bucket {} refilled at {}/s",
                l.burst, l.per_second
            ),
        }
    );
    println!(
        "full deploy: {full_s:.2} s, peak RSS {full_kib} KiB, {throttled} write(s) answered 429"
    );
    println!(
        "depth bound: {depth} levels x {LATENCY_MS} ms = {:.2} s",
        depth as f64 * latency_s
    );
    if let Some(l) = limit {
        let over = (writes as f64 - f64::from(l.burst)).max(0.0);
        println!(
            "throttle bound: ({writes} writes - bucket {}) / {}/s = {:.2} s",
            l.burst,
            l.per_second,
            over / l.per_second
        );
    }
    println!(
        "unchanged redeploy: {again_s:.2} s ({:.0} % of the full deploy), peak RSS {again_kib} KiB",
        100.0 * again_s / full_s
    );
}
