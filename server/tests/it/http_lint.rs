//! The responses as an HTTP linter sees them: REDbot ("lint for HTTP",
//! PyPI `redbot`, installed by `.ci/run`) checks a hot and a packed
//! download, a page, an API listing and the script through the real
//! server, via a relay that adds the device token REDbot cannot send; no
//! caching or validation warning may remain. Then every conditional case
//! of RFC 9110 over plain HTTP, on a hot and on a packed download.

use crate::fixtures::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

/// A relay on loopback that adds `Authorization` to every request (and
/// `Connection: close`, so each request has its own connection) and
/// passes the answer back untouched.
fn token_relay(server_port: u16, authorization: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let auth = authorization.clone();
            std::thread::spawn(move || relay_one(conn, server_port, &auth));
        }
    });
    port
}

fn relay_one(mut client: TcpStream, server_port: u16, auth: &str) {
    client.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) if head.len() < 64 * 1024 => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let Some(request_line) = lines.next() else {
        return;
    };
    let mut out = format!("{request_line}\r\nAuthorization: {auth}\r\nConnection: close\r\n");
    for l in lines {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if name != "authorization" && name != "connection" && name != "keep-alive" {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", server_port)) else {
        return;
    };
    if upstream.write_all(out.as_bytes()).is_err() {
        return;
    }
    let _ = std::io::copy(&mut upstream, &mut client);
    let _ = client.shutdown(Shutdown::Both);
}

/// The address of the script a page loads.
fn script_of(page: &str) -> String {
    page.split("<script src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page names its script")
        .to_string()
}

/// REDbot's notes on `url`: (id, level, category, summary) of the
/// response and of the requests it makes to check it.
fn redbot(url: &str) -> Vec<(String, String, String, String)> {
    let out = Command::new("redbot")
        .args(["-o", "har", url])
        .output()
        .expect("redbot is installed (.ci/run: pip install redbot==2.7.0)");
    let har: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "redbot {url}: {e}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut notes = Vec::new();
    for entry in har["log"]["entries"].as_array().into_iter().flatten() {
        for n in entry["_red_messages"].as_array().into_iter().flatten() {
            let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
            notes.push((s("note_id"), s("level"), s("category"), s("summary")));
        }
    }
    notes
}

/// What this linter run may not say of a route: any warning or
/// worse about caching or validation, and these notes whatever their
/// level (a private response that shared caches may store; a freshness
/// caches make up; a conditional request answered in full).
fn lint_failures(notes: &[(String, String, String, String)], private: bool) -> Vec<String> {
    const NAMED: [&str; 3] = ["FRESHNESS_HEURISTIC", "IMS_FULL", "INM_FULL"];
    notes
        .iter()
        .filter(|(id, level, category, _)| {
            let bad = matches!(level.as_str(), "BAD" | "WARN")
                && matches!(category.as_str(), "CACHING" | "VALIDATION");
            bad || NAMED.contains(&id.as_str()) || (private && id == "STORE_STORABLE")
        })
        .map(|(id, level, category, summary)| format!("{level} {category} {id}: {summary}"))
        .collect()
}

#[test]
fn redbot_finds_no_caching_or_validation_warning_on_downloads_pages_listings_and_the_script() {
    let hot = Server::start(&[]);
    let packed = Server::start(&["--hot-time", "1", "--hotspot-interval", "1"]);
    let text: Vec<u8> = (0..200_000u32)
        .flat_map(|i| format!("line {i} of a log that packs well\n").into_bytes())
        .take(300_000)
        .collect();
    assert_eq!(put_file(hot.port, "pc", "notes.txt", &text).status, 201);
    assert_eq!(put_file(packed.port, "pc", "log.txt", &text).status, 201);
    wait_for(60, "log.txt to be packed", || {
        packed
            .file("pc", "log.txt")
            .is_some_and(|f| f["packed"] == true)
    });
    let relay_hot = token_relay(hot.port, bearer(hot.port, "pc"));
    let relay_packed = token_relay(packed.port, bearer(packed.port, "pc"));
    let page = request(hot.port, "GET", "/", &[], b"").text();
    let script = script_of(&page);
    let routes = [
        (
            "a hot download",
            relay_hot,
            "/download/pc/notes.txt".to_string(),
            true,
        ),
        (
            "a packed download",
            relay_packed,
            "/download/pc/log.txt".to_string(),
            true,
        ),
        ("a page", relay_hot, "/".to_string(), true),
        (
            "an API listing",
            relay_hot,
            "/api/v1/files".to_string(),
            true,
        ),
        ("the script", relay_hot, script, false),
    ];
    let mut failures = Vec::new();
    for (what, port, path, private) in &routes {
        let notes = redbot(&format!("http://127.0.0.1:{port}{path}"));
        assert!(!notes.is_empty(), "{what}: REDbot said nothing");
        eprintln!("REDbot on {what} ({path}):");
        for (id, level, category, summary) in &notes {
            eprintln!("  {level:5} {category:12} {id}: {summary}");
        }
        failures.extend(
            lint_failures(&notes, *private)
                .into_iter()
                .map(|f| format!("{what}: {f}")),
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A request's method and headers, and the status it must get.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16);

/// An HTTP date `days` before `date` (an HTTP date).
fn days_before(date: &str, days: u64) -> String {
    let t = httpdate::parse_http_date(date).unwrap() - Duration::from_secs(days * 86_400);
    httpdate::fmt_http_date(t)
}

/// Every precondition of RFC 9110 section 13 against one download, whose
/// bytes are `body`. The answers without a body (304, 412) come first and
/// read no content, so a packed file is still packed for them; `form`
/// checks it after them, before the answers that send the bytes (which
/// may unpack it).
fn conditional_matrix(server: &Server, path: &str, body: &[u8], form: &dyn Fn()) {
    let get =
        |method: &str, headers: &[(&str, &str)]| request(server.port, method, path, headers, b"");
    let full = get("HEAD", &[]);
    assert_eq!(full.status, 200);
    assert_eq!(
        full.header("Content-Length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(full.header("Cache-Control"), Some("private, no-cache"));
    assert_eq!(full.header("Vary"), Some("Authorization, Cookie"));
    let etag = full.header("ETag").unwrap().to_string();
    let lm = full.header("Last-Modified").unwrap().to_string();
    let weak = format!("W/{etag}");
    let older = days_before(&lm, 1);
    let later = httpdate::fmt_http_date(
        httpdate::parse_http_date(&lm).unwrap() + Duration::from_secs(86_400),
    );
    let cases: Vec<Case> = vec![
        // If-None-Match: weak comparison, * for any.
        ("GET", vec![("If-None-Match", &etag)], 304),
        ("GET", vec![("If-None-Match", &weak)], 304),
        ("GET", vec![("If-None-Match", "*")], 304),
        (
            "GET",
            vec![("If-None-Match", "\"other\", \"another\"")],
            200,
        ),
        ("HEAD", vec![("If-None-Match", &etag)], 304),
        // If-Modified-Since: unchanged since then, or not.
        ("GET", vec![("If-Modified-Since", &lm)], 304),
        ("GET", vec![("If-Modified-Since", &later)], 304),
        ("GET", vec![("If-Modified-Since", &older)], 200),
        ("HEAD", vec![("If-Modified-Since", &lm)], 304),
        ("GET", vec![("If-Modified-Since", "not a date")], 200),
        // If-None-Match wins over If-Modified-Since.
        (
            "GET",
            vec![("If-None-Match", "\"other\""), ("If-Modified-Since", &lm)],
            200,
        ),
        (
            "GET",
            vec![("If-None-Match", &etag), ("If-Modified-Since", &older)],
            304,
        ),
        // If-Match: strong comparison, * for any.
        ("GET", vec![("If-Match", &etag)], 200),
        ("GET", vec![("If-Match", "*")], 200),
        ("GET", vec![("If-Match", "\"other\"")], 412),
        ("GET", vec![("If-Match", &weak)], 412),
        ("HEAD", vec![("If-Match", "\"other\"")], 412),
        // If-Unmodified-Since, ignored beside If-Match.
        ("GET", vec![("If-Unmodified-Since", &lm)], 200),
        ("GET", vec![("If-Unmodified-Since", &older)], 412),
        (
            "GET",
            vec![("If-Match", &etag), ("If-Unmodified-Since", &older)],
            200,
        ),
        ("GET", vec![("If-Unmodified-Since", "not a date")], 200),
        // If-Match is looked at first.
        (
            "GET",
            vec![("If-Match", "\"other\""), ("If-None-Match", &etag)],
            412,
        ),
        // Ranges: If-Range with this ETag gives the part; another, the whole.
        (
            "GET",
            vec![("Range", "bytes=0-9"), ("If-Range", &etag)],
            206,
        ),
        (
            "GET",
            vec![("Range", "bytes=0-9"), ("If-Range", "\"other\"")],
            200,
        ),
        ("GET", vec![("Range", "bytes=0-9"), ("If-Range", &lm)], 200),
        (
            "GET",
            vec![("Range", "bytes=0-9"), ("If-Match", &etag)],
            206,
        ),
    ];
    let mut cases = cases;
    cases.sort_by_key(|c| matches!(c.2, 200 | 206));
    for (i, (method, headers, want)) in cases.iter().enumerate() {
        if i > 0 && matches!(want, 200 | 206) && !matches!(cases[i - 1].2, 200 | 206) {
            form();
        }
        let r = get(method, headers);
        assert_eq!(
            r.status,
            *want,
            "{path}: {method} {headers:?}: {}",
            r.text()
        );
        match r.status {
            304 => {
                assert!(r.body.is_empty(), "{path}: a 304 has no body");
                assert_eq!(r.header("ETag"), Some(etag.as_str()));
                assert_eq!(r.header("Cache-Control"), Some("private, no-cache"));
            }
            412 if *method == "GET" => assert_eq!(
                r.json()["error"],
                "precondition_failed",
                "{path}: {headers:?}"
            ),
            206 => assert_eq!(r.body, &body[..10]),
            _ if *method == "GET" => assert_eq!(r.body, body, "{path}: {headers:?}"),
            _ => {}
        }
    }
}

#[test]
fn conditional_requests_on_hot_and_packed_downloads_follow_rfc_9110() {
    let server = Server::start(&["--hot-time", "2", "--hotspot-interval", "1"]);
    let text: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    assert_eq!(put_file(server.port, "pc", "cold.txt", &text).status, 201);
    wait_for(60, "cold.txt to be packed", || {
        server
            .file("pc", "cold.txt")
            .is_some_and(|f| f["packed"] == true)
    });
    let hot = noise(100_000, 6);
    assert_eq!(put_file(server.port, "pc", "hot.bin", &hot).status, 201);
    let packed = |name: &str, want: bool| {
        assert_eq!(server.file("pc", name).unwrap()["packed"], want, "{name}");
    };
    conditional_matrix(&server, "/download/pc/hot.bin", &hot, &|| {
        packed("hot.bin", false)
    });
    conditional_matrix(&server, "/download/pc/cold.txt", &text, &|| {
        packed("cold.txt", true)
    });
    // By version number, once it is packed again.
    wait_for(60, "cold.txt to be packed again", || {
        server
            .file("pc", "cold.txt")
            .is_some_and(|f| f["packed"] == true)
    });
    conditional_matrix(&server, "/download/pc/cold.txt?version=1", &text, &|| {
        packed("cold.txt", true)
    });

    // A new version: the old validators no longer hold, whatever the new
    // file's own modification time (here an older one).
    let old = request(server.port, "GET", "/download/pc/hot.bin", &[], b"");
    let (etag, lm) = (
        old.header("ETag").unwrap().to_string(),
        old.header("Last-Modified").unwrap().to_string(),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let newer = noise(1000, 10);
    let r = request(
        server.port,
        "PUT",
        "/api/v1/files/pc/hot.bin",
        &[
            ("X-Nimbus-Mtime", "1000000000"),
            ("X-Nimbus-Hash", blake3::hash(&newer).to_hex().as_ref()),
        ],
        &newer,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let get = |h: &[(&str, &str)]| request(server.port, "GET", "/download/pc/hot.bin", h, b"");
    assert_eq!(get(&[("If-None-Match", &etag)]).body, newer);
    assert_eq!(get(&[("If-Modified-Since", &lm)]).body, newer);
    assert_eq!(get(&[("If-Match", &etag)]).status, 412);
    // Two versions in one second: Last-Modified cannot tell them apart,
    // so a date never gets a 304 (nor an If-Unmodified-Since a go-ahead).
    let same_second = (0..10).find_map(|i| {
        let p = format!("twice{i}.txt");
        assert_eq!(put_file(server.port, "pc", &p, b"first").status, 201);
        assert_eq!(put_file(server.port, "pc", &p, b"second").status, 201);
        let v = request(
            server.port,
            "GET",
            &format!("/api/v1/versions/pc/{p}"),
            &[],
            b"",
        )
        .json();
        (v[0]["backed_up_at"] == v[1]["backed_up_at"]).then_some(p)
    });
    let p = format!(
        "/download/pc/{}",
        same_second.expect("two uploads within a second")
    );
    let r = request(server.port, "GET", &p, &[], b"");
    let lm = r.header("Last-Modified").unwrap().to_string();
    let ims = request(server.port, "GET", &p, &[("If-Modified-Since", &lm)], b"");
    assert_eq!((ims.status, ims.body.as_slice()), (200, &b"second"[..]));
    let ius = request(server.port, "GET", &p, &[("If-Unmodified-Since", &lm)], b"");
    assert_eq!(ius.status, 412);
}

#[test]
fn every_answer_says_how_it_may_be_cached() {
    let server = Server::start(&[]);
    assert_eq!(put_file(server.port, "pc", "a.txt", b"hello").status, 201);
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let cookie = format!("nimbus_session={session}");
    let none: &[(&str, &str)] = &[("Authorization", "")];
    let with_cookie: &[(&str, &str)] = &[("Authorization", ""), ("Cookie", &cookie)];
    let cc = |path: &str, h: &[(&str, &str)]| {
        let r = request(server.port, "GET", path, h, b"");
        (
            r.status,
            r.header("Cache-Control").unwrap_or("-").to_string(),
            r.header("Vary").unwrap_or("-").to_string(),
        )
    };
    let private = |s: u16| {
        (
            s,
            "no-store".to_string(),
            "Authorization, Cookie".to_string(),
        )
    };
    // Pages and JSON with a user's data, and their errors: never stored.
    assert_eq!(cc("/", with_cookie), private(200));
    assert_eq!(cc("/browse/pc/", with_cookie), private(200));
    assert_eq!(cc("/api/v1/files", &[]), private(200));
    assert_eq!(cc("/api/v1/session", with_cookie), private(200));
    assert_eq!(cc("/download/pc/missing.txt", &[]), private(404));
    // The login and registration pages too.
    assert_eq!(cc("/", none), private(200));
    assert_eq!(cc("/register", none).1, "no-store");
    // Downloads: private, revalidated with their ETag.
    let d = cc("/download/pc/a.txt", &[]);
    assert_eq!((d.0, d.1.as_str()), (200, "private, no-cache"));
    let d = cc("/preview/pc/a.txt", &[]);
    assert_eq!((d.0, d.1.as_str()), (200, "private, no-cache"));
    // The script: under a versioned path, kept a year; the old path and
    // any other version lead to the current one.
    let page = request(server.port, "GET", "/", with_cookie, b"").text();
    let script = script_of(&page);
    assert!(
        script.starts_with("/assets/") && script.ends_with("/app.js"),
        "{script}"
    );
    let r = request(server.port, "GET", &script, none, b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Cache-Control"),
        Some("max-age=31536000, immutable")
    );
    assert_eq!(r.header("Vary"), None);
    for old in ["/assets/app.js", "/assets/0123456789abcdef/app.js"] {
        let r = request(server.port, "GET", old, none, b"");
        assert_eq!(
            (r.status, r.header("Location")),
            (302, Some(script.as_str())),
            "{old}"
        );
        assert_eq!(r.header("Cache-Control"), Some("no-store"));
    }
}

#[test]
fn conditional_requests_hold_for_chunked_files_and_for_content_in_a_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    // Over 2 MiB the client sends a file as chunks and a manifest.
    let big = noise(3 << 20, 20);
    let small = b"a small file".to_vec();
    write(&src, "big.bin", &big);
    write(&src, "small.txt", &small);
    let none = || {};
    // Local disk, then an S3 server (s3s-fs, which checks signatures).
    let local = Server::start(&[]);
    assert_ok(&client_once(&local.url(), &src, "pc", &state, &[]));
    conditional_matrix(&local, "/download/pc/big.bin", &big, &none);
    let s3 = S3Server::start(S3Kind::S3sFs);
    let cfg = s3.config_file(tmp.path(), SECRET_KEY);
    let args = s3.args("lint", &s3.endpoint(), &cfg);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let in_bucket = Server::start(&args);
    let state2 = tmp.path().join("state2.json");
    assert_ok(&client_once(&in_bucket.url(), &src, "pc", &state2, &[]));
    assert!(!s3.objects("lint/blobs/").is_empty());
    conditional_matrix(&in_bucket, "/download/pc/big.bin", &big, &none);
    conditional_matrix(&in_bucket, "/download/pc/small.txt", &small, &none);
}
