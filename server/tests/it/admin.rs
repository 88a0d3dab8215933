//! Admins see every client's metadata (user, machine, last contact, last
//! file and time, count, size) but cannot download other users' contents.

use crate::fixtures::*;
use std::time::Duration;

fn put(server: &Server, auth: &str, machine_enc: &str, path: &str, data: &[u8]) {
    let r = request(
        server.port,
        "PUT",
        &format!("/api/v1/files/{machine_enc}/{path}"),
        &[("X-Nimbus-Hash", &hex(data)), ("Authorization", auth)],
        data,
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn admins_see_every_clients_metadata_but_no_contents() {
    let server = Server::start(&[]);
    let out = server.command(
        &["user", "add", "alice", "--password-stdin"],
        "alice's password\n",
    );
    assert!(out.status.success());
    let r = api_login(server.port, "alice", "alice's password", "<b>laptop<i>");
    assert_eq!(r.status, 200, "{}", r.text());
    let alice = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    put(
        &server,
        &alice,
        "%3Cb%3Elaptop%3Ci%3E",
        "one.txt",
        b"first file",
    );
    put(
        &server,
        &alice,
        "%3Cb%3Elaptop%3Ci%3E",
        "dir/two.txt",
        b"second file!",
    );

    let admin = bearer(server.port, "pc");
    let r = request(
        server.port,
        "GET",
        "/api/v1/admin/clients",
        &[("Authorization", &admin)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let clients = r.json();
    let c = clients
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["user"] == "alice")
        .expect("alice's machine listed");
    assert_eq!(c["machine"], "<b>laptop<i>");
    assert_eq!(c["files"], 2);
    assert_eq!(c["bytes"], 22);
    assert_eq!(c["last_file"], "dir/two.txt");
    let last_backup = c["last_backup_at"].as_i64().unwrap();
    assert!(c["last_contact"].as_i64().unwrap() >= last_backup);

    // The page, escaped.
    let page = request(
        server.port,
        "GET",
        "/admin",
        &[("Authorization", &admin)],
        b"",
    );
    assert_eq!(page.status, 200);
    assert!(page.text().contains("&lt;b&gt;laptop&lt;i&gt;") && !page.text().contains("<b>laptop"));

    // No contents: the admin's downloads stay in the admin's own space.
    let r = request(
        server.port,
        "GET",
        "/download/%3Cb%3Elaptop%3Ci%3E/one.txt",
        &[("Authorization", &admin)],
        b"",
    );
    assert_eq!(r.status, 404);

    // Users do not see other clients.
    for target in ["/api/v1/admin/clients", "/admin"] {
        let r = request(
            server.port,
            "GET",
            target,
            &[("Authorization", &alice)],
            b"",
        );
        assert_eq!(r.status, 403, "{target}");
    }
}

/// The admin's view of one machine, from the JSON dashboard, read with a
/// browser session (a request with the machine's own token would count as
/// contact from it).
fn client_view(server: &Server, machine: &str) -> Option<serde_json::Value> {
    let session = browser_login(server, ADMIN, ADMIN_PASSWORD);
    get_with_cookie(server, "/api/v1/admin/clients", &session)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["machine"] == machine)
        .cloned()
}

#[test]
fn the_dashboard_shows_what_clients_report_and_marks_silent_ones_stale() {
    let mut server = Server::start(&["--stale-after", "3", "--max-upload-bytes", "1000"]);
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    write(&src, "ok.txt", b"fine");
    // Over the server's upload limit: refused, and reported as an error.
    write(&src, "too-big <b>.bin", &noise(5000, 1));
    let mut client = spawn_client(
        &server.url(),
        &src,
        &state,
        &["--interval", "0.2", "--settle", "0", "--heartbeat", "0.5"],
    );
    wait_for(20, "the error report", || {
        client_view(&server, "pc").is_some_and(|c| c["status"] == "errors")
    });
    let c = client_view(&server, "pc").unwrap();
    assert_eq!(c["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        c["os"].as_str().unwrap().starts_with(std::env::consts::OS),
        "{c}"
    );
    assert_eq!(c["errors"], 1);
    let last_error = c["last_error"].as_str().unwrap();
    assert!(
        last_error.contains("too-big <b>.bin") && last_error.contains("413"),
        "{last_error}"
    );
    assert_eq!(c["files"], 1);

    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let page = get_with_cookie(&server, "/admin", &session).text();
    assert!(
        page.contains("<td class=\"status errors\">errors</td>"),
        "{page}"
    );
    assert!(page.contains("too-big &lt;b&gt;.bin") && !page.contains("too-big <b>"));
    assert!(
        page.contains(
            "1 machine: 0 backed up, 0 stale, 1 with errors. Stale means no contact for 3 s."
        ),
        "{page}"
    );

    // The problem goes away: the next report clears it.
    std::fs::remove_file(src.join("too-big <b>.bin")).unwrap();
    wait_for(20, "an ok report", || {
        client_view(&server, "pc").is_some_and(|c| c["status"] == "ok")
    });
    // Idle, the client's heartbeats keep it "ok" past the stale threshold.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(client_view(&server, "pc").unwrap()["status"], "ok");

    // Stopped: stale once the threshold passes, and it stays known across
    // a server restart.
    let _ = client.kill();
    let _ = client.wait();
    wait_for(20, "the client to turn stale", || {
        client_view(&server, "pc").is_some_and(|c| c["status"] == "stale")
    });
    server.terminate();
    server.restart();
    let c = client_view(&server, "pc").unwrap();
    assert_eq!(
        (c["status"].as_str(), c["version"].as_str()),
        (Some("stale"), Some(env!("CARGO_PKG_VERSION")))
    );
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let page = get_with_cookie(&server, "/admin", &session).text();
    assert!(
        page.contains("0 backed up, 1 stale (the longest for "),
        "{page}"
    );
}

#[test]
fn status_reports_come_only_from_machines_and_must_be_sane() {
    let server = Server::start(&[]);
    let good = br#"{"version": "0.1.0", "os": "linux x86_64", "errors": 0}"#;
    let r = request(server.port, "POST", "/api/v1/status", &[], good);
    assert_eq!(r.status, 204);
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let cookie = format!("nimbus_session={session}");
    let r = request(
        server.port,
        "POST",
        "/api/v1/status",
        &[("Authorization", ""), ("Cookie", &cookie)],
        good,
    );
    assert_eq!(r.status, 403);
    let r = request(
        server.port,
        "POST",
        "/api/v1/status",
        &[("Authorization", "")],
        good,
    );
    assert_eq!(r.status, 401);
    for (body, status) in [
        (&b"not json"[..], 400),
        (br#"{"version": "1", "os": "x", "shell": "rm -rf /"}"#, 400),
        (br#"{"version": "1\r\nX-Evil: 1", "os": "x"}"#, 400),
    ] {
        let r = request(server.port, "POST", "/api/v1/status", &[], body);
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(body));
    }
    let huge = format!(
        r#"{{"version": "1", "os": "x", "last_error": "{}"}}"#,
        "e".repeat(20_000)
    );
    let r = request(server.port, "POST", "/api/v1/status", &[], huge.as_bytes());
    assert_eq!(r.status, 413);
    assert_eq!(client_view(&server, "pc").unwrap()["version"], "0.1.0");
}

#[test]
fn server_health_as_json_page_and_prometheus_text() {
    let server = Server::start(&["--metrics-token", "scrape-secret"]);
    let data = noise(100_000, 4);
    assert_eq!(put_file(server.port, "pc", "a.bin", &data).status, 201);
    assert_eq!(put_file(server.port, "pc", "copy.bin", &data).status, 201);
    let h = server.get("/api/v1/admin/health").json();
    assert_eq!(h["saved_by_dedup_bytes"], 100_000, "{h}");
    assert_eq!(h["current_files_bytes"], 200_000);
    assert_eq!(h["stored_bytes"], 100_000);
    assert_eq!((h["files"].as_u64(), h["hot"].as_u64()), (Some(2), Some(1)));
    assert!(h["disk_free_bytes"].as_u64().unwrap() > 0);
    assert!(h["requests_last_minute"].as_u64().unwrap() >= 2);
    assert_eq!(h["queue_capacity"], 2 * 1024);

    let page = get_with_cookie(
        &server,
        "/admin",
        &browser_login(&server, ADMIN, ADMIN_PASSWORD),
    )
    .text();
    assert!(page.contains("<h2>Server</h2>") && page.contains("by storing identical content once"));

    // Prometheus: admins, or the scraper's token; nobody else.
    let text = server.get("/metrics").text();
    assert!(
        text.contains("# TYPE nimbus_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains("nimbus_saved_by_dedup_bytes 100000"),
        "{text}"
    );
    let r = request(
        server.port,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer scrape-secret")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    for (auth, status) in [("Bearer wrong", 401), ("", 401)] {
        let r = request(
            server.port,
            "GET",
            "/metrics",
            &[("Authorization", auth)],
            b"",
        );
        assert_eq!(r.status, status, "{auth:?}");
    }
    add_user(&server, "carol", "carol's password");
    let r = api_login(server.port, "carol", "carol's password", "m");
    let carol = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    for target in ["/metrics", "/api/v1/admin/health"] {
        let r = request(
            server.port,
            "GET",
            target,
            &[("Authorization", &carol)],
            b"",
        );
        assert_eq!(r.status, 403, "{target}");
    }
}

#[test]
fn admins_see_a_clients_tree_with_sizes_but_no_contents() {
    let server = Server::start(&[]);
    add_user(&server, "alice", "alice's password");
    let r = api_login(server.port, "alice", "alice's password", "laptop");
    let alice = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    put(&server, &alice, "laptop", "docs/a%3Cb%3E.txt", b"12345");
    put(&server, &alice, "laptop", "docs/sub/c.bin", &[7u8; 2048]);
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let admin_page = get_with_cookie(&server, "/admin", &session).text();
    assert!(
        admin_page.contains("<a href=\"/admin/tree/alice/laptop/\">laptop</a>"),
        "{admin_page}"
    );
    let top = get_with_cookie(&server, "/admin/tree/alice/laptop/", &session);
    assert_eq!(top.status, 200);
    assert!(
        top.text().contains("docs/</a>") && top.text().contains("2.0 KiB"),
        "{}",
        top.text()
    );
    let docs = get_with_cookie(&server, "/admin/tree/alice/laptop/docs/", &session).text();
    assert!(
        docs.contains("a&lt;b&gt;.txt") && docs.contains("Metadata only"),
        "{docs}"
    );
    assert!(
        !docs.contains("/download/") && !docs.contains("/versions/") && !docs.contains("/archive")
    );
    assert!(
        docs.contains(
            "<a href=\"/admin/tree/alice/laptop/docs/sub/\"><svg class=\"icon i-folder\""
        ) && docs.contains("</svg>sub/</a>"),
        "{docs}"
    );
    // Not for users, and nothing under made-up names.
    let r = api_login(server.port, "alice", "alice's password", "other");
    let alice2 = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let r = request(
        server.port,
        "GET",
        "/admin/tree/alice/laptop/",
        &[("Authorization", &alice2)],
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        get_with_cookie(&server, "/admin/tree/nobody/laptop/", &session).status,
        404
    );
    assert_eq!(
        get_with_cookie(&server, "/admin/tree/..%2F/laptop/", &session).status,
        404
    );
}
