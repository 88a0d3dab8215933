//! Nimbus beside restic and borg (Debian's packages, `make bench` installs
//! them) on the same data in the same run: a big file edited in place, many
//! small files, and a mixed folder. Each tool backs up to a repository of
//! its own on the same disk; restic encrypts (it cannot not), borg runs
//! with `--encryption none` like Nimbus today.

use super::{random_file, row, text_file, timed, Row, Srv, GIB, MIB};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub fn run(w: &Path, rows: &mut Vec<Row>) {
    for tool in ["restic", "borg"] {
        assert!(
            Command::new(tool).arg("--version").output().is_ok(),
            "{tool} is not installed: make bench installs restic and borgbackup (Debian packages)"
        );
    }
    big_file_edited(w, rows);
    small_files(w, rows);
    mixed_folder(w, rows);
}

/// One backup tool with its repository.
enum Tool {
    Nimbus { srv: Box<Srv>, state: PathBuf },
    Restic(PathBuf),
    Borg(PathBuf, u32),
}

impl Tool {
    fn all(w: &Path, name: &str) -> Vec<Tool> {
        let restic = w.join(format!("restic-{name}"));
        must(
            Command::new("restic")
                .args(["init", "--repo"])
                .arg(&restic)
                .env("RESTIC_PASSWORD", "bench"),
        );
        let borg = w.join(format!("borg-{name}"));
        must(
            Command::new("borg")
                .args(["init", "--encryption", "none"])
                .arg(&borg),
        );
        vec![
            Tool::Nimbus {
                srv: Box::new(Srv::start(&w.join(format!("nimbus-{name}")), &[])),
                state: w.join(format!("state-{name}.json")),
            },
            Tool::Restic(restic),
            Tool::Borg(borg, 0),
        ]
    }

    fn name(&self) -> &'static str {
        match self {
            Tool::Nimbus { .. } => "nimbus",
            Tool::Restic(_) => "restic",
            Tool::Borg(..) => "borg",
        }
    }

    /// Backs `dir` up once; how long it took.
    fn backup(&mut self, dir: &Path) -> Duration {
        timed(|| match self {
            Tool::Nimbus { srv, state } => srv.client_once(dir, state),
            Tool::Restic(repo) => must(
                Command::new("restic")
                    .args(["backup", "--quiet", "--repo"])
                    .arg(&*repo)
                    .arg(dir)
                    .env("RESTIC_PASSWORD", "bench"),
            ),
            Tool::Borg(repo, n) => {
                *n += 1;
                let mut archive = repo.as_os_str().to_owned();
                archive.push(format!("::a{n}"));
                must(Command::new("borg").arg("create").arg(archive).arg(dir))
            }
        })
    }

    /// Chunk bytes the Nimbus server has received (0 for the others).
    fn received(&self) -> u64 {
        match self {
            Tool::Nimbus { srv, .. } => srv.server.chunk_bytes(),
            _ => 0,
        }
    }

    /// Bytes the tool's store takes on disk.
    fn stored(&self) -> u64 {
        let dir = match self {
            Tool::Nimbus { srv, .. } => srv.server.data.clone(),
            Tool::Restic(repo) | Tool::Borg(repo, _) => repo.clone(),
        };
        du(&dir)
    }
}

fn must(cmd: &mut Command) {
    cmd.env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
        .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Bytes under `dir` (apparent sizes of its files).
fn du(dir: &Path) -> u64 {
    super::walk(dir)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// `nimbus x, restic y, borg z` from one figure per tool.
fn side_by_side(tools: &[Tool], figures: &[String]) -> String {
    tools
        .iter()
        .zip(figures)
        .map(|(t, f)| format!("{} {f}", t.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A 1 GiB random file backed up, then 4 MiB of it rewritten in the middle
/// and backed up again, then 100 bytes inserted at its start (every later
/// offset shifts) and backed up again.
fn big_file_edited(w: &Path, rows: &mut Vec<Row>) {
    eprintln!("bench: 1 GiB file edited in place, nimbus vs restic vs borg");
    let dir = w.join("edited");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mailbox.pst");
    random_file(&file, GIB);
    let mut tools = Tool::all(w, "edited");
    for t in &mut tools {
        t.backup(&dir);
    }
    super::sh(&format!(
        "head -c {} /dev/urandom | dd of='{}' bs=1M seek=510 conv=notrunc status=none",
        4 << 20,
        file.display()
    ));
    let before: Vec<u64> = tools.iter().map(Tool::stored).collect();
    let received = tools[0].received();
    let times: Vec<Duration> = tools.iter_mut().map(|t| t.backup(&dir)).collect();
    let sent = tools[0].received() - received;
    let growth: Vec<u64> = tools
        .iter()
        .zip(&before)
        .map(|(t, b)| t.stored().saturating_sub(*b))
        .collect();
    let mib = |v: u64| format!("{:.1} MiB", v as f64 / MIB);
    rows.push(row(
        "1 GiB random file, 4 MiB rewritten in the middle: growth of the store on the second backup (and file bytes sent)",
        format!("{} ({} sent)", mib(growth[0]), mib(sent)),
        side_by_side(&tools[1..], &[mib(growth[1]), mib(growth[2])]),
        "target: at most 16 MiB".into(),
    ));
    let secs = |d: &Duration| format!("{:.1} s", d.as_secs_f64());
    rows.push(row(
        "the same, time of the second backup",
        secs(&times[0]),
        side_by_side(&tools[1..], &[secs(&times[1]), secs(&times[2])]),
        format!(
            "{:.2} (ours/restic, target <= 1)",
            times[0].as_secs_f64() / times[1].as_secs_f64()
        ),
    ));
    super::sh(&format!(
        "head -c 100 /dev/urandom > '{0}.new' && cat '{0}' >> '{0}.new' && mv '{0}.new' '{0}'",
        file.display()
    ));
    let before: Vec<u64> = tools.iter().map(Tool::stored).collect();
    let received = tools[0].received();
    for t in &mut tools {
        t.backup(&dir);
    }
    let sent = tools[0].received() - received;
    let growth: Vec<u64> = tools
        .iter()
        .zip(&before)
        .map(|(t, b)| t.stored().saturating_sub(*b))
        .collect();
    rows.push(row(
        "the same file with 100 bytes inserted at its start: growth of the store (and file bytes sent)",
        format!("{} ({} sent)", mib(growth[0]), mib(sent)),
        side_by_side(&tools[1..], &[mib(growth[1]), mib(growth[2])]),
        "target: at most 16 MiB".into(),
    ));
    drop(tools);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A little pseudo-random number generator (xorshift), for sizes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// 20,000 files of 1-8 KiB: the first backup.
fn small_files(w: &Path, rows: &mut Vec<Row>) {
    const N: usize = 20_000;
    eprintln!("bench: {N} files of 1-8 KiB, nimbus vs restic vs borg");
    let dir = w.join("small-files");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..N {
        let sub = dir.join(format!("d{:03}", i % 200));
        std::fs::create_dir_all(&sub).unwrap();
        let len = 1024 + (rng.next() % (7 * 1024)) as usize;
        let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        std::fs::write(sub.join(format!("f{i:05}.dat")), body).unwrap();
    }
    let mut tools = Tool::all(w, "small");
    let times: Vec<Duration> = tools.iter_mut().map(|t| t.backup(&dir)).collect();
    let rate = |d: &Duration| {
        format!(
            "{:.1} s ({:.0} files/s)",
            d.as_secs_f64(),
            N as f64 / d.as_secs_f64()
        )
    };
    rows.push(row(
        "first backup of 20,000 files of 1-8 KiB",
        rate(&times[0]),
        side_by_side(&tools[1..], &[rate(&times[1]), rate(&times[2])]),
        format!(
            "{:.2} / {:.2} (ours/restic, ours/borg; target < 1)",
            times[0].as_secs_f64() / times[1].as_secs_f64(),
            times[0].as_secs_f64() / times[2].as_secs_f64()
        ),
    ));
    drop(tools);
    let _ = std::fs::remove_dir_all(&dir);
}

/// 2,000 files of about 1 GiB in all (sizes log-uniform from 1 KiB to
/// 4 MiB, half text, half random): the first backup and a pass with no
/// change.
fn mixed_folder(w: &Path, rows: &mut Vec<Row>) {
    const N: usize = 2_000;
    eprintln!("bench: {N} mixed files, nimbus vs restic vs borg");
    let dir = w.join("mixed");
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut total = 0u64;
    for i in 0..N {
        let sub = dir.join(format!("d{:02}", i % 40));
        std::fs::create_dir_all(&sub).unwrap();
        // log-uniform in [2^10, 2^22] bytes.
        let exp = 10.0 + 12.0 * (rng.next() % 1_000_000) as f64 / 1_000_000.0;
        let len = 2f64.powf(exp) as u64;
        total += len;
        if i % 2 == 0 {
            text_file(&sub.join(format!("t{i:04}.txt")), len);
        } else {
            random_file(&sub.join(format!("r{i:04}.bin")), len);
        }
    }
    let mut tools = Tool::all(w, "mixed");
    let first: Vec<Duration> = tools.iter_mut().map(|t| t.backup(&dir)).collect();
    let again: Vec<Duration> = tools.iter_mut().map(|t| t.backup(&dir)).collect();
    let secs = |d: &Duration| format!("{:.2} s", d.as_secs_f64());
    rows.push(row(
        &format!(
            "first backup of {N} files, {:.2} GiB (1 KiB-4 MiB, half text, half random)",
            total as f64 / GIB as f64
        ),
        secs(&first[0]),
        side_by_side(&tools[1..], &[secs(&first[1]), secs(&first[2])]),
        format!(
            "{:.2} / {:.2} (ours/restic, ours/borg; target < 1)",
            first[0].as_secs_f64() / first[1].as_secs_f64(),
            first[0].as_secs_f64() / first[2].as_secs_f64()
        ),
    ));
    rows.push(row(
        "the same folder again, nothing changed",
        secs(&again[0]),
        side_by_side(&tools[1..], &[secs(&again[1]), secs(&again[2])]),
        format!(
            "{:.2} (restic/ours, target >= 10)",
            again[1].as_secs_f64() / again[0].as_secs_f64()
        ),
    ));
    drop(tools);
    let _ = std::fs::remove_dir_all(&dir);
}
