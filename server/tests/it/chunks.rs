//! Chunked storage: a large file is cut into content-defined chunks, and a
//! backup sends only the chunks the server lacks. Measured by the server's
//! own counter of chunk bytes received; every version reads back byte for
//! byte, Range across chunk and frame boundaries included, hot and packed.
//! The chunk routes refuse bad input with nothing kept, and never tell a
//! user what another user holds.

use crate::fixtures::*;

const MIB: usize = 1 << 20;

/// A change made to a file's bytes.
type Edit = Box<dyn Fn(&mut Vec<u8>)>;

/// Ranges that start and end at many offsets, some spanning several chunks
/// (the chunks are 256 KiB to 4 MiB) and several 1 MiB frames when packed.
fn check_ranges(server: &Server, target: &str, data: &[u8]) {
    let len = data.len();
    for (start, n) in [
        (0, 10),
        (1, 5 * MIB),
        (MIB - 3, 7),
        (len / 3, 9 * MIB + 17),
        (len / 2 + 12_345, 300_000),
        (len - MIB, MIB),
        (len - 1, 1),
    ] {
        let end = (start + n).min(len) - 1;
        let r = request(
            server.port,
            "GET",
            target,
            &[("Range", &format!("bytes={start}-{end}"))],
            b"",
        );
        assert_eq!(r.status, 206, "{target} {start}-{end}: {}", r.text());
        assert!(
            r.body == data[start..=end],
            "{target} {start}-{end}: wrong bytes"
        );
    }
}

fn download(server: &Server, target: &str) -> Vec<u8> {
    let r = server.get(target);
    assert_eq!(r.status, 200, "{target}");
    r.body
}

#[test]
fn edits_inserts_appends_and_truncations_send_only_the_chunks_they_touch() {
    let server = Server::start(&["--hot-time", "3", "--hotspot-interval", "1"]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let state = tmp.path().join("state.json");
    let mut data = noise(40 * MIB, 11);
    // Half of it compressible, so packing has something to do.
    data[20 * MIB..].copy_from_slice(&text(20 * MIB));
    let mut versions: Vec<Vec<u8>> = Vec::new();
    // (what changed, most chunk bytes the pass may send)
    let edits: Vec<(&str, Edit, usize)> = vec![
        ("first backup", Box::new(|_| {}), 41 * MIB),
        (
            "1 MiB rewritten in the middle",
            Box::new(|d| d[15 * MIB..16 * MIB].copy_from_slice(&noise(MIB, 99))),
            10 * MIB,
        ),
        (
            "100 bytes inserted at the start",
            Box::new(|d| {
                d.splice(0..0, noise(100, 5));
            }),
            9 * MIB,
        ),
        (
            "2 MiB appended",
            Box::new(|d| d.extend_from_slice(&noise(2 * MIB, 7))),
            7 * MIB,
        ),
        ("cut to 30 MiB", Box::new(|d| d.truncate(30 * MIB)), 5 * MIB),
    ];
    for (what, edit, most) in &edits {
        edit(&mut data);
        write(&src, "mail.pst", &data);
        let before = server.chunk_bytes();
        let out = client_once(&server.url(), &src, "pc", &state, &[]);
        assert_ok(&out);
        let sent = (server.chunk_bytes() - before) as usize;
        assert!(
            sent <= *most,
            "{what}: {sent} chunk bytes sent, expected at most {most}"
        );
        versions.push(data.clone());
        let f = server.file("pc", "mail.pst").unwrap();
        assert_eq!(f["hash"], hex(&data), "{what}");
        assert_eq!(f["versions"], versions.len(), "{what}");
    }
    assert!(server.log().contains("chunks), version 5"));
    for (i, v) in versions.iter().enumerate() {
        let target = format!("/download/pc/mail.pst?version={}", i + 1);
        assert!(download(&server, &target) == *v, "version {}", i + 1);
        check_ranges(&server, &target, v);
    }

    // Cold: the hotspot packs the chunks in frames; everything reads back
    // the same, and the store checks clean.
    wait_for(120, "the file to be packed", || {
        server.file("pc", "mail.pst").unwrap()["packed"] == true
    });
    let packed = server
        .blob_files()
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "bz2"))
        .count();
    assert!(packed >= 2, "{packed} packed chunks");
    // (A download of a packed file asks for it to be unpacked: the
    // first ranges read frames, later ones may read it hot again.)
    for (i, v) in versions.iter().enumerate() {
        let target = format!("/download/pc/mail.pst?version={}", i + 1);
        check_ranges(&server, &target, v);
    }
    let archive = server.get("/archive?machine=pc");
    assert_eq!(archive.status, 200);
    let mut server = server;
    server.kill();
    assert_ok(&server.command(&["check", "--read-data"], ""));
}

#[test]
fn two_machines_share_chunks_and_check_names_a_damaged_chunk_or_manifest_by_file() {
    let mut server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let base = noise(12 * MIB, 3);
    let mut other = base.clone();
    other[6 * MIB..6 * MIB + 10].copy_from_slice(b"0123456789");
    for (machine, content) in [("laptop", &base), ("desktop", &other)] {
        let src = tmp.path().join(machine);
        write(&src, "vm.img", content);
        let before = server.chunk_bytes();
        let out = client_once(
            &server.url(),
            &src,
            machine,
            &tmp.path().join(format!("{machine}.json")),
            &[],
        );
        assert_ok(&out);
        let sent = (server.chunk_bytes() - before) as usize;
        if machine == "desktop" {
            assert!(sent <= 8 * MIB, "the second machine sent {sent} bytes");
        }
        assert!(download(&server, &format!("/download/{machine}/vm.img")) == *content);
    }
    server.kill();
    let out = server.command(&["check", "--read-data"], "");
    assert_ok(&out);

    // A flipped byte in a chunk and in a manifest: named by file.
    let blobs = server.blob_files();
    let manifest = blobs
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "manifest"))
        .unwrap()
        .clone();
    let saved = std::fs::read(&manifest).unwrap();
    let mut bad = saved.clone();
    bad[60] ^= 1;
    std::fs::write(&manifest, &bad).unwrap();
    let out = server.command(&["check"], "");
    assert!(!out.status.success());
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("manifest"), "{report}");
    assert!(report.contains("vm.img"), "{report}");
    std::fs::write(&manifest, &saved).unwrap();
    let chunk = blobs
        .iter()
        .find(|p| p.extension().is_none() && std::fs::metadata(p).unwrap().len() > 1000)
        .unwrap();
    let saved = std::fs::read(chunk).unwrap();
    let mut bad = saved.clone();
    bad[500] ^= 1;
    std::fs::write(chunk, &bad).unwrap();
    let out = server.command(&["check", "--read-data"], "");
    assert!(!out.status.success());
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        report.contains("corrupt") && report.contains("vm.img"),
        "{report}"
    );
    std::fs::write(chunk, &saved).unwrap();
    assert_ok(&server.command(&["check", "--read-data"], ""));
    server.restart();
    assert!(download(&server, "/download/desktop/vm.img") == other);
}

fn chunk_body(chunks: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for c in chunks {
        body.extend(
            serde_json::json!({"hash": hex(c), "size": c.len()})
                .to_string()
                .bytes(),
        );
        body.push(b'\n');
        body.extend_from_slice(c);
    }
    body
}

fn post(server: &Server, auth: &str, target: &str, body: &[u8]) -> Resp {
    request(
        server.port,
        "POST",
        target,
        &[("Authorization", auth)],
        body,
    )
}

#[test]
fn the_chunk_routes_verify_everything_and_tell_nothing_of_other_users() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    add_user(&server, "bob", "bob's password");
    let alice = bearer(server.port, "pc");
    let out = client_login(
        &server.url(),
        "bob",
        "bob's password",
        "box",
        &tmp.path().join("bob.json"),
        None,
    );
    assert_ok(&out);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("bob.json")).unwrap()).unwrap();
    let bob = format!(
        "Bearer {}",
        v["servers"][server.url()]["token"].as_str().unwrap()
    );
    let (a, b) = (noise(300_000, 1), noise(200_000, 2));
    let ask = |auth: &str, machine: &str, hashes: &[&[u8]]| -> Vec<String> {
        let q = serde_json::json!({"hashes": hashes.iter().map(|c| hex(c)).collect::<Vec<_>>()});
        let r = post(
            &server,
            auth,
            &format!("/api/v1/chunks/{machine}/missing"),
            q.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["missing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ask(&alice, "pc", &[&a, &b]), [hex(&a), hex(&b)]);

    // A corrupted or truncated chunk: 400, and nothing kept.
    let mut corrupt = chunk_body(&[&a]);
    let n = corrupt.len();
    corrupt[n - 10] ^= 1;
    let truncated = chunk_body(&[&a])[..n - 100].to_vec();
    for body in [corrupt, truncated, b"not json\n".to_vec()] {
        let r = post(&server, &alice, "/api/v1/chunks/pc", &body);
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(server.tmp_files().is_empty());
        assert!(server.blob_files().is_empty());
    }
    assert_eq!(ask(&alice, "pc", &[&a]), [hex(&a)]);

    // Alice sends both; she holds them, Bob still does not.
    let r = post(&server, &alice, "/api/v1/chunks/pc", &chunk_body(&[&a, &b]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(ask(&alice, "pc", &[&a, &b]).is_empty());
    assert_eq!(ask(&bob, "box", &[&a, &b]), [hex(&a), hex(&b)]);

    // A manifest naming a chunk not sent, or one only Alice holds: 409
    // with the list; nothing recorded.
    let whole = [a.clone(), b.clone()].concat();
    let commit = |chunks: &[&[u8]]| {
        serde_json::json!({
            "hash": hex(&whole),
            "size": whole.len(),
            "mtime": 1_700_000_000,
            "chunks": chunks.iter().map(|c| serde_json::json!([hex(c), c.len()])).collect::<Vec<_>>(),
        })
        .to_string()
    };
    let r = post(
        &server,
        &bob,
        "/api/v1/manifests/box/f.bin",
        commit(&[&a, &b]).as_bytes(),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"], "chunks_missing");
    assert_eq!(r.json()["missing"].as_array().unwrap().len(), 2);
    let c = noise(b.len(), 9);
    let r = post(
        &server,
        &alice,
        "/api/v1/manifests/pc/f.bin",
        commit(&[&a, &c]).as_bytes(),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["missing"], serde_json::json!([hex(&c)]));
    // Lengths that do not add up, or chunks that make another content.
    let r = post(
        &server,
        &alice,
        "/api/v1/manifests/pc/f.bin",
        commit(&[&a]).as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let wrong = serde_json::json!({
        "hash": hex(&whole), "size": whole.len(), "mtime": 1_700_000_000,
        "chunks": [[hex(&b), b.len()], [hex(&a), a.len()]],
    });
    let r = post(
        &server,
        &alice,
        "/api/v1/manifests/pc/f.bin",
        wrong.to_string().as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(server.file("pc", "f.bin").is_none());

    // The right one makes a version that downloads whole.
    let r = post(
        &server,
        &alice,
        "/api/v1/manifests/pc/f.bin",
        commit(&[&a, &b]).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["new_version"], true);
    assert!(download(&server, "/download/pc/f.bin") == whole);

    // Bob sending the same chunks learns nothing (the same answer as for
    // new ones) and then commits his own version of the same content.
    let r = post(&server, &bob, "/api/v1/chunks/box", &chunk_body(&[&a, &b]));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(
        &server,
        &bob,
        "/api/v1/manifests/box/g.bin",
        commit(&[&a, &b]).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = request(
        server.port,
        "GET",
        "/download/box/g.bin",
        &[("Authorization", &bob)],
        b"",
    );
    assert!(r.body == whole);
    assert_eq!(
        server.get("/api/v1/admin/health").json()["chunks_received"],
        4
    );
}

/// kill -9 of the server again and again while large files go up as
/// chunks (uploads of chunks, manifest commits): after every kill the store
/// checks clean with `check --read-data`, and the client, still running,
/// completes every file.
#[test]
fn kill_9_during_chunk_uploads_and_commits_leaves_a_store_that_checks_clean() {
    let mut server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let files: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| {
            (
                format!("disk-{i}.img"),
                noise(5 * MIB + i * 4099, 100 + i as u64),
            )
        })
        .collect();
    for (name, data) in &files {
        write(&src, name, data);
    }
    let mut client = spawn_client(
        &server.url(),
        &src,
        &tmp.path().join("state.json"),
        &["--settle", "0", "--interval", "0.3"],
    );
    for delay in [150, 300, 450, 700, 1000, 1500] {
        std::thread::sleep(std::time::Duration::from_millis(delay));
        server.kill();
        let out = server.command(&["check", "--read-data"], "");
        assert_ok(&out);
        server.restart();
    }
    wait_for(180, "every file backed up", || {
        server.files().len() == files.len()
    });
    for (name, data) in &files {
        assert_eq!(
            server.file("pc", name).unwrap()["hash"],
            hex(data),
            "{name}"
        );
        assert!(
            download(&server, &format!("/download/pc/{name}")) == *data,
            "{name}"
        );
    }
    let _ = client.kill();
    let _ = client.wait();
    server.kill();
    assert_ok(&server.command(&["check", "--read-data"], ""));
}

/// Prune forgets the first version of a chunked file and deletes the
/// chunks only it named (mark and sweep over the manifests), killed at
/// doubling delays: after every kill the store checks clean; in the end the
/// kept version reads back whole and the store has shrunk by the chunks
/// that went.
#[test]
fn prune_sweeps_chunks_no_manifest_names_and_survives_kill_9() {
    let mut server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let state = tmp.path().join("state.json");
    let mut data = noise(24 * MIB, 21);
    write(&src, "vm.img", &data);
    assert_ok(&client_once(&server.url(), &src, "pc", &state, &[]));
    data[4 * MIB..16 * MIB].copy_from_slice(&noise(12 * MIB, 22));
    write(&src, "vm.img", &data);
    assert_ok(&client_once(&server.url(), &src, "pc", &state, &[]));
    assert_eq!(server.file("pc", "vm.img").unwrap()["versions"], 2);
    server.kill();
    let stored = |server: &Server| -> u64 {
        server
            .blob_files()
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum()
    };
    let before = stored(&server);
    let mut delay = std::time::Duration::from_millis(2);
    let mut kills = 0;
    loop {
        let mut child = std::process::Command::new(server_bin())
            .arg("--data")
            .arg(&server.data)
            .args(unlock_args(&server.data, &[]))
            .args(["prune", "--keep-last", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        assert_ok(&server.command(&["check", "--read-data"], ""));
        if finished {
            break;
        }
        delay *= 2;
        assert!(delay.as_secs() < 60, "prune never finished");
    }
    assert!(kills >= 1, "no kill landed mid-prune");
    let freed = before - stored(&server);
    assert!(
        (10 * MIB as u64..=16 * MIB as u64).contains(&freed),
        "prune freed {freed} bytes"
    );
    server.restart();
    assert_eq!(server.file("pc", "vm.img").unwrap()["versions"], 1);
    assert!(download(&server, "/download/pc/vm.img") == data);
}

/// A whole upload (`PUT`, as curl or a script sends it) of a large file is
/// kept as chunks cut as the client cuts them: it reads back whole and by
/// Range, and a later backup of an edited copy by the client sends only the
/// chunks that changed.
#[test]
fn a_whole_put_is_kept_as_chunks_that_later_client_backups_share() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let mut data = noise(20 * MIB, 31);
    let r = put_file(server.port, "pc", "disk.img", &data);
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(server
        .blob_files()
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "manifest")));
    assert!(download(&server, "/download/pc/disk.img") == data);
    check_ranges(&server, "/download/pc/disk.img", &data);
    data[10 * MIB..10 * MIB + 100].copy_from_slice(&noise(100, 32));
    let src = tmp.path().join("src");
    write(&src, "disk.img", &data);
    let before = server.chunk_bytes();
    assert_ok(&client_once(
        &server.url(),
        &src,
        "pc",
        &tmp.path().join("state.json"),
        &[],
    ));
    let sent = (server.chunk_bytes() - before) as usize;
    assert!(sent <= 9 * MIB, "the client sent {sent} bytes");
    assert_eq!(server.file("pc", "disk.img").unwrap()["versions"], 2);
    assert!(download(&server, "/download/pc/disk.img") == data);
}
