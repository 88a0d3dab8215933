//! The backup policy: set on the server (from the shell and over HTTP),
//! fetched by a running client with its heartbeat, and applied: exclusions,
//! windows, the upload limit, a lock that refuses a client's flag, and the
//! policy kept for when the server is away.

use crate::fixtures::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn policy(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["policy"];
    all.extend_from_slice(args);
    let out = server.command(&all, "");
    assert_ok(&out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The version the server gives `machine` now.
fn effective_version(server: &Server, machine: &str) -> String {
    let text = policy(server, &["effective", machine]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["version"].as_str().unwrap().to_string()
}

/// What the dashboard says machine `pc` applies.
fn applied(server: &Server) -> Option<String> {
    let r = request(server.port, "GET", "/api/v1/admin/clients", &[], b"");
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["machine"] == "pc")
        .and_then(|c| c["policy"].as_str().map(str::to_string))
}

fn wait_applied(server: &Server) {
    let want = effective_version(server, "admin/pc");
    wait_for(30, &format!("the client to apply policy {want}"), || {
        applied(server).as_deref() == Some(want.as_str())
    });
}

/// The local hour now, as the client reads it (the machine's time zone).
fn local_hour() -> u32 {
    let out = Command::new("date").arg("+%H").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn a_policy_set_on_the_server_reaches_a_running_client_and_takes_effect() {
    // The upload limit is timed: not with other tests loading both cores.
    let _alone = alone();
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    write(&src, "a.txt", b"first");
    write(&src, "mail/outlook.ost", b"version one");
    // The default exclusions hold from the first pass.
    write(&src, "web/node_modules/lib/index.js", b"module");
    let _client = Running(spawn_client(
        &server.url(),
        &src,
        &state,
        &["--settle", "0", "--interval", "0.3", "--heartbeat", "1"],
    ));
    wait_for(30, "the first files backed up", || {
        server.file("pc", "mail/outlook.ost").is_some() && server.file("pc", "a.txt").is_some()
    });
    wait_applied(&server);
    assert!(server.file("pc", "web/node_modules/lib/index.js").is_none());

    // An exclusion, set from the shell while server and client run.
    policy(
        &server,
        &[
            "set",
            "machine:admin/pc",
            "excludes",
            r#"["*.ost", "scratch/"]"#,
        ],
    );
    wait_applied(&server);
    write(&src, "mail/outlook.ost", b"version two, not sent");
    write(&src, "scratch/tmp.bin", b"scratch");
    write(&src, "b.txt", b"sent");
    wait_for(30, "b.txt backed up", || {
        server.file("pc", "b.txt").is_some()
    });
    // Another pass or two, for anything that would follow.
    std::thread::sleep(Duration::from_secs(1));
    let ost = server.file("pc", "mail/outlook.ost").unwrap();
    assert_eq!(ost["versions"], 1, "no new version of an excluded file");
    assert_ne!(
        ost["deleted"], true,
        "an excluded file is not deleted: {ost}"
    );
    assert!(server.file("pc", "scratch/tmp.bin").is_none());

    // A window that excludes now: changes wait, scanning goes on.
    let h = local_hour();
    let window = format!("daily {:02}:00-{:02}:00", (h + 2) % 24, (h + 3) % 24);
    policy(
        &server,
        &[
            "set",
            "machine:admin/pc",
            "windows",
            &format!(r#"["{window}"]"#),
        ],
    );
    wait_applied(&server);
    write(&src, "c.txt", b"waits for the window");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        server.file("pc", "c.txt").is_none(),
        "uploaded outside the window"
    );
    policy(&server, &["unset", "machine:admin/pc", "windows"]);
    wait_for(30, "c.txt backed up once the window is lifted", || {
        server.file("pc", "c.txt").is_some()
    });

    // An upload limit of 1 MB/s: 10 MB take about 10 s.
    policy(&server, &["set", "user:admin", "upload_limit", "1000000"]);
    wait_applied(&server);
    let big = noise(10_000_000, 7);
    let took = timed_upload(&server, &src, "big.bin", &big);
    eprintln!("10 MB at a 1 MB/s limit: {took:.2} s");
    assert!(
        (9.0..=12.0).contains(&took),
        "10 MB at 1 MB/s took {took:.1} s"
    );
    assert_eq!(download(&server, "big.bin"), big);

    // A different limit inside a window that holds now: 6 MB at 2 MB/s
    // take about 3 s; outside every window the 1 MB/s applies again.
    policy(
        &server,
        &[
            "set",
            "machine:admin/pc",
            "limits",
            r#"[{"when": "daily 00:00-24:00", "rate": 2000000}]"#,
        ],
    );
    wait_applied(&server);
    let six = noise(6_000_000, 20);
    let took = timed_upload(&server, &src, "six.bin", &six);
    eprintln!("6 MB at a 2 MB/s limit inside a window: {took:.2} s");
    assert!(
        (2.7..=4.0).contains(&took),
        "6 MB at 2 MB/s took {took:.1} s"
    );
    let window = format!("daily {:02}:00-{:02}:00", (h + 2) % 24, (h + 3) % 24);
    policy(
        &server,
        &[
            "set",
            "machine:admin/pc",
            "limits",
            &format!(r#"[{{"when": "{window}", "rate": 2000000}}]"#),
        ],
    );
    wait_applied(&server);
    let took = timed_upload(&server, &src, "three.bin", &noise(3_000_000, 40));
    eprintln!("3 MB at 1 MB/s outside the limit's window: {took:.2} s");
    assert!(
        (2.7..=4.0).contains(&took),
        "3 MB at 1 MB/s took {took:.1} s"
    );
    assert_eq!(download(&server, "six.bin"), six);
}

/// Seconds from writing `data` to `src/name` until the server lists it.
fn timed_upload(server: &Server, src: &std::path::Path, name: &str, data: &[u8]) -> f64 {
    let started = Instant::now();
    write(src, name, data);
    wait_for(60, &format!("{name} backed up"), || {
        server.file("pc", name).is_some()
    });
    started.elapsed().as_secs_f64()
}

/// The current content of `path` of machine `pc`.
fn download(server: &Server, path: &str) -> Vec<u8> {
    let r = request(
        server.port,
        "GET",
        &format!("/download/pc/{path}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.body
}

#[test]
fn a_locked_setting_refuses_the_flag_even_with_the_server_away() {
    let mut server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    write(&src, "a.txt", b"a");
    policy(&server, &["set", "fleet", "interval", "2"]);
    let locked = policy(&server, &["lock", "interval", "max_file_size"]);
    assert!(locked.contains("interval, max_file_size"), "{locked}");
    // A lock names only real settings.
    let out = server.command(&["policy", "lock", "colour"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a setting"));

    let out = client_once(&server.url(), &src, "pc", &state, &[]);
    assert_ok(&out);
    let out = client_once(&server.url(), &src, "pc", &state, &["--interval", "9"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--interval") && err.contains("locked"),
        "{err}"
    );

    // The server away, the kept policy still locks it.
    assert!(server.terminate().success());
    let out = client_once(
        &server.url(),
        &src,
        "pc",
        &state,
        &["--max-file-size", "10"],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-file-size"));
    // Unlocked, the flag is the client's again.
    server.restart();
    policy(&server, &["unlock", "interval", "max_file_size"]);
    let out = client_once(&server.url(), &src, "pc", &state, &["--interval", "9"]);
    assert_ok(&out);
}

#[test]
fn policies_over_http_are_checked_and_users_keep_to_their_own_machines() {
    let server = Server::start(&[]);
    add_user(&server, "ann", "ann-password-1");
    let ann = api_login(server.port, "ann", "ann-password-1", "laptop");
    assert_eq!(ann.status, 200, "{}", ann.text());
    let ann = format!("Bearer {}", ann.json()["token"].as_str().unwrap());
    let put = |auth: &str, target: &str, body: &str| {
        request(
            server.port,
            "PUT",
            target,
            &[
                ("Authorization", auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    };
    let admin = bearer(server.port, "pc");
    // The admin locks the largest file size for everyone.
    let r = put(
        &admin,
        "/api/v1/policies/fleet",
        r#"{"max_file_size": 1000000}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = put(&admin, "/api/v1/policies/locked", r#"["max_file_size"]"#);
    assert_eq!(r.status, 200, "{}", r.text());
    // Ann sets her machine's window; not the fleet's, not a locked field,
    // not another user's machine.
    let r = put(
        &ann,
        "/api/v1/policies/machines/ann/laptop",
        r#"{"windows": ["mon-fri 19:00-07:00"], "excludes": ["*.iso"]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for (target, body, status) in [
        ("/api/v1/policies/fleet", "{}", 403),
        ("/api/v1/policies/machines/admin/pc", "{}", 403),
        ("/api/v1/policies/locked", "[]", 403),
        (
            "/api/v1/policies/machines/ann/laptop",
            r#"{"max_file_size": 5}"#,
            403,
        ),
        (
            "/api/v1/policies/machines/ann/laptop",
            r#"{"windows": ["mon 9-5"]}"#,
            400,
        ),
        (
            "/api/v1/policies/machines/ann/laptop",
            r#"{"colour": 1}"#,
            400,
        ),
        ("/api/v1/policies/machines/ann/laptop", "not json", 400),
        ("/api/v1/policies/machines/ann/..", "{}", 400),
        ("/api/v1/policies/machines/ann", "{}", 404),
    ] {
        let r = put(&ann, target, body);
        assert_eq!(r.status, status, "{target} {body}: {}", r.text());
        assert!(!r.text().contains(&*server.data.to_string_lossy()));
    }
    // What the laptop applies, and a 304 for the same again.
    let r = request(
        server.port,
        "GET",
        "/api/v1/policy",
        &[("Authorization", &ann)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let e = r.json();
    assert_eq!(e["max_file_size"], 1000000);
    assert_eq!(e["windows"][0], "mon-fri 19:00-07:00");
    assert!(e["excludes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "*.iso"));
    assert_eq!(e["locked"][0], "max_file_size");
    let etag = format!("\"{}\"", e["version"].as_str().unwrap());
    let r = request(
        server.port,
        "GET",
        "/api/v1/policy",
        &[("Authorization", &ann), ("If-None-Match", &etag)],
        b"",
    );
    assert_eq!(r.status, 304);
    // The admin's machine does not get Ann's window.
    let r = request(server.port, "GET", "/api/v1/policy", &[], b"");
    assert_eq!(r.json()["windows"].as_array().unwrap().len(), 0);
}

#[test]
fn a_policy_change_killed_at_any_point_leaves_the_old_or_the_new() {
    let mut server = Server::start(&[]);
    policy(&server, &["set", "fleet", "interval", "1"]);
    let interval = |server: &Server| -> f64 {
        let text = policy(server, &["effective", "admin/pc"]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["interval"].as_f64().unwrap()
    };
    let mut before = 1.0;
    let mut delay = Duration::from_micros(300);
    let mut finished = 0;
    let mut killed = 0;
    for n in 2..200 {
        let mut child = Command::new(server_bin())
            .arg("--data")
            .arg(&server.data)
            .args(unlock_args(&server.data, &[]))
            .args(["policy", "set", "fleet", "interval", &n.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "policy set failed: {status}");
            finished += 1;
        } else {
            killed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        // It loads, and holds the old value or the new.
        let now = interval(&server);
        assert!(
            now == before || now == n as f64,
            "{now} after {before} -> {n}"
        );
        before = now;
        delay = delay * 21 / 20;
        if finished >= 5 {
            break;
        }
    }
    eprintln!("policy set: {killed} killed, {finished} finished");
    assert!(killed >= 3, "no kill landed before the command finished");
    assert!(finished >= 3, "the command never finished");
    assert!(before > 1.0, "no change landed");
    // The running server serves what is on disk.
    let r = request(server.port, "GET", "/api/v1/policy", &[], b"");
    assert_eq!(r.json()["interval"].as_f64(), Some(before));
    server.kill();
    server.restart();
    assert_eq!(interval(&server), before);
}

/// The dashboard's JSON for machine `pc`.
fn pc_view(server: &Server) -> serde_json::Value {
    let r = request(server.port, "GET", "/api/v1/admin/clients", &[], b"");
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["machine"] == "pc")
        .cloned()
        .unwrap_or_default()
}

#[test]
fn ignored_errors_leave_the_status_ok_and_stay_listed() {
    let server = Server::start(&["--max-upload-bytes", "1000"]);
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    write(&src, "ok.txt", b"fine");
    // Over the server's upload limit: refused, reported as errors.
    write(&src, "mail/outlook.ost", &noise(5000, 1));
    write(&src, "video.bin", &noise(5000, 2));
    let _client = Running(spawn_client(
        &server.url(),
        &src,
        &state,
        &["--interval", "0.2", "--settle", "0", "--heartbeat", "0.5"],
    ));
    wait_for(30, "two errors reported", || {
        pc_view(&server)["errors"] == 2
    });
    let view = pc_view(&server);
    assert_eq!(view["status"], "errors");
    assert_eq!(view["problems"].as_array().unwrap().len(), 2, "{view}");

    let add = |auth: Option<&str>, rule: &str| {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        request(
            server.port,
            "POST",
            "/api/v1/ignored-errors",
            &headers,
            rule.as_bytes(),
        )
    };
    // This machine's .ost files (Outlook holds them open).
    let r = add(None, r#"{"machine": "admin/pc", "path": "*.ost"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let ost_rule = r.json()["id"].as_str().unwrap().to_string();
    // A message that does not match ignores nothing.
    let r = add(None, r#"{"path": "*.bin", "message": "no such message"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    wait_for(10, "one error ignored", || pc_view(&server)["ignored"] == 1);
    let view = pc_view(&server);
    assert_eq!(view["status"], "errors");
    assert_eq!(view["errors"], 1);
    assert!(view["last_error"].as_str().unwrap().contains("video.bin"));
    // Every machine's .bin refused with a 413.
    let r = add(None, r#"{"path": "*.bin", "message": "413"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    wait_for(10, "both ignored", || pc_view(&server)["status"] == "ok");
    let view = pc_view(&server);
    assert_eq!(
        (view["errors"].clone(), view["ignored"].clone()),
        (0.into(), 2.into())
    );
    let problems = view["problems"].as_array().unwrap();
    assert!(problems.iter().all(|p| p["ignored"] == true), "{view}");
    assert!(problems.iter().any(|p| p["path"] == "mail/outlook.ost"));
    // Still shown on the dashboard, counted apart.
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let page = get_with_cookie(&server, "/admin", &session).text();
    assert!(
        page.contains("2 ignored") && page.contains("mail/outlook.ost"),
        "{page}"
    );

    // A user ignores errors of their own machines only; bad rules change
    // nothing.
    add_user(&server, "ann", "ann-password-1");
    let ann = api_login(server.port, "ann", "ann-password-1", "laptop");
    let ann = format!("Bearer {}", ann.json()["token"].as_str().unwrap());
    for (rule, status) in [
        (r#"{"path": "*"}"#, 403),
        (r#"{"machine": "admin/pc", "path": "*"}"#, 403),
        (r#"{"machine": "ann/laptop", "path": ""}"#, 400),
        (r#"{"machine": "ann/../x", "path": "*"}"#, 400),
        (
            r#"{"machine": "ann/laptop", "path": "*", "colour": 1}"#,
            400,
        ),
    ] {
        let r = add(Some(&ann), rule);
        assert_eq!(r.status, status, "{rule}: {}", r.text());
    }
    let r = add(Some(&ann), r#"{"machine": "ann/laptop", "path": "*.tmp"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let r = request(
        server.port,
        "GET",
        "/api/v1/ignored-errors",
        &[("Authorization", &ann)],
        b"",
    );
    // Hers and the ones for every machine; not the admin's machine's.
    assert_eq!(r.json().as_array().unwrap().len(), 3, "{}", r.text());
    let r = request(
        server.port,
        "DELETE",
        &format!("/api/v1/ignored-errors/{ost_rule}"),
        &[("Authorization", &ann)],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());

    // Removed, the error counts again.
    let r = request(
        server.port,
        "DELETE",
        &format!("/api/v1/ignored-errors/{ost_rule}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    wait_for(10, "the .ost error to count again", || {
        pc_view(&server)["status"] == "errors"
    });
}

/// The problems machine `pc` last reported, as "path: message".
fn problems(server: &Server) -> Vec<String> {
    let r = request(server.port, "GET", "/api/v1/admin/clients", &[], b"");
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["machine"] == "pc")
        .map(|c| {
            c["problems"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| format!("{}: {}", p["path"], p["message"]))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn folders_set_on_the_server_are_backed_up_by_a_running_client_and_a_removed_one_keeps_its_files() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    let (photos, docs, other) = (
        tmp.path().join("pictures"),
        tmp.path().join("docs"),
        tmp.path().join("other"),
    );
    write(&src, "a.txt", b"top");
    write(&src, "sub/inner.txt", b"the --dir's own sub folder");
    write(&photos, "2026/beach.jpg", &noise(3000, 7));
    write(&photos, "2026/beach.raw", b"huge raw file");
    write(&docs, "report.txt", b"quarterly");
    write(&other, "x.txt", b"would mix with src/sub");
    let _client = Running(spawn_client(
        &server.url(),
        &src,
        &state,
        &["--settle", "0", "--interval", "0.3", "--heartbeat", "1"],
    ));
    wait_for(30, "the --dir backed up", || {
        server.file("pc", "a.txt").is_some()
    });

    // Three folders, set from the shell while the client runs: one named
    // with its own exclusion, one by its last part, one whose name the
    // --dir already uses.
    let folders = serde_json::json!([
        {"path": photos, "name": "Photos", "excludes": ["*.raw"]},
        {"path": docs},
        {"path": other, "name": "sub"},
    ]);
    policy(
        &server,
        &["set", "machine:admin/pc", "folders", &folders.to_string()],
    );
    wait_for(30, "the new folders backed up", || {
        server.file("pc", "Photos/2026/beach.jpg").is_some()
            && server.file("pc", "docs/report.txt").is_some()
    });
    wait_applied(&server);
    assert_eq!(download(&server, "Photos/2026/beach.jpg"), noise(3000, 7));
    assert_eq!(download(&server, "docs/report.txt"), b"quarterly");
    assert!(server.file("pc", "Photos/2026/beach.raw").is_none());
    assert_eq!(
        download(&server, "sub/inner.txt"),
        b"the --dir's own sub folder"
    );
    assert!(server.file("pc", "sub/x.txt").is_none());
    wait_for(10, "the name clash reported", || {
        problems(&server)
            .iter()
            .any(|p| p.contains("taken by") && p.contains("sub"))
    });
    // A new file in a folder from the policy is picked up like any other.
    write(&docs, "minutes.txt", b"monday");
    wait_for(30, "a new file in the folder", || {
        server.file("pc", "docs/minutes.txt").is_some()
    });

    // The docs folder leaves the policy: its files stay on the server as
    // they were (not marked deleted), and changes there are no longer sent.
    let folders = serde_json::json!([{"path": photos, "name": "Photos", "excludes": ["*.raw"]}]);
    policy(
        &server,
        &["set", "machine:admin/pc", "folders", &folders.to_string()],
    );
    wait_applied(&server);
    write(&docs, "report.txt", b"quarterly, edited");
    write(&photos, "2026/dunes.jpg", b"dunes");
    wait_for(30, "the remaining folder still backed up", || {
        server.file("pc", "Photos/2026/dunes.jpg").is_some()
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(download(&server, "docs/report.txt"), b"quarterly");
    assert!(server.file("pc", "docs/minutes.txt").is_some());
    // The state file no longer tracks it.
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(kept["folders"], serde_json::json!(["Photos"]));
    assert!(kept["files"].get("docs/report.txt").is_none());

    // A bad folder is refused with the reason, and nothing changes.
    let out = server.command(
        &[
            "policy",
            "set",
            "machine:admin/pc",
            "folders",
            r#"[{"path": "relative/dir"}]"#,
        ],
        "",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an absolute path"));
}

#[test]
fn a_folder_flag_backs_up_a_second_folder_unless_the_admin_locked_folders() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let (src, state, extra) = (
        tmp.path().join("src"),
        tmp.path().join("state.json"),
        tmp.path().join("music"),
    );
    write(&src, "a.txt", b"a");
    write(&extra, "song.ogg", b"la la");
    let flag = format!("Music={}", extra.display());
    assert_ok(&client_once(
        &server.url(),
        &src,
        "pc",
        &state,
        &["--folder", &flag],
    ));
    assert_eq!(download(&server, "Music/song.ogg"), b"la la");
    policy(&server, &["lock", "folders"]);
    let out = client_once(&server.url(), &src, "pc", &state, &["--folder", &flag]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--folder"));
}
