//! The HTTP front under load: a restore of many small files over kept-alive
//! connections against the same restore over fresh ones; 1,000 concurrent
//! connections each doing one authenticated request; and the server's
//! memory with 500 hostile connections open.

use super::{client_bin, row, timed, Row, Srv};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

pub fn run(w: &Path, rows: &mut Vec<Row>) {
    restore_small_files(w, rows);
    concurrent_requests(w, rows);
    hostile_memory(w, rows);
}

const SMALL_FILES: usize = 3000;

/// `nimbus-client restore` of 3,000 files of 12 KiB, with the client's
/// kept-alive connections and with a new connection per request. 12 KiB
/// is more than one 8 KiB write buffer, so each answer leaves in more than
/// one segment: the case Nagle held back on a kept-alive connection.
fn restore_small_files(w: &Path, rows: &mut Vec<Row>) {
    eprintln!("bench: restore of {SMALL_FILES} small files");
    let src = w.join("small");
    for i in 0..SMALL_FILES {
        let dir = src.join(format!("d{:02}", i % 30));
        std::fs::create_dir_all(&dir).unwrap();
        let mut body = format!("small file {i}\n").into_bytes();
        body.resize(12 * 1024, b'.');
        std::fs::write(dir.join(format!("f{i:04}.txt")), body).unwrap();
    }
    let srv = Srv::start(&w.join("data-small"), &[]);
    srv.client_once(&src, &w.join("small-state.json"));
    let config = w.join("small-state.client.json");
    let restore = |to: &Path, fresh: bool| {
        let mut cmd = Command::new(client_bin());
        cmd.args(["restore", "--server", &srv.url(), "--from", "bench"])
            .arg("--to")
            .arg(to)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if fresh {
            cmd.env("NIMBUS_NO_KEEPALIVE", "1");
        }
        let st = cmd.status().unwrap();
        assert!(st.success(), "restore failed");
        let restored = super::walk(to).len();
        assert_eq!(restored, SMALL_FILES, "restored {restored} files");
    };
    let (mut kept, mut fresh) = (Duration::MAX, Duration::MAX);
    for i in 0..2 {
        kept = kept.min(timed(|| restore(&w.join(format!("kept-{i}")), false)));
        fresh = fresh.min(timed(|| restore(&w.join(format!("fresh-{i}")), true)));
    }
    let per_s = |d: Duration| SMALL_FILES as f64 / d.as_secs_f64();
    rows.push(row(
        "restore of 3,000 files of 12 KiB (`nimbus-client restore`, one kept-alive connection)",
        format!("{:.0} files/s ({:.2} s)", per_s(kept), kept.as_secs_f64()),
        format!(
            "a new connection per request: {:.0} files/s ({:.2} s)",
            per_s(fresh),
            fresh.as_secs_f64()
        ),
        format!(
            "{:.2} (kept / fresh; issue 11 measured 3,000 small files in 101 s before TCP_NODELAY)",
            per_s(kept) / per_s(fresh)
        ),
    ));
}

const CONCURRENT: usize = 1000;

/// One GET with its own connection; the time to the whole answer, and the
/// status. A 503 is honoured as the reference client does: wait what
/// `Retry-After` says and send again (the time counts).
fn one_request(port: u16, auth: &str) -> (Duration, u16, u32) {
    let started = Instant::now();
    let mut retries = 0;
    loop {
        let status = (|| -> std::io::Result<(u16, Option<u64>)> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            write!(
                s,
                "GET /api/v1/files HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n\r\n"
            )?;
            let mut out = Vec::new();
            s.read_to_end(&mut out)?;
            let text = String::from_utf8_lossy(&out);
            let status = text
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let retry = text
                .lines()
                .find_map(|l| l.strip_prefix("Retry-After: "))
                .and_then(|v| v.trim().parse().ok());
            Ok((status, retry))
        })();
        match status {
            Ok((503, Some(wait))) if retries < 5 => {
                retries += 1;
                thread::sleep(Duration::from_secs(wait));
            }
            Ok((status, _)) => return (started.elapsed(), status, retries),
            Err(_) => return (started.elapsed(), 0, retries),
        }
    }
}

/// 1,000 connections at once, each one authenticated listing.
fn concurrent_requests(w: &Path, rows: &mut Vec<Row>) {
    eprintln!("bench: {CONCURRENT} concurrent requests");
    let srv = Srv::start(&w.join("data-concurrent"), &[]);
    let port = srv.port;
    let mut results = Vec::new();
    for _round in 0..3 {
        let barrier = Arc::new(Barrier::new(CONCURRENT));
        let handles: Vec<_> = (0..CONCURRENT)
            .map(|_| {
                let (barrier, auth) = (barrier.clone(), srv.auth.clone());
                thread::Builder::new()
                    .stack_size(256 << 10)
                    .spawn(move || {
                        barrier.wait();
                        one_request(port, &auth)
                    })
                    .unwrap()
            })
            .collect();
        results.extend(handles.into_iter().map(|h| h.join().unwrap()));
    }
    let mut times: Vec<f64> = results.iter().map(|r| r.0.as_secs_f64()).collect();
    times.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    let retried = results.iter().filter(|r| r.2 > 0).count();
    let failed = results.iter().filter(|r| r.1 != 200).count();
    rows.push(row(
        "1,000 concurrent connections, each one authenticated `GET /api/v1/files` (3 rounds; 503s honoured)",
        format!(
            "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {retried} answered 503 first, {failed} failed",
            pct(0.50) * 1e3,
            pct(0.99) * 1e3,
            times[times.len() - 1] * 1e3
        ),
        "target: p99 under 250 ms, none failed".into(),
        format!("{:.2} (p99 / 250 ms)", pct(0.99) / 0.25),
    ));
}

/// Server RSS with 500 hostile connections open at once: idle ones, heads
/// never finished, bodies declared and never sent, header floods, and
/// downloads nobody reads.
fn hostile_memory(w: &Path, rows: &mut Vec<Row>) {
    eprintln!("bench: 500 hostile connections");
    let srv = Srv::start(&w.join("data-hostile"), &[]);
    let port = srv.port;
    let file = w.join("hostile-src");
    std::fs::create_dir_all(&file).unwrap();
    super::random_file(&file.join("big.bin"), 64 << 20);
    srv.client_once(&file, &w.join("hostile-state.json"));
    let before = srv.rss_kib();
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    let mut held = Vec::new();
    for i in 0..100 {
        held.push(connect());
        let mut s = connect();
        let _ = s.write_all(b"GET / HTTP/1.1\r\nX-Slow: ");
        held.push(s);
        let mut s = connect();
        let _ =
            s.write_all(b"PUT /api/v1/files/x/y HTTP/1.1\r\nContent-Length: 100000000\r\n\r\nx");
        held.push(s);
        let mut s = connect();
        let _ = write!(
            s,
            "GET /download/bench/big.bin HTTP/1.1\r\nHost: x\r\n{}\r\n\r\n",
            srv.auth
        );
        held.push(s);
        let mut s = connect();
        let _ = s.write_all(b"GET / HTTP/1.1\r\n");
        for _ in 0..60 {
            let _ = s.write_all(&[b'a'; 1024]);
        }
        held.push(s);
        if i % 20 == 0 {
            eprintln!("bench: {} hostile connections", held.len());
        }
    }
    let mut peak = 0;
    for _ in 0..30 {
        peak = peak.max(srv.rss_kib());
        thread::sleep(Duration::from_millis(100));
    }
    let healthz = timed(|| {
        let (_, status, _) = one_request(port, &srv.auth);
        assert_eq!(status, 200);
    });
    drop(held);
    rows.push(row(
        "server RSS with 500 hostile connections open (100 each: idle, unfinished heads, unsent declared bodies, header floods, unread 64 MiB downloads)",
        format!(
            "{} MiB (idle server: {} MiB); a listing meanwhile: {:.0} ms",
            peak / 1024,
            before / 1024,
            healthz.as_secs_f64() * 1e3
        ),
        "target: under 256 MiB".into(),
        format!("{:.2} (RSS / 256 MiB)", peak as f64 / (256.0 * 1024.0)),
    ));
}
