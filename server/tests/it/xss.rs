//! Markup in anything a user or a machine names (machine names, paths, a
//! client's report, a search, a user name typed into a form, the Host a
//! browser sent) is text on every page, never markup: the pages are maud
//! templates, which escape every value.

use crate::fixtures::*;
use std::io::Write;
use std::net::TcpStream;

/// A machine name and a path that would be markup if pasted into a page.
/// (Neither may hold a '/', so no closing tags.)
const MACHINE: &str = "<img src=x onerror=alert(\"m\")>&'";
const FOLDER: &str = "<u>\"x\"&'";
const FILE: &str = "<svg onload=alert(1)>.txt";

/// Percent-encodes a path segment for a request target.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A page is safe when the only script element is the server's own, no
/// hostile tag survives, and no hostile quote ends an attribute.
fn assert_inert(what: &str, r: &Resp) {
    let page = r.text();
    assert_eq!(
        page.matches("<script").count(),
        1,
        "{what}: a script element besides app.js: {page}"
    );
    assert!(
        page.contains("<script src=\"/assets/") && page.contains("/app.js\" defer></script>"),
        "{what}: the script's tag"
    );
    // The server's own SVGs (charts, the icons and their symbols) are the
    // only ones a page may hold.
    let page = page
        .replace("<svg role=\"img\" aria-labelledby=\"", "")
        .replace("<svg class=\"icon", "")
        .replace("<svg class=\"icon-sprite\"", "");
    for raw in ["<u>", "<img", "<svg", "<i>", "\"x\"", "\"m\"", "\"o'"] {
        assert!(!page.contains(raw), "{what}: {raw:?} unescaped in {page}");
    }
}

/// The machine's name as a page shows it.
const MACHINE_SHOWN: &str = "&lt;img src=x onerror=alert(&quot;m&quot;)&gt;&amp;'";

#[test]
fn markup_in_names_paths_reports_and_forms_is_text_on_every_page() {
    let server = Server::start(&["--registration", "open"]);
    let port = server.port;
    let token = bearer(port, MACHINE);
    let (m, path) = (seg(MACHINE), format!("{}/{}", seg(FOLDER), seg(FILE)));
    let data = b"contents";
    let hash = blake3::hash(data).to_hex().to_string();
    let up = request(
        port,
        "PUT",
        &format!("/api/v1/files/{m}/{path}"),
        &[
            ("X-Nimbus-Hash", &hash),
            ("X-Nimbus-Mtime", "1700000000"),
            ("Authorization", &token),
        ],
        data,
    );
    assert_eq!(up.status, 201, "{}", up.text());
    let report = serde_json::json!({
        "version": "<script>v</script>",
        "os": "\"o'<i>",
        "errors": 1,
        "last_error": "<script>e</script> \"x\"",
    })
    .to_string();
    let r = request(
        port,
        "POST",
        "/api/v1/status",
        &[("Authorization", &token)],
        report.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.text());

    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let at = (nimbus_common::time::unix_now() + 5).to_string();
    let pages = [
        ("/".to_string(), true),
        ("/files".into(), true),
        (format!("/files?at={at}&deleted=1"), true),
        ("/search?q=svg".into(), true),
        (format!("/browse/{m}/"), true),
        (format!("/browse/{m}/{}/", seg(FOLDER)), true),
        (format!("/browse/{m}/?sort=size&at={at}"), true),
        (format!("/versions/{m}/{path}"), true),
        ("/admin".into(), true),
        (format!("/admin/tree/{ADMIN}/{m}/"), true),
        (format!("/admin/tree/{ADMIN}/{m}/{}/", seg(FOLDER)), true),
        // The search box and heading echo the query.
        ("/search?q=%3Cscript%3E%22x%22".into(), false),
    ];
    for (target, shows_machine) in &pages {
        let r = get_with_cookie(&server, target, &session);
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        assert_inert(target, &r);
        if *shows_machine {
            assert!(
                r.text().contains(MACHINE_SHOWN),
                "{target} does not show the machine: {}",
                r.text()
            );
        }
    }
    let search = get_with_cookie(&server, "/search?q=%3Cscript%3E%22x%22", &session).text();
    assert!(
        search.contains("value=\"&lt;script&gt;&quot;x&quot;\""),
        "{search}"
    );
    let versions = get_with_cookie(&server, &format!("/versions/{m}/{path}"), &session).text();
    assert!(versions.contains("&lt;u&gt;&quot;x&quot;&amp;'/&lt;svg onload=alert(1)&gt;.txt"));
    let admin = get_with_cookie(&server, "/admin", &session).text();
    assert!(
        admin.contains("&lt;script&gt;v&lt;/script&gt; on &quot;o'&lt;i&gt;"),
        "{admin}"
    );
    assert!(admin.contains("1 error: &lt;script&gt;e&lt;/script&gt; &quot;x&quot;"));

    // The pages before logging in: the login page (and its message), the
    // registration form echoing a refused name (user names cannot hold
    // markup, so only forms ever show one), an invalid invite.
    assert_inert(
        "login page",
        &request(port, "GET", "/", &[("Authorization", "")], b""),
    );
    let wrong = post_form(&server, "/login", "user=%3Cu%3E&password=%22x%22", None);
    assert_eq!(wrong.status, 401);
    assert!(!wrong.text().contains("<u>") && wrong.text().matches("<script").count() == 1);
    let refused = post_form(
        &server,
        "/register",
        "user=%3Cscript%3Ex%22&password=long+enough+pw&password2=long+enough+pw",
        None,
    );
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(refused.text().contains("value=\"&lt;script&gt;x&quot;\""));
    assert_eq!(refused.text().matches("<script").count(), 1);
    let bogus = request(
        port,
        "GET",
        "/register?invite=%3Cscript%3E",
        &[("Authorization", "")],
        b"",
    );
    assert_eq!(bogus.status, 403);
    assert_inert("register with a bogus invite", &bogus);

    // A new invite link is built from the Host the browser sent.
    let page = get_with_cookie(&server, "/admin", &session).text();
    let form = format!("csrf={}", form_encode(&csrf_of(&page)));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /admin/invites HTTP/1.1\r\nHost: \"><script>h</script>\r\nConnection: close\r\n\
         Cookie: nimbus_session={session}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let invite = read_response(s, false);
    assert_eq!(invite.status, 200, "{}", invite.text());
    assert_inert("new invite", &invite);
    assert!(invite
        .text()
        .contains("value=\"http://&quot;&gt;&lt;script&gt;h&lt;/script&gt;/register?invite="));
}
