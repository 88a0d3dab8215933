//! The browser's login: a form, a session cookie (HttpOnly, SameSite=Strict),
//! logout guarded by a CSRF token, and a cookie that is dead after logout.

use crate::fixtures::*;

#[test]
fn log_in_browse_download_and_log_out() {
    let server = Server::start(&[]);
    assert_eq!(
        put_file(server.port, "pc", "docs/a%20%3Cb%3E.txt", b"hello browser").status,
        201
    );

    // Not logged in: the login form, no files.
    let r = request(server.port, "GET", "/", &[("Authorization", "")], b"");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("action=\"/login\"") && !r.text().contains("a <b>.txt"));
    let r = request(
        server.port,
        "GET",
        "/download/pc/docs/a%20%3Cb%3E.txt",
        &[("Authorization", "")],
        b"",
    );
    assert_eq!(r.status, 401);

    // Wrong password: the form again, with a message; no cookie.
    let r = post_form(&server, "/login", "user=admin&password=wrong", None);
    assert_eq!(r.status, 401);
    assert!(r.text().contains("Wrong user name or password"));
    assert!(r.header("set-cookie").is_none());

    // Right password: a session cookie with the protective attributes.
    let form = format!("user=admin&password={}", ADMIN_PASSWORD.replace(' ', "+"));
    let r = post_form(&server, "/login", &form, None);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));
    let set = r.header("set-cookie").unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    let session = session_of(&r);

    let page = get_with_cookie(&server, "/", &session);
    assert!(page.text().contains("Logged in as <b>admin</b>"));
    let all = get_with_cookie(&server, "/files", &session).text();
    assert!(all.contains("a &lt;b&gt;.txt"), "names are escaped");
    let csrf = csrf_of(&page.text());
    let r = get_with_cookie(&server, "/download/pc/docs/a%20%3Cb%3E.txt", &session);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello browser"[..]));

    // Logging out needs the page's CSRF token: missing or forged, refused.
    let r = post_form(&server, "/logout", "", Some(&session));
    assert_eq!(r.status, 403);
    let r = post_form(&server, "/logout", "csrf=0000", Some(&session));
    assert_eq!(r.status, 403);
    assert_eq!(
        get_with_cookie(&server, "/api/v1/files", &session).status,
        200,
        "still logged in"
    );
    let r = post_form(&server, "/logout", &format!("csrf={csrf}"), Some(&session));
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));

    // The old cookie, replayed, is worth nothing.
    assert_eq!(
        get_with_cookie(&server, "/api/v1/files", &session).status,
        401
    );
    assert!(get_with_cookie(&server, "/", &session)
        .text()
        .contains("action=\"/login\""));
    assert_eq!(
        get_with_cookie(&server, "/", "forged-session-id").status,
        200
    );
    assert_eq!(
        get_with_cookie(&server, "/api/v1/files", "forged-session-id").status,
        401
    );
}

#[test]
fn a_disabled_users_session_ends_at_once() {
    let server = Server::start(&[]);
    let out = server.command(
        &["user", "add", "erin", "--password-stdin"],
        "erin's password\n",
    );
    assert!(out.status.success());
    let r = post_form(
        &server,
        "/login",
        "user=erin&password=erin%27s+password",
        None,
    );
    assert_eq!(r.status, 303);
    let session = session_of(&r);
    assert_eq!(
        get_with_cookie(&server, "/api/v1/files", &session).status,
        200
    );
    assert!(server
        .command(&["user", "disable", "erin"], "")
        .status
        .success());
    assert_eq!(
        get_with_cookie(&server, "/api/v1/files", &session).status,
        401
    );
}

#[test]
fn forms_from_another_site_are_refused() {
    let server = Server::start(&[]);
    let form = format!("user=admin&password={}", form_encode(ADMIN_PASSWORD));
    // From another site: refused, no cookie. From the server's own: works.
    for (origin, status) in [("http://evil.example", 403), ("http://127.0.0.1", 303)] {
        let r = request(
            server.port,
            "POST",
            "/login",
            &[
                ("Authorization", ""),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", origin),
            ],
            form.as_bytes(),
        );
        assert_eq!(r.status, status, "{origin}: {}", r.text());
        assert_eq!(r.header("set-cookie").is_some(), status == 303);
    }
}

#[test]
fn machines_are_listed_and_revoked_from_the_page() {
    let server = Server::start(&[]);
    let mut token = std::collections::HashMap::new();
    let mut device = std::collections::HashMap::new();
    for m in ["laptop", "desk<&>"] {
        let r = api_login(server.port, ADMIN, ADMIN_PASSWORD, m);
        assert_eq!(r.status, 200, "{}", r.text());
        token.insert(m, format!("Bearer {}", r.json()["token"].as_str().unwrap()));
        device.insert(m, r.json()["device"].as_str().unwrap().to_string());
    }
    let files_status = |m: &str| {
        request(
            server.port,
            "GET",
            "/api/v1/files",
            &[("Authorization", &token[m])],
            b"",
        )
        .status
    };
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let page = get_with_cookie(&server, "/", &session).text();
    assert!(page.contains("<td>laptop</td>") && page.contains("<td>desk&lt;&amp;&gt;</td>"));
    assert!(page.contains("2 logged in, 0 revoked"), "{page}");
    let action = format!("action=\"/devices/{}/revoke\"", device["laptop"]);
    assert!(page.contains(&action), "{page}");
    let csrf = csrf_of(&page);

    // Without the CSRF token, or with a forged one: refused, nothing revoked.
    let target = format!("/devices/{}/revoke", device["laptop"]);
    assert_eq!(post_form(&server, &target, "", Some(&session)).status, 403);
    assert_eq!(
        post_form(&server, &target, "csrf=forged", Some(&session)).status,
        403
    );
    assert_eq!(files_status("laptop"), 200);

    // With it: revoked at once; the other machine goes on.
    let r = post_form(&server, &target, &format!("csrf={csrf}"), Some(&session));
    assert_eq!((r.status, r.header("location")), (303, Some("/")));
    assert_eq!(files_status("laptop"), 401);
    assert_eq!(files_status("desk<&>"), 200);
    let page = get_with_cookie(&server, "/", &session).text();
    assert!(page.contains("1 logged in, 1 revoked") && !page.contains(&action));

    // Another user's device, or one that does not exist: 404 alike.
    add_user(&server, "bob", "bob's password");
    let bob = browser_login(&server, "bob", "bob's password");
    let bob_csrf = csrf_of(&get_with_cookie(&server, "/", &bob).text());
    let desk = format!("/devices/{}/revoke", device["desk<&>"]);
    let form = format!("csrf={bob_csrf}");
    assert_eq!(post_form(&server, &desk, &form, Some(&bob)).status, 404);
    assert_eq!(
        post_form(&server, "/devices/000000000000/revoke", &form, Some(&bob)).status,
        404
    );
    assert_eq!(files_status("desk<&>"), 200);

    // The API route, from a session, needs the X-CSRF-Token header.
    let api = format!("/api/v1/devices/{}", device["desk<&>"]);
    let cookie = format!("nimbus_session={session}");
    let r = request(
        server.port,
        "DELETE",
        &api,
        &[("Authorization", ""), ("Cookie", &cookie)],
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(files_status("desk<&>"), 200);

    // A machine's token may revoke only that machine.
    let r = request(
        server.port,
        "DELETE",
        &api,
        &[("Authorization", &bearer(server.port, "pc"))],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(files_status("desk<&>"), 200);

    let r = request(
        server.port,
        "DELETE",
        &api,
        &[
            ("Authorization", ""),
            ("Cookie", &cookie),
            ("X-CSRF-Token", &csrf),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(files_status("desk<&>"), 401);
}

#[test]
fn machines_folders_breadcrumbs_sorting_and_search() {
    let server = Server::start(&[]);
    for (path, len) in [
        ("docs/2026/tax%20%3Creturn%3E.pdf", 3000),
        ("docs/2026/notes.txt", 10),
        ("docs/readme.md", 200),
        ("photos/cat.jpg", 50_000),
    ] {
        assert_eq!(
            put_file(server.port, "pc", path, &noise(len, len as u64)).status,
            201
        );
    }
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let get = |t: &str| {
        let r = get_with_cookie(&server, t, &session);
        assert_eq!(r.status, 200, "{t}");
        r.text()
    };

    // Home: the machine with its count and size, linking to its folders.
    let home = get("/");
    assert!(home.contains("<a href=\"/browse/pc/\">pc</a>"), "{home}");
    assert!(home.contains("<p>4 files, "), "{home}");

    // A machine: folders first with their sizes and counts added up.
    let top = get("/browse/pc/");
    let docs = top.find("docs/</a>").unwrap();
    let photos = top.find("photos/</a>").unwrap();
    assert!(docs < photos);
    assert!(top.contains("3 files") && top.contains("3.1 KiB"), "{top}");

    // Deeper, with breadcrumbs back up, escaped names and working links.
    let deep = get("/browse/pc/docs/2026/");
    assert!(deep.contains("<a href=\"/\">Machines</a> / <a href=\"/browse/pc/\">pc</a> / <a href=\"/browse/pc/docs/\">docs</a> / <a href=\"/browse/pc/docs/2026/\">2026</a>"), "{deep}");
    assert!(deep.contains("tax &lt;return&gt;.pdf") && !deep.contains("tax <return>"));
    assert!(deep.contains("href=\"/download/pc/docs/2026/tax%20%3Creturn%3E.pdf\""));
    let r = get_with_cookie(
        &server,
        "/download/pc/docs/2026/tax%20%3Creturn%3E.pdf",
        &session,
    );
    assert_eq!(r.body, noise(3000, 3000));

    // Sorting: by name (default), by size (largest first).
    let by_name = get("/browse/pc/docs/2026/");
    assert!(by_name.find("notes.txt").unwrap() < by_name.find("tax &lt;").unwrap());
    let by_size = get("/browse/pc/docs/2026/?sort=size");
    assert!(by_size.find("tax &lt;").unwrap() < by_size.find("notes.txt").unwrap());

    // Search across machines, by part of the name, ignoring case.
    let found = get("/search?q=TAX");
    assert!(
        found.contains("1 found") && found.contains("docs/2026/tax &lt;return&gt;.pdf"),
        "{found}"
    );
    assert!(get("/search?q=nothing-like-this").contains("0 found"));
    assert_eq!(
        get_with_cookie(&server, &format!("/search?q={}", "x".repeat(300)), &session).status,
        400
    );

    // Nothing of another user's, and no folder that is not there.
    assert_eq!(
        get_with_cookie(&server, "/browse/pc/nope/", &session).status,
        404
    );
    add_user(&server, "eve", "eve's password");
    let eve = browser_login(&server, "eve", "eve's password");
    assert_eq!(get_with_cookie(&server, "/browse/pc/", &eve).status, 404);
    assert!(get_with_cookie(&server, "/search?q=tax", &eve)
        .text()
        .contains("0 found"));
    assert_eq!(
        get_with_cookie(&server, "/browse/pc/../../", &session).status,
        400
    );
}

#[test]
fn every_page_carries_the_content_security_policy() {
    let server = Server::start(&[]);
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let anonymous =
        |target: &str| request(server.port, "GET", target, &[("Authorization", "")], b"");
    let pages = [
        anonymous("/"),
        anonymous("/register"),
        post_form(&server, "/login", "user=admin&password=wrong", None),
        get_with_cookie(&server, "/", &session),
        get_with_cookie(&server, "/files", &session),
        get_with_cookie(&server, "/search?q=x", &session),
        get_with_cookie(&server, "/admin", &session),
    ];
    for r in &pages {
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("text/html")),
            "{} {}",
            r.status,
            r.text()
        );
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{}: {csp:?}",
            r.status
        );
    }
}

#[test]
fn the_session_route_tells_a_page_its_csrf_token() {
    let server = Server::start(&[]);
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let page = get_with_cookie(&server, "/", &session).text();
    let r = get_with_cookie(&server, "/api/v1/session", &session);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    assert_eq!(
        (v["user"].as_str(), v["role"].as_str()),
        (Some(ADMIN), Some("admin"))
    );
    assert_eq!(v["csrf"].as_str().unwrap(), csrf_of(&page));
    // A device token has no CSRF token; nobody gets 401.
    let v = server.get("/api/v1/session").json();
    assert_eq!(
        (v["machine"].as_str(), &v["csrf"]),
        (Some("pc"), &serde_json::Value::Null)
    );
    let r = request(
        server.port,
        "GET",
        "/api/v1/session",
        &[("Authorization", "")],
        b"",
    );
    assert_eq!(r.status, 401);
}
