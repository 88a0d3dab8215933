//! Bad input gets a clear 4xx (or 507 for a full disk) and changes nothing:
//! traversal in every spelling, oversized and torn bodies, wrong hashes,
//! unknown routes and methods. No answer names a server path.

use crate::fixtures::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

const TRAVERSALS: &[&str] = &[
    "pc/../etc/passwd",
    "pc/%2e%2e/%2e%2e/etc/passwd",
    "pc/%2E%2E/x",
    "pc/a/%2e%2e/b",
    "pc/./a",
    "pc/a%2F..%2F..%2Fb",
    "pc/%2Fetc%2Fpasswd",
    "pc//etc/passwd",
    "pc/a/",
    "pc/C:/Windows/win.ini",
    "pc/c%3A%5Cwindows",
    "pc/a%5C..%5Cb",
    "pc/a\\b",
    "pc/a%00b",
    "pc/%ff%fe",
    "../etc/passwd",
    "%2e%2e/x",
    "a%2Fb/x",
    "pc%00/x",
];

fn assert_nothing_stored(server: &Server) {
    assert!(server.files().is_empty(), "{:?}", server.files());
    assert!(server.blob_files().is_empty(), "{:?}", server.blob_files());
    assert!(server.tmp_files().is_empty(), "{:?}", server.tmp_files());
}

fn assert_no_path_leak(server: &Server, r: &Resp) {
    let body = r.text();
    let data = server.data.to_string_lossy();
    assert!(!body.contains(&*data), "answer leaks a server path: {body}");
    assert!(
        !body.contains("/tmp/"),
        "answer leaks a server path: {body}"
    );
}

#[test]
fn traversal_is_refused_in_every_spelling() {
    let server = Server::start(&[]);
    for t in TRAVERSALS {
        let r = put_file(
            server.port,
            t.split_once('/').unwrap().0,
            t.split_once('/').unwrap().1,
            b"evil",
        );
        assert!(r.status == 400 || r.status == 404, "PUT {t}: {}", r.status);
        assert_no_path_leak(&server, &r);
        let r = server.get(&format!("/download/{t}"));
        assert!(r.status == 400 || r.status == 404, "GET {t}: {}", r.status);
        assert_no_path_leak(&server, &r);
    }
    let r = put_file(server.port, "pc", "a/%2e%2e/b", b"evil");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "bad_path");
    assert!(r.json()["message"].as_str().unwrap().contains(".."));
    assert_nothing_stored(&server);
}

#[test]
fn oversized_uploads_get_413_and_keep_nothing() {
    let server = Server::start(&["--max-upload-bytes", "1000"]);
    let data = noise(5000, 1);
    let r = put_file(server.port, "pc", "big.bin", &data);
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "too_large");
    // Chunked: the limit is enforced while streaming.
    let mut chunked = Vec::new();
    for chunk in data.chunks(700) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = request(
        server.port,
        "PUT",
        "/api/v1/files/pc/big.bin",
        &[
            ("X-Nimbus-Hash", &hex(&data)),
            ("Transfer-Encoding", "chunked"),
        ],
        &chunked,
    );
    assert_eq!(r.status, 413);
    // A declared length far beyond memory is refused without trouble.
    let r = request(
        server.port,
        "PUT",
        "/api/v1/files/pc/huge.bin",
        &[
            ("X-Nimbus-Hash", &hex(b"")),
            ("Content-Length", "99999999999999999"),
        ],
        b"",
    );
    assert_eq!(r.status, 413);
    assert_eq!(server.get("/healthz").status, 200, "server survived");
    assert_nothing_stored(&server);
    // Within the limit all is well.
    assert_eq!(
        put_file(server.port, "pc", "ok.bin", &data[..1000]).status,
        201
    );
}

#[test]
fn a_wrong_hash_keeps_nothing() {
    let server = Server::start(&[]);
    let r = request(
        server.port,
        "PUT",
        "/api/v1/files/pc/f.txt",
        &[("X-Nimbus-Hash", &hex(b"something else"))],
        b"actual content",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "hash_mismatch");
    for (headers, code) in [
        (vec![], "missing_hash"),
        (vec![("X-Nimbus-Hash", "xyz")], "bad_hash"),
        (
            vec![
                ("X-Nimbus-Hash", "0".repeat(64).leak() as &str),
                ("X-Nimbus-Mtime", "yesterday"),
            ],
            "bad_mtime",
        ),
    ] {
        let r = request(
            server.port,
            "PUT",
            "/api/v1/files/pc/f.txt",
            &headers,
            b"actual content",
        );
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["error"], code);
    }
    assert_nothing_stored(&server);
}

#[test]
fn a_torn_body_keeps_nothing() {
    let server = Server::start(&[]);
    let data = noise(200_000, 2);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        s,
        "PUT /api/v1/files/pc/torn.bin HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nX-Nimbus-Hash: {}\r\nContent-Length: {}\r\n\r\n",
        bearer(server.port, "pc"),
        hex(&data),
        data.len()
    )
    .unwrap();
    s.write_all(&data[..100_000]).unwrap();
    drop(s);
    wait_for(10, "the staging file to go", || {
        server.tmp_files().is_empty()
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_nothing_stored(&server);
}

#[test]
fn records_by_reference_need_known_content_and_valid_json() {
    let server = Server::start(&[]);
    let unknown = format!(r#"{{"hash":"{}","size":5,"mtime":1}}"#, hex(b"never"));
    let r = request(
        server.port,
        "POST",
        "/api/v1/files/pc/x",
        &[],
        unknown.as_bytes(),
    );
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"], "content_unknown");
    for bad in ["", "{", "[]", r#"{"hash":"zz","size":1,"mtime":1}"#] {
        let r = request(
            server.port,
            "POST",
            "/api/v1/files/pc/x",
            &[],
            bad.as_bytes(),
        );
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["error"], "bad_json");
    }
    let big = vec![b' '; 100_000];
    let r = request(server.port, "POST", "/api/v1/files/pc/x", &[], &big);
    assert_eq!(r.status, 413);
    assert_nothing_stored(&server);

    // Known content is recorded without its bytes, also under a wrong size: no.
    assert_eq!(put_file(server.port, "pc", "orig", b"known").status, 201);
    let known = format!(r#"{{"hash":"{}","size":5,"mtime":1}}"#, hex(b"known"));
    let r = request(
        server.port,
        "POST",
        "/api/v1/files/pc/copy",
        &[],
        known.as_bytes(),
    );
    assert_eq!(r.status, 201);
    assert_eq!(server.get("/download/pc/copy").body, b"known");
    let lying = format!(r#"{{"hash":"{}","size":6,"mtime":1}}"#, hex(b"known"));
    let r = request(
        server.port,
        "POST",
        "/api/v1/files/pc/copy2",
        &[],
        lying.as_bytes(),
    );
    assert_eq!(r.status, 409);
}

#[test]
fn unknown_routes_404_and_wrong_methods_405() {
    let server = Server::start(&[]);
    assert_eq!(server.get("/nope").status, 404);
    assert_eq!(server.get("/api/v2/files").status, 404);
    assert_eq!(server.get("/download/pc").status, 404);
    for (m, target, allow) in [
        ("POST", "/", "GET, HEAD"),
        ("DELETE", "/api/v1/files", "GET, HEAD"),
        ("PATCH", "/api/v1/files/pc/x", "PUT, POST, DELETE"),
        ("DELETE", "/api/v1/versions/pc/x", "GET, HEAD"),
        ("GET", "/api/v1/files/pc/x", "PUT, POST, DELETE"),
        ("PUT", "/download/pc/x", "GET, HEAD"),
    ] {
        let r = request(server.port, m, target, &[], b"");
        assert_eq!(r.status, 405, "{m} {target}");
        assert_eq!(r.header("allow"), Some(allow));
        assert_eq!(r.json()["error"], "method_not_allowed");
    }
    // Garbage request lines and headers get 400, not a crash.
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(b"THIS IS NOT HTTP\r\n\r\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    assert!(line.contains(" 400 "), "{line}");
    // A request line over 8 KiB: 414 (docs/PROTOCOL.md, "Limits").
    let long = "a".repeat(20_000);
    let r = server.get(&format!("/download/pc/{long}"));
    assert_eq!(r.status, 414);
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn a_full_queue_answers_503_at_once() {
    let server = Server::start(&["--workers", "1", "--queue", "1"]);
    // An upload whose body never finishes: with `n` its name.
    let slow_upload = |n: u32| {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        write!(
            s,
            "PUT /api/v1/files/pc/slow{n} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nX-Nimbus-Hash: {}\r\nContent-Length: 100000\r\n\r\nabc",
            bearer(server.port, "pc"),
            "0".repeat(64)
        )
        .unwrap();
        s
    };
    // The only upload worker receives the first; the second waits in the
    // upload queue; the third finds it full.
    let slow = slow_upload(1);
    std::thread::sleep(Duration::from_millis(300));
    let queued = slow_upload(2);
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let third = slow_upload(3);
    let r = read_response(third, false);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(started.elapsed() < Duration::from_secs(2));
    // Requests without a body to receive have their own lane: served.
    assert_eq!(server.get("/healthz").status, 200);
    drop(slow);
    // The queued upload now gets its worker; its body is cut short.
    queued.shutdown(std::net::Shutdown::Write).unwrap();
    let r = read_response(queued, false);
    assert_eq!(r.status, 400, "{}", r.text());
}

/// Starts a server whose data directory is a 4 MiB tmpfs, in a private
/// mount namespace (works as root and, with user namespaces, without), with
/// an admin account; returns it, its port and a bearer token.
fn server_on_small_disk(dir: &std::path::Path) -> Option<(std::process::Child, u16, String)> {
    let mut child = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c"])
        .arg(
            r#"mount -t tmpfs -o size=4m tmpfs "$0" && echo "$2" | "$1" --data "$0/data" user add admin --admin --password-stdin >/dev/null && exec "$1" --listen 127.0.0.1:0 --data "$0/data""#,
        )
        .arg(dir)
        .arg(server_bin())
        .arg(ADMIN_PASSWORD)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .ok()?;
    let port = line
        .trim()
        .strip_prefix("listening on http://127.0.0.1:")?
        .parse()
        .ok()?;
    let body =
        serde_json::json!({"user": ADMIN, "password": ADMIN_PASSWORD, "machine": "pc"}).to_string();
    let r = request(port, "POST", "/api/v1/login", &[], body.as_bytes());
    let token = r.json()["token"].as_str()?.to_string();
    Some((child, port, format!("Bearer {token}")))
}

fn put_with(port: u16, auth: &str, path: &str, data: &[u8]) -> Resp {
    request(
        port,
        "PUT",
        &format!("/api/v1/files/pc/{path}"),
        &[("X-Nimbus-Hash", &hex(data)), ("Authorization", auth)],
        data,
    )
}

#[test]
fn a_full_disk_answers_507_and_keeps_the_catalog() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((mut child, port, auth)) = server_on_small_disk(tmp.path()) else {
        // Without mount rights there is no small disk to fill; CI runs as root.
        assert!(
            !is_root(),
            "as root a tmpfs must be mountable for this test"
        );
        eprintln!("skipped: cannot mount a tmpfs here (not root, no user namespaces)");
        return;
    };
    let small = noise(500_000, 3);
    assert_eq!(put_with(port, &auth, "small.bin", &small).status, 201);
    let big = noise(6 << 20, 4);
    let r = put_with(port, &auth, "big.bin", &big);
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(r.json()["error"], "storage_full");
    assert!(!r.text().contains("/data"));
    // The catalog is intact and the server goes on working.
    let r = request(
        port,
        "GET",
        "/api/v1/files",
        &[("Authorization", &auth)],
        b"",
    );
    let files: Vec<serde_json::Value> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(files.len(), 1);
    let r = request(
        port,
        "GET",
        "/download/pc/small.bin",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.body, small);
    assert_eq!(
        put_with(port, &auth, "after.txt", b"still works").status,
        201
    );

    // A resumable upload's piece on the full disk: 507, nothing counted,
    // the space it took given back; a smaller file still goes up.
    let bearer = [("Authorization", auth.as_str())];
    let start = |size: usize| {
        let body = format!(r#"{{"machine": "pc", "path": "up{size}.bin", "size": {size}}}"#);
        let r = request(port, "POST", "/api/v1/uploads", &bearer, body.as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
        format!("/api/v1/uploads/{}", r.json()["id"].as_str().unwrap())
    };
    let piece = |target: &str, data: &[u8]| {
        let range = format!("bytes 0-{}/{}", data.len() - 1, data.len());
        let headers = [("Authorization", auth.as_str()), ("Content-Range", &range)];
        request(port, "PUT", target, &headers, data)
    };
    let target = start(big.len());
    let r = piece(&target, &big);
    assert_eq!(r.status, 507, "{}", r.text());
    let r = request(port, "GET", &target, &bearer, b"");
    assert_eq!(r.json()["offset"], 0);
    let data = noise(300_000, 6);
    let r = piece(&start(data.len()), &data);
    assert_eq!(r.status, 201, "{}", r.text());

    // Filled to the last page: a login (which writes the new device into
    // the accounts file) is 507 too, never 500, and changes nothing.
    let mut seed = 100;
    for size in [256 << 10, 32 << 10, 4 << 10, 512] {
        loop {
            seed += 1;
            let r = put_with(port, &auth, &format!("fill{seed}.bin"), &noise(size, seed));
            if r.status == 507 {
                break;
            }
            assert_eq!(r.status, 201, "{}", r.text());
        }
    }
    let body = serde_json::json!({"user": ADMIN, "password": ADMIN_PASSWORD, "machine": "laptop"})
        .to_string();
    let r = request(port, "POST", "/api/v1/login", &[], body.as_bytes());
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(r.json()["error"], "storage_full");
    // The earlier device still works.
    let r = request(port, "GET", "/api/v1/files", &bearer, b"");
    assert_eq!(r.status, 200);
    let _ = child.kill();
    let _ = child.wait();
}
