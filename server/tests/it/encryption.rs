//! Encryption at rest: what someone holding the data directory (a stolen
//! disk, a copy) can learn, which keys open it, and that damage or swaps in
//! the sealed files are found and never served as content.

use crate::fixtures::*;
use nimbus_common::hash::ContentHash;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

const MACHINE: &str = "zqxmachine7731";

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What `bytes` hold once every bzip2 stream in them is decompressed.
fn decompressed(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for at in 0..bytes.len().saturating_sub(3) {
        if &bytes[at..at + 3] == b"BZh" {
            let mut d = bzip2::read::MultiBzDecoder::new(&bytes[at..]);
            let mut plain = Vec::new();
            let _ = (&mut d).take(64 << 20).read_to_end(&mut plain);
            if !plain.is_empty() {
                out.push(plain);
            }
        }
    }
    out
}

/// The path of a blob's file in an encrypted data directory (named by the
/// keyed hash, which only the key gives).
fn sealed_blob(data: &Path, content: &[u8], suffix: &str) -> PathBuf {
    let name = vault_of(data).blob_name(&ContentHash::of_bytes(content));
    data.join("blobs")
        .join(&name[..2])
        .join(format!("{name}{suffix}"))
}

fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = (at as usize).min(bytes.len() - 1);
    bytes[i] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

fn put(server: &Server, path: &str, data: &[u8]) {
    let r = put_file(server.port, MACHINE, path, data);
    assert_eq!(r.status, 201, "{}", r.text());
}

fn download(server: &Server, path: &str) -> Resp {
    server.get(&format!("/download/{MACHINE}/{path}"))
}

/// A download read raw to the connection's end: (status, the bytes that
/// follow the head). A failing download may end short, which a
/// well-formed-response reader would not accept.
fn download_raw(server: &Server, path: &str) -> (u16, Vec<u8>) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "GET /download/{MACHINE}/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: {}\r\n\r\n",
        bearer(server.port, "pc")
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(all.len(), |p| p + 4);
    let status = String::from_utf8_lossy(&all[..end.min(12)])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, all[end..].to_vec())
}

fn server_cmd(data: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut cmd = Command::new(server_bin());
    cmd.arg("--data").arg(data).args(args);
    output_with_stdin(cmd, stdin)
}

/// A command that failed, saying `why`.
fn assert_refused(out: &std::process::Output, why: &str) {
    assert!(!out.status.success(), "{}", all_text(out));
    assert!(all_text(out).contains(why), "{}", all_text(out));
}

fn all_text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn markers_in_contents_names_and_machines_appear_nowhere_in_the_data_directory() {
    let mut server = Server::start_encrypted(&["--hot-time", "2", "--hotspot-interval", "1"]);
    let text_marker = b"zqxcontent9913 ";
    let packed: Vec<u8> = text_marker.repeat(60_000);
    let mut chunked = noise(3 << 20, 7);
    chunked[1 << 20..(1 << 20) + 15].copy_from_slice(text_marker);
    put(&server, "zqxname5501/zqxfile.txt", &packed);
    put(&server, "zqxname5501/zqxbig.bin", &chunked);
    // A status report naming things, and a browser upload left half done.
    let auth = bearer(server.port, MACHINE);
    let report =
        br#"{"version": "0.1.0", "os": "zqxos4417", "errors": 1, "last_error": "zqxerror8820"}"#;
    let r = request(
        server.port,
        "POST",
        "/api/v1/status",
        &[("Authorization", &auth)],
        report,
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let start =
        format!(r#"{{"machine": "{MACHINE}", "path": "zqxpending6604.txt", "size": 200000}}"#);
    let r = request(
        server.port,
        "POST",
        "/api/v1/uploads",
        &[("Authorization", &auth)],
        start.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let piece = text_marker.repeat(7000);
    let r = request(
        server.port,
        "PUT",
        &format!("/api/v1/uploads/{id}"),
        &[
            ("Authorization", &auth),
            (
                "Content-Range",
                &format!("bytes 0-{}/200000", piece.len() - 1),
            ),
        ],
        &piece,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    wait_for(60, "the text file to be packed", || {
        server.file(MACHINE, "zqxname5501/zqxfile.txt").unwrap()["packed"] == true
    });
    // A clean stop writes the snapshot; then a version only in the journal.
    assert!(server.terminate().success());
    server.restart();
    put(&server, "zqxname5501/zqxlate.txt", b"zqxlatecontent3390");
    server.kill();

    let markers: Vec<Vec<u8>> = [
        "zqxcontent9913",
        "zqxname5501",
        "zqxfile",
        "zqxbig",
        "zqxlate",
        MACHINE,
        "zqxos4417",
        "zqxerror8820",
        "zqxpending6604",
    ]
    .iter()
    .map(|m| m.as_bytes().to_vec())
    .chain(
        [&packed[..], &chunked[..]]
            .iter()
            .map(|c| ContentHash::of_bytes(c).to_hex().into_bytes()),
    )
    .collect();
    let files = files_under(&server.data);
    assert!(files.len() > 8, "{files:?}");
    let mut compressed_seen = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let name = f.to_string_lossy().into_owned();
        let views = decompressed(&bytes);
        compressed_seen += views.len();
        for m in &markers {
            let shown = String::from_utf8_lossy(m);
            assert!(!contains(name.as_bytes(), m), "{shown} in the name {name}");
            assert!(!contains(&bytes, m), "{shown} in {name}");
            for v in &views {
                assert!(!contains(v, m), "{shown} in bzip2 data of {name}");
            }
        }
    }
    // The packed file's bzip2 is sealed too: no stream is visible.
    assert_eq!(compressed_seen, 0);

    // And with the key everything is there.
    server.restart();
    let r = download(&server, "zqxname5501/zqxfile.txt");
    assert_eq!((r.status, r.body == packed), (200, true));
    let r = download(&server, "zqxname5501/zqxbig.bin");
    assert_eq!((r.status, r.body == chunked), (200, true));
    let r = download(&server, "zqxname5501/zqxlate.txt");
    assert_eq!(r.body, b"zqxlatecontent3390");
}

fn fingerprint(data: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = files_under(data)
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".lock"))
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn wrong_keys_refuse_to_start_and_slots_change_who_unlocks_never_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key = key_file_of(&data);
    let key_arg = key.to_str().unwrap();
    let mut server =
        Server::start_on_fresh_with(&data, &["--encryption", "on", "--key-file", key_arg]);
    wait_for(10, "the first admin", || {
        server
            .stdout
            .lock()
            .unwrap()
            .contains("created the first account")
    });
    let shown = server.stdout.lock().unwrap().clone();
    assert!(shown.contains("made the key file"), "{shown}");
    let recovery = shown
        .split("recovery key: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    prepare(server.port, &data);
    let content = noise(300_000, 3);
    put(&server, "doc.bin", &content);
    assert!(server.terminate().success());
    let before = fingerprint(&data);

    // A wrong key file, a wrong passphrase, no secret at all: refused,
    // clearly, and nothing changes.
    let wrong = tmp.path().join("wrong.key");
    std::fs::write(&wrong, "0123456789abcdef0123456789abcdef\n").unwrap();
    let listen = ["--listen", "127.0.0.1:0"];
    let out = server_cmd(
        &data,
        &[&listen[..], &["--key-file", wrong.to_str().unwrap()]].concat(),
        "",
    );
    assert_refused(&out, "does not unlock");
    let out = server_cmd(&data, &listen, "not the passphrase\n");
    assert_refused(&out, "passphrase does not unlock");
    let out = server_cmd(&data, &listen, "");
    assert_refused(&out, "is encrypted");
    assert_eq!(
        fingerprint(&data),
        before,
        "a refused start changed the data"
    );

    // A passphrase slot added with the key file unlocks by itself.
    let out = server_cmd(
        &data,
        &["--key-file", key_arg, "key", "add", "--passphrase"],
        "first pass phrase\n",
    );
    assert!(out.status.success(), "{}", all_text(&out));
    let pass_slot: u32 = all_text(&out)
        .split("added key slot ")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let check = |stdin: &str, extra: &[&str]| {
        let out = server_cmd(&data, &[extra, &["check", "--read-data"]].concat(), stdin);
        (out.status.success(), all_text(&out))
    };
    assert!(check("first pass phrase\n", &[]).0);
    // Changed: the old one no longer unlocks, the new one does, and every
    // file still reads back.
    let out = server_cmd(
        &data,
        &[
            "--key-file",
            key_arg,
            "key",
            "passwd",
            &pass_slot.to_string(),
        ],
        "second pass phrase\n",
    );
    assert!(out.status.success(), "{}", all_text(&out));
    let (ok, text) = check("first pass phrase\n", &[]);
    assert!(!ok && text.contains("does not unlock"), "{text}");
    let (ok, text) = check("second pass phrase\n", &[]);
    assert!(ok, "{text}");
    // The key file's slot removed: the key file no longer unlocks; the
    // recovery key still does.
    let list = server_cmd(&data, &["key", "list"], "");
    let listed = all_text(&list);
    let key_slot = listed
        .lines()
        .find(|l| l.contains("key file"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_string();
    let out = server_cmd(&data, &["key", "remove", &key_slot], "second pass phrase\n");
    assert!(out.status.success(), "{}", all_text(&out));
    let (ok, text) = check("", &["--key-file", key_arg]);
    assert!(!ok && text.contains("does not unlock"), "{text}");
    let (ok, text) = check(&format!("{recovery}\n"), &[]);
    assert!(ok, "{text}");
    // The last slot cannot go.
    let rec_slot = listed
        .lines()
        .find(|l| l.contains("recovery"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_string();
    let out = server_cmd(&data, &["key", "remove", &rec_slot], "second pass phrase\n");
    assert!(out.status.success(), "{}", all_text(&out));
    let out = server_cmd(
        &data,
        &["key", "remove", &pass_slot.to_string()],
        "second pass phrase\n",
    );
    assert!(!out.status.success());
    assert!(all_text(&out).contains("last one"), "{}", all_text(&out));
}

#[test]
fn damaged_or_swapped_sealed_files_are_found_and_never_served() {
    let mut server = Server::start_encrypted(&["--hot-time", "2", "--hotspot-interval", "1"]);
    // (Seeds differing in the lowest bit give the same bytes.)
    let hot = noise(200_000, 11);
    let (swap_a, swap_b) = (noise(100_000, 21), noise(100_000, 31));
    let text_data = text((2 << 20) - 1);
    let big_manifest = noise(3 << 20, 41);
    let big_chunk = noise(3 << 20, 51);
    let fine = noise(50_000, 61);
    for (p, d) in [
        ("hot.bin", &hot),
        ("a.bin", &swap_a),
        ("b.bin", &swap_b),
        ("log.txt", &text_data),
        ("vm1.img", &big_manifest),
        ("vm2.img", &big_chunk),
        ("fine.bin", &fine),
    ] {
        put(&server, p, d);
    }
    wait_for(60, "the text file to be packed", || {
        server.file(MACHINE, "log.txt").unwrap()["packed"] == true
    });
    assert!(server.terminate().success());
    let data = server.data.clone();

    flip(&sealed_blob(&data, &hot, ""), 70_000);
    flip(&sealed_blob(&data, &text_data, ".bz2"), 5_000);
    flip(&sealed_blob(&data, &big_manifest, ".manifest"), 60);
    let first_chunk = nimbus_common::chunking::chunks(&big_chunk[..])
        .next()
        .unwrap()
        .unwrap();
    flip(&sealed_blob(&data, &first_chunk, ""), 1_000);
    let (pa, pb) = (
        sealed_blob(&data, &swap_a, ""),
        sealed_blob(&data, &swap_b, ""),
    );
    let tmp = pa.with_extension("swap");
    std::fs::rename(&pa, &tmp).unwrap();
    std::fs::rename(&pb, &pa).unwrap();
    std::fs::rename(&tmp, &pb).unwrap();

    // check --read-data names every damaged file.
    let out = server.command(&["check", "--read-data"], "");
    let report = all_text(&out);
    assert!(!out.status.success(), "{report}");
    for p in ["hot.bin", "a.bin", "b.bin", "log.txt", "vm1.img", "vm2.img"] {
        assert!(
            report.contains(&format!("{MACHINE}: {p} ")),
            "{p} not named: {report}"
        );
    }
    assert!(!report.contains("fine.bin"), "{report}");

    // Downloads never hand out wrong bytes: they fail, or end short.
    server.restart();
    for (p, d) in [
        ("hot.bin", &hot),
        ("a.bin", &swap_a),
        ("b.bin", &swap_b),
        ("log.txt", &text_data),
        ("vm1.img", &big_manifest),
        ("vm2.img", &big_chunk),
    ] {
        let (status, body) = download_raw(&server, p);
        assert!(
            status != 200 || body.len() < d.len(),
            "{p}: {status} with {} bytes",
            body.len()
        );
        assert!(!contains(&body, &swap_a[..1000]) && !contains(&body, &swap_b[..1000]));
    }
    let r = download(&server, "fine.bin");
    assert_eq!((r.status, r.body == fine), (200, true));
}

#[test]
fn a_damaged_snapshot_or_journal_line_stops_the_start_and_is_named() {
    let mut server = Server::start_encrypted(&[]);
    put(&server, "one.txt", b"first");
    assert!(server.terminate().success());
    server.restart();
    for (p, d) in [
        ("two.txt", &b"second"[..]),
        ("three.txt", b"third"),
        ("four.txt", b"fourth"),
    ] {
        put(&server, p, d);
    }
    server.kill();
    let data = server.data.clone();
    let snapshot = data.join("catalog/snapshot.json");
    let journal = data.join("catalog/journal.jsonl");
    let (snap0, journal0) = (
        std::fs::read(&snapshot).unwrap(),
        std::fs::read(&journal).unwrap(),
    );
    let start = || {
        server_cmd(
            &data,
            &[
                "--listen",
                "127.0.0.1:0",
                "--key-file",
                key_file_of(&data).to_str().unwrap(),
            ],
            "",
        )
    };

    // The second journal line: a character of its base64 changed.
    let mut j = journal0.clone();
    let second = j.iter().position(|&b| b == b'\n').unwrap() + 10;
    j[second] = if j[second] == b'A' { b'B' } else { b'A' };
    std::fs::write(&journal, &j).unwrap();
    let out = start();
    assert_refused(&out, "line 2 is damaged");
    std::fs::write(&journal, &journal0).unwrap();

    flip(&snapshot, snap0.len() as u64 / 2);
    let out = start();
    assert!(!out.status.success());
    assert!(all_text(&out).contains("snapshot"), "{}", all_text(&out));
    std::fs::write(&snapshot, &snap0).unwrap();

    // Mended, it starts with every version.
    server.restart();
    for (p, d) in [
        ("one.txt", &b"first"[..]),
        ("two.txt", b"second"),
        ("four.txt", b"fourth"),
    ] {
        assert_eq!(download(&server, p).body, d);
    }
}

#[test]
fn encrypt_killed_at_any_point_finishes_when_run_again_and_loses_nothing() {
    let mut server = Server::start(&["--hot-time", "2", "--hotspot-interval", "1"]);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("hot.bin", noise(300_000, 71)),
        ("log.txt", text((2 << 20) - 1)),
        ("big.img", noise(5 << 20, 81)),
        ("notes.txt", b"first version".to_vec()),
    ];
    for (p, d) in &files {
        put(&server, p, d);
    }
    put(&server, "notes.txt", b"second version");
    // The small files beside the catalog: a policy and alert settings.
    for (target, body) in [
        (
            "/api/v1/policies/fleet",
            r#"{"excludes": ["*.policy-secret"]}"#,
        ),
        (
            "/api/v1/alerts",
            r#"{"repeat": "2d", "targets": [{"id": "m", "email": "alert-secret@example.org"}]}"#,
        ),
    ] {
        let r = request(
            server.port,
            "PUT",
            target,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{target}: {}", r.text());
    }
    wait_for(60, "the text file to be packed", || {
        server.file(MACHINE, "log.txt").unwrap()["packed"] == true
    });
    // A browser upload half done, and a version only in the journal.
    let auth = bearer(server.port, MACHINE);
    let pending = noise(200_000, 91);
    let start = format!(r#"{{"machine": "{MACHINE}", "path": "pending.bin", "size": 200000}}"#);
    let r = request(
        server.port,
        "POST",
        "/api/v1/uploads",
        &[("Authorization", &auth)],
        start.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let target = format!("/api/v1/uploads/{id}");
    let r = request(
        server.port,
        "PUT",
        &target,
        &[
            ("Authorization", &auth),
            ("Content-Range", "bytes 0-99999/200000"),
        ],
        &pending[..100_000],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(server.terminate().success());
    server.restart();
    put(&server, "late.txt", b"only in the journal");
    server.kill();
    let data = server.data.clone();
    let key = key_file_of(&data);
    let encrypt = || {
        Command::new(server_bin())
            .arg("--data")
            .arg(&data)
            .args(["--key-file", key.to_str().unwrap(), "encrypt"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };

    // Killed after ever longer delays until a run finishes by itself.
    let mut delay = std::time::Duration::from_millis(3);
    let mut half_checked = false;
    loop {
        let mut child = encrypt();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            // The kill before may have landed after that run finished its
            // work but before it exited: then this run finds it done.
            assert!(
                out.status.success() || all_text(&out).contains("already encrypted"),
                "{}",
                all_text(&out)
            );
            break;
        }
        let _ = child.kill();
        let _ = child.wait();
        // Half converted: nothing serves it. (A kill that lands before the
        // conversion began leaves a plain directory, which is served; on a
        // loaded machine the first kills can land that early.)
        if !half_checked && data.join(nimbus_server::store::convert::MARKER).exists() {
            half_checked = true;
            let out = server_cmd(
                &data,
                &[
                    "--listen",
                    "127.0.0.1:0",
                    "--key-file",
                    key.to_str().unwrap(),
                ],
                "",
            );
            assert!(!out.status.success());
            assert!(
                all_text(&out).contains("being encrypted"),
                "{}",
                all_text(&out)
            );
        }
        delay = delay * 3 / 2;
        assert!(delay.as_secs() < 60, "encrypt never finished");
    }
    assert!(half_checked, "no kill landed mid-conversion");
    let out = server_cmd(&data, &["--key-file", key.to_str().unwrap(), "encrypt"], "");
    assert!(!out.status.success() && all_text(&out).contains("already encrypted"));

    // Clean, sealed, and every version there byte for byte.
    let out = server_cmd(
        &data,
        &["--key-file", key.to_str().unwrap(), "check", "--read-data"],
        "",
    );
    assert!(out.status.success(), "{}", all_text(&out));
    for f in files_under(&data) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        for (_, d) in &files {
            assert!(
                !name.starts_with(&ContentHash::of_bytes(d).to_hex()),
                "{name} plain"
            );
        }
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !contains(&bytes, b"only in the journal")
                && !contains(&bytes, b"notes.txt")
                && !contains(&bytes, b"policy-secret")
                && !contains(&bytes, b"alert-secret")
                && !contains(&bytes, MACHINE.as_bytes()),
            "{} plain",
            f.display()
        );
    }
    for small in ["policy.json", "alerts.json", "history.json", "clients.json"] {
        assert!(data.join(small).exists(), "{small}");
    }
    server.restart();
    // Each loads sealed: the policy and alerts are as they were, and no
    // file was found unreadable.
    assert!(!server.log().contains("cannot be read"), "{}", server.log());
    assert!(!data.join("history.json.bad").exists());
    let policy = request(server.port, "GET", "/api/v1/policies/fleet", &[], b"").text();
    assert!(policy.contains("*.policy-secret"), "{policy}");
    let alerts = request(server.port, "GET", "/api/v1/alerts", &[], b"").text();
    assert!(alerts.contains("alert-secret@example.org"), "{alerts}");
    for (p, d) in &files[..3] {
        let r = download(&server, p);
        assert_eq!((r.status, &r.body == d), (200, true), "{p}");
    }
    assert_eq!(download(&server, "notes.txt").body, b"second version");
    assert_eq!(
        server
            .get(&format!("/download/{MACHINE}/notes.txt?version=1"))
            .body,
        b"first version"
    );
    assert_eq!(download(&server, "late.txt").body, b"only in the journal");
    // The upload in progress continues where it stood.
    let r = request(
        server.port,
        "GET",
        &target,
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.header("upload-offset"), Some("100000"), "{}", r.text());
    let r = request(
        server.port,
        "PUT",
        &target,
        &[
            ("Authorization", &auth),
            ("Content-Range", "bytes 100000-199999/200000"),
        ],
        &pending[100_000..],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(download(&server, "pending.bin").body, pending);
}
