//! The client's promises at the edges: unreadable files are named and do not
//! stop the pass; the state never claims more than the server acknowledged,
//! even when the client is killed mid-pass; concurrent uploads of one path
//! leave one consistent latest version.

use crate::fixtures::*;
use std::process::{Command, Stdio};

/// The client command, as an unprivileged user when we are root (root reads
/// files whatever their permissions).
fn client_cmd() -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(client_bin());
        c
    } else {
        Command::new(client_bin())
    }
}

#[test]
fn unreadable_and_unnamable_files_are_reported_and_retried() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let src = tmp.path().join("src");
    write(&src, "ok.txt", b"fine");
    write(&src, "secret.txt", b"locked");
    write(&src, "sub/also-ok.txt", b"fine too");
    std::fs::write(
        src.join(std::ffi::OsStr::from_bytes(b"latin1-\xe9t\xe9.txt")),
        b"x",
    )
    .unwrap();
    for p in ["", "sub"] {
        std::fs::set_permissions(src.join(p), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    for p in ["ok.txt", "sub/also-ok.txt"] {
        std::fs::set_permissions(src.join(p), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(
        src.join("secret.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let state = tmp.path().join("state.json");
    write_client_config(&server.url(), "pc", &tmp.path().join("client.json"));
    let run = || {
        client_cmd()
            .args([
                "--server",
                &server.url(),
                "--name",
                "pc",
                "--settle",
                "0",
                "--once",
            ])
            .arg("--dir")
            .arg(&src)
            .arg("--state")
            .arg(&state)
            .arg("--config")
            .arg(tmp.path().join("client.json"))
            .output()
            .unwrap()
    };
    let out = run();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a failed file must fail --once");
    assert!(
        err.contains("secret.txt"),
        "unreadable file not named: {err}"
    );
    assert!(
        err.contains("not valid UTF-8"),
        "non-UTF-8 name not reported: {err}"
    );
    let mut names: Vec<_> = server
        .files()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["ok.txt", "sub/also-ok.txt"]);

    // Fixed: the next pass backs it up.
    std::fs::set_permissions(
        src.join("secret.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.get("/download/pc/secret.txt").body, b"locked");
}

#[test]
fn a_killed_client_state_never_claims_more_than_the_server_has() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for i in 0..3000 {
        write(
            &src,
            &format!("d{}/f{i}.txt", i % 13),
            format!("content {i}\n").repeat(50).as_bytes(),
        );
    }
    let state = tmp.path().join("state.json");
    let mut client = spawn_client(&server.url(), &src, &state, &["--settle", "0"]);
    // The state is saved every few seconds during a long pass.
    wait_for(60, "the state to be saved mid-pass", || state.exists());
    client.kill().unwrap();
    client.wait().unwrap();
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let files = saved["files"].as_object().unwrap();
    assert!(!files.is_empty());
    let listed = server.files();
    for (path, entry) in files {
        let on_server = listed
            .iter()
            .find(|f| f["path"] == path.as_str())
            .unwrap_or_else(|| panic!("state claims {path}, which the server never acknowledged"));
        assert_eq!(on_server["hash"], entry["hash"]);
    }
    // Started again it finishes, without re-sending what the state holds.
    let out = client_once(&server.url(), &src, "pc", &state, &[]);
    assert_ok(&out);
    assert_eq!(server.files().len(), 3000);
    let line = String::from_utf8_lossy(&out.stdout);
    let uploaded: usize = line
        .split("uploaded ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        uploaded <= 3000 - files.len(),
        "resent acknowledged files: {line}"
    );
}

#[test]
fn concurrent_uploads_of_one_path_end_consistent() {
    let mut server = Server::start(&[]);
    let port = server.port;
    let contents: Vec<Vec<u8>> = (0..8).map(|i| noise(200_000, 2 * i + 101)).collect();
    std::thread::scope(|s| {
        for c in &contents {
            s.spawn(move || {
                let r = put_file(port, "pc", "contested.bin", c);
                assert!(r.status == 201 || r.status == 200, "{}", r.text());
            });
        }
    });
    let f = server.file("pc", "contested.bin").unwrap();
    assert_eq!(f["versions"], 8);
    let latest = server.get("/download/pc/contested.bin").body;
    assert_eq!(hex(&latest), f["hash"].as_str().unwrap());
    assert!(contents.contains(&latest));
    server.restart();
    assert_eq!(server.file("pc", "contested.bin").unwrap(), f);
}

#[test]
fn a_file_the_server_refuses_is_reported_once_and_not_resent_until_it_changes() {
    let server = Server::start(&["--max-upload-bytes", "1000"]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src, "small.txt", b"fits");
    write(&src, "big.bin", &noise(5000, 1));
    let state = tmp.path().join("state.json");

    let out = client_once(&server.url(), &src, "pc", &state, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("big.bin") && err.contains("413"), "{err}");
    assert!(server.file("pc", "small.txt").is_some());

    // Watching: many passes, one report, one attempt.
    let log = tmp.path().join("client.log");
    let mut client = client_command(
        &server.url(),
        &src,
        "pc",
        &state,
        &["--settle", "0", "--interval", "0.1"],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    // Once it shrinks under the limit it is sent.
    write(&src, "big.bin", b"now small");
    wait_for(30, "the changed file", || {
        server.file("pc", "big.bin").is_some()
    });
    client.kill().unwrap();
    client.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("server refused it").count(), 1, "{text}");
}
