//! The catalog at scale: 100,000 and 1,000,000 files (two versions each,
//! five users with one machine each, realistic paths), built through the
//! catalog's record path and written as the server's own snapshot; then
//! the real server started on it and measured: memory, start-up, the
//! routes that show it (while an upload goes on), and 20 listings at once.
//! Also the client: a no-change pass over 200,000 files.
//!
//! The generated catalog names content that is not on disk (writing two
//! million blobs would measure the disk, not the catalog): the server
//! finds them missing at start, which changes no figure measured here but
//! leaves out the time of scanning a real blob directory.

use super::{fixtures, row, timed, Row};
use nimbus_common::hash::ContentHash;
use nimbus_server::store::catalog::Record;
use nimbus_server::store::journal;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USERS: usize = 5;
const TOPS: [&str; 5] = ["Pictures", "Documents", "Music", "Videos", "Desktop"];
const ALBUMS: [&str; 8] = [
    "Holiday in Crete",
    "Birthday",
    "Garden",
    "School play",
    "Christmas",
    "Hiking in the Alps",
    "Wedding",
    "New house",
];

/// The path of file `i` of a machine: about 100 files a folder, five or
/// six levels deep.
fn path_of(user: usize, i: usize) -> String {
    let top = TOPS[i % TOPS.len()];
    let folder = i / 100;
    let year = 2010 + folder % 16;
    let album = ALBUMS[(folder / 16) % ALBUMS.len()];
    let n = folder / (16 * ALBUMS.len());
    format!(
        "Users/user{user}/{top}/{year}/{album} {n}/IMG_{year}0712_{:06}.jpg",
        i * 7 % 1_000_000
    )
}

fn hash_of(n: u64) -> ContentHash {
    ContentHash::from_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

struct Generated {
    build: Duration,
    compact: Duration,
    longest: Duration,
    snapshot_bytes: u64,
    heap_bytes: usize,
}

/// Builds the catalog of `files` files (two versions each) in `data`.
fn generate(data: &Path, files: usize) -> Generated {
    generate_with(data, files, &nimbus_server::vault::Vault::plain())
}

/// A catalog of `files` files (twice each: two versions) in `data`, as
/// [`generate`] makes it, for other groups (the S3 recovery).
pub fn generate_catalog(data: &Path, files: usize) {
    generate(data, files);
}

/// [`generate`], written through `vault`.
/// The generated versions: the first round 20 days ago, the second ten
/// days later, one second apart within a round.
const ROUND_SECS: i64 = 10 * 86_400;

fn first_version_at() -> i64 {
    // Whole days, so a run's catalog and its routes agree on it.
    (nimbus_common::time::unix_now() / 86_400 - 20) * 86_400
}

fn generate_with(data: &Path, files: usize, vault: &nimbus_server::vault::Vault) -> Generated {
    let t = Instant::now();
    let (mut cat, mut j, _) = journal::load(&data.join("catalog"), vault).unwrap();
    let per_user = files / USERS;
    // Both versions of every file inside the last 30 days: the timelines'
    // worst case (a folder's walks every version of the 30 days).
    let start = first_version_at();
    let mut n = 0u64;
    for round in 0..2 {
        for u in 0..USERS {
            for i in 0..per_user {
                n += 1;
                let at = start + round * ROUND_SECS + i as i64;
                cat.apply(&Record::Version {
                    key: format!("user{u}/laptop"),
                    path: path_of(u, i),
                    hash: hash_of(n),
                    size: 100_000 + n % 5_000_000,
                    mtime: at - 60,
                    at,
                    chunked: false,
                    n: None,
                });
            }
        }
    }
    let build = t.elapsed();
    // As the server compacts: the journal rotated, then the snapshot a
    // slice at a time; the longest slice is how long an upload can wait.
    let mut longest = Duration::ZERO;
    let compact = timed(|| {
        let seq = j.rotate().unwrap();
        let obj = nimbus_server::vault::Obj::Snapshot;
        vault
            .write_atomic(&j.snapshot_path(), obj, false, |mut w| {
                let mut sliced = nimbus_server::store::snapshot::Sliced::new(seq);
                loop {
                    let t = Instant::now();
                    let done = sliced.step(&mut w, &cat)?;
                    longest = longest.max(t.elapsed());
                    if done {
                        return Ok(());
                    }
                }
            })
            .unwrap();
        j.finish_rotation().unwrap();
    });
    let snapshot_bytes = std::fs::metadata(data.join("catalog/snapshot.json"))
        .unwrap()
        .len();
    let heap_bytes = cat.heap_bytes();
    drop(cat);
    Generated {
        build,
        compact,
        longest,
        snapshot_bytes,
        heap_bytes,
    }
}

/// Users, their passwords and device tokens (machine `laptop` each).
fn accounts(data: &Path) -> Vec<String> {
    let store =
        nimbus_server::accounts::AccountStore::open(data, nimbus_server::vault::Vault::plain())
            .unwrap();
    (0..USERS)
        .map(|u| {
            let name = format!("user{u}");
            store
                .add_user(&name, "bench password", nimbus_server::accounts::Role::User)
                .unwrap();
            store.register_device(&name, "laptop").unwrap().1
        })
        .collect()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// (median, p99) in milliseconds of 100 requests of `target`.
fn latency(port: u16, target: &str, headers: &[(&str, &str)]) -> (f64, f64) {
    let mut times: Vec<f64> = (0..100)
        .map(|_| {
            let t = Instant::now();
            let r = fixtures::request(port, "GET", target, headers, b"");
            assert_eq!(r.status, 200, "{target}: {}", r.text());
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    (times[50], times[98])
}

/// Uploads small files over HTTP until told to stop (the "client
/// uploading" the route figures are taken under).
fn uploader(port: u16, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            let data = format!("upload during the benchmark {i}").into_bytes();
            let r = fixtures::put_file(port, "uploader", &format!("up/file{i}.txt"), &data);
            assert!(r.status == 201 || r.status == 200, "{}", r.text());
            done.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// Peak RSS growth (KiB) while `n` full listings of `token`'s files are
/// read at once, slowly enough that they overlap; and the listing's size.
fn concurrent_listings(port: u16, pid: u32, token: &str, n: usize) -> (u64, u64) {
    let before = rss_kib(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let readers: Vec<_> = (0..n)
        .map(|_| {
            let auth = format!("Bearer {token}");
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                write!(
                    s,
                    "GET /api/v1/files HTTP/1.1\r\nHost: b\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                let mut buf = vec![0u8; 64 * 1024];
                let mut total = 0u64;
                loop {
                    let k = s.read(&mut buf).unwrap();
                    if k == 0 {
                        break;
                    }
                    total += k as u64;
                    std::thread::sleep(Duration::from_micros(500));
                }
                total
            })
        })
        .collect();
    let sizes: Vec<u64> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    (
        peak.load(Ordering::Relaxed).saturating_sub(before),
        sizes[0],
    )
}

/// (what, target, headers, the target in ms).
type Route<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str);

/// One catalog size: generate, start, measure.
fn measure(w: &Path, files: usize, rows: &mut Vec<Row>) {
    eprintln!("bench: catalog of {files} files");
    let data = w.join(format!("scale-{files}"));
    let g = generate(&data, files);
    fixtures::prepare(0, &data);
    let tokens = accounts(&data);
    let label = |what: &str| format!("{files} files: {what}");
    let t = Instant::now();
    let srv = fixtures::Server::start_on(&data, &["--hotspot-interval", "3600"]);
    // Up when it answers (it loads the catalog before listening).
    let r = fixtures::request(srv.port, "GET", "/api/v1/admin/health", &[], b"");
    assert!(r.status == 401 || r.status == 200);
    let startup = t.elapsed();
    let pid = srv.child.as_ref().unwrap().id();
    let rss_start = rss_kib(pid);
    rows.push(row(
        &label("server RSS after start-up (catalog arrays)"),
        format!(
            "{:.0} MiB ({:.0} MiB)",
            rss_start as f64 / 1024.0,
            g.heap_bytes as f64 / (1 << 20) as f64
        ),
        "target < 256 MiB at 1M".into(),
        format!("{:.0} B/file", rss_start as f64 * 1024.0 / files as f64),
    ));
    rows.push(row(
        &label("start-up (spawn to first answer: snapshot load, reconcile)"),
        format!("{:.2} s", startup.as_secs_f64()),
        format!("catalog built in {:.1} s", g.build.as_secs_f64()),
        "target < 3 s at 1M".into(),
    ));
    rows.push(row(
        &label(
            "snapshot size; compaction in slices: whole, longest slice (uploads wait at most that)",
        ),
        format!(
            "{:.0} MiB; {:.2} s, {:.0} ms",
            g.snapshot_bytes as f64 / (1 << 20) as f64,
            g.compact.as_secs_f64(),
            g.longest.as_secs_f64() * 1000.0
        ),
        "-".into(),
        "target stall < 100 ms".into(),
    ));

    // The routes, 100 requests each, while an upload goes on.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let up = uploader(srv.port, stop.clone(), done.clone());
    let user = format!("Bearer {}", tokens[0]);
    // Pages take a device's bearer token as well as a session cookie.
    let admin = fixtures::bearer(srv.port, "uploader");
    let (user_cookie, admin_page) = (user.clone(), admin.clone());
    let folder = {
        let p = path_of(0, 0);
        nimbus_common::paths::encode_path(&p[..p.rfind('/').unwrap()])
    };
    let at = first_version_at() + ROUND_SECS / 2;
    let routes: Vec<Route> = vec![
        (
            "browse a folder (its timeline)",
            format!("/browse/laptop/{folder}/"),
            vec![("Authorization", &user_cookie)],
            "50",
        ),
        (
            "browse the machine's top (timeline, storage chart)",
            "/browse/laptop/".into(),
            vec![("Authorization", &user_cookie)],
            "50",
        ),
        (
            "the same folder ?at= a past time",
            format!("/browse/laptop/{folder}/?at={at}"),
            vec![("Authorization", &user_cookie)],
            "200",
        ),
        (
            "a folder holding the whole machine (its timeline walks every file)",
            "/browse/laptop/Users/user0/".into(),
            vec![("Authorization", &user_cookie)],
            "100",
        ),
        (
            "a file's versions page (its timeline)",
            format!(
                "/versions/laptop/{}",
                nimbus_common::paths::encode_path(&path_of(0, 0))
            ),
            vec![("Authorization", &user_cookie)],
            "100",
        ),
        (
            "/api/v1/admin/history",
            "/api/v1/admin/history".into(),
            vec![("Authorization", &admin)],
            "50",
        ),
        (
            "home page",
            "/".into(),
            vec![("Authorization", &user_cookie)],
            "100",
        ),
        (
            "admin dashboard (cards, charts)",
            "/admin".into(),
            vec![("Authorization", &admin_page)],
            "100",
        ),
        (
            "/api/v1/admin/health",
            "/api/v1/admin/health".into(),
            vec![("Authorization", &admin)],
            "50",
        ),
        (
            "/metrics",
            "/metrics".into(),
            vec![("Authorization", &admin)],
            "50",
        ),
        (
            "search ?q=crete 1",
            "/search?q=crete%201".into(),
            vec![("Authorization", &user_cookie)],
            "300",
        ),
        (
            "one page of /api/v1/files?limit=1000",
            "/api/v1/files?limit=1000".into(),
            vec![("Authorization", &user)],
            "-",
        ),
    ];
    for (what, target, headers, target_ms) in &routes {
        let (median, p99) = latency(srv.port, target, headers);
        rows.push(row(
            &label(what),
            format!("median {median:.1} ms, p99 {p99:.1} ms"),
            "(under upload)".into(),
            format!("target < {target_ms} ms"),
        ));
    }
    stop.store(true, Ordering::Relaxed);
    up.join().unwrap();
    eprintln!(
        "bench: {} uploads during the route measurements",
        done.load(Ordering::Relaxed)
    );
    let rss_served = rss_kib(pid);

    // 20 full listings of one user's 20% of the catalog at once.
    let (growth, bytes) = concurrent_listings(srv.port, pid, &tokens[1], 20);
    rows.push(row(
        &label(&format!(
            "RSS growth during 20 concurrent full listings of {} files ({:.0} MiB each)",
            files / USERS,
            bytes as f64 / (1 << 20) as f64
        )),
        format!(
            "{:.1} MiB in all, {:.2} MiB per listing",
            growth as f64 / 1024.0,
            growth as f64 / 1024.0 / 20.0
        ),
        format!(
            "RSS after the routes: {:.0} MiB",
            rss_served as f64 / 1024.0
        ),
        "target < 8 MiB per listing; < 320 MiB in all at 1M".into(),
    ));
    let rss_end = rss_kib(pid);
    eprintln!("bench: server RSS at the end {} MiB", rss_end / 1024);
    if let Some(l) = srv.log().lines().find(|l| l.contains("catalog loaded:")) {
        eprintln!("bench: {l}");
    }
    drop(srv);
    let _ = std::fs::remove_dir_all(&data);
}

/// The client's no-change pass over `files` files and its memory.
fn client_pass(w: &Path, files: usize, rows: &mut Vec<Row>) {
    eprintln!("bench: client over {files} files");
    let src = w.join("client-scale");
    for i in 0..files {
        let dir = src.join(format!("d{}", i / 500));
        if i % 500 == 0 {
            std::fs::create_dir_all(&dir).unwrap();
        }
        std::fs::write(dir.join(format!("f{i}.txt")), format!("file {i}")).unwrap();
    }
    let data = w.join("client-scale-data");
    let srv = super::Srv::start(&data, &[]);
    let state = w.join("client-scale-state.json");
    let first = timed(|| srv.client_once(&src, &state));
    let (pass, peak) = peak_of(fixtures::client_command(
        &srv.url(),
        &src,
        "bench",
        &state,
        &["--once"],
    ));
    let state_bytes = std::fs::metadata(&state).map(|m| m.len()).unwrap_or(0);
    rows.push(row(
        &format!("client, {files} files: no-change pass; peak RSS"),
        format!(
            "{:.2} s; {:.0} MiB",
            pass.as_secs_f64(),
            peak as f64 / 1024.0
        ),
        format!(
            "first backup {:.0} s; state file {:.0} MiB",
            first.as_secs_f64(),
            state_bytes as f64 / (1 << 20) as f64
        ),
        "target < 2 s and < 128 MiB".into(),
    ));
    drop(srv);
    let _ = std::fs::remove_dir_all(&src);
    let _ = std::fs::remove_dir_all(&data);
}

/// Runs `cmd`; its wall time and peak RSS (KiB).
fn peak_of(mut cmd: std::process::Command) -> (Duration, u64) {
    let t = Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "the client pass failed");
            break;
        }
        let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0);
        peak = peak.max(hwm);
        std::thread::sleep(Duration::from_millis(5));
    }
    (t.elapsed(), peak)
}

/// Seconds from spawn to the first answer of a server on a catalog of
/// `files` files, encrypted at rest or not (for the encryption figures).
pub fn startup(w: &Path, files: usize, sealed: bool, round: usize) -> f64 {
    let data = w.join(format!("startup-{files}-{sealed}-{round}"));
    let vault = if sealed {
        let opts = nimbus_server::vault::UnlockOptions {
            encryption: true,
            key_file: Some(fixtures::key_file_of(&data)),
        };
        nimbus_server::vault::open(&data, &opts).unwrap().0
    } else {
        std::fs::create_dir_all(&data).unwrap();
        nimbus_server::vault::Vault::plain()
    };
    generate_with(&data, files, &vault);
    fixtures::prepare(0, &data);
    let t = Instant::now();
    let srv = fixtures::Server::start_on(&data, &["--hotspot-interval", "3600"]);
    let r = fixtures::request(srv.port, "GET", "/api/v1/admin/health", &[], b"");
    assert!(r.status == 401 || r.status == 200);
    let secs = t.elapsed().as_secs_f64();
    drop(srv);
    let _ = std::fs::remove_dir_all(&data);
    secs
}

pub fn run(w: &Path, rows: &mut Vec<Row>) {
    // NIMBUS_BENCH_SCALE=100000,1000000,client chooses what runs.
    let what = std::env::var("NIMBUS_BENCH_SCALE").unwrap_or("100000,1000000,client".into());
    for files in what.split(',').filter_map(|n| n.parse().ok()) {
        measure(w, files, rows);
    }
    if what.split(',').any(|w| w == "client") {
        client_pass(w, 200_000, rows);
    }
}
