//! "Add a machine": client programs served from `--clients-dir` with their
//! sums, and enrollment codes made on the page and traded by the real
//! `nimbus-client enroll` for a device token: once, within 24 hours,
//! unless withdrawn, never logged.

use crate::fixtures::*;
use std::path::Path;
use std::process::{Command, Output};

/// The page's new code, and the id of its withdraw form.
fn make_code(server: &Server, session: &str, user: Option<&str>) -> (String, String) {
    let before = code_ids(&get_with_cookie(server, "/add-machine", session).text());
    let extra = user
        .map(|u| format!("&user={}", form_encode(u)))
        .unwrap_or_default();
    let (code, page) = make_enrollment_code(server, session, &extra);
    assert!(
        page.contains(&format!("enroll --server http://127.0.0.1 {code}")),
        "the commands carry the code: {page}"
    );
    let id = code_ids(&page)
        .into_iter()
        .find(|i| !before.contains(i))
        .expect("the new code is listed");
    (code, id)
}

/// Ids of the open codes the page lists.
fn code_ids(page: &str) -> Vec<String> {
    page.split("action=\"/add-machine/codes/")
        .skip(1)
        .map(|s| s.split('/').next().unwrap().to_string())
        .collect()
}

fn enroll(server: &Server, code: &str, name: &str, config: &Path) -> Output {
    Command::new(client_bin())
        .args(["enroll", "--server", &server.url(), code, "--name", name])
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn refused(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_code_enrolls_one_machine_once_and_every_other_use_is_refused() {
    let mut server = Server::start(&[]);
    add_user(&server, "bob", "bob's password");
    let admin = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let bob = browser_login(&server, "bob", "bob's password");
    let tmp = tempfile::tempdir().unwrap();
    let mut codes = Vec::new();

    // Bob makes a code; the real client trades it for a token and backs up.
    let (code, _) = make_code(&server, &bob, None);
    codes.push(code.clone());
    let (src, state) = (tmp.path().join("src"), tmp.path().join("laptop.json"));
    let config = state.with_extension("client.json");
    write(&src, "notes.txt", b"enrolled");
    let out = enroll(&server, &code.to_lowercase(), "laptop", &config);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("enrolled machine \"laptop\" of bob"),
        "{out:?}"
    );
    assert_ok(&client_once(&server.url(), &src, "laptop", &state, &[]));
    let page = get_with_cookie(&server, "/browse/laptop/", &bob).text();
    assert!(page.contains("notes.txt"), "{page}");

    // Used: a second machine with the same code gets nothing.
    let devices = |s: &Server| {
        nimbus_server::accounts::AccountStore::open(&s.data, vault_of(&s.data))
            .unwrap()
            .load()
            .unwrap()
            .devices
            .len()
    };
    let n = devices(&server);
    let other = tmp.path().join("other.json");
    let err = refused(&enroll(&server, &code, "desktop", &other));
    assert!(err.contains("enrollment refused (401)"), "{err}");
    assert!(err.contains("not valid"), "{err}");
    assert!(!other.exists(), "a refused enrollment writes no config");
    assert_eq!(devices(&server), n);

    // Wrong and malformed codes.
    let err = refused(&enroll(&server, "0000-0000-0000-0000", "desktop", &other));
    assert!(err.contains("not valid"), "{err}");
    let r = request(
        server.port,
        "POST",
        "/api/v1/enroll",
        &[("Content-Type", "application/json")],
        br#"{"code": "x"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());

    // (A success clears the address's failures, as a login does.)
    // Bob may not make codes for others, nor withdraw the admin's; the
    // admin makes one for bob, which enrolls a machine of bob's.
    let csrf = csrf_of(&get_with_cookie(&server, "/add-machine", &bob).text());
    let r = post_form(
        &server,
        "/add-machine/codes",
        &format!("csrf={csrf}&user=admin"),
        Some(&bob),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let (mine, mine_id) = make_code(&server, &admin, None);
    codes.push(mine.clone());
    let r = post_form(
        &server,
        &format!("/add-machine/codes/{mine_id}/revoke"),
        &format!("csrf={csrf}"),
        Some(&bob),
    );
    assert_eq!(r.status, 404);
    let (for_bob, _) = make_code(&server, &admin, Some("bob"));
    codes.push(for_bob.clone());
    let out = enroll(&server, &for_bob, "desktop", &other);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("of bob"));
    let n = devices(&server);
    // Withdrawn: bob withdraws his code from the page.
    let (code2, id2) = make_code(&server, &bob, None);
    codes.push(code2.clone());
    let csrf = csrf_of(&get_with_cookie(&server, "/add-machine", &bob).text());
    let r = post_form(
        &server,
        &format!("/add-machine/codes/{id2}/revoke"),
        &format!("csrf={csrf}"),
        Some(&bob),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(!code_ids(&get_with_cookie(&server, "/add-machine", &bob).text()).contains(&id2));
    let err = refused(&enroll(&server, &code2, "desktop", &other));
    assert!(err.contains("not valid"), "{err}");

    // Expired: a code 24 hours old.
    let (code3, _) = make_code(&server, &bob, None);
    codes.push(code3.clone());
    nimbus_server::accounts::AccountStore::open(&server.data, vault_of(&server.data))
        .unwrap()
        .update(|a| {
            a.enrollments.last_mut().unwrap().expires_at = nimbus_common::time::unix_now() - 1;
            Ok(())
        })
        .unwrap();
    let err = refused(&enroll(&server, &code3, "desktop", &other));
    assert!(err.contains("not valid"), "{err}");
    assert_eq!(devices(&server), n);

    // Without the page's CSRF token nothing is made.
    let r = post_form(&server, "/add-machine/codes", "csrf=nope", Some(&bob));
    assert_eq!(r.status, 403);

    // Codes are in no log, and not in the accounts file.
    server.terminate();
    let log = server.log();
    let accounts = std::fs::read(server.data.join("accounts.json")).unwrap();
    let accounts = String::from_utf8_lossy(&accounts);
    for c in &codes {
        let bare = c.replace('-', "");
        for form in [c.as_str(), bare.as_str(), &c.to_lowercase()] {
            assert!(!log.contains(form), "{form} in the log:\n{log}");
            assert!(!accounts.contains(form), "{form} in accounts.json");
        }
    }
    assert!(log.contains("enrolled machine \"laptop\""), "{log}");
}

#[test]
fn wrong_codes_are_rate_limited_per_address() {
    let server = Server::start(&[]);
    let body = br#"{"code": "0000-0000-0000-0000", "machine": "m"}"#;
    let statuses: Vec<u16> = (0..5)
        .map(|_| {
            request(
                server.port,
                "POST",
                "/api/v1/enroll",
                &[("Content-Type", "application/json")],
                body,
            )
            .status
        })
        .collect();
    assert_eq!(&statuses[..3], &[401, 401, 401], "{statuses:?}");
    assert_eq!(statuses[3], 429, "{statuses:?}");
}

#[test]
fn client_programs_are_offered_with_their_sums_and_nothing_else_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("clients");
    std::fs::create_dir(&dir).unwrap();
    let linux = std::fs::read(client_bin()).unwrap();
    std::fs::write(dir.join("nimbus-client-0.1.0-x86_64-linux"), b"older").unwrap();
    std::fs::write(dir.join("nimbus-client-0.2.0-x86_64-linux"), &linux).unwrap();
    std::fs::write(
        dir.join("nimbus-client-0.2.0-x86_64-windows.exe"),
        b"MZ exe",
    )
    .unwrap();
    std::fs::write(dir.join("nimbus-client-0.2.0-x86_64-linux.sha256"), b"x").unwrap();
    std::fs::write(dir.join("secret.txt"), b"not for download").unwrap();
    let server = Server::start(&["--clients-dir", dir.to_str().unwrap()]);
    let anon = |target: &str, headers: &[(&str, &str)]| {
        let mut h = vec![("Authorization", "")];
        h.extend_from_slice(headers);
        request(server.port, "GET", target, &h, b"")
    };

    // The newest of each system, with size and SHA-256, to anyone.
    let r = anon("/api/v1/clients", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let l = list.iter().find(|b| b["os"] == "linux").unwrap();
    assert_eq!(l["version"], "0.2.0");
    assert_eq!(l["arch"], "x86_64");
    assert_eq!(l["size"], linux.len() as u64);
    let sum = sha256_hex(&linux);
    assert_eq!(l["sha256"], sum.as_str());
    assert_eq!(l["url"], "/clients/nimbus-client-0.2.0-x86_64-linux");

    // The download, whole and in part.
    let r = anon("/clients/nimbus-client-0.2.0-x86_64-linux", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, linux);
    assert_eq!(r.header("ETag"), Some(format!("\"{sum}\"").as_str()));
    let r = anon(
        "/clients/nimbus-client-0.2.0-x86_64-linux",
        &[("Range", "bytes=100-199")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &linux[100..200]);
    let r = anon(
        "/clients/nimbus-client-0.2.0-x86_64-linux",
        &[("If-None-Match", &format!("\"{sum}\""))],
    );
    assert_eq!(r.status, 304);

    // Nothing but builds.
    for target in [
        "/clients/secret.txt",
        "/clients/nimbus-client-0.2.0-x86_64-linux.sha256",
        "/clients/..%2Fdata%2Faccounts.json",
        "/clients/../data/accounts.json",
        "/clients/",
    ] {
        let r = anon(target, &[]);
        assert!(r.status == 404 || r.status == 400, "{target}: {}", r.status);
        assert!(!r.text().contains(tmp.path().to_str().unwrap()));
    }
    let r = request(
        server.port,
        "PUT",
        "/clients/nimbus-client-0.2.0-x86_64-linux",
        &[],
        b"x",
    );
    assert_eq!(r.status, 405);

    // The page offers the visitor's system first, with the commands.
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let r = request(
        server.port,
        "GET",
        "/add-machine",
        &[
            ("Cookie", &format!("nimbus_session={session}")),
            (
                "User-Agent",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120",
            ),
        ],
        b"",
    );
    let page = r.text();
    assert!(page.contains("For this Windows machine"), "{page}");
    assert!(page.contains("nimbus-client-0.2.0-x86_64-windows.exe"));
    assert!(page.contains("nimbus-client.exe install-service --server http://127.0.0.1"));
    assert!(page.contains(&sum), "every build's sum is listed");
}

#[test]
fn without_a_clients_dir_the_page_says_how_to_offer_clients() {
    let server = Server::start(&[]);
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let page = get_with_cookie(&server, "/add-machine", &session).text();
    assert!(page.contains("offers no client programs yet"), "{page}");
    let r = request(
        server.port,
        "GET",
        "/api/v1/clients",
        &[("Authorization", "")],
        b"",
    );
    assert_eq!(r.text(), "[]");
}
