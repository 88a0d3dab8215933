//! Alerts delivered to real receivers on loopback: mail to an aiosmtpd
//! server that requires a password, webhooks to a local HTTP server. A
//! machine that stops backing up is told once and its recovery once; an
//! unreachable mail server is retried and shown; failing passes, damage
//! found by `check` and a full disk are told to the right people.

use crate::fixtures::*;
use serde_json::{json, Value};
use std::time::Duration;

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn put_settings(server: &Server, settings: Value) {
    let r = request(
        server.port,
        "PUT",
        "/api/v1/alerts",
        &[JSON],
        settings.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

fn alerts(server: &Server, auth: Option<&str>) -> Value {
    let h;
    let headers: Vec<(&str, &str)> = match auth {
        Some(a) => {
            h = a.to_string();
            vec![("Authorization", h.as_str())]
        }
        None => vec![],
    };
    let r = request(server.port, "GET", "/api/v1/alerts", &headers, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn smtp(sink_port: u16) -> Value {
    json!({
        "host": "127.0.0.1",
        "port": sink_port,
        "security": "none",
        "username": "nimbus",
        "password": "mail s3cret",
        "from": "Nimbus <nimbus@test.example>",
    })
}

fn subject(mail: &str) -> &str {
    mail.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("")
}

#[test]
fn a_silent_machine_is_told_once_by_mail_and_webhook_and_its_recovery_once() {
    let sink = SmtpSink::start(Some(("nimbus", "mail s3cret")));
    let hooks = HookReceiver::start();
    let server = Server::start(&["--alert-interval", "1"]);
    put_settings(
        &server,
        json!({
            "smtp": smtp(sink.port),
            "disk_min_free_percent": 0.0,
            "targets": [
                {"id": "mail", "email": "admin@test.example"},
                {"id": "hook", "webhook": format!("http://127.0.0.1:{}/nimbus", hooks.port), "token": "hook-token"},
            ],
        }),
    );
    // The password and the token are not shown back.
    let shown = alerts(&server, None);
    assert_eq!(shown["settings"]["smtp"]["password"], "********");
    assert_eq!(shown["settings"]["targets"][1]["token"], "********");
    assert!(!shown.to_string().contains("s3cret") && !shown.to_string().contains("hook-token"));

    let r = request(
        server.port,
        "PUT",
        "/api/v1/alerts/machines/admin/pc",
        &[JSON],
        br#"{"stale_after": "3s"}"#,
    );
    assert_eq!(r.status, 204, "{}", r.text());

    // One good pass, then silence.
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("files"), tmp.path().join("state.json"));
    write(&dir, "notes.txt", b"hello");
    assert_ok(&client_once(&server.url(), &dir, "pc", &state, &[]));
    wait_for(30, "the stale-machine mail", || !sink.mails().is_empty());
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(
        subject(&mails[0]).contains("admin/pc: no successful backup since"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("X-Envelope-To: admin@test.example"));
    wait_for(10, "the stale-machine webhook", || {
        !hooks.hooks().is_empty()
    });
    let h = &hooks.hooks()[0];
    assert_eq!(h.target, "/nimbus");
    assert_eq!(h.header("Authorization"), Some("Bearer hook-token"));
    assert_eq!(h.body["event"], "alert");
    assert_eq!(h.body["condition"], "stale");
    assert_eq!(h.body["machine"], "admin/pc");
    // While it lasts, nothing more (repeat is a day).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.mails().len(), 1);
    assert_eq!(hooks.hooks().len(), 1);
    let now = alerts(&server, None);
    assert_eq!(now["active"][0]["condition"], "stale", "{now}");

    // The client comes back and keeps reporting: one recovery notice.
    let _client = Running(spawn_client(
        &server.url(),
        &dir,
        &state,
        &["--interval", "0.5", "--heartbeat", "0.5"],
    ));
    wait_for(30, "the recovery mail", || sink.mails().len() >= 2);
    let mails = sink.mails();
    assert!(
        subject(&mails[1]).starts_with("[Nimbus] Recovered: admin/pc"),
        "{}",
        mails[1]
    );
    wait_for(10, "the recovery webhook", || hooks.hooks().len() >= 2);
    assert_eq!(hooks.hooks()[1].body["event"], "recovered");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(sink.mails().len(), 2, "once each");
    assert_eq!(hooks.hooks().len(), 2, "once each");
    assert_eq!(alerts(&server, None)["active"], json!([]));

    // Both deliveries are on the page as sent.
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let page = get_with_cookie(&server, "/alerts", &session).text();
    assert!(page.contains("mail to admin@test.example"), "{page}");
    assert!(page.contains("recovered: Recovered: admin/pc"), "{page}");
    assert!(!page.contains("s3cret"));
}

#[test]
fn an_unreachable_mail_server_is_retried_and_shown_then_delivers() {
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let server = Server::start(&["--alert-interval", "1"]);
    put_settings(
        &server,
        json!({
            "smtp": smtp(dead_port),
            "disk_min_free_percent": 0.0,
            "targets": [{"id": "mail", "email": "admin@test.example"}],
        }),
    );
    // The page's button.
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let page = get_with_cookie(&server, "/alerts", &session).text();
    let csrf = csrf_of(&page);
    let r = post_form(
        &server,
        "/alerts/test",
        &format!("csrf={csrf}"),
        Some(&session),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    wait_for(30, "two failed attempts", || {
        alerts(&server, None)["deliveries"][0]["attempts"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    });
    let d = alerts(&server, None)["deliveries"][0].clone();
    assert_eq!(d["event"], "test");
    assert!(d["sent_at"].is_null());
    let err = d["last_error"].as_str().unwrap();
    assert!(err.contains(&format!("127.0.0.1:{dead_port}")), "{err}");
    let page = get_with_cookie(&server, "/alerts", &session).text();
    assert!(
        page.contains("failed 2 times") || page.contains("failed 3 times"),
        "{page}"
    );
    assert!(page.contains(&format!("127.0.0.1:{dead_port}")));
    assert!(!page.contains(&server.data.display().to_string()));
    assert!(server
        .log()
        .contains("alerts: test to mail to admin@test.example failed"));
    // The admin's dashboard says so too.
    let admin = get_with_cookie(&server, "/admin", &session).text();
    assert!(admin.contains("1 notice not delivered"), "{admin}");
    assert!(admin.contains(&format!("127.0.0.1:{dead_port}")));

    // The mail server comes up where the settings now say: the retry
    // delivers, once.
    let sink = SmtpSink::start(Some(("nimbus", "mail s3cret")));
    let mut s = alerts(&server, None)["settings"].clone();
    s["smtp"]["port"] = json!(sink.port);
    put_settings(&server, s);
    wait_for(40, "the retried mail", || !sink.mails().is_empty());
    assert!(subject(&sink.mails()[0]).contains("Test alert from Nimbus"));
    let d = alerts(&server, None)["deliveries"][0].clone();
    assert!(d["sent_at"].is_i64(), "{d}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.mails().len(), 1);
    // The stored password was kept though the settings came back redacted.
    assert!(sink.mails()[0].contains("Test alert"));
}

#[test]
fn failing_passes_damage_and_a_full_disk_reach_the_right_people() {
    let hooks = HookReceiver::start();
    let mut server = Server::start(&["--alert-interval", "1", "--max-upload-bytes", "1000"]);
    add_user(&server, "bob", "bob password 1");
    let bob = format!(
        "Bearer {}",
        api_login(server.port, "bob", "bob password 1", "phone").json()["token"]
            .as_str()
            .unwrap()
    );
    let hook_url = |path: &str| format!("http://127.0.0.1:{}/{path}", hooks.port);
    put_settings(
        &server,
        json!({
            "failing_passes": 2,
            "disk_min_free_percent": 0.0,
            "targets": [{"id": "admin", "webhook": hook_url("admin"), "shape": "generic"}],
        }),
    );
    // Bob adds his own ntfy target; he cannot touch the admin's settings
    // or another user's machine, and sees only his own target.
    let r = request(
        server.port,
        "POST",
        "/api/v1/alerts/targets",
        &[("Authorization", &bob), JSON],
        json!({"webhook": hook_url("backups"), "shape": "ntfy"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = request(
        server.port,
        "PUT",
        "/api/v1/alerts",
        &[("Authorization", &bob), JSON],
        b"{}",
    );
    assert_eq!(r.status, 403);
    let r = request(
        server.port,
        "PUT",
        "/api/v1/alerts/machines/admin/pc",
        &[("Authorization", &bob), JSON],
        br#"{"stale_after": "1s"}"#,
    );
    assert_eq!(r.status, 403);
    let seen = alerts(&server, Some(&bob));
    assert_eq!(seen["settings"]["targets"].as_array().unwrap().len(), 1);
    assert!(seen["settings"].get("smtp").is_none());
    let r = request(
        server.port,
        "PUT",
        "/api/v1/alerts",
        &[JSON],
        br#"{"failing_passes": 0}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("failing_passes"));

    // Admin's pc fails pass after pass (a file over the upload limit).
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("files"), tmp.path().join("state.json"));
    write(&dir, "small.txt", b"fine");
    write(&dir, "big.bin", &noise(5000, 1));
    let client = Running(spawn_client(
        &server.url(),
        &dir,
        &state,
        &["--interval", "0.5", "--heartbeat", "0.5"],
    ));
    let for_machine = |event: &str, condition: &str| {
        hooks
            .hooks()
            .into_iter()
            .filter(|h| h.body["event"] == event && h.body["condition"] == condition)
            .count()
    };
    wait_for(30, "the failing alert", || {
        for_machine("alert", "failing") == 1
    });
    assert!(
        hooks.hooks().iter().all(|h| h.target == "/admin"),
        "bob hears nothing of admin/pc"
    );
    // Ignoring the error clears it.
    let r = request(
        server.port,
        "POST",
        "/api/v1/ignored-errors",
        &[JSON],
        br#"{"machine": "admin/pc", "path": "big.bin"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    wait_for(30, "the failing recovery", || {
        for_machine("recovered", "failing") == 1
    });
    drop(client);

    // The disk counts as full: the admin hears, bob does not.
    let mut s = alerts(&server, None)["settings"].clone();
    s["disk_min_free_percent"] = json!(100.0);
    put_settings(&server, s.clone());
    wait_for(30, "the disk alert", || {
        hooks
            .hooks()
            .iter()
            .any(|h| h.body["condition"] == "disk" && h.body["event"] == "alert")
    });
    let disk = hooks
        .hooks()
        .into_iter()
        .find(|h| h.body["condition"] == "disk")
        .unwrap();
    assert!(disk.body["machine"].is_null());
    assert!(disk.body["title"]
        .as_str()
        .unwrap()
        .contains("% free on the data directory's disk"));
    s["disk_min_free_percent"] = json!(0.0);
    put_settings(&server, s);
    wait_for(30, "the disk recovery", || {
        hooks
            .hooks()
            .iter()
            .any(|h| h.body["condition"] == "disk" && h.body["event"] == "recovered")
    });
    assert!(hooks.hooks().iter().all(|h| h.target == "/admin"));

    // Bob backs up; his machine's stored content is damaged and `check`
    // finds it: the admin and bob (ntfy's shape, to the server's root) hear.
    let bob_dir = tmp.path().join("bob");
    let bob_state = tmp.path().join("bob.json");
    write(&bob_dir, "thesis.txt", b"chapter one");
    assert_ok(&client_login(
        &server.url(),
        "bob",
        "bob password 1",
        "laptop",
        &bob_state.with_extension("client.json"),
        None,
    ));
    assert_ok(
        &client_command(
            &server.url(),
            &bob_dir,
            "laptop",
            &bob_state,
            &["--once", "--settle", "0"],
        )
        .output()
        .unwrap(),
    );
    server.terminate();
    let before = server.blob_files();
    for f in &before {
        std::fs::remove_file(f).unwrap();
    }
    let out = server.command(&["check"], "");
    assert!(!out.status.success(), "check finds the damage");
    server.restart();
    wait_for(30, "the damage alert", || {
        hooks
            .hooks()
            .iter()
            .any(|h| h.body["condition"] == "damage" && h.body["machine"] == "admin/pc")
    });
    wait_for(30, "bob's damage alert", || {
        hooks
            .hooks()
            .iter()
            .any(|h| h.target == "/" && h.body["topic"] == "backups")
    });
    for h in hooks.hooks().iter().filter(|h| h.target == "/") {
        let title = h.body["title"].as_str().unwrap();
        assert!(title.starts_with("bob/laptop: check of"), "{title}");
        assert_eq!(h.body["priority"], 4);
    }
    assert!(hooks
        .hooks()
        .iter()
        .any(|h| h.target == "/admin" && h.body["machine"] == "bob/laptop"));
}

#[test]
fn killed_at_any_point_the_alert_files_load_and_no_notice_is_lost() {
    let hooks = HookReceiver::start();
    let mut server = Server::start(&["--alert-interval", "1"]);
    let settings = |percent: f64, repeat: &str| {
        json!({
            "disk_min_free_percent": percent,
            "repeat": repeat,
            "targets": [{"id": "hook", "webhook": format!("http://127.0.0.1:{}/h", hooks.port)}],
        })
    };
    put_settings(&server, settings(0.0, "1d"));
    // Each round changes the settings (the disk counts as full or not, so
    // the watcher records a condition and a notice too) and kills the
    // server at a growing delay: during the write, the watcher's round, a
    // delivery, or after.
    let mut full = false;
    for i in 0..12u64 {
        full = !full;
        let port = server.port;
        let body = settings(
            if full { 100.0 } else { 0.0 },
            if full { "2d" } else { "1d" },
        )
        .to_string();
        let put = std::thread::spawn(move || {
            request(port, "PUT", "/api/v1/alerts", &[JSON], body.as_bytes()).status
        });
        std::thread::sleep(Duration::from_millis(i * 150));
        server.kill();
        let status = put.join().unwrap_or(0);
        server.restart();
        let now = alerts(&server, None);
        let repeat = now["settings"]["repeat"].as_str().unwrap().to_string();
        assert!(repeat == "1d" || repeat == "2d", "{now}");
        if status == 200 {
            assert_eq!(
                repeat,
                if full { "2d" } else { "1d" },
                "answered 200, then lost"
            );
        }
        // Whatever it holds, it is what the file said: both load cleanly.
        assert!(!server.log().contains("cannot be read"), "{}", server.log());
        // Keep the state in step with what the server now holds.
        full = repeat == "2d";
    }
    // Settled: the last notice about the disk matches what holds.
    let want = if full { "alert" } else { "recovered" };
    wait_for(30, "the last notice to match the disk's condition", || {
        let last = hooks
            .hooks()
            .into_iter()
            .rev()
            .find(|h| h.body["condition"] == "disk")
            .map(|h| h.body["event"].as_str().unwrap_or("").to_string());
        match last {
            Some(e) => e == want || (want == "alert" && e == "reminder"),
            // Never full long enough to be told: only then may there be none.
            None => !full,
        }
    });
    let active = alerts(&server, None)["active"].clone();
    assert_eq!(
        active
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["condition"] == "disk"),
        full,
        "{active}"
    );
}

#[test]
fn mail_goes_over_starttls_or_tls_to_a_relay_with_a_private_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    private_ca(tmp.path());
    let cert = tmp.path().join("cert.pem").display().to_string();
    let key = tmp.path().join("key.pem").display().to_string();
    let ca = std::fs::read_to_string(tmp.path().join("ca.pem")).unwrap();
    let server = Server::start(&["--alert-interval", "1"]);
    for (security, flag) in [("starttls", "--starttls"), ("tls", "--tls")] {
        let sink = SmtpSink::start_with(Some(("nimbus", "mail s3cret")), &[flag, &cert, &key]);
        let mut smtp = smtp(sink.port);
        smtp["security"] = json!(security);
        // Without the CA the certificate is refused, and nothing is sent.
        put_settings(
            &server,
            json!({"smtp": smtp, "disk_min_free_percent": 0.0,
                   "targets": [{"id": "m", "email": "admin@test.example"}]}),
        );
        let r = request(server.port, "POST", "/api/v1/alerts/test", &[], b"");
        assert_eq!(r.status, 202);
        wait_for(30, "a refused attempt", || {
            alerts(&server, None)["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| {
                    d["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("certificate"))
                })
        });
        assert!(sink.mails().is_empty());
        // With it, the pending notice goes through on its next try.
        smtp["ca"] = json!(ca);
        let mut s = alerts(&server, None)["settings"].clone();
        s["smtp"] = smtp;
        s["smtp"]["password"] = json!("********");
        put_settings(&server, s);
        wait_for(60, &format!("the mail over {security}"), || {
            !sink.mails().is_empty()
        });
        assert!(subject(&sink.mails()[0]).contains("Test alert"));
    }
    // A CA that is not a certificate is refused.
    let mut s = alerts(&server, None)["settings"].clone();
    s["smtp"]["ca"] = json!("not a certificate");
    let r = request(
        server.port,
        "PUT",
        "/api/v1/alerts",
        &[JSON],
        s.to_string().as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("smtp.ca"));
}
