//! Small files travel in batches (`POST /api/v1/batch/{machine}`): the
//! client sends many per request, the server makes them durable together
//! and answers once all are. A bad batch is refused whole, and nothing of
//! it is kept; a batch cut by kill -9 leaves nothing visible and a store
//! that checks clean.

use crate::fixtures::*;
use std::time::Duration;

/// One entry of a batch body: its header line, then its bytes.
fn entry(path: &str, data: &[u8], mtime: i64) -> Vec<u8> {
    let header = serde_json::json!({
        "path": path,
        "hash": hex(data),
        "size": data.len(),
        "mtime": mtime,
    });
    let mut out = header.to_string().into_bytes();
    out.push(b'\n');
    out.extend_from_slice(data);
    out
}

fn post_batch(server: &Server, machine: &str, body: &[u8]) -> Resp {
    let auth = bearer(server.port, machine);
    request(
        server.port,
        "POST",
        &format!("/api/v1/batch/{machine}"),
        &[("Authorization", &auth)],
        body,
    )
}

#[test]
fn ten_thousand_small_files_go_up_in_batches_and_download_byte_for_byte() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let n = 10_000;
    for i in 0..n {
        write(
            &src,
            &format!("d{:02}/f{i:04}.txt", i % 50),
            &noise(200 + (i * 37) % 7000, i as u64),
        );
    }
    // One larger file goes alone, beside the batches.
    write(&src, "big.bin", &noise(300_000, 7));
    let state = tmp.path().join("state.json");
    let out = client_once(&server.url(), &src, "pc", &state, &[]);
    assert_ok(&out);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!("uploaded {}", n + 1)),
        "{summary}"
    );
    let batches = server.log().matches("batch of ").count();
    assert!(
        (n / 256..=n / 50).contains(&batches),
        "{batches} batches for {n} files"
    );
    assert_eq!(server.files().len(), n + 1);
    for i in (0..n).step_by(97) {
        let r = server.get(&format!("/download/pc/d{:02}/f{i:04}.txt", i % 50));
        assert_eq!(r.status, 200);
        assert!(r.body == noise(200 + (i * 37) % 7000, i as u64), "file {i}");
    }
    assert!(server.get("/download/pc/big.bin").body == noise(300_000, 7));

    // A second pass sends nothing; a changed file goes up in a batch of one
    // and makes a second version.
    let out = client_once(&server.url(), &src, "pc", &state, &[]);
    assert_ok(&out);
    assert_eq!(server.log().matches("batch of ").count(), batches);
    write(&src, "d03/f0003.txt", b"changed");
    let out = client_once(&server.url(), &src, "pc", &state, &[]);
    assert_ok(&out);
    assert_eq!(server.get("/download/pc/d03/f0003.txt").body, b"changed");
    assert_eq!(server.file("pc", "d03/f0003.txt").unwrap()["versions"], 2);
}

#[test]
fn a_batch_answers_each_file_in_order_and_repeats_make_no_new_version() {
    let server = Server::start(&[]);
    let mut body = entry("a.txt", b"alpha", 1_700_000_000);
    body.extend(entry("dir/b.txt", b"beta", 1_700_000_001));
    body.extend(entry("a.txt", b"alpha 2", 1_700_000_002));
    body.extend(entry("empty", b"", 1_700_000_003));
    let r = post_batch(&server, "pc", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let replies = r.json();
    let replies = replies.as_array().unwrap();
    assert_eq!(replies.len(), 4);
    assert_eq!(replies[1]["path"], "dir/b.txt");
    assert_eq!(replies[2]["new_version"], true);
    assert_eq!(server.get("/download/pc/a.txt").body, b"alpha 2");
    assert_eq!(server.file("pc", "a.txt").unwrap()["versions"], 2);
    assert_eq!(server.file("pc", "empty").unwrap()["size"], 0);
    // The same content again: acknowledged, no new version.
    let r = post_batch(&server, "pc", &entry("dir/b.txt", b"beta", 1_700_000_001));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()[0]["new_version"], false);
    assert_eq!(server.file("pc", "dir/b.txt").unwrap()["versions"], 1);
}

#[test]
fn a_bad_batch_is_refused_whole_and_nothing_of_it_is_kept() {
    let server = Server::start(&[]);
    let good = entry("good.txt", b"good content", 1_700_000_000);
    let mut wrong_hash = entry("x.txt", b"some bytes", 1_700_000_000);
    let n = wrong_hash.len();
    wrong_hash[n - 1] ^= 1;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("wrong hash", [good.clone(), wrong_hash].concat(), 400),
        (
            "traversal",
            [good.clone(), entry("../../etc/passwd", b"x", 1_700_000_000)].concat(),
            400,
        ),
        (
            "absolute path",
            [good.clone(), entry("/etc/passwd", b"x", 1_700_000_000)].concat(),
            400,
        ),
        (
            "mtime out of range",
            [good.clone(), entry("t.txt", b"x", i64::MAX)].concat(),
            400,
        ),
        (
            "not JSON",
            [good.clone(), b"hello\n".to_vec()].concat(),
            400,
        ),
        (
            "header without its bytes",
            [
                good.clone(),
                entry("cut.txt", b"0123456789", 1)[..60].to_vec(),
            ]
            .concat(),
            400,
        ),
        ("no newline", b"{\"path\":\"a\"".to_vec(), 400),
        ("empty", Vec::new(), 400),
        (
            "a header line too long",
            [vec![b' '; 9000], good.clone()].concat(),
            400,
        ),
    ];
    for (what, body, status) in cases {
        let r = post_batch(&server, "pc", &body);
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert!(
            r.text().contains("entry") || r.text().contains("batch"),
            "{what}: the answer names the entry or the batch: {}",
            r.text()
        );
        assert!(server.files().is_empty(), "{what}: something was kept");
        assert!(server.tmp_files().is_empty(), "{what}: staging left behind");
        assert!(server.blob_files().is_empty(), "{what}: a blob was kept");
    }
    // Too many files.
    let many: Vec<u8> = (0..1001)
        .flat_map(|i| entry(&format!("f{i}"), b"x", 1_700_000_000))
        .collect();
    let r = post_batch(&server, "pc", &many);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(server.files().is_empty());
    // Too large, declared.
    let r = request(
        server.port,
        "POST",
        "/api/v1/batch/pc",
        &[("Content-Length", "67108865")],
        b"",
    );
    assert_eq!(r.status, 413);
    // Another machine than the token's, and no token.
    let r = request(
        server.port,
        "POST",
        "/api/v1/batch/laptop",
        &[("Authorization", &bearer(server.port, "pc"))],
        &good,
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = request(
        server.port,
        "POST",
        "/api/v1/batch/pc",
        &[("Authorization", "")],
        &good,
    );
    assert_eq!(r.status, 401);
    let r = request(server.port, "GET", "/api/v1/batch/pc", &[], b"");
    assert_eq!(r.status, 405);
    assert!(server.files().is_empty());
    // And a good one still goes in.
    assert_eq!(post_batch(&server, "pc", &good).status, 200);
    assert_eq!(server.files().len(), 1);
}

#[test]
fn kill_9_during_batches_leaves_nothing_half_done_and_the_next_pass_completes() {
    let mut server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let n = 6_000;
    for i in 0..n {
        write(
            &src,
            &format!("d{:02}/f{i:05}", i % 60),
            &noise(3000, i as u64),
        );
    }
    let state = tmp.path().join("state.json");
    for (round, delay) in [300u64, 700, 1200].into_iter().enumerate() {
        let mut client = client_command(&server.url(), &src, "pc", &state, &["--settle", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        server.kill();
        let _ = client.kill();
        let _ = client.wait();
        let out = server.command(&["check", "--read-data"], "");
        assert_ok(&out);
        server.restart();
        // Whatever is listed is whole.
        for f in server.files().iter().step_by(211) {
            let path = f["path"].as_str().unwrap();
            let i: u64 = path.rsplit('f').next().unwrap().parse().unwrap();
            let r = server.get(&format!("/download/pc/{path}"));
            assert!(r.body == noise(3000, i), "round {round}: {path}");
        }
    }
    let out = client_once(&server.url(), &src, "pc", &state, &[]);
    assert_ok(&out);
    assert_eq!(server.files().len(), n);
    server.kill();
    assert_ok(&server.command(&["check", "--read-data"], ""));
}
