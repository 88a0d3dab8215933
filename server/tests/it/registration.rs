//! Accounts made from the browser: closed by default (single-use invite
//! links made by an admin on /admin), or open to anyone with
//! `--registration open`, within per-address limits.

use crate::fixtures::*;

fn get(server: &Server, target: &str) -> Resp {
    request(server.port, "GET", target, &[("Authorization", "")], b"")
}

fn register(server: &Server, user: &str, password: &str, invite: Option<&str>) -> Resp {
    let mut form = format!(
        "user={}&password={p}&password2={p}",
        form_encode(user),
        p = form_encode(password)
    );
    if let Some(i) = invite {
        form.push_str(&format!("&invite={}", form_encode(i)));
    }
    post_form(server, "/register", &form, None)
}

fn users(server: &Server) -> String {
    let out = server.command(&["user", "list"], "");
    assert_ok(&out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The admin makes an invite on /admin; returns its secret.
fn new_invite(server: &Server, session: &str) -> String {
    let csrf = csrf_of(&get_with_cookie(server, "/admin", session).text());
    let r = post_form(
        server,
        "/admin/invites",
        &format!("csrf={csrf}"),
        Some(session),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.text();
    let link = page
        .split("id=\"invite-link\" readonly size=\"90\" value=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no invite link in {page}"))
        .split('"')
        .next()
        .unwrap();
    let prefix = "http://127.0.0.1/register?invite=";
    assert!(link.starts_with(prefix), "{link}");
    link[prefix.len()..].to_string()
}

#[test]
fn closed_registration_takes_only_single_use_invites() {
    let server = Server::start(&[]);

    // Closed by default: no form, no link on the login page, no account.
    let r = get(&server, "/register");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("Registration is closed"));
    assert!(!get(&server, "/").text().contains("/register"));
    let r = register(&server, "mallory", "mallory's password", None);
    assert_eq!(r.status, 403);
    assert!(r.header("set-cookie").is_none());
    assert!(!users(&server).contains("mallory"));

    // Only an admin, from the page, with the CSRF token, makes invites.
    let admin = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    assert_eq!(
        post_form(&server, "/admin/invites", "", Some(&admin)).status,
        403
    );
    assert_eq!(
        post_form(&server, "/admin/invites", "csrf=forged", Some(&admin)).status,
        403
    );
    add_user(&server, "bob", "bob's password");
    let bob = browser_login(&server, "bob", "bob's password");
    let bob_csrf = csrf_of(&get_with_cookie(&server, "/", &bob).text());
    assert_eq!(
        post_form(
            &server,
            "/admin/invites",
            &format!("csrf={bob_csrf}"),
            Some(&bob)
        )
        .status,
        403
    );
    assert!(get_with_cookie(&server, "/admin", &admin)
        .text()
        .contains("0 open invite links"));

    let secret = new_invite(&server, &admin);
    assert!(get_with_cookie(&server, "/admin", &admin)
        .text()
        .contains("1 open invite link."));
    let r = get(&server, &format!("/register?invite={secret}"));
    assert_eq!(r.status, 200);
    assert!(r
        .text()
        .contains(&format!("name=\"invite\" value=\"{secret}\"")));
    let r = get(&server, "/register?invite=0123456789abcdef");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("not valid"));

    // Sent from another site: refused, and the invite stays good.
    let form = format!("user=carol&password=carolpass&password2=carolpass&invite={secret}");
    let r = request(
        server.port,
        "POST",
        "/register",
        &[
            ("Authorization", ""),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", "http://evil.example"),
        ],
        form.as_bytes(),
    );
    assert_eq!(r.status, 403);
    // Mistakes do not spend it either, and hostile names come back escaped.
    let r = post_form(
        &server,
        "/register",
        &format!("user=carol&password=carolpass&password2=other&invite={secret}"),
        None,
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("passwords differ"));
    let r = register(&server, "<script>x", "carol's password", Some(&secret));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("&lt;script&gt;x") && !r.text().contains("<script>x"));

    // Used once: an account (not an admin) and a session.
    let r = register(&server, "carol", "carol's password", Some(&secret));
    assert_eq!((r.status, r.header("location")), (303, Some("/")));
    let carol = session_of(&r);
    assert!(get_with_cookie(&server, "/", &carol)
        .text()
        .contains("Logged in as <b>carol</b>"));
    assert_eq!(get_with_cookie(&server, "/admin", &carol).status, 403);
    assert_eq!(
        api_login(server.port, "carol", "carol's password", "m").status,
        200
    );
    // ... and never again.
    let r = register(&server, "dave", "dave's password", Some(&secret));
    assert_eq!(r.status, 403);
    assert!(!users(&server).contains("dave"));

    // A withdrawn invite is dead too.
    let second = new_invite(&server, &admin);
    let page = get_with_cookie(&server, "/admin", &admin).text();
    let action = page
        .split("action=\"/admin/invites/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = post_form(
        &server,
        &format!("/admin/invites/{action}"),
        &format!("csrf={}", csrf_of(&page)),
        Some(&admin),
    );
    assert_eq!(r.status, 303);
    let r = register(&server, "erin", "erin's password", Some(&second));
    assert_eq!(r.status, 403);
    assert!(!users(&server).contains("erin"));
    // Guessing invites, by GET or POST, meets growing delays.
    let statuses: Vec<u16> = (0..4)
        .map(|i| get(&server, &format!("/register?invite=guess{i}")).status)
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let r = register(&server, "frank", "frank's password", Some("guess"));
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    assert!(!users(&server).contains("frank"));

    // The secrets are not in the accounts file, only their hashes.
    let file = std::fs::read_to_string(server.data.join("accounts.json")).unwrap();
    assert!(!file.contains(&secret) && !file.contains(&second));
}

#[test]
fn open_registration_lets_anyone_register_within_limits() {
    let server = Server::start(&["--registration", "open"]);
    assert!(get(&server, "/")
        .text()
        .contains("<a href=\"/register\">Create an account</a>"));
    assert_eq!(get(&server, "/register").status, 200);

    let r = register(&server, "zoe", "zoe's password", None);
    assert_eq!(r.status, 303, "{}", r.text());
    let zoe = session_of(&r);
    assert!(get_with_cookie(&server, "/", &zoe)
        .text()
        .contains("Logged in as <b>zoe</b>"));
    assert_eq!(get_with_cookie(&server, "/admin", &zoe).status, 403);

    // Taken names (including the admin's) are refused and change nothing.
    let r = register(&server, "zoe", "another password", None);
    assert_eq!(r.status, 409);
    assert!(r.text().contains("taken"));
    assert_eq!(
        register(&server, ADMIN, "another password", None).status,
        409
    );
    assert_eq!(
        api_login(server.port, ADMIN, ADMIN_PASSWORD, "m").status,
        200,
        "the admin's password is unchanged"
    );

    // One address cannot make accounts without end: delays grow.
    let r = register(&server, "yan", "yan's password", None);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert!(!users(&server).contains("yan"));
}
