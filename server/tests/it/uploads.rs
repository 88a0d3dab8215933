//! Resumable uploads (`/api/v1/uploads`) over real HTTP against the real
//! server: who may upload where, what a bad piece gets, and that a server
//! killed mid-piece keeps what it acknowledged and continues.

use crate::fixtures::*;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// A browser session: (cookie header value, CSRF token).
fn session(server: &Server, user: &str, password: &str) -> (String, String) {
    let id = browser_login(server, user, password);
    let page = get_with_cookie(server, "/", &id).text();
    (format!("nimbus_session={id}"), csrf_of(&page))
}

/// The headers a browser session sends: its cookie and CSRF token, and no
/// device token.
fn browser_headers((cookie, csrf): &(String, String)) -> [(&'static str, &str); 3] {
    [
        ("Authorization", ""),
        ("Cookie", cookie.as_str()),
        ("X-CSRF-Token", csrf.as_str()),
    ]
}

fn start(server: &Server, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    request(server.port, "POST", "/api/v1/uploads", &h, body.as_bytes())
}

fn piece(server: &Server, id: &str, range: &str, auth: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut h = vec![("Content-Range", range)];
    h.extend_from_slice(auth);
    request(
        server.port,
        "PUT",
        &format!("/api/v1/uploads/{id}"),
        &h,
        body,
    )
}

#[test]
fn sessions_and_devices_upload_only_where_they_may_and_bad_pieces_change_nothing() {
    let server = Server::start(&["--max-upload-bytes", "1000000"]);
    add_user(&server, "bob", "bob password 1");
    let admin = session(&server, ADMIN, ADMIN_PASSWORD);
    let browser = browser_headers(&admin);
    let body =
        r#"{"machine": "uploads", "path": "notes/a b.txt", "size": 10, "mtime": 1700000000}"#;

    // A session without its CSRF token is refused; with it, any machine
    // of the user's own space.
    let r = start(&server, &browser[..2], body);
    assert_eq!(r.status, 403, "{}", r.text());
    let r = start(&server, &browser, body);
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.header("upload-offset"), Some("0"));
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/uploads/{id}").as_str())
    );
    // A device token only into its own machine.
    let r = start(&server, &[], body);
    assert_eq!(r.status, 403, "{}", r.text());
    let r = start(
        &server,
        &[],
        r#"{"machine": "pc", "path": "x.txt", "size": 3}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());

    // Bad starts: traversal, too large, not JSON, unknown fields.
    for (bad, status) in [
        (r#"{"machine": "uploads", "path": "../x", "size": 1}"#, 400),
        (r#"{"machine": "../x", "path": "x", "size": 1}"#, 400),
        (
            r#"{"machine": "uploads", "path": "x", "size": 1000001}"#,
            413,
        ),
        ("not json", 400),
        (
            r#"{"machine": "uploads", "path": "x", "size": 1, "hash": 1}"#,
            400,
        ),
    ] {
        let r = start(&server, &browser, bad);
        assert_eq!(r.status, status, "{bad}: {}", r.text());
        assert!(!r.text().contains(server.data.to_str().unwrap()));
    }

    // Bad pieces: no Content-Range, a range beyond the size, a wrong total,
    // a body that is not the range's length, the wrong start.
    for (range, body, status) in [
        ("", &b"0123"[..], 400),
        ("bytes 0-10/10", b"0123456789a", 400),
        ("bytes 0-3/11", b"0123", 400),
        ("bytes 0-4/10", b"0123", 400),
        ("bytes 4-7/10", b"4567", 409),
    ] {
        let r = piece(&server, &id, range, &browser, body);
        assert_eq!(r.status, status, "{range}: {}", r.text());
        if status == 409 {
            assert_eq!(r.json()["error"], "offset_mismatch");
            assert_eq!(r.header("upload-offset"), Some("0"));
        }
    }
    let state = request(
        server.port,
        "GET",
        &format!("/api/v1/uploads/{id}"),
        &browser,
        b"",
    );
    assert_eq!((state.status, &state.json()["offset"]), (200, &0.into()));

    // Pieces without the CSRF token are refused; another user, or nobody,
    // cannot see or add to this upload (404, as for an unknown one).
    assert_eq!(
        piece(&server, &id, "bytes 0-3/10", &browser[..2], b"0123").status,
        403
    );
    let bob_session = session(&server, "bob", "bob password 1");
    let bob = browser_headers(&bob_session);
    assert_eq!(
        piece(&server, &id, "bytes 0-3/10", &bob, b"0123").status,
        404
    );
    assert_eq!(
        piece(
            &server,
            "00000000000000000000000000000000",
            "bytes 0-3/10",
            &bob,
            b"0123"
        )
        .status,
        404
    );
    assert_eq!(
        piece(&server, &id, "bytes 0-3/10", &[("Authorization", "")], b"0").status,
        401
    );

    // Two good pieces make the version; the answer says so.
    let r = piece(&server, &id, "bytes 0-3/10", &browser, b"0123");
    assert_eq!((r.status, &r.json()["offset"]), (200, &4.into()));
    let r = piece(&server, &id, "bytes 4-9/10", &browser, b"456789");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["result"]["versions"], 1);
    let f = server.file("uploads", "notes/a b.txt").unwrap();
    assert_eq!(
        (f["size"].as_u64(), f["mtime"].as_i64()),
        (Some(10), Some(1700000000))
    );
    let r = server.get("/download/uploads/notes/a%20b.txt");
    assert_eq!(r.body, b"0123456789");
    // A machine only the browser uploads to is no client: never stale.
    let clients = server.get("/api/v1/admin/clients").json();
    let uploads = clients
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["machine"] == "uploads")
        .unwrap();
    assert_eq!(uploads["status"], "browser", "{clients}");

    // Sent again (a lost answer): told where it stands, nothing changes.
    let r = piece(&server, &id, "bytes 4-9/10", &browser, b"456789");
    assert_eq!((r.status, r.header("upload-offset")), (409, Some("10")));
    assert_eq!(
        server.file("uploads", "notes/a b.txt").unwrap()["versions"],
        1
    );

    // Cancelling: gone, and nothing was recorded.
    let r = start(
        &server,
        &browser,
        r#"{"machine": "uploads", "path": "never.txt", "size": 5}"#,
    );
    let other = r.json()["id"].as_str().unwrap().to_string();
    piece(&server, &other, "bytes 0-1/5", &browser, b"ab");
    let target = format!("/api/v1/uploads/{other}");
    assert_eq!(
        request(server.port, "DELETE", &target, &browser[..2], b"").status,
        403
    );
    assert_eq!(
        request(server.port, "DELETE", &target, &browser, b"").status,
        204
    );
    assert_eq!(
        request(server.port, "GET", &target, &browser, b"").status,
        404
    );
    assert!(server.file("uploads", "never.txt").is_none());
    assert_eq!(
        request(server.port, "PATCH", &target, &browser, b"").status,
        405
    );
}

#[test]
fn a_server_killed_mid_piece_keeps_what_it_acknowledged_and_the_upload_continues() {
    let mut server = Server::start(&[]);
    let data = noise(48 << 20, 5);
    let size = data.len();
    let r = start(
        &server,
        &[],
        &format!(r#"{{"machine": "pc", "path": "big.bin", "size": {size}}}"#),
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    let first = 16 << 20;
    let r = piece(
        &server,
        &id,
        &format!("bytes 0-{}/{size}", first - 1),
        &[],
        &data[..first],
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // The second piece: 8 of its 16 MiB sent, then the server dies.
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let head = format!(
        "PUT /api/v1/uploads/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
         Content-Range: bytes {first}-{}/{size}\r\nContent-Length: {}\r\n\r\n",
        bearer(server.port, "pc"),
        2 * first - 1,
        first
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&data[first..first + (8 << 20)]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    server.kill();
    drop(s);
    server.restart();

    // What was acknowledged is there; the cut piece is not counted beyond
    // what was durable, and the file is not visible yet.
    let target = format!("/api/v1/uploads/{id}");
    let state = request(server.port, "GET", &target, &[], b"").json();
    let offset = state["offset"].as_u64().unwrap() as usize;
    assert!(
        (first..=first + (8 << 20)).contains(&offset),
        "offset {offset}"
    );
    assert!(server.file("pc", "big.bin").is_none());

    // Continue from there in one piece: the file is whole.
    let r = piece(
        &server,
        &id,
        &format!("bytes {offset}-{}/{size}", size - 1),
        &[],
        &data[offset..],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let f = server.file("pc", "big.bin").unwrap();
    assert_eq!(f["hash"], hex(&data));
    let r = server.get("/download/pc/big.bin");
    assert!(r.body == data, "the stored file differs");
}

/// A device token may read, add to and cancel only uploads into its own
/// machine: 403 for its user's upload into another machine, 404 for
/// another user's, and nothing changes.
#[test]
fn a_device_cannot_touch_an_upload_into_another_machine() {
    let server = Server::start(&[]);
    add_user(&server, "bob", "bob password 1");
    let admin = session(&server, ADMIN, ADMIN_PASSWORD);
    let browser = browser_headers(&admin);
    let r = start(
        &server,
        &browser,
        r#"{"machine": "laptop", "path": "b.txt", "size": 6}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let target = format!("/api/v1/uploads/{id}");

    // The admin's device "pc" (request()'s default token): 403 everywhere.
    let r = request(server.port, "GET", &target, &[], b"");
    assert_eq!(r.status, 403, "{}", r.text());
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("\"pc\""), "{message}");
    let r = piece(&server, &id, "bytes 0-5/6", &[], b"abcdef");
    assert_eq!(r.status, 403, "{}", r.text());
    let r = request(server.port, "DELETE", &target, &[], b"");
    assert_eq!(r.status, 403, "{}", r.text());

    // Another user's device: as if it did not exist.
    let bob = api_login(server.port, "bob", "bob password 1", "laptop");
    let bob_auth = format!("Bearer {}", bob.json()["token"].as_str().unwrap());
    let bob_h = [("Authorization", bob_auth.as_str())];
    assert_eq!(
        request(server.port, "GET", &target, &bob_h, b"").status,
        404
    );
    assert_eq!(
        piece(&server, &id, "bytes 0-5/6", &bob_h, b"abcdef").status,
        404
    );
    assert_eq!(
        request(server.port, "DELETE", &target, &bob_h, b"").status,
        404
    );

    // Nothing changed: the session sees offset 0 and finishes the upload.
    let r = request(server.port, "GET", &target, &browser, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("upload-offset"), Some("0"));
    assert!(server.file("laptop", "b.txt").is_none());
    let r = piece(&server, &id, "bytes 0-5/6", &browser, b"abcdef");
    assert_eq!(r.status, 201, "{}", r.text());
    // A device token of that machine may look at it.
    let laptop = format!("Bearer {}", token_for(server.port, "laptop"));
    let r = request(
        server.port,
        "GET",
        &target,
        &[("Authorization", laptop.as_str())],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
}
