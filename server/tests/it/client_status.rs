//! `nimbus-client status`: what the backup running on this machine is
//! doing, from its own files, with the server up, down, and the client
//! stopped or killed.

use crate::fixtures::*;
use std::path::Path;
use std::process::Command;

fn status(state: &Path) -> (Option<i32>, String) {
    let out = Command::new(client_bin())
        .args(["status", "--state"])
        .arg(state)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn status_tells_what_the_running_client_does_without_asking_the_server() {
    let mut server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    write(&src, "a.txt", b"first");

    // Nothing has run yet.
    let (code, text) = status(&state);
    assert_eq!(code, Some(1));
    assert!(text.contains("no backup has run here"), "{text}");

    let mut client = spawn_client(
        &server.url(),
        &src,
        &state,
        &["--settle", "0", "--interval", "0.3", "--heartbeat", "1"],
    );
    wait_for(30, "a.txt backed up and a heartbeat", || {
        let (_, text) = status(&state);
        text.contains("report accepted") && text.contains("all backed up  2")
    });
    let (code, text) = status(&state);
    assert_eq!(code, Some(0), "{text}");
    for want in [
        "running: backing up",
        "as \"pc\"",
        &format!("process {}", client.id()),
        "watching the folder",
        "sent 1 (5 bytes)",
        "pending 0, errors 0",
        "server said    report accepted",
    ] {
        assert!(text.contains(want), "{want:?} missing from\n{text}");
    }

    // The server goes away: the client says it waits, and what for.
    server.kill();
    write(&src, "b.txt", b"second");
    wait_for(30, "the client to notice", || {
        status(&state).1.contains("waiting for the server")
    });
    let (code, text) = status(&state);
    assert_eq!(code, Some(0));
    assert!(text.contains("problem"), "{text}");
    assert!(!text.contains(&server.data.display().to_string()));

    // It comes back: caught up.
    server.restart();
    wait_for(60, "b.txt backed up", || {
        server.file("pc", "b.txt").is_some() && status(&state).1.contains("watching the folder")
    });

    // Stopped with a signal: "stopped", exit 1.
    let pid = client.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    client.wait().unwrap();
    let (code, text) = status(&state);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("not running:") && text.contains("stopped at"),
        "{text}"
    );

    // Killed: its last word stays, and status sees the process gone.
    let mut client = spawn_client(&server.url(), &src, &state, &["--settle", "0"]);
    wait_for(30, "the new client", || {
        status(&state)
            .1
            .contains(&format!("process {}", client.id()))
    });
    client.kill().unwrap();
    client.wait().unwrap();
    let (code, text) = status(&state);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("ended without stopping"), "{text}");
}

#[test]
fn a_newer_client_on_the_server_is_offered_in_the_report_answer_and_shown_by_status() {
    let tmp = tempfile::tempdir().unwrap();
    let clients = tmp.path().join("clients");
    std::fs::create_dir(&clients).unwrap();
    let arch = std::env::consts::ARCH;
    let newer = format!("nimbus-client-99.1.0-{arch}-linux");
    std::fs::write(clients.join(&newer), b"a newer build").unwrap();
    std::fs::write(
        clients.join(format!("nimbus-client-0.0.1-{arch}-linux")),
        b"older",
    )
    .unwrap();
    let server = Server::start(&["--clients-dir", clients.to_str().unwrap()]);

    // The protocol: 200 with the offer for that system, 204 without one.
    let bearer = bearer(server.port, "pc");
    let report = |os: &str, version: &str| {
        request(
            server.port,
            "POST",
            "/api/v1/status",
            &[("Authorization", &bearer)],
            format!(r#"{{"version": "{version}", "os": "{os}"}}"#).as_bytes(),
        )
    };
    let r = report(&format!("linux {arch}"), "0.1.0");
    assert_eq!(r.status, 200, "{}", r.text());
    let offer = &r.json()["newer"];
    assert_eq!(offer["version"], "99.1.0");
    assert_eq!(offer["url"], format!("/clients/{newer}"));
    assert_eq!(offer["sha256"], sha256_hex(b"a newer build").as_str());
    assert_eq!(report(&format!("linux {arch}"), "99.1.0").status, 204);
    assert_eq!(report("windows x86_64", "0.1.0").status, 204);
    assert_eq!(report("plan9 mips", "0.1.0").status, 204);

    // The running client learns it with its heartbeat; status says so.
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    write(&src, "a.txt", b"x");
    let mut client = spawn_client(
        &server.url(),
        &src,
        &state,
        &["--settle", "0", "--heartbeat", "1"],
    );
    wait_for(30, "the offer in status", || {
        status(&state)
            .1
            .contains("version 99.1.0 is offered; self-update is off: this client was built without a release key")
    });
    client.kill().unwrap();
    client.wait().unwrap();
}

/// One backup loop per state file: a second client started on it (a
/// scheduled task firing while a restarted client runs) ends with nothing
/// done, successfully; with --once it cannot say all is backed up and
/// fails. Neither touches the state.
#[test]
fn a_second_client_on_the_same_state_has_nothing_to_do() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    write(&src, "a.txt", b"first");
    let mut first = spawn_client(&server.url(), &src, &state, &["--settle", "0"]);
    wait_for(30, "the first client backing up", || {
        server.file("pc", "a.txt").is_some()
    });
    let before = std::fs::read(&state).unwrap();
    let out = client_command(&server.url(), &src, "pc", &state, &[])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("another nimbus-client is already backing up"),
        "{said}"
    );
    let out = client_once(&server.url(), &src, "pc", &state, &[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("another nimbus-client is already backing up"),
        "{said}"
    );
    assert_eq!(std::fs::read(&state).unwrap(), before);
    first.kill().unwrap();
    first.wait().unwrap();
    // Its lock went with the process: the next client starts at once.
    let out = client_once(&server.url(), &src, "pc", &state, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
