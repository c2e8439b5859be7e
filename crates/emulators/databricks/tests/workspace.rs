//! Workspace API: every rule and error case, over HTTP.

mod common;

use common::{b64, options, start, unb64, TOKEN};
use serde_json::json;

#[tokio::test]
async fn import_export_round_trip_in_every_language() {
    let (_emu, c) = start(options()).await;
    c.mkdirs("/Shared/nb").await;
    for (language, header) in [
        ("PYTHON", "# Databricks notebook source"),
        ("SCALA", "// Databricks notebook source"),
        ("SQL", "-- Databricks notebook source"),
        ("R", "# Databricks notebook source"),
    ] {
        let path = format!("/Shared/nb/{language}");
        let body_text = "x = 1\n";
        let (s, b) = c
            .post("/api/2.0/workspace/import", json!({"path": path, "format": "SOURCE", "language": language, "content": b64(body_text)}))
            .await;
        assert_eq!(s, 200, "{b}");
        let (s, info) = c
            .get("/api/2.0/workspace/get-status", &[("path", &path)])
            .await;
        assert_eq!(s, 200);
        assert_eq!(info["object_type"], "NOTEBOOK");
        assert_eq!(info["language"], language);
        assert!(info["object_id"].as_u64().is_some());
        assert!(info["modified_at"].as_u64().unwrap() > 1_600_000_000_000);
        let (s, exported) = c
            .get(
                "/api/2.0/workspace/export",
                &[("path", &path), ("format", "SOURCE")],
            )
            .await;
        assert_eq!(s, 200);
        // The service adds the header line to a notebook imported without one.
        assert_eq!(
            unb64(exported["content"].as_str().unwrap()),
            format!("{header}\n{body_text}")
        );
    }
}

#[tokio::test]
async fn source_with_header_exports_identically_and_direct_download_is_raw() {
    let (_emu, c) = start(options()).await;
    let source = "# Databricks notebook source\nprint(1)\n\n# COMMAND ----------\n\nprint(2)\n";
    c.import_python("/Shared/n", source).await;
    let (_, exported) = c
        .get("/api/2.0/workspace/export", &[("path", "/Shared/n")])
        .await;
    assert_eq!(unb64(exported["content"].as_str().unwrap()), source);
    assert_eq!(exported["file_type"], "py");
    let raw = c
        .http
        .get(format!("{}/api/2.0/workspace/export", c.base))
        .bearer_auth(TOKEN)
        .query(&[("path", "/Shared/n"), ("direct_download", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.text().await.unwrap(), source);
}

#[tokio::test]
async fn multipart_import_and_raw_files() {
    let (_emu, c) = start(options()).await;
    let form = reqwest::multipart::Form::new()
        .text("path", "/Shared/data.csv")
        .text("format", "AUTO")
        .part(
            "content",
            reqwest::multipart::Part::bytes(b"a,b\n1,2\n".to_vec()).file_name("data.csv"),
        );
    let response = c
        .http
        .post(format!("{}/api/2.0/workspace/import", c.base))
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, info) = c
        .get(
            "/api/2.0/workspace/get-status",
            &[("path", "/Shared/data.csv")],
        )
        .await;
    assert_eq!(info["object_type"], "FILE");
    assert_eq!(info["size"], 8);
    assert!(info.get("language").is_none());

    let (s, _) = c
        .post(
            "/api/2.0/workspace/import",
            json!({"path": "/Shared/blob.bin", "format": "RAW", "content": b64("\u{1}\u{2}")}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, e) = c
        .get(
            "/api/2.0/workspace/export",
            &[("path", "/Shared/blob.bin"), ("format", "RAW")],
        )
        .await;
    assert_eq!(unb64(e["content"].as_str().unwrap()), "\u{1}\u{2}");
}

#[tokio::test]
async fn auto_detects_notebooks_by_extension_and_header() {
    let (_emu, c) = start(options()).await;
    let cases = [
        (
            "/Shared/a.py",
            "# Databricks notebook source\nx=1\n",
            "/Shared/a",
            "NOTEBOOK",
        ),
        ("/Shared/b.py", "x=1\n", "/Shared/b.py", "FILE"),
        (
            "/Shared/c.scala",
            "// Databricks notebook source\nval x = 1\n",
            "/Shared/c",
            "NOTEBOOK",
        ),
        (
            "/Shared/d.sql",
            "-- Databricks notebook source\nselect 1\n",
            "/Shared/d",
            "NOTEBOOK",
        ),
        (
            "/Shared/e.txt",
            "# Databricks notebook source\n",
            "/Shared/e.txt",
            "FILE",
        ),
    ];
    for (path, content, expected_path, kind) in cases {
        let (s, b) = c
            .post(
                "/api/2.0/workspace/import",
                json!({"path": path, "format": "AUTO", "content": b64(content)}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        let (s, info) = c
            .get("/api/2.0/workspace/get-status", &[("path", expected_path)])
            .await;
        assert_eq!(s, 200, "{path} should land at {expected_path}");
        assert_eq!(info["object_type"], kind, "{path}");
    }
    let ipynb =
        r#"{"cells":[{"cell_type":"code","source":["print(1)"]}],"metadata":{},"nbformat":4}"#;
    let (s, _) = c
        .post(
            "/api/2.0/workspace/import",
            json!({"path": "/Shared/j.ipynb", "format": "AUTO", "content": b64(ipynb)}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, info) = c
        .get("/api/2.0/workspace/get-status", &[("path", "/Shared/j")])
        .await;
    assert_eq!(info["language"], "PYTHON");
    let (_, e) = c
        .get(
            "/api/2.0/workspace/export",
            &[("path", "/Shared/j"), ("format", "JUPYTER")],
        )
        .await;
    assert_eq!(e["file_type"], "ipynb");
    let doc: serde_json::Value =
        serde_json::from_str(&unb64(e["content"].as_str().unwrap())).unwrap();
    assert_eq!(doc["cells"][0]["source"], "print(1)");
}

#[tokio::test]
async fn import_errors() {
    let (_emu, c) = start(options()).await;
    let import = |body| c.post("/api/2.0/workspace/import", body);

    let (s, b) =
        import(json!({"path": "/Shared/x", "format": "SOURCE", "content": b64("x")})).await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE"))
    );
    assert!(b["message"]
        .as_str()
        .unwrap()
        .contains("The zip file may not be valid or may be an unsupported version."));

    let (s, b) = import(
        json!({"path": "/Nope/x", "format": "SOURCE", "language": "PYTHON", "content": b64("x")}),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(b["error_code"], "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(b["message"], "The parent folder (/Nope) does not exist.");

    let ok =
        json!({"path": "/Shared/x", "format": "SOURCE", "language": "PYTHON", "content": b64("x")});
    assert_eq!(import(ok.clone()).await.0, 200);
    let (s, b) = import(ok.clone()).await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (400, Some("RESOURCE_ALREADY_EXISTS"))
    );
    let mut over = ok.clone();
    over["overwrite"] = json!(true);
    over["content"] = json!(b64("y"));
    assert_eq!(import(over).await.0, 200);
    let (_, e) = c
        .get("/api/2.0/workspace/export", &[("path", "/Shared/x")])
        .await;
    assert!(unb64(e["content"].as_str().unwrap()).ends_with("\ny"));

    // A directory is never overwritten by an import.
    let (s, b) =
        import(json!({"path": "/Shared", "format": "RAW", "content": b64("x"), "overwrite": true}))
            .await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (400, Some("RESOURCE_ALREADY_EXISTS"))
    );

    let big = "a".repeat(10 * 1024 * 1024 + 1);
    let (s, b) = import(json!({"path": "/Shared/big", "format": "SOURCE", "language": "PYTHON", "content": b64(&big)})).await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (400, Some("MAX_NOTEBOOK_SIZE_EXCEEDED"))
    );
    assert_eq!(
        b["message"],
        "File size imported is (10485761 bytes), exceeded max size (10485760 bytes)"
    );

    let (s, b) =
        import(json!({"path": "/Shared/y", "format": "source", "content": b64("x")})).await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE")),
        "formats are case-sensitive"
    );
    let (s, b) = import(
        json!({"path": "/Shared/y", "format": "SOURCE", "language": "PYTHON", "content": "%%%"}),
    )
    .await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (400, Some("MALFORMED_REQUEST"))
    );
    let (s, _) = import(json!({"path": "relative", "format": "RAW", "content": b64("x")})).await;
    assert_eq!(s, 400);
    let (s, b) = import(
        json!({"path": "/Shared/z.dbc", "format": "DBC", "content": b64("PK"), "overwrite": true}),
    )
    .await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE")),
        "DBC does not support overwrite"
    );
}

#[tokio::test]
async fn list_get_status_delete_and_mkdirs_rules() {
    let (_emu, c) = start(options()).await;
    for (endpoint, path) in [
        ("list", "/Missing"),
        ("get-status", "/Missing"),
        ("export", "/Missing"),
    ] {
        let (s, b) = c
            .get(&format!("/api/2.0/workspace/{endpoint}"), &[("path", path)])
            .await;
        assert_eq!(s, 404, "{endpoint}");
        assert_eq!(b["error_code"], "RESOURCE_DOES_NOT_EXIST");
        assert_eq!(b["message"], "Path (/Missing) doesn't exist.");
    }
    let (s, b) = c
        .post("/api/2.0/workspace/delete", json!({"path": "/Missing"}))
        .await;
    assert_eq!(
        (s, b["message"].as_str()),
        (404, Some("Path (/Missing) doesn't exist."))
    );

    c.mkdirs("/Shared/empty").await;
    let (s, b) = c
        .get("/api/2.0/workspace/list", &[("path", "/Shared/empty")])
        .await;
    assert_eq!((s, b), (200, json!({})), "an empty folder lists as {{}}");

    c.mkdirs("/Shared/tree/sub").await;
    c.import_python("/Shared/tree/sub/nb", "x=1\n").await;
    c.import_python("/Shared/tree/top", "x=1\n").await;
    let (_, b) = c
        .get("/api/2.0/workspace/list", &[("path", "/Shared/tree")])
        .await;
    let paths: Vec<&str> = b["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        vec!["/Shared/tree/sub", "/Shared/tree/top"],
        "direct children only"
    );

    let (s, b) = c
        .post("/api/2.0/workspace/delete", json!({"path": "/Shared/tree"}))
        .await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (400, Some("DIRECTORY_NOT_EMPTY"))
    );
    let (s, _) = c
        .post(
            "/api/2.0/workspace/delete",
            json!({"path": "/Shared/tree", "recursive": true}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        c.get(
            "/api/2.0/workspace/get-status",
            &[("path", "/Shared/tree/sub/nb")]
        )
        .await
        .0,
        404
    );

    c.import_python("/Shared/file-nb", "x=1\n").await;
    let (s, b) = c
        .post(
            "/api/2.0/workspace/mkdirs",
            json!({"path": "/Shared/file-nb/sub"}),
        )
        .await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (400, Some("RESOURCE_ALREADY_EXISTS"))
    );
    c.mkdirs("/Shared/empty").await; // idempotent
}

#[tokio::test]
async fn state_endpoint_dumps_the_tree_without_auth() {
    let (emu, c) = start(options()).await;
    c.import_python("/Shared/small", "x=1\n").await;
    let state: serde_json::Value = c
        .http
        .get(format!("{}/emulator/state", c.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let node = state["workspace"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["path"] == "/Shared/small")
        .unwrap()
        .clone();
    assert_eq!(node["object_type"], "NOTEBOOK");
    assert_eq!(node["content"], "x=1\n");
    assert_eq!(state["request_counts"]["import"], 1);
    assert_eq!(emu.request_count("import"), 1);
    assert_eq!(emu.state()["workspace"], state["workspace"]);
}
