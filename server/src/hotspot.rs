//! The hotspot thread: every `--hotspot-interval` seconds it looks for blobs
//! nobody has uploaded or downloaded for `--hot-time` seconds and hands them
//! to the pack threads, which compress at low CPU priority so request workers
//! keep the cores they need. Downloads of packed blobs queue an unpack here
//! (the file is served meanwhile by decompressing as it streams). The thread
//! also compacts the catalog journal when it has grown.

use crate::store::DataManager;
use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use log::{error, info};
use nimbus_common::hash::ContentHash;
use nimbus_common::time::unix_now;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Journal records that must accumulate before compaction is considered.
const MIN_COMPACT_RECORDS: u64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Job {
    Pack(ContentHash),
    Unpack(ContentHash),
}

/// Handle to the hotspot machinery; dropping it does not stop it, [`Hotspot::stop`] does.
pub struct Hotspot {
    stop: Arc<AtomicBool>,
    wake: Sender<()>,
    jobs: Sender<Job>,
    /// Dropped at stop: its receivers, the pack threads, see it disconnect
    /// even while `Unpacker`s still hold senders of `jobs`.
    done: Sender<()>,
    queued: Arc<Mutex<HashSet<Job>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Hotspot {
    pub fn start(
        dm: &'static DataManager,
        hot_time: u64,
        interval: u64,
        pack_threads: usize,
    ) -> Hotspot {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake_tx, wake_rx) = channel::bounded::<()>(1);
        let (job_tx, job_rx) = channel::unbounded::<Job>();
        let queued = Arc::new(Mutex::new(HashSet::new()));
        let (done_tx, done_rx) = channel::bounded::<()>(0);
        let mut threads = Vec::new();
        for i in 0..pack_threads {
            let (rx, stop, queued) = (job_rx.clone(), stop.clone(), queued.clone());
            let done = done_rx.clone();
            threads.push(
                thread::Builder::new()
                    .name(format!("pack-{i}"))
                    .spawn(move || pack_worker(dm, rx, done, stop, queued))
                    .expect("spawn pack thread"),
            );
        }
        {
            let (stop, jobs, queued) = (stop.clone(), job_tx.clone(), queued.clone());
            threads.push(
                thread::Builder::new()
                    .name("hotspot".into())
                    .spawn(move || scheduler(dm, hot_time, interval, wake_rx, stop, jobs, queued))
                    .expect("spawn hotspot thread"),
            );
        }
        Hotspot {
            stop,
            wake: wake_tx,
            jobs: job_tx,
            done: done_tx,
            queued,
            threads,
        }
    }

    /// Asks for a packed blob to be made hot again (after a download).
    pub fn request_unpack(&self, hash: ContentHash) {
        enqueue(&self.jobs, &self.queued, Job::Unpack(hash));
    }

    /// A handle that request handlers keep (through the HTTP context) to
    /// queue unpacks; it stops working when the hotspot stops.
    pub fn unpacker(&self) -> Unpacker {
        Unpacker {
            jobs: self.jobs.clone(),
            queued: self.queued.clone(),
        }
    }

    /// Stops the threads; a pack in progress is abandoned (its staging file is
    /// removed), an unpack finishes.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.try_send(());
        drop(self.jobs);
        drop(self.done);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn enqueue(jobs: &Sender<Job>, queued: &Mutex<HashSet<Job>>, job: Job) {
    let mut q = queued.lock().unwrap_or_else(|e| e.into_inner());
    if q.insert(job) && jobs.send(job).is_err() {
        q.remove(&job);
    }
}

fn scheduler(
    dm: &'static DataManager,
    hot_time: u64,
    interval: u64,
    wake: Receiver<()>,
    stop: Arc<AtomicBool>,
    jobs: Sender<Job>,
    queued: Arc<Mutex<HashSet<Job>>>,
) {
    loop {
        match wake.recv_timeout(Duration::from_secs(interval)) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let cutoff = unix_now() - hot_time as i64;
        for hash in dm.cold_blobs(cutoff) {
            enqueue(&jobs, &queued, Job::Pack(hash));
        }
        match dm.maybe_compact(MIN_COMPACT_RECORDS) {
            Ok(true) => info!("catalog compacted into a new snapshot"),
            Ok(false) => {}
            Err(e) => error!("catalog compaction failed (the journal stays valid): {e}"),
        }
    }
}

fn pack_worker(
    dm: &'static DataManager,
    jobs: Receiver<Job>,
    done: Receiver<()>,
    stop: Arc<AtomicBool>,
    queued: Arc<Mutex<HashSet<Job>>>,
) {
    lower_priority();
    loop {
        let job = crossbeam::channel::select! {
            recv(jobs) -> job => match job {
                Ok(job) => job,
                Err(_) => return,
            },
            recv(done) -> _ => return,
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let result = match job {
            Job::Pack(h) => dm.pack(&h, &stop).map(|done| {
                if done {
                    info!("packed {h}");
                }
            }),
            Job::Unpack(h) => dm.unpack(&h).map(|done| {
                if done {
                    info!("unpacked {h}: it was downloaded");
                }
            }),
        };
        if let Err(e) = result {
            let what = if e.is_storage_full() {
                "the disk is full"
            } else {
                "error"
            };
            error!("{job:?} failed ({what}): {e}");
        }
        queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&job);
    }
}

/// Packing is background work: on Linux a thread can have its own nice
/// value, so compression yields the CPU to request workers.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread, no memory is shared.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// Queues unpacks on the hotspot: what a download of a packed file asks for.
#[derive(Clone)]
pub struct Unpacker {
    jobs: Sender<Job>,
    queued: Arc<Mutex<HashSet<Job>>>,
}

impl Unpacker {
    /// Asks for a packed blob to be made hot again (a no-op once the
    /// hotspot has stopped).
    pub fn request(&self, hash: ContentHash) {
        enqueue(&self.jobs, &self.queued, Job::Unpack(hash));
    }
}
