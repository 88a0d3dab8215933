//! The backup loop end to end: the real client backs up a folder to the real
//! server, and what a user would see (listing, downloads) is checked.

use crate::fixtures::*;
use std::time::Duration;

const NASTY: &[&str] = &[
    "plain.txt",
    "nested/deeper/deepest/file.bin",
    "with space/and #hash?query%percent.txt",
    "ünïcödé/日本語ファイル.txt",
    "emoji 🎉.md",
    "<script>alert(1)</script>.html",
    "quote\"and'apos.txt",
    "empty",
];

#[test]
fn backs_up_a_tree_with_awkward_names_and_downloads_it_byte_for_byte() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for (i, rel) in NASTY.iter().enumerate() {
        let data = if *rel == "empty" {
            vec![]
        } else {
            noise(1000 * i + 7, i as u64)
        };
        write(&src, rel, &data);
    }
    let state = tmp.path().join("state.json");
    let out = client_once(&server.url(), &src, "laptop", &state, &[]);
    assert_ok(&out);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!("uploaded {}", NASTY.len())),
        "{summary}"
    );

    let files = server.files();
    assert_eq!(files.len(), NASTY.len());
    for rel in NASTY {
        let data = std::fs::read(src.join(rel)).unwrap();
        let f = server
            .file("laptop", rel)
            .unwrap_or_else(|| panic!("{rel} not listed"));
        assert_eq!(f["size"], data.len() as u64);
        assert_eq!(f["hash"], hex(&data));
        assert_eq!(f["versions"], 1);
        assert_eq!(f["packed"], false);
        let url = format!(
            "/download/laptop/{}",
            nimbus_common::paths::encode_path(rel)
        );
        let r = server.get(&url);
        assert_eq!(r.status, 200, "{rel}");
        assert_eq!(r.body, data, "{rel}");
    }

    // The HTML page lists every file, escaped, with a working link.
    let page = server.get("/files");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let html = page.text();
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;.html"));
    assert!(!html.contains("<script>alert(1)"));
    // Every attribute is double-quoted, so a ' needs no escaping.
    assert!(html.contains("quote&quot;and'apos.txt"));
    assert!(
        html.contains("href=\"/download/laptop/with%20space/and%20%23hash%3Fquery%25percent.txt\"")
    );

    // A second pass with nothing changed uploads nothing.
    let out = client_once(&server.url(), &src, "laptop", &state, &[]);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "idle pass printed a summary"
    );
}

#[test]
fn changes_make_versions_touches_do_not_and_identical_content_is_stored_once() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let state = tmp.path().join("state.json");
    let big = noise(300_000, 1);
    write(&src, "a.txt", b"first");
    write(&src, "copy1.bin", &big);
    write(&src, "dir/copy2.bin", &big);
    assert_ok(&client_once(&server.url(), &src, "pc", &state, &[]));
    assert_eq!(server.file("pc", "a.txt").unwrap()["versions"], 1);
    // Two files, one blob for the shared content plus one for a.txt.
    assert_eq!(server.blob_files().len(), 2);

    // Change: a new version, downloadable.
    std::thread::sleep(Duration::from_millis(20));
    write(&src, "a.txt", b"second");
    assert_ok(&client_once(&server.url(), &src, "pc", &state, &[]));
    let f = server.file("pc", "a.txt").unwrap();
    assert_eq!(f["versions"], 2);
    assert_eq!(server.get("/download/pc/a.txt").body, b"second");

    // Touch without change: no upload, no version.
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(src.join("a.txt"))
        .unwrap()
        .set_modified(later - Duration::from_secs(10))
        .unwrap();
    let out = client_once(&server.url(), &src, "pc", &state, &[]);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty()
            || String::from_utf8_lossy(&out.stdout).contains("uploaded 0")
    );
    assert_eq!(server.file("pc", "a.txt").unwrap()["versions"], 2);

    // Another machine with the same content: recorded without new blobs.
    let src2 = tmp.path().join("other");
    write(&src2, "same.bin", &big);
    assert_ok(&client_once(
        &server.url(),
        &src2,
        "desktop",
        &tmp.path().join("s2.json"),
        &[],
    ));
    assert_eq!(
        server.file("desktop", "same.bin").unwrap()["hash"],
        hex(&big)
    );
    assert_eq!(
        server.blob_files().len(),
        3,
        "only a.txt's second version added a blob"
    );
}

#[test]
fn a_restart_keeps_everything() {
    let mut server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src, "x/y.txt", b"kept");
    write(&src, "z.bin", &noise(100_000, 3));
    assert_ok(&client_once(
        &server.url(),
        &src,
        "pc",
        &tmp.path().join("s.json"),
        &[],
    ));
    let before = server.files();
    server.restart();
    assert_eq!(server.files(), before);
    assert_eq!(server.get("/download/pc/x/y.txt").body, b"kept");
    // And after a clean stop, which writes a snapshot.
    assert!(server.terminate().success());
    server.restart();
    assert_eq!(server.files(), before);
}

#[test]
fn a_client_started_before_the_server_catches_up() {
    // Reserve a port, then free it for the server that starts later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src, "early.txt", b"written before the server was up");
    // The machine logs in to the data directory the server will use.
    let data = tmp.path().join("data");
    prepare(port, &data);
    let mut client = spawn_client(
        &format!("http://127.0.0.1:{port}"),
        &src,
        &tmp.path().join("s.json"),
        &["--settle", "0", "--interval", "0.2"],
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        client.try_wait().unwrap().is_none(),
        "client gave up while the server was down"
    );

    let mut server = Server::start_on(&data, &[]);
    // start_on picks a free port; restart on the reserved one instead.
    server.kill();
    server.port = port;
    server.restart();
    wait_for(60, "the early file to be backed up", || {
        server.file("pc", "early.txt").is_some()
    });

    // And it keeps watching: a new file appears on the server.
    write(&src, "later.txt", b"new");
    wait_for(30, "the new file", || {
        server.file("pc", "later.txt").is_some()
    });
    assert_eq!(server.get("/download/pc/later.txt").body, b"new");
    let _ = client.kill();
    let _ = client.wait();
}

#[test]
fn once_gives_up_with_a_clear_error_when_the_server_stays_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src, "f.txt", b"x");
    let started = std::time::Instant::now();
    let out = client_once(
        &format!("http://127.0.0.1:{port}"),
        &src,
        "pc",
        &tmp.path().join("s.json"),
        &[],
    );
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(150),
        "took {:?}",
        started.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unavailable"), "{err}");
}

#[test]
fn symlinks_are_not_followed_and_do_not_fail_the_pass() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src, "real.txt", b"real");
    std::fs::write(tmp.path().join("outside.txt"), b"secret outside the folder").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("outside.txt"), src.join("link.txt")).unwrap();
    let out = client_once(&server.url(), &src, "pc", &tmp.path().join("s.json"), &[]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("symbolic link"));
    let names: Vec<_> = server
        .files()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["real.txt"]);
}

#[test]
fn a_file_that_keeps_changing_waits_until_it_settles() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // Build the client before writing, so the file is fresh when it starts.
    client_bin();
    write(&src, "growing.log", b"start\n");
    let mut client = client_command(
        &server.url(),
        &src,
        "pc",
        &tmp.path().join("s.json"),
        &["--settle", "1.5", "--interval", "0.2", "--once"],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // Keep appending for a while: nothing may be uploaded meanwhile.
    let mut content = b"start\n".to_vec();
    for i in 0..10 {
        std::thread::sleep(Duration::from_millis(200));
        content.extend_from_slice(format!("line {i}\n").as_bytes());
        std::fs::write(src.join("growing.log"), &content).unwrap();
        assert!(
            server.file("pc", "growing.log").is_none(),
            "uploaded before it settled"
        );
    }
    let status = client.wait().unwrap();
    assert!(status.success());
    let f = server.file("pc", "growing.log").unwrap();
    assert_eq!(
        f["hash"],
        hex(&content),
        "the settled content is what was backed up"
    );
    assert_eq!(f["versions"], 1);
}
