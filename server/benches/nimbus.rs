//! `make bench`: measures Nimbus against references taken in the same run on
//! the same machine (shared machines are noisy; ratios travel better than
//! absolute figures), prints a table and records it in docs/BENCHMARKS.md
//! between the `bench:start` and `bench:end` markers.
//!
//! Uses the release binaries of the workspace (`make bench` builds them).

use nimbus_common::hash::ContentHash;
use nimbus_server::store::DataManager;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

// The tests' fixtures: the benchmark starts the same real server and
// client the tests do, and uses only part of them.
mod encryption;
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/fixtures/mod.rs"]
mod fixtures;
mod front;
mod s3;
mod scale;
mod versus;

use fixtures::client_bin;

const GIB: u64 = 1 << 30;
const MIB: f64 = (1 << 20) as f64;

/// The benchmark's server: the tests' fixture (the real binary on port 0)
/// with the device "bench" of the tests' admin.
struct Srv {
    server: fixtures::Server,
    port: u16,
    /// `Authorization` header line of the benchmark's device.
    auth: String,
}

impl Srv {
    fn start(data: &Path, extra: &[&str]) -> Srv {
        let server = fixtures::Server::start_on(data, extra);
        let port = server.port;
        Srv {
            server,
            port,
            auth: format!("Authorization: {}", fixtures::bearer(port, "bench")),
        }
    }

    fn url(&self) -> String {
        self.server.url()
    }

    /// Resident memory now, in KiB.
    fn rss_kib(&self) -> u64 {
        self.server.rss() / 1024
    }

    /// Peak resident memory so far, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let pid = self.server.child.as_ref().expect("server running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn files(&self) -> Vec<serde_json::Value> {
        let out = Command::new("curl")
            .args([
                "-s",
                "-H",
                &self.auth,
                &format!("{}/api/v1/files", self.url()),
            ])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "listing not understood ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "{cmd}");
}

impl Srv {
    /// `nimbus-client --once` as the benchmark's device (its login in
    /// `STATE.client.json`, beside the state).
    fn client_once(&self, dir: &Path, state: &Path) {
        let out = fixtures::client_once(&self.url(), dir, "bench", state, &[]);
        fixtures::assert_ok(&out);
    }

    /// Uploads `file` with `/api/v1/uploads` in pieces of `piece` bytes.
    fn upload_in_pieces(&self, file: &Path, piece: u64) {
        let size = std::fs::metadata(file).unwrap().len();
        let auth = self.auth.strip_prefix("Authorization: ").unwrap();
        let start = serde_json::json!({"machine": "bench", "path": "pieces.bin", "size": size});
        let r: serde_json::Value = ureq::post(&format!("{}/api/v1/uploads", self.url()))
            .set("Authorization", auth)
            .set("Content-Type", "application/json")
            .send_string(&start.to_string())
            .unwrap()
            .into_string()
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap();
        let url = format!(
            "{}/api/v1/uploads/{}",
            self.url(),
            r["id"].as_str().unwrap()
        );
        let mut f = std::fs::File::open(file).unwrap();
        let mut offset = 0;
        while offset < size {
            let n = piece.min(size - offset);
            let r = ureq::put(&url)
                .set("Authorization", auth)
                .set(
                    "Content-Range",
                    &format!("bytes {offset}-{}/{size}", offset + n - 1),
                )
                .set("Content-Length", &n.to_string())
                .send(std::io::Read::take(&mut f, n))
                .unwrap();
            assert!(r.status() == 200 || r.status() == 201);
            offset += n;
        }
    }

    /// Seconds to the first byte of `range` of `path`, with curl.
    fn curl_ttfb(&self, path: &str, range: &str) -> f64 {
        let out = Command::new("curl")
            .args(["-s", "-H", &self.auth, "-r", range, "-o", "/dev/null"])
            .args(["-w", "%{http_code} %{time_starttransfer}"])
            .arg(format!("{}{path}", self.url()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (code, secs) = text.trim().split_once(' ').unwrap();
        assert_eq!(code, "206", "range {range} of {path}");
        secs.parse().unwrap()
    }

    /// Download speed of `path` with curl, MiB/s.
    fn curl_speed(&self, path: &str) -> f64 {
        curl_speed(&format!("{}{path}", self.url()), &self.auth)
    }
}

fn curl_speed(url: &str, auth: &str) -> f64 {
    let out = Command::new("curl")
        .args([
            "-s",
            "-H",
            auth,
            "-o",
            "/dev/null",
            "-w",
            "%{speed_download}",
            url,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<f64>()
        .unwrap()
        / MIB
}

fn random_file(path: &Path, len: u64) {
    sh(&format!(
        "head -c {len} /dev/urandom > '{}'",
        path.display()
    ));
}

/// Pseudo-English text: words drawn from a fixed vocabulary.
fn text_file(path: &Path, len: u64) {
    const WORDS: &[&str] = &[
        "the", "backup", "server", "keeps", "every", "version", "of", "file", "and", "client",
        "folder", "restore", "packed", "cold", "data", "network", "machine", "office", "family",
        "photo", "document", "invoice", "letter", "report", "meeting", "monday", "friday", "is",
        "was", "with", "for", "on", "to", "a", "in", "that", "it", "as", "at", "by", "from",
    ];
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = 0x2545F4914F6CDD1Du64;
    let mut written = 0u64;
    let mut col = 0;
    while written < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let word = WORDS[(x % WORDS.len() as u64) as usize];
        let sep: &[u8] = if col > 70 {
            col = 0;
            b".\n"
        } else {
            col += word.len() + 1;
            b" "
        };
        w.write_all(word.as_bytes()).unwrap();
        w.write_all(sep).unwrap();
        written += (word.len() + sep.len()) as u64;
    }
    w.flush().unwrap();
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB / d.as_secs_f64()
}

struct Row {
    what: String,
    ours: String,
    reference: String,
    ratio: String,
}

fn row(what: &str, ours: String, reference: String, ratio: String) -> Row {
    Row {
        what: what.into(),
        ours,
        reference,
        ratio,
    }
}

fn main() {
    // cargo bench passes --bench; any other argument filters nothing here.
    let work = tempfile::Builder::new()
        .prefix("nimbus-bench")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    let w = work.path();
    let mut rows = Vec::new();
    // NIMBUS_BENCH_ONLY=front: only the HTTP front's figures, printed and
    // not recorded (for working on them).
    // NIMBUS_BENCH_ONLY=versus: only the figures beside restic and borg.
    // NIMBUS_BENCH_ONLY=upload: only the 1 GiB upload, printed.
    match std::env::var("NIMBUS_BENCH_ONLY").as_deref() {
        Ok("front") => {
            front::run(w, &mut rows);
            println!("{}", render(&rows));
            return;
        }
        // NIMBUS_BENCH_ONLY=encryption: only encryption at rest beside none.
        Ok("encryption") => {
            encryption::run(w, &mut rows);
            println!("{}", render(&rows));
            return;
        }
        // NIMBUS_BENCH_ONLY=s3: only content on s3s-fs beside local disk.
        Ok("s3") => {
            s3::run(w, &mut rows);
            println!("{}", render(&rows));
            return;
        }
        Ok("versus") => {
            versus::run(w, &mut rows);
            println!("{}", render(&rows));
            return;
        }
        // NIMBUS_BENCH_ONLY=scale: only the catalog at 100k and 1M files
        // (NIMBUS_BENCH_SCALE=N,M for other sizes) and the 200k-file client.
        Ok("scale") => {
            scale::run(w, &mut rows);
            println!("{}", render(&rows));
            return;
        }
        _ => {}
    }

    // 1. One 1 GiB file, client to server, against cp + sync.
    eprintln!("bench: 1 GiB upload");
    let src = w.join("one");
    std::fs::create_dir_all(&src).unwrap();
    let big = src.join("big.bin");
    random_file(&big, GIB);
    let mut best_cp = Duration::MAX;
    let mut best_up = Duration::MAX;
    let mut rss_upload = 0;
    let mut last_server = None;
    for i in 0..2 {
        let dst = w.join(format!("cp-{i}.bin"));
        best_cp = best_cp.min(timed(|| {
            sh(&format!(
                "cp '{}' '{}' && sync",
                big.display(),
                dst.display()
            ))
        }));
        std::fs::remove_file(&dst).unwrap();
        let data = w.join(format!("data-up-{i}"));
        let srv = Srv::start(&data, &[]);
        let state = w.join(format!("state-up-{i}.json"));
        best_up = best_up.min(timed(|| srv.client_once(&src, &state)));
        rss_upload = rss_upload.max(srv.peak_rss_kib());
        if let Some(prev) = last_server.replace((srv, data)) {
            drop(prev.0);
            let _ = std::fs::remove_dir_all(prev.1);
        }
    }
    let (srv, _) = last_server.as_ref().unwrap();
    rows.push(row(
        "1 GiB upload, client to server over loopback (hash, send, fsync, ack)",
        format!("{:.0} MiB/s", mib_s(GIB, best_up)),
        format!("cp + sync: {:.0} MiB/s", mib_s(GIB, best_cp)),
        format!(
            "{:.2} (target >= 1.5)",
            best_cp.as_secs_f64() / best_up.as_secs_f64()
        ),
    ));
    if std::env::var("NIMBUS_BENCH_ONLY").as_deref() == Ok("upload") {
        println!("{}", render(&rows));
        return;
    }

    // 2. Hot download of the same file, against reading it from disk.
    eprintln!("bench: hot download");
    let hot = srv.curl_speed("/download/bench/big.bin");
    let read_ref = mib_s(
        GIB,
        timed(|| sh(&format!("cat '{}' > /dev/null", big.display()))),
    );
    rows.push(row(
        "1 GiB download of a hot file with curl",
        format!("{hot:.0} MiB/s"),
        format!("cat file > /dev/null: {read_ref:.0} MiB/s"),
        format!("{:.2}", hot / read_ref),
    ));
    let rss_both = srv.peak_rss_kib();
    rows.push(row(
        "server peak RSS during the 1 GiB upload / upload and download",
        format!(
            "{:.1} MiB / {:.1} MiB",
            rss_upload as f64 / 1024.0,
            rss_both as f64 / 1024.0
        ),
        "target: under 64 MiB".into(),
        "-".into(),
    ));
    drop(last_server);

    // 1b. The same file through the resumable upload the browser uses
    // (8 MiB pieces, each fsync'd before the next), on a fresh server.
    eprintln!("bench: 1 GiB resumable upload in pieces");
    let data_pieces = w.join("data-pieces");
    let s = Srv::start(&data_pieces, &[]);
    let pieces = timed(|| s.upload_in_pieces(&big, 8 << 20));
    rows.push(row(
        "1 GiB resumable upload in 8 MiB pieces (the browser's protocol), each piece durable before the next",
        format!(
            "{:.0} MiB/s, server peak RSS {:.1} MiB",
            mib_s(GIB, pieces),
            s.peak_rss_kib() as f64 / 1024.0
        ),
        format!("cp + sync: {:.0} MiB/s", mib_s(GIB, best_cp)),
        format!("{:.2}", best_cp.as_secs_f64() / pieces.as_secs_f64()),
    ));
    drop(s);
    let _ = std::fs::remove_dir_all(&data_pieces);

    // 1c. The same file, its first upload killed at 60 %: what the next
    // pass sends.
    eprintln!("bench: 1 GiB upload killed at 60 %");
    let data_killed = w.join("data-killed");
    let s = Srv::start(&data_killed, &[]);
    let state = w.join("state-killed.json");
    // The client's login beside its state, as client_once writes it.
    fixtures::write_client_config(&s.url(), "bench", &state.with_extension("client.json"));
    let mut client = fixtures::client_command(&s.url(), &src, "bench", &state, &["--settle", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while s.server.chunk_bytes() < GIB * 6 / 10 {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "the upload did not reach 60 %"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = client.kill();
    let _ = client.wait();
    let started = Instant::now();
    let before = s.server.chunk_bytes();
    let out = fixtures::client_once(&s.url(), &src, "bench", &state, &[]);
    let resumed = started.elapsed();
    fixtures::assert_ok(&out);
    let sent = s.server.chunk_bytes() - before;
    rows.push(row(
        "1 GiB first upload, client killed once 60 % had arrived: bytes the next pass sends",
        format!(
            "{:.0} MiB ({:.0} %), in {:.1} s",
            sent as f64 / MIB,
            100.0 * sent as f64 / GIB as f64,
            resumed.as_secs_f64()
        ),
        "the whole file again: 1024 MiB".into(),
        format!("{:.2} (target: at most 0.45)", sent as f64 / GIB as f64),
    ));
    drop(s);
    let _ = std::fs::remove_dir_all(&data_killed);
    std::fs::remove_file(&big).unwrap();

    // 6 (after 2, while its figure is fresh). A 1 GiB folder as one
    // archive, built while it streams; a fresh server process, so its peak
    // RSS is the archive's.
    eprintln!("bench: 1 GiB folder as zip and tar");
    let folder = w.join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..16 {
        random_file(&folder.join(format!("part-{i:02}.bin")), 64 << 20);
    }
    let data_archive = w.join("data-archive");
    {
        let s = Srv::start(&data_archive, &[]);
        s.client_once(&folder, &w.join("state-archive.json"));
    }
    {
        let s = Srv::start(&data_archive, &[]);
        let zip = s.curl_speed("/archive?machine=bench&format=zip");
        let tar = s.curl_speed("/archive?machine=bench&format=tar");
        let rss = s.peak_rss_kib();
        rows.push(row(
            "1 GiB folder (16 files) downloaded as one zip / tar, built while streaming",
            format!("{zip:.0} / {tar:.0} MiB/s"),
            format!("curl of the 1 GiB file: {hot:.0} MiB/s"),
            format!("{:.2} / {:.2}", zip / hot, tar / hot),
        ));
        rows.push(row(
            "server peak RSS while streaming the 1 GiB folder as zip and tar",
            format!("{:.1} MiB", rss as f64 / 1024.0),
            "-".into(),
            "target < 64 MiB".into(),
        ));
    }
    let _ = std::fs::remove_dir_all(&folder);
    let _ = std::fs::remove_dir_all(&data_archive);

    // 3. 10,000 small files: first backup, then a rescan with no change.
    eprintln!("bench: 10,000 small files");
    let many = w.join("many");
    for i in 0..10_000u32 {
        let dir = many.join(format!("d{:02}/e{:02}", i % 37, i % 11));
        std::fs::create_dir_all(&dir).unwrap();
        let body = format!("small file {i}\n").repeat(1 + (i as usize % 200));
        std::fs::write(dir.join(format!("f{i}.txt")), body).unwrap();
    }
    let srv = Srv::start(&w.join("data-many"), &[]);
    let state = w.join("state-many.json");
    let first = timed(|| srv.client_once(&many, &state));
    let rescan = timed(|| srv.client_once(&many, &state));
    let cp_many = timed(|| {
        sh(&format!(
            "cp -r '{}' '{}' && sync",
            many.display(),
            w.join("many-copy").display()
        ))
    });
    rows.push(row(
        "first backup of 10,000 small files (1-4 KiB)",
        format!("{:.0} files/s", 10_000.0 / first.as_secs_f64()),
        format!(
            "cp -r + sync: {:.0} files/s",
            10_000.0 / cp_many.as_secs_f64()
        ),
        format!("{:.2}", cp_many.as_secs_f64() / first.as_secs_f64()),
    ));
    rows.push(row(
        "no-change rescan of the same 10,000 files",
        format!("{:.0} files/s", 10_000.0 / rescan.as_secs_f64()),
        "-".into(),
        "-".into(),
    ));
    drop(srv);

    // 4. Packing a text corpus: bytes saved, and a download of the packed file.
    eprintln!("bench: packing a 128 MiB text corpus");
    let corpus_dir = w.join("corpus");
    std::fs::create_dir_all(&corpus_dir).unwrap();
    let corpus = corpus_dir.join("corpus.txt");
    let corpus_len = 128u64 << 20;
    text_file(&corpus, corpus_len);
    let data = w.join("data-pack");
    let srv = Srv::start(&data, &["--hot-time", "1", "--hotspot-interval", "1"]);
    srv.client_once(&corpus_dir, &w.join("state-pack.json"));
    let t = Instant::now();
    while srv.files().iter().all(|f| f["packed"] != true) {
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "packing took too long"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let pack_time = t.elapsed();
    let packed_bytes: u64 = walk(&data.join("blobs"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "bz2"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let bz_ref = w.join("ref.bz2");
    let ref_pack = timed(|| {
        sh(&format!(
            "bzip2 -c '{}' > '{}'",
            corpus.display(),
            bz_ref.display()
        ))
    });
    rows.push(row(
        "packing a 128 MiB text corpus (bytes on disk after packing)",
        format!(
            "{:.1} MiB, {:.1}% saved, in {:.1} s",
            packed_bytes as f64 / MIB,
            100.0 * (1.0 - packed_bytes as f64 / corpus_len as f64),
            pack_time.as_secs_f64()
        ),
        format!(
            "bzip2 -c: {:.1} MiB in {:.1} s",
            std::fs::metadata(&bz_ref).unwrap().len() as f64 / MIB,
            ref_pack.as_secs_f64()
        ),
        format!(
            "{:.2} (time, ours/bzip2, includes verification)",
            pack_time.as_secs_f64() / ref_pack.as_secs_f64()
        ),
    ));
    // Ranges of the packed file: any offset decompresses at most one frame.
    // Each download of a packed file also queues its unpacking, so each
    // figure is the first request after packing.
    let is_packed = |want: bool| {
        let t = Instant::now();
        while srv.files().iter().all(|f| (f["packed"] == true) != want) {
            assert!(
                t.elapsed() < Duration::from_secs(600),
                "packing took too long"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let mib = 1u64 << 20;
    let last = format!("{}-{}", corpus_len - mib, corpus_len - 1);
    let ttfb_last = srv.curl_ttfb("/download/bench/corpus.txt", &last);
    is_packed(false);
    is_packed(true);
    let middle = format!(
        "{}-{}",
        corpus_len / 2 + 12_345,
        corpus_len / 2 + 12_345 + mib - 1
    );
    let ttfb_middle = srv.curl_ttfb("/download/bench/corpus.txt", &middle);
    is_packed(false);
    is_packed(true);
    let from_start = timed(|| {
        sh(&format!(
            "bzip2 -dc '{}' | tail -c {mib} > /dev/null",
            bz_ref.display()
        ))
    });
    rows.push(row(
        "Range of the last MiB of the packed 128 MiB file: time to its first byte",
        format!(
            "{:.0} ms (a MiB from the middle: {:.0} ms)",
            ttfb_last * 1e3,
            ttfb_middle * 1e3
        ),
        format!(
            "decompressing from the start, as a one-stream pack must: {:.2} s",
            from_start.as_secs_f64()
        ),
        format!(
            "{:.3} (target: under 100 ms)",
            ttfb_last / from_start.as_secs_f64()
        ),
    ));
    let packed_speed = srv.curl_speed("/download/bench/corpus.txt");
    let unbz = mib_s(
        corpus_len,
        timed(|| sh(&format!("bzip2 -dc '{}' > /dev/null", bz_ref.display()))),
    );
    rows.push(row(
        "download of the packed 128 MiB file with curl (decompressed while streaming)",
        format!("{packed_speed:.0} MiB/s"),
        format!("bzip2 -dc > /dev/null: {unbz:.0} MiB/s"),
        format!("{:.2}", packed_speed / unbz),
    ));
    drop(srv);

    encryption::run(w, &mut rows);
    s3::run(w, &mut rows);

    // 5. Catalog: recording upload 100,000 costs what upload 100 did.
    eprintln!("bench: catalog, 100,000 recorded versions");
    let c = catalog_cost(&w.join("data-catalog"));
    let (early, late, compact) = (median(c.early), median(c.late), c.compact);
    let (raw_early, raw_late) = (median(c.raw_early), median(c.raw_late));
    rows.push(row(
        "catalog: record one upload (journal append + fsync), median of uploads 1-1,000 vs 99,001-100,000",
        format!("{:.0} µs vs {:.0} µs: {:.2}x", early * 1e6, late * 1e6, late / early),
        format!(
            "the same line appended + fdatasync to a plain file, interleaved: {:.0} µs vs {:.0} µs: {:.2}x",
            raw_early * 1e6,
            raw_late * 1e6,
            raw_late / raw_early
        ),
        format!("{:.2} (our growth / the file system's; target ~1)", (late / early) / (raw_late / raw_early)),
    ));
    rows.push(row(
        "catalog: compaction (snapshot) at 100,000 files",
        format!(
            "{:.0} ms, once per >= 100,000 records: {:.1} µs per record",
            compact * 1e3,
            compact * 1e6 / 100_000.0
        ),
        "-".into(),
        "-".into(),
    ));

    // 6. The HTTP front: kept-alive connections, concurrency, hostile peers.
    front::run(w, &mut rows);
    versus::run(w, &mut rows);
    scale::run(w, &mut rows);

    let table = render(&rows);
    println!("{table}");
    record(&table);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// Median seconds per recorded version over the first and the last 1,000 of
/// 100,000 (medians, because single fsyncs on a shared machine have long
/// tails), the same for the reference, and the time of one compaction.
///
/// The reference is a plain file on the same disk getting the same kind of
/// line appended and fdatasync'd right after each of our records, so both
/// grow alike and meet the same moments of a noisy disk.
fn catalog_cost(dir: &Path) -> Catalog {
    let dm = DataManager::open(dir).unwrap();
    let content = b"catalog benchmark content".to_vec();
    let hash = ContentHash::of_bytes(&content);
    let staged = dm
        .stage_upload(&mut &content[..], &hash, None, u64::MAX)
        .unwrap();
    dm.commit_upload("bench", "seed", 1, staged).unwrap();
    let mut raw = std::fs::File::create(dir.with_extension("raw")).unwrap();
    let line = format!(
        "{{\"seq\":12345,\"op\":\"version\",\"client\":\"bench\",\"path\":\"dir12/file12345.txt\",\"hash\":\"{}\",\"size\":25,\"mtime\":1,\"at\":1795384532}}\n",
        "a".repeat(64)
    );
    let (n, window) = (100_000, 1_000);
    let mut c = Catalog::default();
    for i in 1..=n {
        let path = format!("dir{}/file{i}.txt", i % 100);
        let t = Instant::now();
        dm.record_existing("bench", &path, hash, content.len() as u64, 1)
            .unwrap();
        let ours = t.elapsed().as_secs_f64();
        let t = Instant::now();
        raw.write_all(line.as_bytes()).unwrap();
        raw.sync_data().unwrap();
        let reference = t.elapsed().as_secs_f64();
        if i <= window {
            c.early.push(ours);
            c.raw_early.push(reference);
        } else if i > n - window {
            c.late.push(ours);
            c.raw_late.push(reference);
        }
    }
    c.compact = timed(|| dm.compact().unwrap()).as_secs_f64();
    c
}

#[derive(Default)]
struct Catalog {
    early: Vec<f64>,
    late: Vec<f64>,
    raw_early: Vec<f64>,
    raw_late: Vec<f64>,
    compact: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn render(rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str(&format!("Measured {} on {}.\n\n", today(), machine()));
    s.push_str("| measurement | Nimbus | reference (same run) | ratio |\n|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.what, r.ours, r.reference, r.ratio
        ));
    }
    s
}

fn today() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|kib| format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem} RAM, Linux {}", kernel.trim())
}

/// Replaces the text between the markers in docs/BENCHMARKS.md.
fn record(table: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md");
    let Ok(doc) = std::fs::read_to_string(&path) else {
        eprintln!("docs/BENCHMARKS.md not found; results printed only");
        return;
    };
    let (start, end) = ("<!-- bench:start -->", "<!-- bench:end -->");
    let (Some(a), Some(b)) = (doc.find(start), doc.find(end)) else {
        eprintln!("docs/BENCHMARKS.md lacks the bench markers; results printed only");
        return;
    };
    let new = format!("{}{start}\n{table}{}", &doc[..a], &doc[b..]);
    std::fs::write(&path, new).unwrap();
    eprintln!("recorded in {}", path.display());
}
