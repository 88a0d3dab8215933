//! Logging in: device tokens through the real client (login, use, revoke,
//! log in again), wrong credentials, growing delays against brute force,
//! and malformed, revoked or disabled users' tokens.

use crate::fixtures::*;

/// The file list as the holder of `auth` sees it.
fn listed(server: &Server, auth: &str) -> Vec<String> {
    let r = request(
        server.port,
        "GET",
        "/api/v1/files",
        &[("Authorization", auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["client"].as_str().unwrap(),
                f["path"].as_str().unwrap()
            )
        })
        .collect()
}

fn token_of(config: &std::path::Path, server: &Server) -> String {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    v["servers"][server.url()]["token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn login_use_revoke_and_log_in_again_through_the_real_client() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start(&[]);
    add_user(&server, "alice", "alice's password");
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state.json");
    let config = state.with_extension("client.json");

    let out = client_login(
        &server.url(),
        "alice",
        "alice's password",
        "laptop",
        &config,
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("logged in"));
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "token file readable by others");
    let token = token_of(&config, &server);
    let accounts = std::fs::read_to_string(server.data.join("accounts.json")).unwrap();
    assert!(
        !accounts.contains(&token),
        "the server stores the token itself"
    );
    assert!(!server.log().contains(&token) && !server.log().contains("alice's password"));

    // Use: the client sends the token; its machine name comes from the login.
    let src = tmp.path().join("src");
    write(&src, "a.txt", b"first");
    let out = client_command(
        &server.url(),
        &src,
        "laptop",
        &state,
        &["--settle", "0", "--once"],
    )
    .output()
    .unwrap();
    assert_ok(&out);
    let auth = format!("Bearer {token}");
    assert_eq!(listed(&server, &auth), ["laptop:a.txt"]);
    // Not in the admin's space.
    assert!(server.files().is_empty());
    let r = request(
        server.port,
        "GET",
        "/api/v1/devices",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200);
    let devices = r.json();
    assert_eq!(devices[0]["machine"], "laptop");
    let id = devices[0]["id"].as_str().unwrap().to_string();

    // Revoke: refused at once, and the client says to log in again.
    let r = request(
        server.port,
        "DELETE",
        &format!("/api/v1/devices/{id}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 204);
    let r = request(
        server.port,
        "GET",
        "/api/v1/files",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    write(&src, "b.txt", b"second");
    let out = client_command(
        &server.url(),
        &src,
        "laptop",
        &state,
        &["--settle", "0", "--once"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("must log in again"), "{stderr}");
    assert!(
        stderr.contains("log in with: nimbus-client login --server"),
        "{stderr}"
    );
    let new_auth = |config: &std::path::Path| format!("Bearer {}", token_of(config, &server));

    // Log in again: a new token, and the backup goes on.
    assert!(client_login(
        &server.url(),
        "alice",
        "alice's password",
        "laptop",
        &config,
        None
    )
    .status
    .success());
    assert_ne!(token_of(&config, &server), token);
    let out = client_command(
        &server.url(),
        &src,
        "laptop",
        &state,
        &["--settle", "0", "--once"],
    )
    .output()
    .unwrap();
    assert_ok(&out);
    assert_eq!(
        listed(&server, &new_auth(&config)),
        ["laptop:a.txt", "laptop:b.txt"]
    );
}

#[test]
fn wrong_credentials_are_refused_alike_and_delays_grow() {
    let server = Server::start(&[]);
    add_user(&server, "bob", "bob's password");
    let tmp = tempfile::tempdir().unwrap();
    let out = client_login(
        &server.url(),
        "bob",
        "not bob's password",
        "pc",
        &tmp.path().join("c.json"),
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong user name or password"));
    assert!(!tmp.path().join("c.json").exists());

    // Unknown users get the very same answer.
    let unknown = api_login(server.port, "nobody", "whatever pw", "m");
    assert_eq!(unknown.status, 401);
    let wrong = api_login(server.port, "bob", "wrong again", "m");
    assert_eq!(
        (wrong.status, wrong.json()["message"].clone()),
        (401, unknown.json()["message"].clone())
    );

    // Past three failures, delays start, even for the right password, and
    // each further failure doubles them.
    let _ = api_login(server.port, "bob", "third wrong", "m");
    let r = api_login(server.port, "bob", "bob's password", "m");
    assert_eq!(r.status, 429);
    let first: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(first >= 1);
    std::thread::sleep(
        std::time::Duration::from_secs(first) + std::time::Duration::from_millis(100),
    );
    assert_eq!(
        api_login(server.port, "bob", "fourth wrong", "m").status,
        401
    );
    let r = api_login(server.port, "bob", "bob's password", "m");
    assert_eq!(r.status, 429);
    let second: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(second > first, "delay did not grow: {first} then {second}");
    std::thread::sleep(
        std::time::Duration::from_secs(second) + std::time::Duration::from_millis(100),
    );
    let r = api_login(server.port, "bob", "bob's password", "m");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!server.log().contains("bob's password"));
}

#[test]
fn malformed_revoked_and_disabled_tokens_get_401() {
    let server = Server::start(&[]);
    add_user(&server, "carol", "carol's password");
    for value in [
        "Basic Y2Fyb2w6cHc=",
        "Bearer",
        "Bearer ",
        "Bearer nimbus_0000",
        "bearer x",
        &format!("Bearer {}", "a".repeat(5000)),
    ] {
        let r = request(
            server.port,
            "GET",
            "/api/v1/files",
            &[("Authorization", value)],
            b"",
        );
        assert_eq!(r.status, 401, "{value:.40}");
        assert_eq!(r.json()["error"], "unauthorized");
    }
    let r = api_login(server.port, "carol", "carol's password", "m");
    assert_eq!(r.status, 200);
    let auth = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    assert_eq!(
        request(
            server.port,
            "GET",
            "/api/v1/files",
            &[("Authorization", &auth)],
            b""
        )
        .status,
        200
    );
    // Another user's device cannot be revoked (404, as if it did not exist).
    add_user(&server, "dave", "dave's password");
    let d = api_login(server.port, "dave", "dave's password", "m");
    let dave_auth = format!("Bearer {}", d.json()["token"].as_str().unwrap());
    let r = request(
        server.port,
        "DELETE",
        &format!("/api/v1/devices/{}", r.json()["device"].as_str().unwrap()),
        &[("Authorization", &dave_auth)],
        b"",
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        request(
            server.port,
            "GET",
            "/api/v1/files",
            &[("Authorization", &auth)],
            b""
        )
        .status,
        200
    );
    // Disabled from the shell while the server runs: refused at once.
    assert!(server
        .command(&["user", "disable", "carol"], "")
        .status
        .success());
    assert_eq!(
        request(
            server.port,
            "GET",
            "/api/v1/files",
            &[("Authorization", &auth)],
            b""
        )
        .status,
        401
    );
    assert_eq!(
        api_login(server.port, "carol", "carol's password", "m").status,
        401
    );
    // Bad login bodies.
    for body in ["", "{", r#"{"user":"carol"}"#] {
        let r = request(server.port, "POST", "/api/v1/login", &[], body.as_bytes());
        assert_eq!(r.status, 400, "{body}");
    }
    let r = request(
        server.port,
        "POST",
        "/api/v1/login",
        &[],
        br#"{"user":"dave","password":"dave's password","machine":"a/b"}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        request(server.port, "GET", "/api/v1/login", &[], b"").status,
        405
    );
    // Very long headers and user names, and names made to inject: a clear
    // 4xx, nothing reflected, nothing changed.
    let cookie = format!("nimbus_session={}", "a".repeat(100_000));
    let r = request(
        server.port,
        "GET",
        "/api/v1/files",
        &[("Authorization", ""), ("Cookie", &cookie)],
        b"",
    );
    // Over the 64 KiB of all headers together (docs/PROTOCOL.md, "Limits").
    assert_eq!(r.status, 431);
    for user in [
        "u".repeat(5000),
        "<script>alert(1)</script>".to_string(),
        "eve\r\nSet-Cookie: x=1".to_string(),
    ] {
        let body = serde_json::json!({"user": user, "password": "whatever pw", "machine": "m"})
            .to_string();
        let r = request(
            server.port,
            "POST",
            "/api/v1/login",
            &[("Authorization", "")],
            body.as_bytes(),
        );
        assert!(matches!(r.status, 401 | 429), "{}", r.status);
        assert!(!r.text().contains("<script>") && r.header("set-cookie").is_none());
    }
    let users = server.command(&["user", "list"], "");
    assert_eq!(
        String::from_utf8_lossy(&users.stdout).lines().count(),
        3,
        "admin, carol, dave"
    );
}
