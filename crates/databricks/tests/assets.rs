//! Secrets, volumes, DBFS, libraries and Git folders against the emulator: what each call
//! returns and how its errors read.

mod common;

use common::{assert_no_token, options, start};
use databricks::{AclPermission, Error, GitRef, Library, ScopeBackend, DBFS_MAX_BLOCK_BYTES};
use databricks_emulator::{GitRemote, Options, DEFAULT_CLUSTER_ID};

fn with_volume() -> Options {
    Options {
        volumes: vec!["main.raw.landing".into()],
        library_install_delay: std::time::Duration::ZERO,
        ..options()
    }
}

/// Overwriting a file past the `put` limit never loses the old one: a stream that fails
/// half-way leaves it as it was, and a complete one replaces it without leftovers.
#[tokio::test]
async fn dbfs_overwrite_keeps_the_old_file_when_the_stream_fails() {
    // Blocks: 3 for the first upload, then the second block of the overwrite fails.
    let rule: databricks_emulator::FaultRule = "POST /api/2.0/dbfs/add-block 400 offset=4 times=1"
        .parse()
        .unwrap();
    let (emu, ws) = start(Options {
        fault_rules: vec![rule],
        ..options()
    })
    .await;
    let old: Vec<u8> = vec![1; DBFS_MAX_BLOCK_BYTES * 2 + 1];
    let new: Vec<u8> = vec![2; DBFS_MAX_BLOCK_BYTES * 3];
    ws.upload_dbfs_file("dbfs:/x/big", &old, false)
        .await
        .unwrap();
    ws.upload_dbfs_file("dbfs:/x/big", &new, true)
        .await
        .unwrap_err();
    assert_eq!(
        emu.dbfs_file("/x/big").unwrap(),
        old,
        "the old file is intact"
    );
    let names = |listed: Vec<(String, u64)>| listed.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    assert_eq!(
        names(ws.list_dbfs_files("dbfs:/x").await.unwrap().unwrap()),
        ["big"]
    );

    ws.upload_dbfs_file("dbfs:/x/big", &new, true)
        .await
        .unwrap();
    assert_eq!(emu.dbfs_file("/x/big").unwrap(), new);
    assert_eq!(
        names(ws.list_dbfs_files("dbfs:/x").await.unwrap().unwrap()),
        ["big"]
    );
    // A new file by overwrite has nothing to move aside.
    ws.upload_dbfs_file("dbfs:/x/other", &new, true)
        .await
        .unwrap();
    assert_eq!(emu.dbfs_file("/x/other").unwrap(), new);
}

#[tokio::test]
async fn secrets_scopes_values_and_acls() {
    let (emu, ws) = start(options()).await;
    ws.create_secret_scope("etl", &ScopeBackend::Databricks, None)
        .await
        .unwrap();
    let e = ws
        .create_secret_scope("ETL", &ScopeBackend::Databricks, None)
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), Some("RESOURCE_ALREADY_EXISTS"));
    ws.put_secret("etl", "pw", "s3cret-value").await.unwrap();
    assert_eq!(emu.secret_value("etl", "pw").unwrap(), b"s3cret-value");
    assert_eq!(ws.list_secret_keys("etl").await.unwrap(), ["pw"]);
    ws.put_secret_acl("etl", "team", AclPermission::Write)
        .await
        .unwrap();
    let acls = ws.list_secret_acls("etl").await.unwrap();
    assert!(acls.contains(&("team".into(), "WRITE".into())), "{acls:?}");
    let scopes = ws.list_secret_scopes().await.unwrap();
    assert_eq!(
        (scopes[0].name.as_str(), scopes[0].backend_type.as_str()),
        ("etl", "DATABRICKS")
    );
    let e = ws.put_secret("nope", "k", "v-123").await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert!(!e.to_string().contains("v-123"), "{e}");
    assert_no_token(&e);
}

#[tokio::test]
async fn volume_files_and_the_errors_they_read_as() {
    let (_emu, ws) = start(with_volume()).await;
    let path = "/Volumes/main/raw/landing/a b/c.txt";
    ws.upload_volume_file(path, b"one".to_vec(), false)
        .await
        .unwrap();
    let e = ws
        .upload_volume_file(path, b"two".to_vec(), false)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
    ws.upload_volume_file(path, b"three".to_vec(), true)
        .await
        .unwrap();
    let meta = ws.volume_file_metadata(path).await.unwrap().unwrap();
    assert_eq!(meta.size, 5);
    assert!(meta.modified.ends_with(" GMT"), "{meta:?}");
    assert_eq!(
        ws.download_volume_file(path).await.unwrap().unwrap(),
        b"three"
    );
    assert_eq!(
        ws.list_volume_files("/Volumes/main/raw/landing/a b")
            .await
            .unwrap()
            .unwrap(),
        [("c.txt".to_owned(), 5)]
    );
    assert!(ws
        .volume_file_metadata("/Volumes/main/raw/landing/none")
        .await
        .unwrap()
        .is_none());
    assert!(ws
        .volume_directory_exists("/Volumes/main/raw/landing")
        .await
        .unwrap());
    assert!(!ws
        .volume_directory_exists("/Volumes/main/raw/other")
        .await
        .unwrap());
    let e = ws
        .upload_volume_file("/Volumes/main/raw/other/x", vec![1], true)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("the volume main.raw.other of /Volumes/main/raw/other/x does not exist")
            && e.to_string().contains("CREATE VOLUME main.raw.other"),
        "{e}"
    );
}

#[tokio::test]
async fn dbfs_puts_small_files_and_streams_large_ones() {
    let (emu, ws) = start(options()).await;
    assert_eq!(
        ws.upload_dbfs_file("dbfs:/x/small", b"small", false)
            .await
            .unwrap(),
        1
    );
    let big: Vec<u8> = (0..(DBFS_MAX_BLOCK_BYTES * 2 + 7))
        .map(|i| (i % 253) as u8)
        .collect();
    // create, 3 blocks, close
    assert_eq!(
        ws.upload_dbfs_file("dbfs:/x/big", &big, false)
            .await
            .unwrap(),
        5
    );
    assert_eq!(emu.dbfs_file("/x/big").unwrap(), big);
    // Read back 1 MB at a time.
    assert_eq!(
        ws.read_dbfs_file("dbfs:/x/big").await.unwrap().unwrap(),
        big
    );
    assert!(ws.read_dbfs_file("dbfs:/x/none").await.unwrap().is_none());
    let e = ws
        .upload_dbfs_file("dbfs:/x/big", &big, false)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
    let meta = ws.dbfs_file_metadata("dbfs:/x/big").await.unwrap().unwrap();
    assert_eq!(meta.size, big.len() as u64);
    assert!(
        ws.dbfs_file_metadata("/x").await.unwrap().is_none(),
        "a directory"
    );
    let mut listed = ws.list_dbfs_files("dbfs:/x").await.unwrap().unwrap();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("big".to_owned(), big.len() as u64),
            ("small".to_owned(), 5)
        ]
    );
    assert!(ws.list_dbfs_files("dbfs:/none").await.unwrap().is_none());
}

#[tokio::test]
async fn libraries_install_fail_and_uninstall() {
    let (_emu, ws) = start(Options {
        failing_libraries: vec!["broken-pkg".into()],
        ..with_volume()
    })
    .await;
    let good = Library::Pypi {
        package: "requests".into(),
        repo: None,
    };
    let bad = Library::Pypi {
        package: "broken-pkg==1.0".into(),
        repo: None,
    };
    ws.install_libraries(DEFAULT_CLUSTER_ID, &[good.clone(), bad.clone()])
        .await
        .unwrap();
    let statuses = ws.library_statuses(DEFAULT_CLUSTER_ID).await.unwrap();
    let of = |l: &Library| {
        statuses
            .iter()
            .find(|s| s.library.as_ref() == Some(l))
            .unwrap()
            .clone()
    };
    assert_eq!(of(&good).status, "INSTALLED");
    assert_eq!(of(&bad).status, "FAILED");
    assert!(
        of(&bad).messages[0].contains("broken-pkg"),
        "{:?}",
        of(&bad)
    );
    ws.uninstall_libraries(DEFAULT_CLUSTER_ID, std::slice::from_ref(&good))
        .await
        .unwrap();
    let statuses = ws.library_statuses(DEFAULT_CLUSTER_ID).await.unwrap();
    assert!(statuses
        .iter()
        .any(|s| s.library.as_ref() == Some(&good) && s.status == "UNINSTALL_ON_RESTART"));
    let e = ws
        .install_libraries("no-such-cluster", &[good])
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
}

#[tokio::test]
async fn git_folders_by_path_and_refs() {
    let (_emu, ws) = start(Options {
        git_remotes: vec![GitRemote {
            url: "https://dev.azure.com/acme/p/_git/etl".into(),
            branches: [
                ("main".into(), "1".repeat(40)),
                ("dev".into(), "2".repeat(40)),
            ]
            .into(),
            tags: Default::default(),
        }],
        ..options()
    })
    .await;
    assert!(ws
        .find_repo_by_path("/Workspace/Repos/ci/etl")
        .await
        .unwrap()
        .is_none());
    let repo = ws
        .create_repo(
            "https://dev.azure.com/acme/p/_git/etl",
            "azureDevOpsServices",
            "/Workspace/Repos/ci/etl",
        )
        .await
        .unwrap();
    assert_eq!(repo.path, "/Repos/ci/etl");
    let found = ws
        .find_repo_by_path("/Workspace/Repos/ci/etl/")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, repo.id);
    let dev = ws
        .update_repo(repo.id, &GitRef::Branch("dev".into()))
        .await
        .unwrap();
    assert_eq!(
        (dev.branch.as_deref(), dev.head_commit_id.as_str()),
        (Some("dev"), "2".repeat(40).as_str())
    );
    let e = ws
        .update_repo(repo.id, &GitRef::Tag("v9".into()))
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), Some("INVALID_PARAMETER_VALUE"), "{e:?}");
    assert!(ws.get_repo(1).await.unwrap_err().is_not_found());
}
