//! Behind a reverse proxy: the client's address comes from X-Forwarded-For
//! only with --trust-proxy (for the login limits), the session cookie is
//! Secure when the proxy says the request came over HTTPS, and a server
//! listening beyond loopback without TLS says so at start.

use crate::fixtures::*;

fn failed_login(server: &Server, user: &str, forwarded_for: &str) -> u16 {
    let body =
        serde_json::json!({"user": user, "password": "wrong password", "machine": "m"}).to_string();
    request(
        server.port,
        "POST",
        "/api/v1/login",
        &[("Authorization", ""), ("X-Forwarded-For", forwarded_for)],
        body.as_bytes(),
    )
    .status
}

#[test]
fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    // Trusted: failures from one forwarded address do not delay another.
    let server = Server::start(&["--trust-proxy"]);
    for i in 0..3 {
        assert_eq!(failed_login(&server, &format!("u{i}"), "192.0.2.7"), 401);
    }
    assert_eq!(failed_login(&server, "u9", "192.0.2.7"), 429);
    assert_eq!(failed_login(&server, "u9", "198.51.100.1, 192.0.2.8"), 401);

    // Not trusted: the header is ignored, the peer's address counts.
    let server = Server::start(&[]);
    for i in 0..3 {
        assert_eq!(
            failed_login(&server, &format!("u{i}"), &format!("192.0.2.{i}")),
            401
        );
    }
    assert_eq!(failed_login(&server, "u9", "198.51.100.200"), 429);
}

#[test]
fn the_cookie_is_secure_when_a_trusted_proxy_saw_https() {
    let form = format!("user={ADMIN}&password={}", ADMIN_PASSWORD.replace(' ', "+"));
    let login = |server: &Server| {
        request(
            server.port,
            "POST",
            "/login",
            &[("Authorization", ""), ("X-Forwarded-Proto", "https")],
            form.as_bytes(),
        )
        .header("set-cookie")
        .unwrap()
        .to_string()
    };
    assert!(login(&Server::start(&["--trust-proxy"])).contains("; Secure"));
    assert!(!login(&Server::start(&[])).contains("Secure"));
}

#[test]
fn plain_http_beyond_loopback_is_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    prepare(0, &data);
    let mut child = std::process::Command::new(server_bin())
        .args(["--listen", "0.0.0.0:0", "--data"])
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut text = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !text.contains("plain HTTP") && std::time::Instant::now() < deadline {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut err, &mut line).unwrap() == 0 {
            break;
        }
        text.push_str(&line);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("serving plain HTTP"), "{text}");
}
