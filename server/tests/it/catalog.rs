//! The catalog at size, through the real server: a kill -9 while the
//! snapshot is being written leaves a catalog that loads whole, and paging
//! through a listing while uploads go on gives every file exactly once.

use crate::fixtures::*;
use nimbus_common::hash::ContentHash;
use nimbus_server::store::catalog::Record;
use nimbus_server::store::journal;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Journals `n` files of machine `admin/pc` (content not on disk: only
/// the catalog matters here) without a snapshot.
fn journal_files(data: &Path, n: usize) {
    let (mut cat, mut j, _) = journal::load(&data.join("catalog"), &vault_of(data)).unwrap();
    for i in 0..n {
        let rec = Record::Version {
            key: format!("{ADMIN}/pc"),
            path: format!("Users/ann/Pictures/{}/IMG_{i:06}.jpg", i / 250),
            hash: ContentHash::from_bytes(*blake3::hash(&(i as u64).to_le_bytes()).as_bytes()),
            size: 1000 + i as u64,
            mtime: 1_700_000_000,
            at: 1_700_000_000 + i as i64,
            chunked: false,
            n: None,
        };
        cat.seq = j.append(&rec, i + 1 == n).unwrap();
        cat.apply(&rec);
    }
}

/// Every (machine, path) of the admin's listing, a page of `limit` at a time.
fn paged(port: u16, limit: usize) -> Vec<(String, String)> {
    let auth = bearer(port, "pc");
    let mut out = Vec::new();
    let mut target = format!("/api/v1/files?limit={limit}");
    loop {
        let r = request(port, "GET", &target, &[("Authorization", &auth)], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        for e in r.json().as_array().unwrap() {
            out.push((
                e["client"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
            ));
        }
        match r.header("x-nimbus-next") {
            Some(next) => target = format!("/api/v1/files?limit={limit}&after={next}"),
            None => return out,
        }
    }
}

#[test]
fn kill_9_while_the_snapshot_is_written_leaves_a_catalog_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let n = 40_000;
    journal_files(&data, n);
    let mut server = Server::start_on(&data, &[]);
    assert_eq!(paged(server.port, 10_000).len(), n);
    // A clean stop writes the snapshot; kill -9 it at different moments
    // of that write, then start again.
    for delay_ms in [5, 30, 80, 200, 500] {
        let pid = server.child.as_ref().unwrap().id();
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        server.kill();
        server.restart();
        let listed = paged(server.port, 10_000);
        assert_eq!(
            listed.len(),
            n,
            "after a kill -9 {delay_ms} ms into the stop"
        );
        let r = request(
            server.port,
            "GET",
            "/api/v1/files?limit=1",
            &[("Authorization", &bearer(server.port, "pc"))],
            b"",
        );
        assert_eq!(r.json()[0]["path"], "Users/ann/Pictures/0/IMG_000000.jpg");
    }
    // A killed compaction may leave its old journal (journal.prev.jsonl,
    // replayed at start); the next one that finishes removes it, and a
    // start removes temp files.
    assert!(server.terminate().success());
    let leftovers: Vec<_> = std::fs::read_dir(data.join("catalog"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "snapshot.json" && n != "journal.jsonl")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    server.restart();
    assert_eq!(paged(server.port, 10_000).len(), n);
}

#[test]
fn paging_through_a_listing_while_uploads_go_on_gives_every_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let n = 3_000;
    journal_files(&data, n);
    let server = Server::start_on(&data, &[]);
    let port = server.port;
    // Uploads, into the same folders and a new machine, all along.
    let stop = Arc::new(AtomicBool::new(false));
    let uploads = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let folder = i % 12;
                let r = put_file(
                    port,
                    "pc",
                    &format!("Users/ann/Pictures/{folder}/new{i}.jpg"),
                    format!("new {i}").as_bytes(),
                );
                assert!(r.status == 201 || r.status == 200, "{}", r.text());
                let r = put_file(port, "other", &format!("f{i}"), b"x");
                assert!(r.status == 201 || r.status == 200, "{}", r.text());
            }
            i
        })
    };
    let listed = paged(port, 97);
    stop.store(true, Ordering::Relaxed);
    let sent = uploads.join().unwrap();
    assert!(sent > 0);
    let mut seen: HashMap<&(String, String), usize> = HashMap::new();
    for f in &listed {
        *seen.entry(f).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, &c)| c > 1).collect();
    assert!(twice.is_empty(), "listed twice: {twice:?}");
    for i in 0..n {
        let key = (
            "pc".to_string(),
            format!("Users/ann/Pictures/{}/IMG_{i:06}.jpg", i / 250),
        );
        assert_eq!(seen.get(&key), Some(&1), "{key:?}");
    }
    // The unpaged form streams the same list (chunked), now complete.
    let auth = bearer(port, "pc");
    let r = request(
        port,
        "GET",
        "/api/v1/files",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.header("content-length").is_none());
    let all = r.json();
    assert_eq!(all.as_array().unwrap().len(), n + 2 * sent);
    assert_eq!(paged(port, 10_000).len(), n + 2 * sent);
    // An HTTP/1.0 client gets the same list close-delimited (no length
    // announced, so nothing buffered to compute one).
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(
        &mut s,
        format!("GET /api/v1/files HTTP/1.0\r\nAuthorization: {auth}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.0 200") || head.starts_with("http/1.1 200"),
        "{head}"
    );
    assert!(
        !head.contains("content-length") && !head.contains("transfer-encoding"),
        "{head}"
    );
    assert!(head.contains("connection: close"), "{head}");
    let listed: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), n + 2 * sent);
    // Bad pages are the caller's mistake.
    for bad in [
        "limit=0",
        "limit=10001",
        "limit=x",
        "limit=5&after=nomachine",
    ] {
        let r = request(
            port,
            "GET",
            &format!("/api/v1/files?{bad}"),
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
}
