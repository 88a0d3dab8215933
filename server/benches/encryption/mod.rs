//! Encryption at rest against no encryption, in the same run on the same
//! data: the 1 GiB upload (with cp + sync), hot and packed downloads, and
//! a Range of the packed file. `NIMBUS_BENCH_ONLY=encryption`, and part of
//! the full run.

use super::*;

struct Figures {
    upload: Duration,
    hot: f64,
    packed: f64,
    range_ms: f64,
}

fn measure(w: &Path, tag: &str, big_dir: &Path, corpus_dir: &Path) -> Figures {
    let data = w.join(format!("data-enc-{tag}"));
    let srv = Srv::start(&data, &[]);
    let upload = timed(|| srv.client_once(big_dir, &w.join(format!("state-enc-{tag}.json"))));
    let hot = srv.curl_speed("/download/bench/big.bin");
    drop(srv);
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(data.with_extension("key"));

    let data = w.join(format!("data-encpack-{tag}"));
    let srv = Srv::start(&data, &["--hot-time", "1", "--hotspot-interval", "1"]);
    srv.client_once(corpus_dir, &w.join(format!("state-encpack-{tag}.json")));
    let wait_packed = || {
        let t = Instant::now();
        while srv.files().iter().all(|f| f["packed"] != true) {
            assert!(
                t.elapsed() < Duration::from_secs(600),
                "packing took too long"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_packed();
    let len = std::fs::metadata(corpus_dir.join("corpus.txt"))
        .unwrap()
        .len();
    let range = format!("{}-{}", len / 2 + 12_345, len / 2 + 12_345 + (1 << 20) - 1);
    let range_ms = srv.curl_ttfb("/download/bench/corpus.txt", &range) * 1e3;
    // That download queued the file's unpacking: wait until it is packed
    // again before the whole download.
    let t = Instant::now();
    while srv.files().iter().all(|f| f["packed"] == true) && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_packed();
    let packed = srv.curl_speed("/download/bench/corpus.txt");
    drop(srv);
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(data.with_extension("key"));
    Figures {
        upload,
        hot,
        packed,
        range_ms,
    }
}

fn set_encryption(on: bool) {
    // The benchmark is one thread here; the fixtures read this variable.
    if on {
        std::env::set_var("NIMBUS_TEST_ENCRYPTION", "1");
    } else {
        std::env::remove_var("NIMBUS_TEST_ENCRYPTION");
    }
}

pub fn run(w: &Path, rows: &mut Vec<Row>) {
    eprintln!("bench: encryption at rest against none");
    let big_dir = w.join("enc-one");
    std::fs::create_dir_all(&big_dir).unwrap();
    let big = big_dir.join("big.bin");
    random_file(&big, GIB);
    let corpus_dir = w.join("enc-corpus");
    std::fs::create_dir_all(&corpus_dir).unwrap();
    text_file(&corpus_dir.join("corpus.txt"), 128 << 20);
    let dst = w.join("enc-cp.bin");
    let cp = timed(|| {
        sh(&format!(
            "cp '{}' '{}' && sync",
            big.display(),
            dst.display()
        ))
    });
    std::fs::remove_file(&dst).unwrap();
    // Alternating, best of two each, so both meet the same machine.
    let mut plain: Option<Figures> = None;
    let mut sealed: Option<Figures> = None;
    for round in 0..2 {
        for (on, best) in [(false, &mut plain), (true, &mut sealed)] {
            set_encryption(on);
            // A new directory each time: the fixtures keep each one's tokens.
            let tag = format!("{}-{round}", if on { "on" } else { "off" });
            let f = measure(w, &tag, &big_dir, &corpus_dir);
            *best = Some(match best.take() {
                None => f,
                Some(b) => Figures {
                    upload: b.upload.min(f.upload),
                    hot: b.hot.max(f.hot),
                    packed: b.packed.max(f.packed),
                    range_ms: b.range_ms.min(f.range_ms),
                },
            });
        }
    }
    set_encryption(false);
    let (p, s) = (plain.unwrap(), sealed.unwrap());
    rows.push(row(
        "encryption at rest: 1 GiB upload, client to server (encrypted / unencrypted)",
        format!(
            "{:.0} MiB/s / {:.0} MiB/s",
            mib_s(GIB, s.upload),
            mib_s(GIB, p.upload)
        ),
        format!("cp + sync: {:.0} MiB/s", mib_s(GIB, cp)),
        format!(
            "{:.2} of unencrypted (target >= 0.70), {:.2}x cp + sync (target >= 1.0)",
            p.upload.as_secs_f64() / s.upload.as_secs_f64(),
            cp.as_secs_f64() / s.upload.as_secs_f64()
        ),
    ));
    rows.push(row(
        "encryption at rest: 1 GiB download of a hot file with curl (encrypted / unencrypted)",
        format!("{:.0} MiB/s / {:.0} MiB/s", s.hot, p.hot),
        "the unencrypted server, same run".into(),
        format!("{:.2} (target >= 0.70)", s.hot / p.hot),
    ));
    rows.push(row(
        "encryption at rest: download of a packed 128 MiB text file (encrypted / unencrypted)",
        format!("{:.0} MiB/s / {:.0} MiB/s", s.packed, p.packed),
        "the unencrypted server, same run".into(),
        format!("{:.2} (target >= 0.70)", s.packed / p.packed),
    ));
    rows.push(row(
        "encryption at rest: a MiB from the middle of the packed file, time to first byte (encrypted / unencrypted)",
        format!("{:.0} ms / {:.0} ms", s.range_ms, p.range_ms),
        "target: under 100 ms".into(),
        format!("{:.2}", s.range_ms / p.range_ms.max(0.001)),
    ));
    let _ = std::fs::remove_dir_all(&big_dir);
    let _ = std::fs::remove_dir_all(&corpus_dir);

    // Start-up at the million-file catalog (NIMBUS_BENCH_STARTUP_FILES for
    // another size), each best of two.
    let files = std::env::var("NIMBUS_BENCH_STARTUP_FILES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    eprintln!("bench: start-up at {files} files, encrypted and not");
    let (mut plain_s, mut sealed_s) = (f64::MAX, f64::MAX);
    for round in 0..2 {
        plain_s = plain_s.min(scale::startup(w, files, false, round));
        sealed_s = sealed_s.min(scale::startup(w, files, true, round));
    }
    rows.push(row(
        &format!("encryption at rest: start-up at {files} files, spawn to first answer (encrypted / unencrypted)"),
        format!("{sealed_s:.2} s / {plain_s:.2} s"),
        "the unencrypted server, same run".into(),
        format!("{:.2}x (target <= 1.5x)", sealed_s / plain_s),
    ));
}
