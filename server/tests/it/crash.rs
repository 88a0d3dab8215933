//! kill -9 at awkward moments: the catalog always loads, nothing partial is
//! ever visible, staging leftovers are cleaned, and the client completes
//! whatever was not acknowledged.

use crate::fixtures::*;
use std::io::Write;
use std::time::Duration;

fn big_random_file(path: &std::path::Path, len: u64) -> String {
    let mut f = std::fs::File::create(path).unwrap();
    let mut urandom = std::fs::File::open("/dev/urandom").unwrap();
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        std::io::Read::read_exact(&mut urandom, &mut buf[..n]).unwrap();
        hasher.update(&buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    hasher.finalize().to_hex().to_string()
}

fn staged_bytes(server: &Server) -> u64 {
    server
        .tmp_files()
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn kill_during_a_large_upload_then_restart_and_complete() {
    let mut server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    write(&src, "small.txt", b"acknowledged before the crash");
    let big_hash = big_random_file(&src.join("big.bin"), 256 << 20);

    let mut client = spawn_client(
        &server.url(),
        &src,
        &tmp.path().join("state.json"),
        &["--settle", "0", "--interval", "0.3"],
    );

    // Kill the server in the middle of the big upload (it goes up in
    // chunks: those so far are blobs not yet named by any manifest,
    // staging holds the chunks arriving).
    wait_for(60, "the big upload to be under way", || {
        staged_bytes(&server) + server.chunk_bytes() > 16 << 20
    });
    server.kill();
    let staged_at_kill = server.tmp_files();

    server.restart();
    // The catalog loaded, the acknowledged file is there, the partial one is
    // nowhere: not listed, not in the blob store, not in staging.
    let files = server.files();
    assert!(files
        .iter()
        .all(|f| f["path"] != "big.bin" || f["hash"] == big_hash.as_str()));
    for p in &staged_at_kill {
        assert!(
            !p.exists(),
            "staging leftover {} survived the restart",
            p.display()
        );
    }
    for b in server
        .blob_files()
        .iter()
        .filter(|b| b.extension().is_none())
    {
        let name = b.file_name().unwrap().to_string_lossy().to_string();
        let content = std::fs::read(b).unwrap();
        assert_eq!(hex(&content), name, "blob {name} does not match its hash");
    }

    // The running client notices and completes the backup.
    wait_for(120, "the client to finish the big file", || {
        server.file("pc", "big.bin").is_some()
    });
    let f = server.file("pc", "big.bin").unwrap();
    assert_eq!(f["hash"], big_hash.as_str());
    assert_eq!(f["size"], 256u64 << 20);
    assert_eq!(
        server.get("/download/pc/small.txt").body,
        b"acknowledged before the crash"
    );
    let _ = client.kill();
    let _ = client.wait();
}

#[test]
fn repeated_kills_during_a_stream_of_uploads_lose_nothing_acknowledged() {
    let mut server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for i in 0..400 {
        write(
            &src,
            &format!("d{}/f{i}.txt", i % 7),
            format!("file {i} ").repeat(i + 1).as_bytes(),
        );
    }
    let mut client = spawn_client(
        &server.url(),
        &src,
        &tmp.path().join("state.json"),
        &["--settle", "0", "--interval", "0.2"],
    );
    let mut seen = 0;
    for round in 0..4 {
        std::thread::sleep(Duration::from_millis(150 + 70 * round));
        server.kill();
        server.restart();
        // Whatever was listed before the crash is still listed.
        let now = server.files().len();
        assert!(
            now >= seen,
            "round {round}: {now} files listed after a restart, {seen} before"
        );
        seen = now;
    }
    wait_for(120, "all files to be backed up", || {
        server.files().len() == 400
    });
    for f in server.files() {
        let path = f["path"].as_str().unwrap();
        let local = std::fs::read(src.join(path)).unwrap();
        assert_eq!(f["hash"], hex(&local).as_str(), "{path}");
        assert_eq!(f["versions"], 1, "{path} was recorded twice");
    }
    let _ = client.kill();
    let _ = client.wait();
}

/// A large file goes up in chunks: a pass killed at 70 % (the client, then
/// the client and the server) continues from the chunks the server holds,
/// so the next pass sends at most the rest and a group of chunks (as the
/// server counts them); the file then downloads
/// whole and the store checks clean.
#[test]
fn a_large_upload_killed_at_70_percent_resumes_where_it_stood() {
    let mut server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let state = tmp.path().join("state.json");
    let size: u64 = 160 << 20;
    for (round, kill_server) in [(0, false), (1, true)] {
        let name = format!("disk-{round}.img");
        let hash = big_random_file(&src.join(&name), size);
        let log = tmp.path().join(format!("client-{round}.log"));
        let mut client = client_command(&server.url(), &src, "pc", &state, &["--settle", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let before = server.chunk_bytes();
        wait_for(120, "70 % of the file on the server", || {
            server.chunk_bytes() - before >= size * 7 / 10
        });
        let _ = client.kill();
        let _ = client.wait();
        if kill_server {
            server.kill();
            assert_ok(&server.command(&["check", "--read-data"], ""));
            server.restart();
        }
        let before = server.chunk_bytes();
        let out = client_once(&server.url(), &src, "pc", &state, &[]);
        assert_ok(&out);
        // At most the last 30 % and the group that was arriving are sent
        // again.
        let sent = server.chunk_bytes() - before;
        assert!(
            sent <= size * 3 / 10 + (16 << 20),
            "round {round}: the pass sent {sent} of {size} bytes again"
        );
        let f = server.file("pc", &name).unwrap();
        assert_eq!(f["hash"], hash, "round {round}");
        let body = server.get(&format!("/download/pc/{name}")).body;
        assert_eq!(blake3::hash(&body).to_hex().to_string(), hash);
        // Finished: nothing left in staging.
        assert!(server.tmp_files().is_empty(), "round {round}");
    }
    server.kill();
    assert_ok(&server.command(&["check", "--read-data"], ""));
}

/// Packing and unpacking write a frame index and a `.bz2` (and remove a
/// hot copy, or the packed one): killed at moments spread over those
/// steps, the store checks clean with `check --read-data`, and the file
/// downloads whole, Range included, after every restart.
#[test]
fn kill_9_at_any_step_of_packing_and_unpacking_leaves_a_store_that_checks_clean() {
    let args = ["--hot-time", "0", "--hotspot-interval", "1"];
    let mut server = Server::start(&args);
    let data = text(12 << 20);
    assert_eq!(put_file(server.port, "pc", "big.log", &data).status, 201);
    let packed = |s: &Server| s.file("pc", "big.log").unwrap()["packed"] == true;
    for (i, delay) in [0u64, 250, 600, 1100, 1700, 2400, 3200, 4100]
        .into_iter()
        .enumerate()
    {
        // Packing in progress (a staging file), or done.
        wait_for(60, "packing to start or finish", || {
            packed(&server) || !server.tmp_files().is_empty()
        });
        std::thread::sleep(Duration::from_millis(delay));
        server.kill();
        let out = server.command(&["check", "--read-data"], "");
        assert_ok(&out);
        server.restart();
        let r = request(
            server.port,
            "GET",
            "/download/pc/big.log",
            &[("Range", "bytes=9437180-9437283")],
            b"",
        );
        assert_eq!(r.status, 206, "kill {i} (+{delay} ms): {}", r.text());
        assert_eq!(r.body, &data[9_437_180..9_437_284], "kill {i}");
        // A whole download of a packed file unpacks it: the next kill may
        // land in the unpacking, then in packing it again.
        assert!(server.get("/download/pc/big.log").body == data, "kill {i}");
    }
    server.kill();
    assert_ok(&server.command(&["check", "--read-data"], ""));
}

#[test]
fn kill_during_packing_leaves_the_file_whole() {
    let mut server = Server::start(&["--hot-time", "0", "--hotspot-interval", "1"]);
    let data = text(48 << 20);
    assert_eq!(put_file(server.port, "pc", "big.log", &data).status, 201);
    wait_for(60, "packing to start", || {
        server.tmp_files().iter().any(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("pack-")
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    server.kill();
    // Restart without the hotspot getting in the way of the check.
    server.set_args(&["--hot-time", "100000"]);
    server.restart();
    assert!(
        server.tmp_files().is_empty(),
        "staging not cleaned: {:?}",
        server.tmp_files()
    );
    let f = server.file("pc", "big.log").unwrap();
    assert_eq!(f["packed"], false);
    assert!(server.get("/download/pc/big.log").body == data);
    // Each chunk in one form: start-up removed a packed copy whose hot one
    // was not yet removed, and any index without its .bz2.
    let blobs = server.blob_files();
    for p in &blobs {
        let name = p.to_string_lossy();
        if let Some(hot) = name.strip_suffix(".bz2") {
            assert!(!std::path::Path::new(hot).exists(), "two forms: {name}");
        }
        if let Some(bz2) = name.strip_suffix(".idx") {
            assert!(std::path::Path::new(bz2).exists(), "orphan index: {name}");
        }
    }
    server.kill();
    assert_ok(&server.command(&["check", "--read-data"], ""));
}
