//! Content on s3s-fs over loopback beside the same on local disk, in one
//! run: the 1 GiB upload, the 1 GiB download, the time to the first byte of
//! a MiB from the middle, and rebuilding a 100,000-file catalog from the
//! bucket (`nimbus-server recover`). `NIMBUS_BENCH_ONLY=s3`, and part of
//! the full run.

use super::*;
use fixtures::{S3Kind, S3Server, ACCESS_KEY, SECRET_KEY};

struct Figures {
    upload: Duration,
    download: f64,
    range_ms: f64,
}

/// A config file with the credentials only (default thresholds), and
/// `cache` bytes of local copies (None: the default).
fn credentials(w: &Path, cache: Option<u64>) -> PathBuf {
    let path = w.join(format!("s3-bench-{}.json", cache.map_or(-1, |c| c as i64)));
    let mut body = serde_json::json!({
        "s3-access-key-id": ACCESS_KEY,
        "s3-secret-access-key": SECRET_KEY,
    });
    if let Some(c) = cache {
        body["s3-cache-size"] = c.into();
    }
    std::fs::write(&path, body.to_string()).unwrap();
    path
}

fn measure(w: &Path, tag: &str, store: &[String], big_dir: &Path) -> Figures {
    // The last measurement's writes flushed first: each starts with no
    // dirty pages to write back (a run after two bucket runs had 4 GiB).
    let _ = Command::new("sync").status();
    let data = w.join(format!("data-s3-{tag}"));
    let args: Vec<&str> = store.iter().map(String::as_str).collect();
    let srv = Srv::start(&data, &args);
    let upload = timed(|| srv.client_once(big_dir, &w.join(format!("state-s3-{tag}.json"))));
    let download = srv.curl_speed("/download/bench/big.bin");
    let mid = GIB / 2 + 12_345;
    let range = format!("{mid}-{}", mid + (1 << 20) - 1);
    let range_ms = (0..3)
        .map(|_| srv.curl_ttfb("/download/bench/big.bin", &range) * 1e3)
        .fold(f64::MAX, f64::min);
    drop(srv);
    let _ = std::fs::remove_dir_all(&data);
    Figures {
        upload,
        download,
        range_ms,
    }
}

/// The better of two rounds' figures.
fn best(a: Option<Figures>, f: Figures) -> Figures {
    match a {
        None => f,
        Some(b) => Figures {
            upload: b.upload.min(f.upload),
            download: b.download.max(f.download),
            range_ms: b.range_ms.min(f.range_ms),
        },
    }
}

pub fn run(w: &Path, rows: &mut Vec<Row>) {
    eprintln!("bench: content on s3s-fs beside local disk");
    let s3 = S3Server::start(S3Kind::S3sFs);
    let cfg = credentials(w, None);
    let no_copies = credentials(w, Some(0));
    let big_dir = w.join("s3-one");
    std::fs::create_dir_all(&big_dir).unwrap();
    random_file(&big_dir.join("big.bin"), GIB);
    // Local disk; the bucket with local copies of recent objects (the
    // default, 2 GiB); the bucket alone (no copies: every read a GET).
    let mut figures: [Option<Figures>; 3] = [None, None, None];
    for round in 0..2 {
        for (i, slot) in figures.iter_mut().enumerate() {
            let tag = format!("{i}-{round}");
            let store = match i {
                0 => Vec::new(),
                1 => s3.args(&format!("bench-{tag}"), &s3.endpoint(), &cfg),
                _ => s3.args(&format!("bench-{tag}"), &s3.endpoint(), &no_copies),
            };
            let f = measure(w, &tag, &store, &big_dir);
            *slot = Some(best(slot.take(), f));
        }
    }
    let [l, s, b] = figures.map(Option::unwrap);
    let first = rows.len();
    let ratio = |x: &Figures| l.upload.as_secs_f64() / x.upload.as_secs_f64();
    rows.push(row(
        "S3 (s3s-fs on loopback): 1 GiB upload, client to server (bucket with local copies, the default / local disk)",
        format!(
            "{:.0} MiB/s / {:.0} MiB/s",
            mib_s(GIB, s.upload),
            mib_s(GIB, l.upload)
        ),
        "local disk, same run".into(),
        format!("{:.2} of local (target >= 0.5)", ratio(&s)),
    ));
    rows.push(row(
        "S3 (s3s-fs on loopback): 1 GiB upload, bucket with no local copies (s3-cache-size 0: the commit reads every chunk back with GETs)",
        format!("{:.0} MiB/s", mib_s(GIB, b.upload)),
        "local disk, same run".into(),
        format!("{:.2} of local", ratio(&b)),
    ));
    rows.push(row(
        "S3 (s3s-fs on loopback): 1 GiB download with curl, just uploaded (served from the local copies / local disk)",
        format!("{:.0} MiB/s / {:.0} MiB/s", s.download, l.download),
        "local disk, same run".into(),
        format!("{:.2} of local", s.download / l.download),
    ));
    rows.push(row(
        "S3 (s3s-fs on loopback): 1 GiB download with curl, every chunk a GET from the bucket (no copies)",
        format!("{:.0} MiB/s", b.download),
        "local disk, same run".into(),
        format!("{:.2} of local", b.download / l.download),
    ));
    rows.push(row(
        "S3 (s3s-fs on loopback): a MiB from the middle of the 1 GiB file, time to first byte (bucket alone / with copies / local disk)",
        format!(
            "{:.1} ms / {:.1} ms / {:.1} ms",
            b.range_ms, s.range_ms, l.range_ms
        ),
        "target: under 150 ms".into(),
        format!("{:.2}", b.range_ms / l.range_ms.max(0.001)),
    ));
    // Shown now too: the recovery below may fail on its own.
    eprintln!("{}", render(&rows[first..]));
    let _ = std::fs::remove_dir_all(&big_dir);

    // Rebuilding a 100,000-file catalog from the bucket alone.
    let files = 100_000;
    eprintln!("bench: recover a {files}-file catalog from the bucket");
    let data = w.join("s3-recover-src");
    std::fs::create_dir_all(&data).unwrap();
    scale::generate_catalog(&data, files);
    fixtures::prepare(0, &data);
    let store = s3.args("recover", &s3.endpoint(), &cfg);
    let args: Vec<&str> = store.iter().map(String::as_str).collect();
    // Started on it and stopped: the stop ships the snapshot.
    let mut srv = fixtures::Server::start_on(&data, &args);
    // Loaded (it answers) before it is stopped: SIGTERM before the
    // catalog is loaded ends it without a shipment.
    let r = fixtures::request(srv.port, "GET", "/api/v1/admin/health", &[], b"");
    assert!(r.status == 200 || r.status == 401);
    assert!(srv.terminate().success());
    let new = w.join("s3-recover-new");
    let t = Instant::now();
    let out = Command::new(fixtures::server_bin())
        .arg("--data")
        .arg(&new)
        .args(&store)
        .arg("recover")
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("{files} files")), "{said}");
    rows.push(row(
        &format!("S3 (s3s-fs on loopback): nimbus-server recover of a {files}-file catalog from the bucket (fetch, write, load)"),
        format!("{secs:.2} s"),
        "no reference".into(),
        "-".into(),
    ));
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&new);
}
