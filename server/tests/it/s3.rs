//! Content in an S3-compatible bucket (`--store s3://BUCKET/PREFIX`), on
//! two real S3 servers on loopback: moto (no signature checks) and s3s-fs
//! (checks signatures; keeps objects as files). The core scenarios on both;
//! the faults: wrong credentials, a missing bucket, the store killed
//! mid-upload, 503 SlowDown for a while; and an encrypted data directory
//! whose bucket holds only ciphertext.

use crate::fixtures::*;
use std::process::Command;
use std::time::Duration;

/// A Nimbus server with its content under `prefix` of the test bucket.
fn nimbus_on(s3: &S3Server, tmp: &std::path::Path, prefix: &str, extra: &[&str]) -> Server {
    let cfg = s3.config_file(tmp, SECRET_KEY);
    nimbus_with(s3, &cfg, prefix, extra)
}

/// [`nimbus_on`] with the config file `cfg`.
fn nimbus_with(s3: &S3Server, cfg: &std::path::Path, prefix: &str, extra: &[&str]) -> Server {
    let mut args = s3.args(prefix, &s3.endpoint(), cfg);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(&args)
}

/// The same flags, for `nimbus-server check` and `prune`.
fn store_flags(s3: &S3Server, tmp: &std::path::Path, prefix: &str) -> Vec<String> {
    let cfg = s3.config_file(tmp, SECRET_KEY);
    s3.args(prefix, &s3.endpoint(), &cfg)
}

fn download(server: &Server, path: &str) -> Vec<u8> {
    let r = server.get(&format!("/download/pc/{path}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.body
}

fn blob_objects(s3: &S3Server, prefix: &str) -> Vec<(String, u64)> {
    s3.objects(&format!("{prefix}/blobs/"))
}

/// Sets `data` up encrypted at rest, its key file beside it, as the
/// fixture's encrypted servers are.
fn set_up_encrypted(data: &std::path::Path) {
    nimbus_server::vault::open(
        data,
        &nimbus_server::vault::UnlockOptions {
            encryption: true,
            key_file: Some(key_file_of(data)),
        },
    )
    .unwrap();
}

/// With `cache` bytes of local copies of recent objects (0: none, so that
/// every read is a GET from the store).
fn core_scenarios(kind: S3Kind, cache: u64) {
    let s3 = S3Server::start(kind);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = s3.config_with(
        tmp.path(),
        SECRET_KEY,
        serde_json::json!({ "s3-cache-size": cache }),
    );
    let mut server = nimbus_with(
        &s3,
        &cfg,
        "site-a",
        &["--hot-time", "2", "--hotspot-interval", "1"],
    );
    assert!(server
        .log()
        .contains("content in bucket s3://nimbus/site-a/"));

    // Backup: a packable text file, random ones, and large ones the
    // server keeps as chunks.
    let text_data = text(1 << 20);
    let photo = noise(300_000, 8);
    let middle = noise(3 << 20, 10);
    let big = noise(70 << 20, 12);
    for (path, data) in [
        ("notes.txt", &text_data),
        ("photo.jpg", &photo),
        ("middle.bin", &middle),
        ("big.bin", &big),
    ] {
        assert_eq!(
            put_file(server.port, "pc", path, data).status,
            201,
            "{path}"
        );
    }
    let objects = blob_objects(&s3, "site-a");
    assert!(objects.len() >= 4, "{objects:?}");
    // Chunks over 1 MiB (the tests' threshold) went up in parts.
    assert!(objects.iter().any(|(_, size)| *size > 1 << 20));
    if kind == S3Kind::Moto {
        assert!(s3.multipart_objects("site-a/") > 0);
    }
    // Nothing of the content on local disk, but for the copies asked for.
    assert!(server.blob_files().is_empty(), "{:?}", server.blob_files());
    let copies = files_under(&server.data.join("cache/objects"));
    if cache == 0 {
        assert!(copies.is_empty(), "{copies:?}");
    } else {
        assert!(!copies.is_empty());
        assert!(copies.iter().map(|(_, n)| n).sum::<u64>() <= cache);
    }
    for (path, data) in [
        ("notes.txt", &text_data),
        ("photo.jpg", &photo),
        ("middle.bin", &middle),
        ("big.bin", &big),
    ] {
        assert!(download(&server, path) == *data, "{path}");
    }

    // A change: a second version, both kept.
    let v2 = text(1 << 19);
    assert_eq!(put_file(server.port, "pc", "notes2.txt", &v2).status, 201);
    let photo2 = noise(300_000, 20);
    assert_eq!(
        put_file(server.port, "pc", "photo.jpg", &photo2).status,
        201
    );
    assert_eq!(download(&server, "photo.jpg"), photo2);
    let f = server.file("pc", "photo.jpg").unwrap();
    assert_eq!(f["versions"], 2, "{f}");

    // Range on a hot file, and (once packed, in the bucket) on a packed one.
    let r = request(
        server.port,
        "GET",
        "/download/pc/big.bin",
        &[("Range", "bytes=50000000-50000999")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &big[50_000_000..50_001_000]);
    wait_for(60, "the text file to be packed", || {
        server.file("pc", "notes.txt").unwrap()["packed"] == true
    });
    let objects = blob_objects(&s3, "site-a");
    assert!(
        objects.iter().any(|(k, _)| k.ends_with(".bz2"))
            && objects.iter().any(|(k, _)| k.ends_with(".bz2.idx")),
        "{objects:?}"
    );
    let r = request(
        server.port,
        "GET",
        "/download/pc/notes.txt",
        &[("Range", "bytes=700000-700099")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &text_data[700_000..700_100]);

    // A restart: the catalog is local, the content in the bucket.
    server.restart();
    assert_eq!(download(&server, "notes.txt"), text_data);
    assert!(download(&server, "big.bin") == big);
    assert!(download(&server, "middle.bin") == middle);

    // kill -9 of Nimbus in the middle of a client's upload (chunks going
    // to the bucket): after the restart the catalog loads, nothing partial
    // is listed, and the client completes the file.
    let src = tmp.path().join("src");
    let large = noise(40 << 20, 14);
    write(&src, "large.bin", &large);
    let mut client = spawn_client(
        &server.url(),
        &src,
        &tmp.path().join("state.json"),
        &["--settle", "0", "--interval", "0.3"],
    );
    let before = blob_objects(&s3, "site-a").len();
    wait_for(60, "the large upload to be under way", || {
        blob_objects(&s3, "site-a").len() >= before + 3
    });
    server.kill();
    server.restart();
    assert!(server
        .file("pc", "large.bin")
        .is_none_or(|f| f["size"] == 40 << 20));
    wait_for(120, "the client to complete the large file", || {
        server.file("pc", "large.bin").is_some()
    });
    assert!(download(&server, "large.bin") == large);
    let _ = client.kill();
    let _ = client.wait();

    // Stopped: check reads every object back; prune forgets the old
    // photo and deletes its object from the bucket.
    server.terminate();
    let mut flags = store_flags(&s3, tmp.path(), "site-a");
    flags.push("check".into());
    flags.push("--read-data".into());
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let out = server.command(&args, "");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let old_photo = hex(&photo);
    let has_old_photo = |s3: &S3Server| {
        blob_objects(s3, "site-a")
            .iter()
            .any(|(k, _)| k.ends_with(&old_photo))
    };
    assert!(has_old_photo(&s3));
    let mut flags = store_flags(&s3, tmp.path(), "site-a");
    flags.extend(["prune".into(), "--keep-last".into(), "1".into()]);
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let out = server.command(&args, "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !has_old_photo(&s3),
        "prune removed the old version's object"
    );
    server.restart();
    assert_eq!(download(&server, "photo.jpg"), photo2);
}

#[test]
fn core_scenarios_on_moto() {
    // Every read a GET from the store.
    core_scenarios(S3Kind::Moto, 0);
}

#[test]
fn core_scenarios_on_s3s_fs() {
    // With local copies of the objects stored last, smaller than the
    // content, so that reads go to the copies and to the store.
    core_scenarios(S3Kind::S3sFs, 24 << 20);
}

/// Runs `nimbus-server` on a bucket; it must stop at once, non-zero.
fn refused_start(s3: &S3Server, url: &str, secret: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = s3.config_file(tmp.path(), secret);
    let out = Command::new(server_bin())
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(tmp.path().join("data"))
        .args([
            "--store",
            url,
            "--s3-endpoint",
            &s3.endpoint(),
            "--s3-path-style",
        ])
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !stderr.contains(secret),
        "the secret is in the log: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Nothing was set up.
    assert!(!tmp.path().join("data/store.json").exists());
    stderr
}

#[test]
fn wrong_credentials_or_a_missing_bucket_stop_the_start_with_a_clear_error() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let e = refused_start(&s3, "s3://nimbus/x", "not-the-secret");
    assert!(e.contains("secret key is wrong"), "{e}");
    let e = refused_start(&s3, "s3://no-such-bucket/x", SECRET_KEY);
    assert!(e.contains("does not exist"), "{e}");
    // And with no credentials at all.
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(server_bin())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("HOME", tmp.path())
        .args(["--data"])
        .arg(tmp.path().join("data"))
        .args(["--store", "s3://nimbus/x", "--s3-endpoint", &s3.endpoint()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs credentials"));
    // The environment works as well as the config file.
    let mut server = Command::new(server_bin())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(tmp.path().join("data"))
        .args(["--store", "s3://nimbus/x", "--s3-endpoint", &s3.endpoint()])
        .arg("--s3-path-style")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    server.kill().unwrap();
    server.wait().unwrap();
    // The data directory now belongs to that bucket: local disk, or
    // another prefix, is refused.
    for other in [vec![], vec!["--store", "s3://nimbus/y"]] {
        let out = Command::new(server_bin())
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(tmp.path().join("data"))
            .args(&other)
            .args(["--s3-endpoint", &s3.endpoint(), "--s3-path-style"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains("is in s3://nimbus/x/"), "{e}");
    }
}

#[test]
fn the_store_killed_mid_upload_loses_nothing_and_the_client_completes() {
    let mut s3 = S3Server::start(S3Kind::S3sFs);
    let tmp = tempfile::tempdir().unwrap();
    let server = nimbus_on(&s3, tmp.path(), "site", &[]);
    let src = tmp.path().join("src");
    write(&src, "first.txt", b"stored before the store went down");
    let big = noise(48 << 20, 30);
    write(&src, "big.bin", &big);
    let mut client = spawn_client(
        &server.url(),
        &src,
        &tmp.path().join("state.json"),
        &["--settle", "0", "--interval", "0.5"],
    );
    wait_for(60, "the first file and part of the big one", || {
        server.file("pc", "first.txt").is_some() && blob_objects(&s3, "site").len() >= 4
    });
    s3.kill();
    // While the store is down: an upload is refused with 503, nothing of
    // it becomes visible, downloads say the store is unavailable.
    let r = put_file(server.port, "pc", "during.txt", b"while the store is down");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("Retry-After").is_some());
    assert!(server.file("pc", "during.txt").is_none());
    assert!(server.file("pc", "big.bin").is_none());
    std::thread::sleep(Duration::from_secs(2));
    assert!(server.file("pc", "big.bin").is_none());
    s3.restart();
    wait_for(120, "the client to complete the big file", || {
        server.file("pc", "big.bin").is_some()
    });
    assert!(download(&server, "big.bin") == big);
    assert_eq!(
        download(&server, "first.txt"),
        b"stored before the store went down"
    );
    let _ = client.kill();
    let _ = client.wait();
    assert!(server.log().contains("answered 503"), "{}", server.log());
}

#[test]
fn slowdown_answers_are_retried_and_a_long_outage_fails_cleanly() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let proxy = FaultProxy::start(s3.port);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = s3.config_file(tmp.path(), SECRET_KEY);
    let args = s3.args("p", &proxy.endpoint(), &cfg);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);

    // A few 503 SlowDown: retried with backoff, the client sees 201.
    proxy.fail.store(3, std::sync::atomic::Ordering::SeqCst);
    let data = noise(200_000, 40);
    assert_eq!(put_file(server.port, "pc", "a.bin", &data).status, 201);
    assert_eq!(proxy.failed.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(download(&server, "a.bin"), data);

    // An outage longer than the retries: 503 to the client, nothing kept.
    proxy.fail.store(1_000, std::sync::atomic::Ordering::SeqCst);
    let other = noise(100_000, 42);
    let r = put_file(server.port, "pc", "b.bin", &other);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(server.file("pc", "b.bin").is_none());
    assert!(!blob_objects(&s3, "p")
        .iter()
        .any(|(k, _)| k.ends_with(&hex(&other))));
    // Back: the same upload succeeds.
    proxy.fail.store(0, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(put_file(server.port, "pc", "b.bin", &other).status, 201);
    assert_eq!(download(&server, "b.bin"), other);
}

#[test]
fn an_encrypted_data_directory_puts_only_ciphertext_in_the_bucket() {
    const MARK: &[u8] = b"PLAINTEXT-MARKER-7f3a";
    let s3 = S3Server::start(S3Kind::S3sFs);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    set_up_encrypted(&data);
    let cfg = s3.config_file(tmp.path(), SECRET_KEY);
    let mut args = s3.args("enc", &s3.endpoint(), &cfg);
    args.extend([
        "--hot-time".into(),
        "2".into(),
        "--hotspot-interval".into(),
        "1".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start_on(&data, &args);
    let mut content = Vec::new();
    for _ in 0..20_000 {
        content.extend_from_slice(MARK);
        content.extend_from_slice(b" a line of a log that packs well\n");
    }
    assert_eq!(
        put_file(server.port, "pc", "PLAINTEXT-MARKER-7f3a.txt", &content).status,
        201
    );
    let second = [MARK.repeat(100_000), noise(1 << 20, 50)].concat();
    assert_eq!(put_file(server.port, "pc", "c.bin", &second).status, 201);
    wait_for(60, "the log to be packed", || {
        server.file("pc", "PLAINTEXT-MARKER-7f3a.txt").unwrap()["packed"] == true
    });
    let objects = blob_objects(&s3, "enc");
    assert!(objects.len() >= 3, "{objects:?}");
    let plain_hash = hex(&content);
    for (key, _) in &objects {
        assert!(
            !key.contains(&plain_hash),
            "a plain content hash names {key}"
        );
        let bytes = s3.get(key);
        let found = bytes.windows(MARK.len()).any(|w| w == MARK);
        assert!(!found, "{key} holds the marker");
        assert!(
            !bytes.windows(4).any(|w| w == b"BZh9"),
            "{key} holds a visible bzip2 stream"
        );
    }
    // And byte for byte back through the server.
    assert_eq!(download(&server, "PLAINTEXT-MARKER-7f3a.txt"), content);
    assert!(download(&server, "c.bin") == second);
}

/// `nimbus-server --data DIR --store ... recover`.
fn recover_into(
    s3: &S3Server,
    tmp: &std::path::Path,
    prefix: &str,
    data: &std::path::Path,
) -> String {
    let cfg = s3.config_file(tmp, SECRET_KEY);
    let mut cmd = Command::new(server_bin());
    cmd.arg("--data").arg(data);
    // Encrypted: the key file kept apart from the lost machine.
    if key_file_of(data).exists() {
        cmd.arg("--key-file").arg(key_file_of(data));
    }
    let out = cmd
        .args(s3.args(prefix, &s3.endpoint(), &cfg))
        .arg("recover")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn rebuilt_from_the_bucket(kind: S3Kind, encrypted: bool) {
    let s3 = S3Server::start(kind);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    if encrypted {
        set_up_encrypted(&data);
    }
    let cfg = s3.config_file(tmp.path(), SECRET_KEY);
    let mut args = s3.args("home", &s3.endpoint(), &cfg);
    args.extend(["--ship-interval".to_string(), "1".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Server::start_on(&data, &args);

    // Backed up, then a clean stop (which ships the last snapshot).
    let a = text(200_000);
    let b = noise(3 << 20, 60);
    assert_eq!(put_file(server.port, "pc", "docs/a.txt", &a).status, 201);
    assert_eq!(put_file(server.port, "pc", "b.bin", &b).status, 201);
    server.terminate();
    // Then more, and the server dies (kill -9) after a shipment.
    server.restart();
    let c = noise(500_000, 61);
    assert_eq!(put_file(server.port, "pc", "c.bin", &c).status, 201);
    let a2 = text(300_000);
    assert_eq!(put_file(server.port, "pc", "docs/a.txt", &a2).status, 201);
    std::thread::sleep(Duration::from_secs(3));
    server.kill();

    // The machine is gone: a new data directory, only the bucket (and,
    // encrypted, the key file).
    let new = tmp.path().join("rebuilt");
    if encrypted {
        std::fs::copy(key_file_of(&data), key_file_of(&new)).unwrap();
    }
    let out = recover_into(&s3, tmp.path(), "home", &new);
    assert!(out.contains("recovered"), "{out}");
    assert!(out.contains("3 files"), "{out}");
    assert!(out.contains("(0 missing)"), "{out}");
    // A second recover into it is refused: it holds a catalog now.
    let again = Command::new(server_bin())
        .arg("--data")
        .arg(&new)
        .args(unlock_args(&new, &[]))
        .args(s3.args("home", &s3.endpoint(), &cfg))
        .arg("recover")
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a catalog"));

    let server = Server::start_on(&new, &args);
    assert_eq!(download(&server, "b.bin"), b);
    assert_eq!(download(&server, "c.bin"), c);
    assert_eq!(download(&server, "docs/a.txt"), a2);
    let f = server.file("pc", "docs/a.txt").unwrap();
    assert_eq!(f["versions"], 2, "{f}");
    // The first version too.
    let r = server.get("/download/pc/docs/a.txt?version=1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, a);
}

#[test]
fn a_server_rebuilt_from_the_bucket_alone_serves_every_file() {
    rebuilt_from_the_bucket(S3Kind::S3sFs, false);
}

#[test]
fn an_encrypted_server_rebuilt_from_the_bucket_and_its_key_serves_every_file() {
    rebuilt_from_the_bucket(S3Kind::Moto, true);
}

#[test]
fn a_store_that_hangs_times_out_and_holds_no_worker() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let proxy = FaultProxy::start(s3.port);
    let tmp = tempfile::tempdir().unwrap();
    // A one-second timeout and one retry, so the test is short.
    let cfg = tmp.path().join("s3.json");
    let body = serde_json::json!({
        "s3-access-key-id": ACCESS_KEY,
        "s3-secret-access-key": SECRET_KEY,
        "s3-timeout": 1,
        "s3-retries": 1,
    });
    std::fs::write(&cfg, body.to_string()).unwrap();
    let args = s3.args("slow", &proxy.endpoint(), &cfg);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--workers", "2"]);
    let server = Server::start(&args);
    assert_eq!(
        put_file(server.port, "pc", "before.txt", b"fine").status,
        201
    );

    proxy.stall.store(true, std::sync::atomic::Ordering::SeqCst);
    // More uploads than workers, each held by a hanging store.
    let port = server.port;
    let started = std::time::Instant::now();
    let uploads: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                put_file(port, "pc", &format!("hung{i}.bin"), &noise(50_000, 70 + i)).status
            })
        })
        .collect();
    // Meanwhile everything that does not need the store is served.
    std::thread::sleep(Duration::from_millis(300));
    let t = std::time::Instant::now();
    assert!(server.file("pc", "before.txt").is_some());
    assert!(t.elapsed() < Duration::from_secs(2), "the listing waited");
    for u in uploads {
        let status = u.join().unwrap();
        assert!(status == 503, "{status}");
    }
    // Each request gave up after its timeouts, not the store's whim.
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    for i in 0..4 {
        assert!(server.file("pc", &format!("hung{i}.bin")).is_none());
    }
    proxy
        .stall
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        put_file(server.port, "pc", "after.txt", b"fine again").status,
        201
    );
    assert_eq!(download(&server, "after.txt"), b"fine again");
}

/// Every file under `dir` (recursively) and its size.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(m) = e.metadata() {
            out.push((path, m.len()));
        }
    }
    out
}

#[test]
fn local_copies_of_recent_objects_are_trusted_after_a_clean_stop_only() {
    let mut s3 = S3Server::start(S3Kind::S3sFs);
    let tmp = tempfile::tempdir().unwrap();
    let mut server = nimbus_on(&s3, tmp.path(), "copies", &[]);
    let big = noise(12 << 20, 40);
    // Sent by the client (its chunks, then a manifest whose commit reads
    // them back) and by a plain PUT (cut by the server).
    let src = tmp.path().join("src");
    write(&src, "client.bin", &big);
    assert_ok(&client_once(
        &server.url(),
        &src,
        "pc",
        &tmp.path().join("state.json"),
        &[],
    ));
    let small = noise(700_000, 42);
    assert_eq!(put_file(server.port, "pc", "small.bin", &small).status, 201);
    let copies = server.data.join("cache/objects");
    let held: u64 = files_under(&copies).iter().map(|(_, n)| n).sum();
    assert!(held >= 12 << 20, "{held} bytes of copies");

    // A clean stop marks the copies sound; after a start they answer
    // reads even while the store is down.
    assert!(server.terminate().success());
    assert!(server.data.join("cache/clean").exists());
    server.restart();
    assert!(!server.data.join("cache/clean").exists());
    s3.kill();
    assert!(download(&server, "client.bin") == big);
    assert_eq!(download(&server, "small.bin"), small);
    s3.restart();

    // `check --read-data` reads the bucket, not the copies: an object
    // damaged in the store is found though its copy is sound.
    assert!(server.terminate().success());
    let (victim, _) = files_under(&s3.root.join(BUCKET).join("copies/blobs"))
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .unwrap();
    let original = std::fs::read(&victim).unwrap();
    let mut damaged = original.clone();
    damaged[1000] ^= 0x55;
    std::fs::write(&victim, &damaged).unwrap();
    let mut flags = store_flags(&s3, tmp.path(), "copies");
    flags.extend(["check".into(), "--read-data".into()]);
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let out = server.command(&args, "");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("pc: client.bin version 1"), "{said}");
    std::fs::write(&victim, &original).unwrap();
    let out = server.command(&args, "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // After kill -9 the copies are not trusted (they were never synced):
    // damaged behind the server's back, they are dropped at the start and
    // every byte comes from the store.
    server.restart();
    assert!(download(&server, "small.bin") == small);
    server.kill();
    let left = files_under(&copies);
    assert!(!left.is_empty());
    for (path, len) in &left {
        std::fs::write(path, vec![0xAA; *len as usize]).unwrap();
    }
    server.restart();
    assert!(files_under(&copies).is_empty());
    assert!(download(&server, "client.bin") == big);
    assert_eq!(download(&server, "small.bin"), small);
}

#[test]
fn a_kill_9_in_the_middle_of_a_shipment_leaves_a_bucket_a_new_server_rebuilds_from() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let proxy = FaultProxy::start(s3.port);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = s3.config_file(tmp.path(), SECRET_KEY);
    let mut args = s3.args("site", &proxy.endpoint(), &cfg);
    args.extend(["--ship-interval".to_string(), "1".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let data = tmp.path().join("data");
    let mut server = Server::start_on(&data, &args);
    let segments = |s3: &S3Server| {
        s3.objects("site/meta/")
            .iter()
            .filter(|(k, _)| k.contains("/journal-"))
            .count()
    };

    // Shipped: a first lot.
    let first: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            (
                format!("first/{i}.bin"),
                noise(200_000 + i * 1000, 70 + i as u64),
            )
        })
        .collect();
    for (path, bytes) in &first {
        assert_eq!(put_file(server.port, "pc", path, bytes).status, 201);
    }
    wait_for(30, "a journal segment in the bucket", || segments(&s3) > 0);
    let shipped = segments(&s3);

    // A second lot, whose shipment is held at the store; Nimbus is killed
    // with the segment's PUT in flight.
    *proxy.stall_matching.lock().unwrap() = Some("/meta/journal-".into());
    let second: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            (
                format!("second/{i}.bin"),
                noise(300_000 + i * 1000, 90 + i as u64),
            )
        })
        .collect();
    for (path, bytes) in &second {
        assert_eq!(put_file(server.port, "pc", path, bytes).status, 201);
    }
    wait_for(30, "a shipment to be under way", || {
        proxy.held.load(std::sync::atomic::Ordering::SeqCst) > 0
    });
    server.kill();
    *proxy.stall_matching.lock().unwrap() = None;
    assert_eq!(segments(&s3), shipped, "the held segment never landed");

    // The machine is lost: rebuilt from the bucket, it has the first lot
    // whole, and of the second only files that are whole.
    let new = tmp.path().join("rebuilt");
    let out = recover_into(&s3, tmp.path(), "site", &new);
    assert!(out.contains("(0 missing)"), "{out}");
    let direct = s3.args("site", &s3.endpoint(), &cfg);
    let direct: Vec<&str> = direct.iter().map(String::as_str).collect();
    let mut rebuilt = Server::start_on(&new, &direct);
    for (path, bytes) in &first {
        assert!(download(&rebuilt, path) == *bytes, "{path}");
    }
    for (path, bytes) in &second {
        if rebuilt.file("pc", path).is_some() {
            assert!(download(&rebuilt, path) == *bytes, "{path}");
        }
    }
    assert!(rebuilt.terminate().success());

    // The bucket is the rebuilt directory's now: the old one, were its
    // machine to come back, must not start on it (its start would remove
    // the objects its catalog does not name, the rebuilt one's).
    let refused = |dir: &std::path::Path| {
        let out = Command::new(server_bin())
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(dir)
            .args(&direct)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let e = refused(&data);
    assert!(e.contains("is now kept by another data directory"), "{e}");
    // Nor may a new directory start on a prefix in use.
    let e = refused(&tmp.path().join("stranger"));
    assert!(
        e.contains("is in use by another Nimbus data directory"),
        "{e}"
    );
    // The rebuilt one goes on, with all of the first lot.
    let mut rebuilt = Server::start_on(&new, &direct);
    for (path, bytes) in &first {
        assert!(download(&rebuilt, path) == *bytes, "{path}");
    }
    assert!(rebuilt.terminate().success());

    // A recover cut short (its takeover mark left, part of the catalog
    // written) does not start; run again, it finishes and takes over.
    let cut = tmp.path().join("cut");
    std::fs::create_dir_all(cut.join("catalog")).unwrap();
    std::fs::write(cut.join("takeover"), "0123456789abcdef").unwrap();
    std::fs::write(cut.join("catalog/snapshot.json"), "{\"partial\":").unwrap();
    let e = refused(&cut);
    assert!(e.contains("did not finish"), "{e}");
    let out = recover_into(&s3, tmp.path(), "site", &cut);
    assert!(out.contains("(0 missing)"), "{out}");
    assert!(!cut.join("takeover").exists());
    let server = Server::start_on(&cut, &direct);
    for (path, bytes) in &first {
        assert!(download(&server, path) == *bytes, "{path}");
    }
    let e = refused(&new);
    assert!(e.contains("is now kept by another data directory"), "{e}");
}
