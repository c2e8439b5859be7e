//! Workspace API calls against the emulator: round trips, errors, walks.

mod common;

use common::{assert_no_token, options, start};
use databricks::{Auth, Error, ExportFormat, ImportFormat, Language, ObjectType, Workspace};
use serde_json::json;

const PY: &str = "# Databricks notebook source\nprint('hello')\n\n# COMMAND ----------\n\nx = 1\n";

#[tokio::test]
async fn source_notebooks_round_trip_in_every_language() {
    let (_emu, ws) = start(options()).await;
    ws.mkdirs("/Shared/rt").await.unwrap();
    let cases = [
        (Language::Python, PY.to_string()),
        (
            Language::R,
            "# Databricks notebook source\nx <- 1\n".to_string(),
        ),
        (
            Language::Scala,
            "// Databricks notebook source\nval x = 1\n\n// COMMAND ----------\n\nprintln(x)\n"
                .to_string(),
        ),
        (
            Language::Sql,
            "-- Databricks notebook source\nSELECT 1\n".to_string(),
        ),
    ];
    for (language, source) in cases {
        let path = format!("/Shared/rt/{}", language.as_api_str().to_lowercase());
        ws.import(
            &path,
            source.as_bytes(),
            ImportFormat::Source(language),
            false,
        )
        .await
        .unwrap();
        let info = ws.get_status(&path).await.unwrap().expect("imported");
        assert_eq!(info.object_type, ObjectType::Notebook);
        assert_eq!(info.language, Some(language));
        let exported = ws.export(&path, ExportFormat::Source).await.unwrap();
        let text = String::from_utf8(exported).unwrap();
        assert!(
            text.starts_with(language.notebook_header()),
            "{language}: {text}"
        );
        assert_eq!(text.trim_end(), source.trim_end(), "{language}");
        assert!(databricks::has_notebook_header(text.as_bytes(), language));
    }
}

#[tokio::test]
async fn other_formats_round_trip() {
    let (_emu, ws) = start(options()).await;
    ws.mkdirs("/Shared/f").await.unwrap();

    let ipynb = json!({
        "cells": [{"cell_type": "code", "metadata": {}, "source": ["print(40 + 2)"], "outputs": [], "execution_count": null}],
        "metadata": {"language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5
    })
    .to_string();
    ws.import(
        "/Shared/f/jup",
        ipynb.as_bytes(),
        ImportFormat::Jupyter,
        false,
    )
    .await
    .unwrap();
    let source = String::from_utf8(
        ws.export("/Shared/f/jup", ExportFormat::Source)
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(source.contains("print(40 + 2)"), "{source}");
    let back: serde_json::Value = serde_json::from_slice(
        &ws.export("/Shared/f/jup", ExportFormat::Jupyter)
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        back["cells"].to_string().contains("print(40 + 2)"),
        "{back}"
    );

    let html = b"<html><head><title>nb</title></head><body>notebook</body></html>";
    ws.import("/Shared/f/page", html, ImportFormat::Html, false)
        .await
        .unwrap();
    assert_eq!(
        ws.export("/Shared/f/page", ExportFormat::Html)
            .await
            .unwrap(),
        html
    );

    let dbc: Vec<u8> = (0u8..=255).cycle().take(4096).collect();
    ws.import("/Shared/f/arch", &dbc, ImportFormat::Dbc, false)
        .await
        .unwrap();
    assert_eq!(
        ws.export("/Shared/f/arch", ExportFormat::Dbc)
            .await
            .unwrap(),
        dbc
    );
    // DBC with overwrite: the client replaces the object (the API refuses overwrite for DBC).
    let dbc2 = vec![7u8; 100];
    ws.import("/Shared/f/arch", &dbc2, ImportFormat::Dbc, true)
        .await
        .unwrap();
    assert_eq!(
        ws.export("/Shared/f/arch", ExportFormat::Dbc)
            .await
            .unwrap(),
        dbc2
    );

    let raw = b"a,b\n1,2\n\x00\xff";
    ws.import("/Shared/f/data.csv", raw, ImportFormat::Raw, false)
        .await
        .unwrap();
    assert_eq!(
        ws.get_status("/Shared/f/data.csv")
            .await
            .unwrap()
            .unwrap()
            .object_type,
        ObjectType::File
    );
    assert_eq!(
        ws.export("/Shared/f/data.csv", ExportFormat::Raw)
            .await
            .unwrap(),
        raw
    );

    // AUTO strips the extension of a notebook with a header, keeps a plain file as a file.
    ws.import(
        "/Shared/f/auto.py",
        PY.as_bytes(),
        ImportFormat::Auto,
        false,
    )
    .await
    .unwrap();
    let nb = ws
        .get_status("/Shared/f/auto")
        .await
        .unwrap()
        .expect("notebook without extension");
    assert_eq!(
        (nb.object_type, nb.language),
        (ObjectType::Notebook, Some(Language::Python))
    );
    ws.import(
        "/Shared/f/module.py",
        b"import os\n",
        ImportFormat::Auto,
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        ws.get_status("/Shared/f/module.py")
            .await
            .unwrap()
            .unwrap()
            .object_type,
        ObjectType::File
    );
    assert_eq!(
        ws.export("/Shared/f/auto", ExportFormat::Auto)
            .await
            .unwrap(),
        PY.as_bytes()
    );
}

#[tokio::test]
async fn overwrite_and_already_exists() {
    let (_emu, ws) = start(options()).await;
    ws.mkdirs("/Shared/o").await.unwrap();
    ws.mkdirs("/Shared/o").await.unwrap(); // like mkdir -p
    let lang = ImportFormat::Source(Language::Python);
    ws.import("/Shared/o/nb", PY.as_bytes(), lang, false)
        .await
        .unwrap();
    let e = ws
        .import(
            "/Shared/o/nb",
            b"# Databricks notebook source\nx = 2\n",
            lang,
            false,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::AlreadyExists { path } if path == "/Shared/o/nb"),
        "{e:?}"
    );
    assert!(e.to_string().contains("/Shared/o/nb already exists"), "{e}");
    ws.import(
        "/Shared/o/nb",
        b"# Databricks notebook source\nx = 2\n",
        lang,
        true,
    )
    .await
    .unwrap();
    let text = ws
        .export("/Shared/o/nb", ExportFormat::Source)
        .await
        .unwrap();
    assert!(String::from_utf8(text).unwrap().contains("x = 2"));
    // mkdirs through a notebook.
    let e = ws.mkdirs("/Shared/o/nb/sub").await.unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
}

#[tokio::test]
async fn missing_paths() {
    let (_emu, ws) = start(options()).await;
    assert_eq!(ws.get_status("/Shared/nope").await.unwrap(), None);
    for e in [
        ws.export("/Shared/nope", ExportFormat::Source)
            .await
            .unwrap_err(),
        ws.delete("/Shared/nope", false).await.unwrap_err(),
        ws.list("/Shared/nope").await.unwrap_err(),
    ] {
        assert!(
            matches!(&e, Error::NotFound { path } if path == "/Shared/nope"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "/Shared/nope does not exist in the workspace"
        );
        assert!(e.is_not_found());
    }
    let e = ws
        .import(
            "/Shared/missing/folder/nb",
            PY.as_bytes(),
            ImportFormat::Source(Language::Python),
            true,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::NotFound { path } if path == "/Shared/missing/folder"),
        "{e:?}"
    );
}

#[tokio::test]
async fn list_walk_and_delete_a_nested_tree() {
    let (_emu, ws) = start(options()).await;
    ws.mkdirs("/Shared/empty").await.unwrap();
    assert_eq!(ws.list("/Shared/empty").await.unwrap(), vec![]);
    let lang = ImportFormat::Source(Language::Python);
    let mut expected = Vec::new();
    for a in 0..3 {
        for b in 0..3 {
            let dir = format!("/Shared/tree/a{a}/b{b}");
            ws.mkdirs(&dir).await.unwrap();
            for n in 0..2 {
                let path = format!("{dir}/nb{n}");
                ws.import(&path, PY.as_bytes(), lang, false).await.unwrap();
                expected.push(path);
            }
            expected.push(dir);
        }
        expected.push(format!("/Shared/tree/a{a}"));
    }
    ws.mkdirs("/Shared/tree/a0/b0/c/d/e").await.unwrap();
    expected.extend(
        [
            "/Shared/tree/a0/b0/c",
            "/Shared/tree/a0/b0/c/d",
            "/Shared/tree/a0/b0/c/d/e",
        ]
        .map(String::from),
    );
    expected.sort();

    let walked = ws.walk("/Shared/tree").await.unwrap();
    let paths: Vec<String> = walked.iter().map(|o| o.path.clone()).collect();
    assert_eq!(paths, expected);
    assert_eq!(
        walked
            .iter()
            .filter(|o| o.object_type == ObjectType::Notebook)
            .count(),
        18
    );

    let top = ws.list("/Shared/tree").await.unwrap();
    assert_eq!(top.len(), 3);
    assert!(top.iter().all(|o| o.object_type == ObjectType::Directory));

    let e = ws.delete("/Shared/tree", false).await.unwrap_err();
    assert_eq!(e.error_code(), Some("DIRECTORY_NOT_EMPTY"), "{e:?}");
    ws.delete("/Shared/tree", true).await.unwrap();
    assert_eq!(ws.get_status("/Shared/tree").await.unwrap(), None);
    assert!(ws.walk("/Shared/tree").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn too_large_content_is_refused_before_sending() {
    let (emu, ws) = start(options()).await;
    let big = vec![b'x'; databricks::MAX_IMPORT_BYTES + 1];
    let e = ws
        .import("/Shared/big", &big, ImportFormat::Raw, true)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::TooLarge { size, .. } if *size == big.len() as u64),
        "{e:?}"
    );
    assert!(e.to_string().contains("/Shared/big is too large"), "{e}");
    assert_eq!(emu.request_count("import"), 0);
}

#[tokio::test]
async fn credentials_check_and_a_refused_token() {
    let (emu, ws) = start(options()).await;
    let me = ws.check_credentials().await.unwrap();
    assert_eq!(me.user_name, "emulator@example.com");

    let bad = Workspace::new(
        &emu.url(),
        Auth::Token("dapi-wrong-token-xyz".into()),
        common::http(std::time::Duration::from_secs(5)),
    )
    .unwrap();
    let e = bad.check_credentials().await.unwrap_err();
    assert!(matches!(e, Error::Auth { status: 403, .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "authentication failed for {}: the token is invalid or expired",
            emu.url()
        )),
        "{text}"
    );
    assert!(!format!("{e} {e:?} {bad:?}").contains("dapi-wrong-token-xyz"));
    // A refused token is not retried.
    assert_eq!(emu.request_count("preview/scim/v2/Me"), 2);
    assert_no_token(&e);
}

#[test]
fn host_validation_on_new() {
    let http = common::http(std::time::Duration::from_secs(1));
    let ws = Workspace::new(
        "https://adb-123.4.azuredatabricks.net/?o=123#ws",
        Auth::Token("t0k".into()),
        http.clone(),
    )
    .unwrap();
    assert_eq!(ws.host(), "https://adb-123.4.azuredatabricks.net");
    let e = Workspace::new(
        "http://adb-123.4.azuredatabricks.net",
        Auth::Token("t0k".into()),
        http.clone(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidHost { .. }));
    assert!(
        e.to_string()
            .contains("'http://adb-123.4.azuredatabricks.net'")
            && e.to_string().contains("https"),
        "{e}"
    );
    let e = Workspace::new("not a url", Auth::Token("t0k".into()), http.clone()).unwrap_err();
    assert!(e.to_string().contains("'not a url'"), "{e}");
    let e = Workspace::new("https://x.example", Auth::Token("  ".into()), http).unwrap_err();
    assert!(
        e.to_string().contains("token") && e.to_string().contains("empty"),
        "{e}"
    );
}
