//! Storage over time: one small record per UTC day of what the server
//! holds (stored on disk, saved by packing and by dedup, the disk's used
//! and free space) and of each machine (files, their size, what they take
//! on disk). The charts read it; nothing walks the catalog for a page.
//!
//! The [`Recorder`] thread notes the day's figures at start, every
//! `--history-interval` and at a clean stop, from totals the catalog keeps
//! as records apply (a machine's stored bytes are recounted only when it
//! changed, see `Catalog::machine_summaries`). The day's last note wins.
//! The server's figures come from running totals; each machine's stored
//! bytes are a walk of its files when it changed (in this thread, never
//! for a page).
//! Kept in `DATA/history.json`, written atomically through the vault
//! after each note that changed something; a crash loses at most the
//! notes since the last write, and an unreadable file is set aside and
//! the history starts again (it is a picture of the past, not backup data).

use crate::store::DataManager;
use crate::vault::{Obj, Vault};
use log::warn;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

const FILE: &str = "history.json";
/// Days kept: two years.
pub const KEEP_DAYS: u32 = 731;

/// Days since the Unix epoch (UTC).
pub type Day = u32;

/// The day (UTC) holding the unix time `t`.
pub fn day_of(t: i64) -> Day {
    (t.max(0) / 86_400) as Day
}

/// A day as `2026-12-01`.
pub fn day_name(d: Day) -> String {
    nimbus_common::time::format_utc(d as i64 * 86_400)[..10].to_string()
}

/// The server's figures on a day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerDay {
    /// Bytes the stored contents take on disk (packed ones packed).
    pub stored: u64,
    /// What the stored contents hold, unpacked.
    pub content: u64,
    /// Every current file's size, summed over all machines.
    pub current: u64,
    /// The distinct contents the current files use.
    pub distinct: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_free: Option<u64>,
}

impl ServerDay {
    /// From the catalog's totals, `(current, distinct)` bytes of the
    /// current files (`DataManager::current_bytes`), and the disk.
    pub fn of(
        stats: &crate::store::Stats,
        (current, distinct): (u64, u64),
        disk: Option<crate::disk::DiskUsage>,
    ) -> ServerDay {
        ServerDay {
            stored: stats.bytes_stored,
            content: stats.bytes_original,
            current,
            distinct,
            disk_total: disk.map(|d| d.total),
            disk_free: disk.map(|d| d.free),
        }
    }

    pub fn saved_by_packing(&self) -> u64 {
        self.content.saturating_sub(self.stored)
    }
    pub fn saved_by_dedup(&self) -> u64 {
        self.current.saturating_sub(self.distinct)
    }
}

/// A machine's figures on a day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineDay {
    /// Current files.
    pub files: u64,
    /// Their size.
    pub bytes: u64,
    /// What they take on disk: each distinct content once, packed ones at
    /// their packed size.
    pub stored: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct DayNote {
    server: ServerDay,
    /// By catalog key, `user/machine`.
    machines: BTreeMap<String, MachineDay>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Book {
    days: BTreeMap<Day, DayNote>,
}

pub struct History {
    path: PathBuf,
    vault: Vault,
    book: RwLock<Book>,
}

impl History {
    /// Loads `DATA/history.json` (none yet: an empty history).
    pub fn open(data: &Path, vault: Vault) -> History {
        let path = data.join(FILE);
        let book = match vault.read_object(&path, Obj::History) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                set_aside(&path, &e.to_string());
                Book::default()
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Book::default(),
            Err(e) => {
                set_aside(&path, &e.to_string());
                Book::default()
            }
        };
        History {
            path,
            vault,
            book: RwLock::new(book),
        }
    }

    /// Notes `day`'s figures (replacing an earlier note of that day) and
    /// writes the history if they changed; days older than [`KEEP_DAYS`]
    /// before it are dropped. Returns whether anything was written.
    pub fn note(
        &self,
        day: Day,
        server: ServerDay,
        machines: BTreeMap<String, MachineDay>,
    ) -> io::Result<bool> {
        let note = DayNote { server, machines };
        let mut book = self.book.write().unwrap_or_else(|e| e.into_inner());
        if book.days.get(&day) == Some(&note) {
            return Ok(false);
        }
        let old = book.days.insert(day, note);
        let first = day.saturating_sub(KEEP_DAYS - 1);
        let dropped: Vec<Day> = book.days.range(..first).map(|(d, _)| *d).collect();
        let written = self
            .vault
            .write_atomic(&self.path, Obj::History, true, |w| {
                serde_json::to_writer(&mut *w, &*book).map_err(io::Error::other)
            });
        match written {
            Ok(()) => {
                for d in dropped {
                    book.days.remove(&d);
                }
                Ok(true)
            }
            Err(e) => {
                // Keep memory as the file is: the next note tries again.
                match old {
                    Some(n) => book.days.insert(day, n),
                    None => book.days.remove(&day),
                };
                Err(e)
            }
        }
    }

    /// The server's figures per noted day from `from`, oldest first.
    pub fn server(&self, from: Day) -> Vec<(Day, ServerDay)> {
        let book = self.book.read().unwrap_or_else(|e| e.into_inner());
        book.days
            .range(from..)
            .map(|(d, n)| (*d, n.server))
            .collect()
    }

    /// A machine's figures (catalog key `user/machine`) per noted day from
    /// `from` on which it had been seen, oldest first.
    pub fn machine(&self, key: &str, from: Day) -> Vec<(Day, MachineDay)> {
        let book = self.book.read().unwrap_or_else(|e| e.into_inner());
        book.days
            .range(from..)
            .filter_map(|(d, n)| Some((*d, *n.machines.get(key)?)))
            .collect()
    }
}

/// An unreadable history is kept beside as `history.json.bad` for whoever
/// wants to look, and the charts start again.
fn set_aside(path: &Path, why: &str) {
    let bad = path.with_extension("json.bad");
    warn!("{FILE} cannot be read ({why}); it is kept as {FILE}.bad and the storage history starts again");
    let _ = std::fs::rename(path, bad);
}

/// The server's figures now, from the catalog's running totals and the
/// disk (no walk): what the history notes and the health view shows.
pub fn server_day(dm: &DataManager) -> ServerDay {
    ServerDay::of(
        &dm.stats(),
        dm.current_bytes(),
        crate::disk::usage(dm.data_dir()),
    )
}

/// Today's figures: the server's and each machine's.
pub fn sample(dm: &DataManager) -> (ServerDay, BTreeMap<String, MachineDay>) {
    let server = server_day(dm);
    let machines = dm
        .machine_summaries_fresh()
        .into_iter()
        .map(|m| {
            let day = MachineDay {
                files: m.files as u64,
                bytes: m.bytes,
                stored: m.stored,
            };
            (m.key, day)
        })
        .collect();
    (server, machines)
}

/// The thread that notes the figures.
pub struct Recorder {
    wake: Arc<(Mutex<bool>, Condvar)>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Recorder {
    pub fn start(history: &'static History, dm: &'static DataManager, every: Duration) -> Recorder {
        let wake = Arc::new((Mutex::new(false), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (w, s) = (wake.clone(), stop.clone());
        let thread = thread::Builder::new()
            .name("history".into())
            .spawn(move || loop {
                note_now(history, dm);
                let (lock, cvar) = &*w;
                let woken = lock.lock().unwrap_or_else(|e| e.into_inner());
                let (mut woken, _) = cvar
                    .wait_timeout_while(woken, every, |w| !*w)
                    .unwrap_or_else(|e| e.into_inner());
                *woken = false;
                if s.load(Ordering::SeqCst) {
                    note_now(history, dm);
                    return;
                }
            })
            .expect("spawn the history thread");
        Recorder { wake, stop, thread }
    }

    /// Notes the figures once more and ends the thread.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let (lock, cvar) = &*self.wake;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
        let _ = self.thread.join();
    }
}

fn note_now(history: &History, dm: &DataManager) {
    let (server, machines) = sample(dm);
    let today = day_of(nimbus_common::time::unix_now());
    if let Err(e) = history.note(today, server, machines) {
        warn!("cannot write {FILE} (the figures are noted again later): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(stored: u64) -> ServerDay {
        ServerDay {
            stored,
            content: stored * 2,
            current: 10,
            distinct: 4,
            disk_total: Some(100),
            disk_free: Some(40),
        }
    }

    #[test]
    fn the_days_last_note_wins_survives_a_reopen_and_old_days_go() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path(), Vault::plain());
        let m = |files| {
            BTreeMap::from([(
                "u/pc".to_string(),
                MachineDay {
                    files,
                    bytes: 5,
                    stored: 3,
                },
            )])
        };
        assert!(h.note(1000, server(1), m(1)).unwrap());
        assert!(h.note(1000, server(2), m(2)).unwrap());
        assert!(
            !h.note(1000, server(2), m(2)).unwrap(),
            "unchanged: no write"
        );
        assert!(h.note(1001, server(3), BTreeMap::new()).unwrap());
        let h = History::open(dir.path(), Vault::plain());
        assert_eq!(h.server(0), vec![(1000, server(2)), (1001, server(3))]);
        assert_eq!(h.machine("u/pc", 0).len(), 1);
        assert_eq!(h.machine("u/pc", 0)[0].1.files, 2);
        assert_eq!(server(2).saved_by_packing(), 2);
        assert_eq!(server(2).saved_by_dedup(), 6);
        h.note(1000 + KEEP_DAYS, server(4), BTreeMap::new())
            .unwrap();
        let days: Vec<Day> = h.server(0).iter().map(|d| d.0).collect();
        assert_eq!(days, vec![1001, 1000 + KEEP_DAYS]);
    }

    #[test]
    fn an_unreadable_history_is_set_aside_and_starts_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let h = History::open(dir.path(), Vault::plain());
        assert!(h.server(0).is_empty());
        assert!(dir.path().join("history.json.bad").exists());
        assert!(h.note(5, server(1), BTreeMap::new()).unwrap());
        assert_eq!(History::open(dir.path(), Vault::plain()).server(0).len(), 1);
    }
}
