//! The HTTP front under attack from one machine on loopback, without an
//! account (or with one, where the probe needs it): every probe runs in a
//! bounded form while a legitimate client asks `/healthz` and an
//! authenticated listing, each of which must be answered within a second,
//! during the attack and after it, by the same server process. Each probe
//! takes the machine alone (`alone()`): on two cores another test's load
//! would be measured with it.

use crate::fixtures::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a legitimate request may take while the server is attacked.
const ANSWERED_WITHIN: Duration = Duration::from_secs(1);

/// One GET on a fresh connection with a deadline; the status and the time.
fn timed_get(port: u16, target: &str, auth: Option<&str>) -> Result<(u16, Duration), String> {
    let started = Instant::now();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {:?}", &text[..text.len().min(80)]))?;
    Ok((status, started.elapsed()))
}

/// Asks what a legitimate client needs; panics unless both are answered
/// 200 within [`ANSWERED_WITHIN`]. Returns the slower time.
fn legit(port: u16, auth: &str) -> Duration {
    let mut worst = Duration::ZERO;
    for (target, a) in [("/healthz", None), ("/api/v1/files", Some(auth))] {
        let (status, took) =
            timed_get(port, target, a).unwrap_or_else(|e| panic!("GET {target}: {e}"));
        assert_eq!(status, 200, "GET {target}");
        assert!(took < ANSWERED_WITHIN, "GET {target} took {took:?}");
        worst = worst.max(took);
    }
    worst
}

/// Runs [`legit`] every 100 ms on another thread until stopped; the
/// failures and the worst time it saw.
struct Watcher {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<(Vec<String>, Duration, usize)>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(port: u16, auth: String) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new((Vec::new(), Duration::ZERO, 0)));
        let (s, st) = (stop.clone(), seen.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let r = std::panic::catch_unwind(|| legit(port, &auth));
                let mut seen = st.lock().unwrap();
                seen.2 += 1;
                match r {
                    Ok(t) => seen.1 = seen.1.max(t),
                    Err(e) => {
                        let msg = e
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        seen.0.push(msg);
                    }
                }
                drop(seen);
                thread::sleep(Duration::from_millis(100));
            }
        });
        Watcher {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Stops, and panics if any check failed (or none ran).
    fn finish(mut self, what: &str) -> Duration {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        let (failures, worst, runs) = self.seen.lock().unwrap().clone();
        assert!(runs > 0, "{what}: no check ran");
        assert!(
            failures.is_empty(),
            "{what}: {} of {runs} checks failed, first: {}",
            failures.len(),
            failures[0]
        );
        eprintln!("{what}: {runs} checks, worst {worst:?}");
        worst
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads what the server sends until it closes; `None` if it did not
/// close within `within`.
fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(within)).unwrap();
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(out),
            Err(_) => return None,
        }
        if Instant::now() > deadline {
            return None;
        }
    }
}

fn status_of(response: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {:?}", &text[..text.len().min(120)]))
}

fn log_count(server: &Server, needle: &str) -> usize {
    server.log().matches(needle).count()
}

#[test]
fn accepting_goes_on_when_descriptors_run_out() {
    let _alone = alone();
    // 128 descriptors, a cap above them: accept() itself fails (EMFILE).
    let mut server = Server::start_with_nofile(128, &["--max-connections", "1000"]);
    let auth = bearer(server.port, "pc");
    legit(server.port, &auth);
    let mut idle = Vec::new();
    for _ in 0..300 {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], server.port));
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            idle.push(s);
        }
    }
    thread::sleep(Duration::from_millis(300));
    let watcher = Watcher::start(server.port, auth.clone());
    // More idle connections arrive while the watcher asks.
    for _ in 0..100 {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], server.port));
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            idle.push(s);
        }
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_secs(1));
    watcher.finish("descriptors ran out");
    drop(idle);
    thread::sleep(Duration::from_millis(200));
    legit(server.port, &auth);
    assert!(server.alive(), "the server died");
    // The failure is logged once per burst, not once per failure; and so
    // is the recovery.
    let failures = log_count(&server, "accept() failed");
    assert!(
        (1..=3).contains(&failures),
        "{failures} accept failures logged: {}",
        server.log()
    );
    assert!(
        server.log().contains("accept() works again"),
        "{}",
        server.log()
    );
}

#[test]
fn idle_connections_beyond_the_cap_make_room_for_new_ones() {
    let _alone = alone();
    let mut server = Server::start(&["--max-connections", "40"]);
    let auth = bearer(server.port, "pc");
    // Idle connections, and connections that began a head (or a small
    // body) and stalled: none has a request in flight, so each may go.
    let mut idle: Vec<TcpStream> = (0..200).map(|_| connect(server.port)).collect();
    for (i, s) in idle.iter_mut().enumerate().skip(1) {
        let _ = match i % 3 {
            0 => s.write_all(b"GET /api/v1/files HTTP/1.1\r\nHost: x\r\n"),
            1 => s.write_all(b"POST /api/v1/login HTTP/1.1\r\nContent-Length: 500\r\n\r\n{"),
            _ => Ok(()),
        };
    }
    let watcher = Watcher::start(server.port, auth.clone());
    thread::sleep(Duration::from_secs(2));
    watcher.finish("200 idle or stalled connections, cap 40");
    // The oldest were closed by the server to make room.
    let mut first = idle.into_iter().next().unwrap();
    assert!(
        read_until_closed(&mut first, Duration::from_secs(2)).is_some(),
        "the oldest idle connection is still open"
    );
    assert!(server.alive());
}

#[test]
fn a_stranger_declaring_a_huge_body_is_refused_from_the_head_and_never_drained() {
    let _alone = alone();
    let mut server = Server::start(&["--workers", "4"]);
    let auth = bearer(server.port, "pc");
    let watcher = Watcher::start(server.port, auth.clone());
    let started = Instant::now();
    let mut conns: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = connect(server.port);
            s.write_all(
                b"PUT /api/v1/files/pc/big.bin HTTP/1.1\r\nHost: x\r\n\
                  Content-Length: 100000000\r\nX-Nimbus-Hash: 0000\r\n\r\nx",
            )
            .unwrap();
            s
        })
        .collect();
    // Each is answered 401 at once, and closed (after at most the linger)
    // without the server waiting for the 100 MB.
    for s in &mut conns {
        let out = read_until_closed(s, Duration::from_secs(5)).expect("connection left open");
        assert_eq!(status_of(&out), 401);
        assert!(String::from_utf8_lossy(&out).contains("Connection: close"));
    }
    assert!(started.elapsed() < Duration::from_secs(8));
    watcher.finish("100 unauthenticated huge bodies");
    assert!(server.alive());
}

#[test]
fn a_body_that_stops_is_dropped_and_nothing_recorded() {
    let _alone = alone();
    let mut server = Server::start(&["--body-timeout", "2"]);
    let auth = bearer(server.port, "pc");
    let watcher = Watcher::start(server.port, auth.clone());
    let hash = blake3::hash(&vec![7u8; 1_000_000]).to_hex().to_string();
    let mut conns: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = connect(server.port);
            let head = format!(
                "PUT /api/v1/files/pc/slow.bin HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
                 Content-Length: 1000000\r\nX-Nimbus-Hash: {hash}\r\n\r\n"
            );
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(&[7u8; 1000]).unwrap();
            s
        })
        .collect();
    for s in &mut conns {
        let out = read_until_closed(s, Duration::from_secs(8)).expect("slow body held on to");
        let status = status_of(&out);
        assert!(
            status == 408 || status == 400,
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
    watcher.finish("20 stalled bodies");
    assert!(server.file("pc", "slow.bin").is_none());
    assert!(server.tmp_files().is_empty(), "{:?}", server.tmp_files());
    assert!(server.alive());
}

#[test]
fn slow_heads_and_endless_headers_are_cut_off_with_bounded_memory() {
    let _alone = alone();
    let mut server = Server::start(&["--header-timeout", "2"]);
    let auth = bearer(server.port, "pc");
    let rss_before = server.rss();
    let watcher = Watcher::start(server.port, auth.clone());
    // Slowloris: heads begun and never finished.
    let slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = connect(server.port);
            s.write_all(b"GET / HTTP/1.1\r\nX-A: ").unwrap();
            s
        })
        .collect();
    // Four connections sending header lines as fast as they can, up to
    // 100 MB each or until the server stops them.
    let floods: Vec<_> = (0..4)
        .map(|i| {
            let port = server.port;
            thread::spawn(move || {
                let mut s = connect(port);
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                    .unwrap();
                let line = if i == 0 {
                    // one endless header line
                    vec![b'a'; 1 << 20]
                } else {
                    let mut l = b"X-Flood: ".to_vec();
                    l.extend(std::iter::repeat_n(b'b', 1000));
                    l.extend_from_slice(b"\r\n");
                    l.repeat(1000)
                };
                let mut sent = 0usize;
                while sent < 100 << 20 {
                    match s.write(&line) {
                        Ok(n) => sent += n,
                        Err(_) => break,
                    }
                }
                sent
            })
        })
        .collect();
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        peak = peak.max(server.rss());
        thread::sleep(Duration::from_millis(50));
    }
    for f in floods {
        let sent = f.join().unwrap();
        assert!(sent < 100 << 20, "the server read 100 MB of headers");
    }
    // The slow heads were answered 408 and closed within the timeout.
    for (i, mut s) in slow.into_iter().enumerate() {
        let out = read_until_closed(&mut s, Duration::from_secs(3)).expect("slow head kept");
        assert!(!out.is_empty(), "slow head {i}: closed without an answer");
        assert_eq!(status_of(&out), 408);
    }
    watcher.finish("slow heads and header floods");
    eprintln!(
        "RSS before {} MiB, peak {} MiB",
        rss_before >> 20,
        peak >> 20
    );
    assert!(peak < 256 << 20, "RSS peaked at {} MiB", peak >> 20);
    assert!(server.alive());
}

#[test]
fn downloads_nobody_reads_hold_no_worker() {
    let _alone = alone();
    let mut server = Server::start(&["--workers", "4", "--send-timeout", "3"]);
    let auth = bearer(server.port, "pc");
    let data = noise(16 << 20, 1);
    assert_eq!(put_file(server.port, "pc", "big.bin", &data).status, 201);
    let mut stuck: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = connect(server.port);
            // Never a read.
            let head = format!(
                "GET /download/pc/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"
            );
            s.write_all(head.as_bytes()).unwrap();
            s
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let watcher = Watcher::start(server.port, auth.clone());
    thread::sleep(Duration::from_secs(2));
    watcher.finish("40 downloads nobody reads, 4 workers");
    // After the send timeout the server gives up on them: each ends short.
    thread::sleep(Duration::from_secs(4));
    for s in &mut stuck {
        let got = read_until_closed(s, Duration::from_secs(5)).expect("still sending");
        assert!(got.len() < data.len(), "a stuck download was completed");
    }
    legit(server.port, &auth);
    assert!(server.alive());
}

#[test]
fn keep_alive_responses_are_not_held_back() {
    let _alone = alone();
    let server = Server::start(&[]);
    // Larger than one write buffer (8 KiB): the head and the body go out
    // in separate segments, which Nagle holds back for a delayed ACK.
    let data = noise(12 * 1024, 2);
    assert_eq!(put_file(server.port, "pc", "small.bin", &data).status, 201);
    let auth = bearer(server.port, "pc");
    let mut s = connect(server.port);
    let head =
        format!("GET /download/pc/small.bin HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n");
    // Without TCP_NODELAY each of these waits ~40 ms for a delayed ACK.
    let started = Instant::now();
    let mut buf = vec![0u8; 65536];
    for _ in 0..40 {
        s.write_all(head.as_bytes()).unwrap();
        let mut got = Vec::new();
        while !got.ends_with(&data) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed");
            got.extend_from_slice(&buf[..n]);
        }
    }
    let took = started.elapsed();
    eprintln!("40 keep-alive downloads of 12 KiB: {took:?}");
    assert!(took < Duration::from_millis(1000), "took {took:?}");
}

#[test]
fn many_concurrent_requests_are_served_or_told_when_to_retry() {
    let _alone = alone();
    let server = Server::start(&[]);
    let auth = bearer(server.port, "pc");
    let port = server.port;
    let results: Vec<_> = (0..300)
        .map(|_| {
            let auth = auth.clone();
            thread::spawn(move || {
                let mut s = connect(port);
                let head = format!(
                    "GET /api/v1/files HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {auth}\r\n\r\n"
                );
                s.write_all(head.as_bytes()).unwrap();
                let out = read_until_closed(&mut s, Duration::from_secs(10)).unwrap_or_default();
                let text = String::from_utf8_lossy(&out).into_owned();
                (status_of(&out), text.contains("Retry-After:"))
            })
        })
        .collect();
    for r in results {
        let (status, retry_after) = r.join().unwrap();
        assert!(
            status == 200 || (status == 503 && retry_after),
            "status {status}"
        );
    }
}

/// Raw bytes in, (status, whether the server then closed) out.
fn raw(port: u16, bytes: &[u8]) -> (u16, bool) {
    let mut s = connect(port);
    s.write_all(bytes).unwrap();
    match read_until_closed(&mut s, Duration::from_secs(5)) {
        Some(out) => (status_of(&out), true),
        None => (0, false),
    }
}

#[test]
fn framing_is_strict_and_every_refusal_is_answered() {
    let _alone = alone();
    let server = Server::start(&[]);
    let port = server.port;
    let auth = bearer(port, "pc");
    let put = |extra: &str| {
        format!(
            "PUT /api/v1/files/pc/f.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
             X-Nimbus-Hash: {}\r\n{extra}\r\nabcdef",
            blake3::hash(b"abcdef").to_hex()
        )
    };
    let cases: Vec<(String, Vec<u8>, u16)> = vec![
        (
            "two different Content-Length".into(),
            put("Content-Length: 6\r\nContent-Length: 7\r\n").into_bytes(),
            400,
        ),
        (
            "signed Content-Length".into(),
            put("Content-Length: +6\r\n").into_bytes(),
            400,
        ),
        (
            "Content-Length and Transfer-Encoding".into(),
            put("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n").into_bytes(),
            400,
        ),
        (
            "gzip transfer coding".into(),
            put("Transfer-Encoding: gzip\r\n").into_bytes(),
            501,
        ),
        (
            "HTTP/2.0".into(),
            b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(),
            505,
        ),
        (
            "HTTP/3.0".into(),
            b"GET /healthz HTTP/3.0\r\n\r\n".to_vec(),
            505,
        ),
        (
            "malformed request line".into(),
            b"GET /healthz\r\n\r\n".to_vec(),
            400,
        ),
        (
            "not HTTP at all".into(),
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            400,
        ),
        (
            "space before the colon".into(),
            b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a 9 KiB request line".into(),
            format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9 * 1024)).into_bytes(),
            414,
        ),
        (
            "101 header fields".into(),
            format!("GET /healthz HTTP/1.1\r\n{}\r\n", "X-A: 1\r\n".repeat(101)).into_bytes(),
            431,
        ),
        (
            "70 KiB of headers".into(),
            format!(
                "GET /healthz HTTP/1.1\r\n{}\r\n",
                format!("X-A: {}\r\n", "b".repeat(7000)).repeat(10)
            )
            .into_bytes(),
            431,
        ),
    ];
    for (what, bytes, want) in cases {
        let (status, closed) = raw(port, &bytes);
        assert_eq!(status, want, "{what}");
        assert!(closed, "{what}: connection left open");
    }
    // Nothing was stored by any of them.
    assert!(server.file("pc", "f.txt").is_none());
    // Within the limits: bare LF line ends, 100 fields, 8 KiB line.
    let (status, _) = raw(
        port,
        b"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n",
    );
    assert_eq!(status, 200, "LF line ends");
    let many = format!(
        "GET /healthz HTTP/1.1\r\nConnection: close\r\n{}\r\n",
        "X-A: 1\r\n".repeat(99)
    );
    assert_eq!(raw(port, many.as_bytes()).0, 200, "100 fields");
    let long = format!(
        "GET /healthz?{} HTTP/1.1\r\nConnection: close\r\n\r\n",
        "a".repeat(8000)
    );
    assert_eq!(raw(port, long.as_bytes()).0, 200, "an 8 KB request line");
}

#[test]
fn modification_times_out_of_range_are_refused() {
    let _alone = alone();
    let server = Server::start(&[]);
    let port = server.port;
    let data = b"when?";
    let hash = blake3::hash(data).to_hex().to_string();
    let upload = |mtime: &str| {
        request(
            port,
            "PUT",
            "/api/v1/files/pc/t.txt",
            &[("X-Nimbus-Hash", &hash), ("X-Nimbus-Mtime", mtime)],
            data,
        )
    };
    for bad in [
        "9223372036854775807",
        "-1",
        "253402300800",
        "-9223372036854775808",
    ] {
        let r = upload(bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(r.json()["error"], "bad_mtime");
    }
    assert!(server.file("pc", "t.txt").is_none());
    // The last second of 9999 is fine: kept, and the download works (its
    // Last-Modified is when the server recorded it, not the mtime).
    assert_eq!(upload("253402300799").status, 201);
    let r = server.get("/download/pc/t.txt");
    assert_eq!(r.status, 200);
    assert_eq!(
        server.file("pc", "t.txt").unwrap()["mtime"],
        253402300799i64
    );
    let lm = httpdate::parse_http_date(r.header("last-modified").unwrap()).unwrap();
    let age = std::time::SystemTime::now()
        .duration_since(lm)
        .unwrap_or_default();
    assert!(age.as_secs() < 60, "{:?}", r.header("last-modified"));
    // Recording by hash checks the same range.
    let body = format!(r#"{{"hash": "{hash}", "size": 5, "mtime": 9223372036854775807}}"#);
    let r = request(
        port,
        "POST",
        "/api/v1/files/pc/u.txt",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(server.file("pc", "u.txt").is_none());
    // And so does a resumable upload's start.
    let r = request(
        port,
        "POST",
        "/api/v1/uploads",
        &[("Content-Type", "application/json")],
        br#"{"machine": "pc", "path": "v.txt", "size": 3, "mtime": -5}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn a_stalled_upload_piece_keeps_what_arrived() {
    let _alone = alone();
    let server = Server::start(&["--body-timeout", "2"]);
    let auth = bearer(server.port, "pc");
    let r = request(
        server.port,
        "POST",
        "/api/v1/uploads",
        &[("Content-Type", "application/json")],
        br#"{"machine": "pc", "path": "piece.bin", "size": 100000}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let target = format!("/api/v1/uploads/{}", r.json()["id"].as_str().unwrap());
    let mut s = connect(server.port);
    write!(
        s,
        "PUT {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Content-Range: bytes 0-99999/100000\r\nContent-Length: 100000\r\n\r\n"
    )
    .unwrap();
    s.write_all(&[1u8; 40_000]).unwrap();
    let started = Instant::now();
    let out = read_until_closed(&mut s, Duration::from_secs(8)).expect("the piece held on to");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(status_of(&out), 400, "{}", String::from_utf8_lossy(&out));
    let r = request(server.port, "GET", &target, &[], b"");
    assert_eq!(r.header("upload-offset"), Some("40000"));
    // And it continues from there.
    let r = request(
        server.port,
        "PUT",
        &target,
        &[("Content-Range", "bytes 40000-99999/100000")],
        &[1u8; 60_000],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(server.file("pc", "piece.bin").unwrap()["size"], 100_000);
    // A small body (read with its head) that stops is answered 408.
    let mut s = connect(server.port);
    s.write_all(b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"user\"")
        .unwrap();
    let out = read_until_closed(&mut s, Duration::from_secs(8)).expect("the body held on to");
    assert_eq!(status_of(&out), 408, "{}", String::from_utf8_lossy(&out));
}
