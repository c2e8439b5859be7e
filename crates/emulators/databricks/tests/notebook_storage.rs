//! What notebooks use to move blob data: `dbutils.fs` on `file:/` and `wasbs://` paths against
//! Azurite (account key from `spark.conf`), `dbutils.secrets` from the workspace's scopes with
//! values redacted in what the run shows, and clear errors for a missing blob or a wrong key.

mod common;

use azure_task_testkit::azurite::{Azurite, ACCOUNT, KEY};
use common::*;
use databricks_emulator::Options;
use serde_json::{json, Value};

/// The notebooks' shared first cell: the account key from the secret scope into spark.conf.
const SETUP: &str = "# Databricks notebook source
import json, os, tempfile
account = dbutils.widgets.get('account')
spark.conf.set(f'fs.azure.account.key.{account}.blob.core.windows.net', dbutils.secrets.get('storage', 'account-key'))
base = f'wasbs://data@{account}.blob.core.windows.net'
local = tempfile.mkdtemp()

# COMMAND ----------
";

/// The emulator with Azurite as the development account's blob endpoint and the account key
/// (or `key`) in the secret scope `storage`.
async fn start_with(azurite: &Azurite, key: &str) -> (databricks_emulator::Emulator, Client) {
    let (emu, c) = start(Options {
        blob_endpoints: [(ACCOUNT.to_string(), azurite.blob_endpoint())].into(),
        ..options()
    })
    .await;
    assert!(emu.executes_python(), "python3 must be on PATH");
    let (s, b) = c
        .post(
            "/api/2.0/secrets/scopes/create",
            json!({"scope": "storage"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = c
        .post(
            "/api/2.0/secrets/put",
            json!({"scope": "storage", "key": "account-key", "string_value": key}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    (emu, c)
}

/// Runs `source` (after SETUP) as a notebook; returns its task's output.
async fn run_notebook(c: &Client, source: &str) -> Value {
    c.import_python("/Shared/storage", &format!("{SETUP}{source}"))
        .await;
    let run = c
        .wait(
            c.submit_notebook("/Shared/storage", json!({"account": ACCOUNT}), json!({}))
                .await,
        )
        .await;
    let (status, out) = c.output(run["tasks"][0]["run_id"].as_u64().unwrap()).await;
    assert_eq!(status, 200, "{out}");
    out
}

#[tokio::test]
async fn dbutils_fs_copies_files_to_and_from_blob_storage() {
    let azurite = Azurite::start();
    let (_emu, c) = start_with(&azurite, KEY).await;
    let out = run_notebook(
        &c,
        r#"
with open(os.path.join(local, 'in.csv'), 'w') as f:
    f.write('driver_id,age\n1,30\n')
os.makedirs(os.path.join(local, 'dir', 'sub'))
for name in ('a.txt', os.path.join('sub', 'b.txt')):
    with open(os.path.join(local, 'dir', name), 'w') as f:
        f.write(name)
r = {}
# Up: the container does not exist yet; the first write creates it, as WASB does.
r['up'] = dbutils.fs.cp('file:' + os.path.join(local, 'in.csv'), base + '/raw/drivers.csv')
r['ls'] = [[i.name, i.size, i.path] for i in dbutils.fs.ls(base + '/raw')]
r['head'] = dbutils.fs.head(base + '/raw/drivers.csv', 9)
# Down, into a folder (the file keeps its name).
os.makedirs(os.path.join(local, 'down'))
dbutils.fs.cp(base + '/raw/drivers.csv', 'file:' + os.path.join(local, 'down') + '/')
with open(os.path.join(local, 'down', 'drivers.csv')) as f:
    r['down'] = f.read()
# A folder needs recurse=True, both ways.
try:
    dbutils.fs.cp('file:' + os.path.join(local, 'dir'), base + '/tree')
except OSError as e:
    r['no_recurse'] = str(e).endswith('is a directory: pass recurse=True to copy it')
dbutils.fs.cp('file:' + os.path.join(local, 'dir'), base + '/tree', recurse=True)
r['tree'] = sorted(i.name for i in dbutils.fs.ls(base + '/tree'))
dbutils.fs.cp(base + '/tree', 'file:' + os.path.join(local, 'back'), recurse=True)
with open(os.path.join(local, 'back', 'sub', 'b.txt')) as f:
    r['back'] = f.read()
r['rm'] = [dbutils.fs.rm(base + '/raw/drivers.csv'), dbutils.fs.rm(base + '/raw/drivers.csv')]
r['rm_tree'] = dbutils.fs.rm(base + '/tree', recurse=True)
r['left'] = [i.name for i in dbutils.fs.ls(base + '/')]
dbutils.notebook.exit(json.dumps(r))
"#,
    )
    .await;
    assert!(out["error"].is_null(), "{out}");
    let r: Value =
        serde_json::from_str(out["notebook_output"]["result"].as_str().unwrap()).unwrap();
    let url = format!("wasbs://data@{ACCOUNT}.blob.core.windows.net/raw/drivers.csv");
    assert_eq!(r["up"], true);
    assert_eq!(r["ls"], json!([["drivers.csv", 19, url]]));
    assert_eq!(r["head"], "driver_id");
    assert_eq!(r["down"], "driver_id,age\n1,30\n");
    assert_eq!(r["no_recurse"], true);
    assert_eq!(r["tree"], json!(["a.txt", "sub/"]));
    assert_eq!(r["back"], "sub/b.txt");
    assert_eq!(r["rm"], json!([true, false]));
    assert_eq!(r["rm_tree"], true);
    assert_eq!(r["left"], json!([]));
}

#[tokio::test]
async fn a_missing_blob_and_a_wrong_key_fail_with_clear_errors() {
    let azurite = Azurite::start();
    let (_emu, c) = start_with(&azurite, KEY).await;
    // The container exists (a first write), the blob does not.
    let out = run_notebook(
        &c,
        "dbutils.fs.cp('file:' + __import__('shutil').which('python3'), base + '/bin/python3')\n\
         dbutils.fs.head(base + '/in/missing.csv')\n",
    )
    .await;
    assert_eq!(
        out["error"],
        format!("FileNotFoundError: wasbs://data@{ACCOUNT}.blob.core.windows.net/in/missing.csv does not exist")
    );
    let trace = out["error_trace"].as_str().unwrap();
    assert!(!trace.contains("_emulator_storage"), "{trace}");

    // A container that does not exist is named.
    let out = run_notebook(
        &c,
        "dbutils.fs.cp(f'wasbs://nothere@{account}.blob.core.windows.net/x.csv', 'file:' + local + '/x.csv')\n",
    )
    .await;
    let error = out["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("FileNotFoundError: wasbs://nothere@{ACCOUNT}.blob.core.windows.net/x.csv: the container nothere does not exist in the storage account {ACCOUNT} (404 ContainerNotFound")),
        "{error}"
    );

    // No key set: says which setting to set.
    let out = run_notebook(
        &c,
        "spark.conf.unset(f'fs.azure.account.key.{account}.blob.core.windows.net')\ndbutils.fs.ls(base + '/')\n",
    )
    .await;
    let error = out["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("PermissionError: wasbs://data@{ACCOUNT}.blob.core.windows.net/: no credentials for the storage account {ACCOUNT}: set spark.conf.set(\"fs.azure.account.key.{ACCOUNT}.blob.core.windows.net\"")),
        "{error}"
    );

    // A wrong key: the service's refusal, without its XML, and the key never shows.
    let wrong = "d3JvbmcgZGV2ZWxvcG1lbnQga2V5IG9mIHRoZSBhY2NvdW50";
    let (_emu, c) = start_with(&azurite, wrong).await;
    let out = run_notebook(&c, "dbutils.fs.ls(base + '/')\n").await;
    let error = out["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("PermissionError: wasbs://data@{ACCOUNT}.blob.core.windows.net/: the storage account {ACCOUNT} refused the request (403 ")),
        "{error}"
    );
    // The service's code and message (Azurite says AuthorizationFailure where Azure says
    // AuthenticationFailed), first line only.
    assert!(
        error.contains("Server failed to authenticate the request."),
        "{error}"
    );
    assert!(
        error.ends_with(&format!(
            "check the account key in spark.conf fs.azure.account.key.{ACCOUNT}.blob.core.windows.net"
        )),
        "{error}"
    );
    let all = out.to_string();
    assert!(!all.contains("<?xml") && !all.contains("<Error>"), "{all}");
    assert!(!all.contains(wrong), "{all}");
}

#[tokio::test]
async fn secrets_come_from_the_scopes_and_are_redacted_in_what_the_run_shows() {
    let (emu, c) = start(options()).await;
    assert!(emu.executes_python(), "python3 must be on PATH");
    c.post("/api/2.0/secrets/scopes/create", json!({"scope": "App"}))
        .await;
    c.post(
        "/api/2.0/secrets/put",
        json!({"scope": "App", "key": "db-password", "string_value": "pa55-w0rd"}),
    )
    .await;
    let run = |source: &'static str| {
        let c = &c;
        async move {
            c.import_python("/Shared/secrets", source).await;
            let run = c
                .wait(
                    c.submit_notebook("/Shared/secrets", json!({}), json!({}))
                        .await,
                )
                .await;
            c.output(run["tasks"][0]["run_id"].as_u64().unwrap())
                .await
                .1
        }
    };
    // Scope names are case-insensitive; the value is usable, and shown as [REDACTED].
    let out = run("p = dbutils.secrets.get('app', 'db-password')\n\
         assert p == 'pa55-w0rd' and dbutils.secrets.getBytes('APP', 'db-password') == b'pa55-w0rd'\n\
         print(p)\n\
         dbutils.notebook.exit(f'{[s.key for s in dbutils.secrets.list(\"app\")]} {p}')\n")
    .await;
    assert_eq!(
        out["notebook_output"]["result"], "['db-password'] [REDACTED]",
        "{out}"
    );
    let out = run("p = dbutils.secrets.get('App', 'db-password')\nraise RuntimeError('cannot log in with ' + p)\n").await;
    assert_eq!(out["error"], "RuntimeError: cannot log in with [REDACTED]");
    assert!(!out.to_string().contains("pa55-w0rd"), "{out}");
    // A Python file task's printed output (the run's logs) is redacted too.
    let (s, b) = c
        .post(
            "/api/2.0/workspace/import",
            json!({"path": "/Shared/job.py", "format": "AUTO", "overwrite": true,
                   "content": b64("import sys\nprint('password:', dbutils.secrets.get('app', 'db-password'))\nprint(sys.argv[1:])\n")}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = c
        .post(
            "/api/2.2/jobs/runs/submit",
            json!({"run_name": "file", "tasks": [{"task_key": "main",
                "existing_cluster_id": databricks_emulator::DEFAULT_CLUSTER_ID,
                "spark_python_task": {"python_file": "/Shared/job.py", "parameters": ["--x"]}}]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let file_run = c.wait(b["run_id"].as_u64().unwrap()).await;
    let (_, out) = c
        .output(file_run["tasks"][0]["run_id"].as_u64().unwrap())
        .await;
    assert_eq!(out["logs"], "password: [REDACTED]\n['--x']\n", "{out}");

    let out = run("dbutils.secrets.get('App', 'nope')\n").await;
    assert_eq!(
        out["error"],
        "IllegalArgumentException: Secret does not exist with scope: App and key: nope"
    );
    let out = run("dbutils.secrets.get('other', 'db-password')\n").await;
    assert_eq!(
        out["error"],
        "IllegalArgumentException: Secret does not exist with scope: other"
    );
}
