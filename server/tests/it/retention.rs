//! Retention and integrity with the real server binary: `prune` keeps what
//! the policy says and deletes only content nothing references, survives
//! kill -9 at any point, runs by itself in a running server, and no client
//! token can remove history; `check --read-data` finds flipped bytes in hot
//! and packed content.

use crate::fixtures::*;
use nimbus_common::hash::ContentHash;
use nimbus_server::store::DataManager;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn server_cmd(data: &Path, args: &[&str]) -> Output {
    Command::new(server_bin())
        .arg("--data")
        .arg(data)
        .args(unlock_args(data, &[]))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn put(server: &Server, path: &str, data: &[u8]) {
    let r = put_file(server.port, "pc", path, data);
    assert!(r.status == 201 || r.status == 200, "{}", r.text());
}

fn version_count(server: &Server, path: &str) -> usize {
    server
        .get(&format!("/api/v1/versions/pc/{path}"))
        .json()
        .as_array()
        .map_or(0, |a| a.len())
}

#[test]
fn prune_keeps_what_the_policy_says_and_only_unreferenced_content_goes() {
    let mut server = Server::start(&[]);
    for i in 0..4 {
        put(&server, "a.txt", format!("a version {i}").as_bytes());
    }
    // b.txt's current content is a.txt's first version: shared, so it
    // must survive a.txt forgetting it.
    put(&server, "b.txt", b"a version 0");
    put(&server, "gone.txt", b"gone 1");
    put(&server, "gone.txt", b"gone 2");
    let r = request(server.port, "DELETE", "/api/v1/files/pc/gone.txt", &[], b"");
    assert_eq!(r.status, 201);
    assert_eq!(server.blob_files().len(), 6);

    // Not while the server runs (it prunes by itself).
    let out = server_cmd(&server.data, &["prune", "--keep-last", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("a server is running"),
        "{}",
        stderr(&out)
    );
    // Nor a second server on the same data.
    let out = Command::new(server_bin())
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(&server.data)
        .args(unlock_args(&server.data, &[]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("a server is running"));

    server.terminate();
    let out = server_cmd(&server.data, &["prune"]);
    assert!(
        stderr(&out).contains("no retention policy"),
        "{}",
        stderr(&out)
    );

    // A dry run tells and changes nothing.
    let out = server_cmd(&server.data, &["prune", "--keep-last", "1", "--dry-run"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("would have 4 version(s) forgotten, 0 file(s) gone entirely, 3 stored content(s) deleted"),
        "{}",
        stdout(&out)
    );
    assert_eq!(server.blob_files().len(), 6);

    let out = server_cmd(&server.data, &["prune", "--keep-last", "1"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains(
            "prune: 4 version(s) forgotten, 0 file(s) gone entirely, 3 stored content(s) deleted"
        ),
        "{}",
        stdout(&out)
    );
    // a version 0 (b.txt), a version 3 (a.txt), gone 2 (gone.txt's last).
    assert_eq!(server.blob_files().len(), 3);

    server.restart();
    assert_eq!(version_count(&server, "a.txt"), 1);
    let v = server.get("/api/v1/versions/pc/a.txt").json();
    assert_eq!(v[0]["version"], 4, "numbers are kept");
    let r = server.get("/download/pc/a.txt?version=4");
    assert_eq!(r.body, b"a version 3");
    assert_eq!(server.get("/download/pc/b.txt").body, b"a version 0");
    let v = server.get("/api/v1/versions/pc/gone.txt").json();
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v[1]["deleted"], true);
    assert_eq!(
        server.get("/download/pc/gone.txt?version=2").body,
        b"gone 2"
    );
    assert!(server.log().contains("removed") || !server.log().contains("missing"));
    let out = server_cmd(&server.data, &["check", "--read-data"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a running server holds the lock"
    );
    server.terminate();
    let out = server_cmd(&server.data, &["check", "--read-data"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("0 problem(s)"), "{}", stdout(&out));
}

#[test]
fn a_running_server_prunes_by_itself() {
    let server = Server::start(&["--keep-last", "2", "--prune-interval", "1"]);
    for i in 0..5 {
        put(&server, "doc.txt", format!("doc {i}").as_bytes());
    }
    wait_for(20, "the automatic prune", || {
        version_count(&server, "doc.txt") == 2
    });
    wait_for(10, "unreferenced content to go", || {
        server.blob_files().len() == 2
    });
    assert_eq!(server.get("/download/pc/doc.txt").body, b"doc 4");
    assert!(server.log().contains("pruned at"), "{}", server.log());
}

#[test]
fn a_client_token_cannot_remove_history_through_any_route() {
    let server = Server::start(&[]);
    put(&server, "x.txt", b"one");
    put(&server, "x.txt", b"two");
    let history = || server.get("/api/v1/versions/pc/x.txt").json();
    let before = history();
    // Every method on every route a token could try.
    let targets = [
        "/api/v1/versions/pc/x.txt",
        "/api/v1/files/pc/x.txt",
        "/api/v1/files",
        "/download/pc/x.txt",
        "/download/pc/x.txt?version=1",
        "/versions/pc/x.txt",
        "/archive?machine=pc",
        "/admin/invites",
        "/api/v1/admin/clients",
    ];
    for t in targets {
        for m in ["DELETE", "PUT", "POST", "PATCH"] {
            let r = request(server.port, m, t, &[], b"");
            // A deletion of the file is allowed: it only adds a tombstone.
            if !(m == "DELETE" && t == "/api/v1/files/pc/x.txt") {
                assert!(r.status >= 400, "{m} {t}: {}", r.status);
            }
        }
    }
    // An upload replacing content adds a version; it never rewrites one.
    put(&server, "x.txt", b"three");
    let after = history();
    let after = after.as_array().unwrap();
    for (i, v) in before.as_array().unwrap().iter().enumerate() {
        assert_eq!(&after[i], v, "existing versions are untouched");
    }
    for (n, content) in [(1, &b"one"[..]), (2, &b"two"[..])] {
        let r = server.get(&format!("/download/pc/x.txt?version={n}"));
        assert_eq!((r.status, r.body.as_slice()), (200, content));
    }
}

/// A data directory with `files` files of `versions` versions each, all
/// contents distinct, written through the library (much faster than HTTP).
fn build_data(data: &Path, files: usize, versions: usize) {
    let dm = DataManager::open_with(data, vault_of(data)).unwrap();
    for v in 0..versions {
        for f in 0..files {
            let body = format!("file {f} version {v} {}", "x".repeat(f % 50)).into_bytes();
            let h = ContentHash::of_bytes(&body);
            let staged = dm
                .stage_upload(&mut &body[..], &h, Some(body.len() as u64), u64::MAX)
                .unwrap();
            dm.commit_upload("admin/pc", &format!("dir{}/f{f}.txt", f % 10), 1, staged)
                .unwrap();
        }
    }
    dm.compact().unwrap();
}

#[test]
fn prune_survives_kill_9_at_any_point() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (files, versions) = (400, 3);
    build_data(&data, files, versions);
    let mut kills = 0;
    let mut delay = Duration::from_millis(5);
    loop {
        let mut child = Command::new(server_bin())
            .arg("--data")
            .arg(&data)
            .args(unlock_args(&data, &[]))
            .args(["prune", "--keep-last", "1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while started.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        // Whatever the moment: the store loads, and every version the
        // catalog lists has its content, byte for byte.
        let out = server_cmd(&data, &["check", "--read-data"]);
        assert!(
            out.status.success(),
            "after a kill at {delay:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        if finished {
            break;
        }
        delay *= 2;
        assert!(delay < Duration::from_secs(120), "prune never finished");
    }
    assert!(kills >= 2, "the kills landed mid-prune ({kills})");

    // The end state is exactly the policy's: one version of each file,
    // and only their contents on disk.
    let dm = DataManager::open_with(&data, vault_of(&data)).unwrap();
    let tree = dm.tree("", None, false);
    assert_eq!(tree.len(), files);
    for l in &tree {
        assert_eq!(l.versions, 1, "{}", l.path);
        assert_eq!(l.version.n, versions as u64);
    }
    assert_eq!(dm.stats().blobs, files);
    assert_eq!(list_files(&data.join("blobs")).len(), files);
}

#[test]
fn check_read_data_finds_a_flipped_byte_in_hot_content_a_packed_frame_and_a_frame_index() {
    let mut server = Server::start(&["--hot-time", "1", "--hotspot-interval", "1"]);
    // Several frames each (1 MiB of original bytes per frame).
    let text = b"compressible text, over and over. ".repeat(100_000);
    let indexed = b"another text, its frame index damaged. ".repeat(100_000);
    put(&server, "packed.txt", &text);
    put(&server, "indexed.txt", &indexed);
    wait_for(30, "the files to be packed", || {
        ["packed.txt", "indexed.txt"]
            .iter()
            .all(|name| server.file("pc", name).is_some_and(|f| f["packed"] == true))
    });
    server.terminate();
    server.set_args(&[]);
    server.restart();
    let hot = noise(100_000, 5);
    put(&server, "hot.bin", &hot);
    put(&server, "fine.txt", b"fine");
    server.terminate();
    let out = server_cmd(&server.data, &["check", "--read-data"]);
    assert_ok(&out);

    let blob = |suffix: &str, hash: &str| {
        server
            .blob_files()
            .into_iter()
            .find(|p| p.file_name().unwrap().to_string_lossy() == format!("{hash}{suffix}"))
            .unwrap()
    };
    let flip = |p: &Path, at: usize| {
        let mut b = std::fs::read(p).unwrap();
        b[at] ^= 0x01;
        std::fs::write(p, b).unwrap();
    };
    flip(&blob("", &hex(&hot)), 50_000);
    // In the second frame's stream, and in the other file's frame index.
    let bz2 = blob(".bz2", &hex(&text));
    let len = std::fs::metadata(&bz2).unwrap().len() as usize;
    flip(&bz2, len / 2);
    flip(&blob(".bz2.idx", &hex(&indexed)), 50);

    // Sizes are unchanged: only reading the data finds it.
    assert_ok(&server_cmd(&server.data, &["check"]));
    let out = server_cmd(&server.data, &["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = stdout(&out);
    assert!(
        report.contains("damaged: admin/pc: hot.bin version 1"),
        "{report}"
    );
    assert!(
        report.contains("damaged: admin/pc: packed.txt version 1"),
        "{report}"
    );
    assert!(
        report.contains("damaged: admin/pc: indexed.txt version 1")
            && report.contains("frame index is damaged"),
        "{report}"
    );
    assert!(!report.contains("fine.txt"), "{report}");
    assert!(report.contains("3 problem(s)"), "{report}");

    // A truncated content is found without reading it.
    let p = blob("", &hex(b"fine"));
    std::fs::write(&p, b"fi").unwrap();
    let out = server_cmd(&server.data, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("fine.txt"), "{}", stdout(&out));
}
