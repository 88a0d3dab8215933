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
