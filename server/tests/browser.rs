//! The browser's login: a form, a session cookie (HttpOnly, SameSite=Strict),
//! logout guarded by a CSRF token, and a cookie that is dead after logout.

mod fixtures;
use fixtures::*;

fn post_form(server: &Server, target: &str, form: &str, cookie: Option<&str>) -> Resp {
    let mut headers = vec![
        ("Authorization", ""),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let c;
    if let Some(v) = cookie {
        c = format!("nimbus_session={v}");
        headers.push(("Cookie", &c));
    }
    request(server.port, "POST", target, &headers, form.as_bytes())
}

fn get_with_cookie(server: &Server, target: &str, cookie: &str) -> Resp {
    let c = format!("other=1; nimbus_session={cookie}");
    request(
        server.port,
        "GET",
        target,
        &[("Authorization", ""), ("Cookie", &c)],
        b"",
    )
}

fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

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
    let session = set
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("nimbus_session=")
        .unwrap()
        .to_string();

    let page = get_with_cookie(&server, "/", &session);
    assert!(page.text().contains("Logged in as <b>admin</b>"));
    assert!(page.text().contains("a &lt;b&gt;.txt"), "names are escaped");
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
    let set = r.header("set-cookie").unwrap().to_string();
    let session = set
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("nimbus_session=")
        .unwrap()
        .to_string();
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
