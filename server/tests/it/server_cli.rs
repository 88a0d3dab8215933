//! The server's command line: config file, errors a user can act on, and a
//! clean stop on SIGTERM with an upload in flight.

use crate::fixtures::*;
use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

#[test]
fn config_file_sets_the_same_keys_as_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("nimbus.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"listen": "127.0.0.1:0", "data": "{}", "max-upload-bytes": 10, "workers": 2}}"#,
            tmp.path().join("d").display()
        ),
    )
    .unwrap();
    let server = Server::start(&["--config", cfg.to_str().unwrap()]);
    // --data on the command line wins over the file; the limit comes from it.
    assert_eq!(put_file(server.port, "pc", "f", b"01234567890").status, 413);
    assert!(!tmp.path().join("d").exists());
    assert!(server.data.join("catalog").exists());
}

#[test]
fn both_programs_print_their_version_and_commit() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    for (name, bin) in [
        ("nimbus-server", server_bin()),
        ("nimbus-client", client_bin()),
    ] {
        let out = Command::new(bin).arg("--version").output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        // The client says too whether it updates itself: the test build
        // has no release key compiled in.
        let text = match name {
            "nimbus-client" => text
                .trim_end()
                .strip_suffix("; self-update off (built without a release key)")
                .unwrap_or_else(|| panic!("{name} --version said: {text}"))
                .to_string(),
            _ => text,
        };
        let want = format!("{name} {} (commit ", env!("CARGO_PKG_VERSION"));
        assert!(text.starts_with(&want), "{name} --version said: {text}");
        if let Some(commit) = &commit {
            // NIMBUS_COMMIT, when a packager sets it, names the commit instead.
            if std::env::var("NIMBUS_COMMIT").is_err() {
                assert_eq!(text.trim_end(), format!("{want}{commit})"));
            }
        }
    }
}

#[test]
fn bad_configuration_is_reported_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.json");
    std::fs::write(&cfg, r#"{"hot_time": 5}"#).unwrap();
    let out = Command::new(server_bin())
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field `hot_time`") && err.contains("hot-time"),
        "{err}"
    );

    let out = Command::new(server_bin())
        .args(["--workers", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers must be at least 1"));

    let out = Command::new(server_bin())
        .args(["--listen", "256.1.1.1:1", "--data"])
        .arg(tmp.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on 256.1.1.1:1"));

    let out = Command::new(server_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--data",
        "--workers",
        "--hot-time",
        "--hotspot-interval",
        "--max-upload-bytes",
        "--config",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn sigterm_stops_cleanly_with_an_upload_in_flight() {
    let mut server = Server::start(&[]);
    assert_eq!(
        put_file(server.port, "pc", "before.txt", b"kept").status,
        201
    );
    let data = noise(2_000_000, 7);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        s,
        "PUT /api/v1/files/pc/inflight.bin HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nX-Nimbus-Hash: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bearer(server.port, "pc"),
        hex(&data),
        data.len()
    )
    .unwrap();
    s.write_all(&data[..1_000_000]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = server.child.as_ref().unwrap().id();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The in-flight upload is allowed to finish.
    s.write_all(&data[1_000_000..]).unwrap();
    let r = read_response(s, false);
    assert_eq!(r.status, 201, "{}", r.text());
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(server.log().contains("stopped"));
    server.restart();
    assert_eq!(server.get("/download/pc/inflight.bin").body, data);
    assert_eq!(server.get("/download/pc/before.txt").body, b"kept");
}
