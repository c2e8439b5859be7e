//! The `azure-blob` binary run as the agent runs it, against Azurite (the official Azure
//! Storage emulator): every command, incremental transfers, and the failures users meet.

use azure_task_testkit as common;

mod support;

use std::time::{Duration, SystemTime};

use azure_emulator::Scheme;
use common::azurite::{Azurite, KEY};
use common::{Env, Outcome};

const BIN: &str = env!("CARGO_BIN_EXE_azure-blob");

struct Fixture {
    azurite: Azurite,
    env: Env,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            azurite: Azurite::start(),
            env: Env::new(Scheme::ServicePrincipal),
        }
    }

    /// Runs the task with a connection string (the development account's key).
    fn run(&self, inputs: &[(&str, &str)]) -> Outcome {
        let cs = self.azurite.connection_string();
        let mut all = vec![
            ("authenticationType", "connectionString"),
            ("connectionString", cs.as_str()),
        ];
        all.extend_from_slice(inputs);
        let outcome = self.env.run(BIN, &all);
        outcome.assert_no_secret(&[KEY.to_owned(), cs.clone()]);
        outcome
    }

    fn ok(&self, inputs: &[(&str, &str)]) -> Outcome {
        let o = self.run(inputs);
        assert!(o.succeeded(), "{}", o.dump());
        o
    }

    fn fails(&self, inputs: &[(&str, &str)]) -> Outcome {
        let o = self.run(inputs);
        assert!(o.failed(), "{}", o.dump());
        o
    }
}

fn count(log: &str, word: &str) -> usize {
    log.lines()
        .filter(|l| l.trim_start().starts_with(word))
        .count()
}

#[test]
fn upload_download_wait_delete_round_trip() {
    let f = Fixture::new();
    f.env.write("data/a.csv", "id,v\n1,2\n");
    f.env.write("data/nested/b.json", "{\"x\":1}");
    // Larger than one block: goes as staged blocks with the whole file's MD5.
    let big: Vec<u8> = (0..(9 * 1024 * 1024 + 123))
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    f.env.write("data/big.bin", &big);

    // A missing container is an error unless createContainer is set.
    let o = f.fails(&[
        ("command", "upload"),
        ("container", "input"),
        ("prefix", "raw"),
        ("sourcePath", "data"),
    ]);
    assert!(
        o.failure().contains("container 'input' does not exist"),
        "{}",
        o.dump()
    );

    let up = [
        ("command", "upload"),
        ("container", "input"),
        ("prefix", "raw"),
        ("sourcePath", "data"),
        ("createContainer", "true"),
        ("metadata", "source=test"),
    ];
    let o = f.ok(&up);
    let log = o.log();
    assert_eq!(count(&log, "uploaded "), 3, "{log}");
    assert!(log.contains("Uploaded 3 file(s)"), "{log}");
    assert_eq!(o.variable("BlobCount").unwrap().0, "3");
    let prefix_url = o.variable("BlobPrefixUrl").unwrap().0;
    assert_eq!(
        prefix_url,
        format!("{}/input/raw", f.azurite.blob_endpoint())
    );

    // Unchanged: nothing goes again.
    let o = f.ok(&up);
    assert_eq!(count(&o.log(), "unchanged "), 3, "{}", o.log());
    assert_eq!(count(&o.log(), "uploaded "), 0, "{}", o.log());

    // One changed file goes again.
    f.env.write("data/a.csv", "id,v\n1,3\n");
    let o = f.ok(&up);
    assert_eq!(count(&o.log(), "uploaded "), 1, "{}", o.log());

    // overwrite: false keeps what is there.
    f.env.write("data/a.csv", "changed again");
    let mut keep = up.to_vec();
    keep.push(("overwrite", "false"));
    let o = f.ok(&keep);
    assert_eq!(count(&o.log(), "kept "), 3, "{}", o.log());

    // Download the prefix: the same bytes come back; then nothing to do.
    let down = [
        ("command", "download"),
        ("container", "input"),
        ("prefix", "raw/"),
        ("destinationPath", "out"),
    ];
    let o = f.ok(&down);
    assert_eq!(count(&o.log(), "downloaded "), 3, "{}", o.log());
    let root = f.env.root();
    assert_eq!(std::fs::read(root.join("out/big.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read_to_string(root.join("out/a.csv")).unwrap(),
        "id,v\n1,3\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("out/nested/b.json")).unwrap(),
        "{\"x\":1}"
    );
    let o = f.ok(&down);
    assert_eq!(count(&o.log(), "unchanged "), 3, "{}", o.log());
    // A local file that differs is replaced.
    std::fs::write(root.join("out/a.csv"), "local edit").unwrap();
    let o = f.ok(&down);
    assert_eq!(count(&o.log(), "downloaded "), 1, "{}", o.log());
    assert_eq!(
        std::fs::read_to_string(root.join("out/a.csv")).unwrap(),
        "id,v\n1,3\n"
    );

    // One blob to a file.
    f.ok(&[
        ("command", "download"),
        ("container", "input"),
        ("blobName", "raw/nested/b.json"),
        ("destinationPath", "one.json"),
    ]);
    assert_eq!(
        std::fs::read_to_string(root.join("one.json")).unwrap(),
        "{\"x\":1}"
    );

    // waitFor: a blob, a count under a prefix, and a timeout.
    let o = f.ok(&[
        ("command", "waitFor"),
        ("container", "input"),
        ("blobName", "raw/a.csv"),
        ("timeoutSeconds", "5"),
        ("pollSeconds", "1"),
    ]);
    assert_eq!(o.variable("BlobCount").unwrap().0, "1");
    f.ok(&[
        ("command", "waitFor"),
        ("container", "input"),
        ("prefix", "raw/"),
        ("minCount", "3"),
        ("timeoutSeconds", "5"),
        ("pollSeconds", "1"),
    ]);
    let o = f.fails(&[
        ("command", "waitFor"),
        ("container", "input"),
        ("prefix", "raw/"),
        ("minCount", "4"),
        ("timeoutSeconds", "2"),
        ("pollSeconds", "1"),
    ]);
    assert!(
        o.failure().contains("timed out after 2 s") && o.failure().contains("found 3"),
        "{}",
        o.dump()
    );

    // delete: an empty prefix is refused; dry run deletes nothing; then the prefix goes.
    let o = f.fails(&[("command", "delete"), ("container", "input")]);
    assert!(o.failure().contains("deleteWholeContainer"), "{}", o.dump());
    let o = f.ok(&[
        ("command", "delete"),
        ("container", "input"),
        ("prefix", "raw/nested/"),
        ("dryRun", "true"),
    ]);
    assert!(
        o.log().contains("would delete raw/nested/b.json"),
        "{}",
        o.log()
    );
    assert_eq!(o.variable("BlobCount").unwrap().0, "1");
    let o = f.ok(&[
        ("command", "delete"),
        ("container", "input"),
        ("prefix", "raw/nested/"),
    ]);
    assert_eq!(o.variable("BlobCount").unwrap().0, "1");
    f.fails(&[
        ("command", "waitFor"),
        ("container", "input"),
        ("blobName", "raw/nested/b.json"),
        ("timeoutSeconds", "1"),
        ("pollSeconds", "1"),
    ]);
    let o = f.ok(&[
        ("command", "delete"),
        ("container", "input"),
        ("deleteWholeContainer", "true"),
    ]);
    assert_eq!(o.variable("BlobCount").unwrap().0, "2");
}

#[test]
fn missing_containers_and_blobs_are_named() {
    let f = Fixture::new();
    let o = f.fails(&[
        ("command", "download"),
        ("container", "nope"),
        ("prefix", "x/"),
        ("destinationPath", "out"),
    ]);
    assert!(
        o.failure().contains("container 'nope' does not exist"),
        "{}",
        o.dump()
    );
    let o = f.fails(&[
        ("command", "delete"),
        ("container", "nope"),
        ("prefix", "x/"),
    ]);
    assert!(
        o.failure().contains("container 'nope' does not exist"),
        "{}",
        o.dump()
    );
    let o = f.fails(&[
        ("command", "waitFor"),
        ("container", "nope"),
        ("prefix", "x/"),
        ("timeoutSeconds", "30"),
    ]);
    assert!(
        o.failure().contains("container 'nope' does not exist"),
        "{}",
        o.dump()
    );

    f.env.write("d/a.txt", "a");
    f.ok(&[
        ("command", "upload"),
        ("container", "there"),
        ("sourcePath", "d"),
        ("createContainer", "true"),
    ]);
    let o = f.fails(&[
        ("command", "download"),
        ("container", "there"),
        ("blobName", "missing.txt"),
        ("destinationPath", "m.txt"),
    ]);
    assert!(o.failure().contains("blob does not exist"), "{}", o.dump());
    assert!(!f.env.root().join("m.txt").exists());
}

#[test]
fn a_wrong_key_and_an_expired_sas_are_refused_without_showing_them() {
    let f = Fixture::new();
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let cs = f.azurite.connection_string_with_key(wrong);
    f.env.write("d/a.txt", "a");
    let o = f.env.run(
        BIN,
        &[
            ("authenticationType", "connectionString"),
            ("connectionString", &cs),
            ("command", "upload"),
            ("container", "cone"),
            ("sourcePath", "d"),
            ("createContainer", "true"),
        ],
    );
    assert!(o.failed(), "{}", o.dump());
    assert!(
        o.failure().contains("refused the credentials"),
        "{}",
        o.dump()
    );
    o.assert_no_secret(&[wrong.to_owned(), cs.clone()]);

    // A SAS signed with the right key but expired an hour ago.
    let ten_hours_ago = SystemTime::now() - Duration::from_secs(10 * 3600);
    let sas = azure_blob::auth::account_sas(
        "devstoreaccount1",
        KEY,
        ten_hours_ago,
        Duration::from_secs(3600),
    )
    .unwrap();
    let sig: String = url::form_urlencoded::parse(sas.as_bytes())
        .find(|(k, _)| k == "sig")
        .unwrap()
        .1
        .into_owned();
    let endpoint = f.azurite.blob_endpoint();
    let o = f.env.run(
        BIN,
        &[
            ("authenticationType", "sasToken"),
            ("sasToken", &sas),
            ("blobEndpoint", &endpoint),
            ("command", "waitFor"),
            ("container", "cone"),
            ("blobName", "a.txt"),
        ],
    );
    assert!(o.failed(), "{}", o.dump());
    assert!(
        o.failure().contains("refused the credentials") && o.failure().contains("expired"),
        "{}",
        o.dump()
    );
    o.assert_no_secret(&[sas.clone(), sig]);

    // The same SAS, valid now, works.
    let sas = azure_blob::auth::account_sas(
        "devstoreaccount1",
        KEY,
        SystemTime::now(),
        Duration::from_secs(3600),
    )
    .unwrap();
    let o = f.env.run(
        BIN,
        &[
            ("authenticationType", "sasToken"),
            ("sasToken", &format!("?{sas}")),
            ("blobEndpoint", &endpoint),
            ("command", "upload"),
            ("container", "cone"),
            ("sourcePath", "d"),
            ("createContainer", "true"),
        ],
    );
    assert!(o.succeeded(), "{}", o.dump());
    o.assert_no_secret(&[sas]);
}

fn set_mtime(path: &std::path::Path, when: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

fn mtime(path: &std::path::Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// The blobs under `prefix` as listed (one listing, with metadata), through the task's library.
fn listing(f: &Fixture, container: &str, prefix: &str) -> Vec<azure_blob::store::Remote> {
    let store = support::store(&f.azurite, container);
    support::runtime().block_on(async { store.list(prefix).await.unwrap() })
}

fn mtime_ns(path: &std::path::Path) -> String {
    azure_blob::files::modified_ns(&std::fs::metadata(path).unwrap())
        .unwrap()
        .to_string()
}

#[test]
fn upload_skips_by_size_and_time_and_hashes_what_it_cannot_skip() {
    let f = Fixture::new();
    let a = f.env.write("q/a.csv", "id,v\n1,2\n");
    let b = f.env.write("q/b.csv", "hello");
    let up = [
        ("command", "upload"),
        ("container", "quick"),
        ("prefix", "in"),
        ("sourcePath", "q"),
        ("createContainer", "true"),
        ("metadata", "source=test\nOwner=data-team"),
    ];
    let o = f.ok(&up);
    assert_eq!(count(&o.log(), "uploaded "), 2, "{}", o.log());

    // The user's metadata and the source's size and time, in the one listing.
    let blobs = listing(&f, "quick", "in/");
    assert_eq!(blobs.len(), 2);
    for (blob, path, size) in [(&blobs[0], &a, "9"), (&blobs[1], &b, "5")] {
        let m = &blob.metadata;
        assert_eq!(m.get("source").map(String::as_str), Some("test"), "{m:?}");
        assert_eq!(
            m.get("owner").map(String::as_str),
            Some("data-team"),
            "{m:?}"
        );
        assert_eq!(
            m.get("azdo_src_size").map(String::as_str),
            Some(size),
            "{m:?}"
        );
        assert_eq!(m.get("azdo_src_mtime"), Some(&mtime_ns(path)), "{m:?}");
    }

    // Unchanged files are skipped without reading them.
    let o = f.ok(&up);
    let log = o.log();
    assert_eq!(count(&log, "unchanged "), 2, "{log}");
    assert!(!log.contains("(same MD5)"), "{log}");
    assert!(
        log.contains("2 unchanged (2 by size and time, 0 by MD5)"),
        "{log}"
    );

    // A same-size edit with a new time goes again.
    let before = mtime(&a);
    std::fs::write(&a, "id,v\n1,3\n").unwrap();
    set_mtime(&a, before + Duration::from_secs(1));
    // A touched but unchanged file is read, and skipped by its MD5.
    set_mtime(&b, mtime(&b) + Duration::from_secs(5));
    let o = f.ok(&up);
    let log = o.log();
    assert_eq!(count(&log, "uploaded "), 1, "{log}");
    assert!(log.contains("uploaded  in/a.csv"), "{log}");
    assert!(log.contains("unchanged in/b.csv (same MD5)"), "{log}");

    // An edit that keeps the size and sets the time back is the quick check's blind spot;
    // checksum: true reads every file and finds it.
    let recorded = mtime(&a);
    std::fs::write(&a, "id,v\n1,4\n").unwrap();
    set_mtime(&a, recorded);
    let o = f.ok(&up);
    assert!(
        o.log()
            .lines()
            .any(|l| l.trim_end() == "unchanged in/a.csv"),
        "{}",
        o.log()
    );
    let mut with_checksum = up.to_vec();
    with_checksum.push(("checksum", "true"));
    let o = f.ok(&with_checksum);
    let log = o.log();
    assert!(log.contains("uploaded  in/a.csv"), "{log}");
    assert!(log.contains("unchanged in/b.csv (same MD5)"), "{log}");
    let blobs = listing(&f, "quick", "in/");
    assert_eq!(
        blobs[0].md5.as_deref(),
        Some(azure_blob::files::md5_bytes(b"id,v\n1,4\n").as_slice())
    );
    assert_eq!(
        blobs[0].metadata.get("source").map(String::as_str),
        Some("test")
    );

    // The task's own metadata names are refused as user metadata.
    let mut clash = up.to_vec();
    clash[5] = ("metadata", "azdo_src_mtime=0");
    let o = f.fails(&clash);
    assert!(
        o.failure().contains("'azdo_src_mtime' is the task's own"),
        "{}",
        o.dump()
    );
}
