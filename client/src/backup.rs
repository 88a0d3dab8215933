//! One backup pass: walk the folder, find files whose (size, mtime) differ
//! from the state, wait until they have settled, hash them, and send each
//! to the server (by reference when it may already hold the content, else
//! the bytes). A file is marked done only after the server acknowledged it.

use crate::api::{Api, ApiError};
use crate::scan::{self, Found, Skipped};
use crate::state::{Entry, State};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use log::{info, warn};
use nimbus_common::hash::ContentHash;
use nimbus_common::hash::Hasher;
use nimbus_common::wire::{BatchEntry, ChunkEntry, ManifestCommit, RecordRequest};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Files at least this large are first offered by hash, so content the
/// server already holds is not sent again. Smaller ones cost less to send
/// than a round trip.
const RECORD_FIRST_BYTES: u64 = 64 * 1024;
/// Files this large are cut into content-defined chunks, and only the
/// chunks the server lacks are sent: an edit costs about the chunks it
/// touches, and a pass cut short resumes from the chunks already there ...
const CHUNKED_BYTES: u64 = nimbus_common::wire::CHUNKED_FILE_BYTES;
/// ... asked about and sent in groups of about this many bytes (what one
/// file's upload holds in memory).
const GROUP_BYTES: usize = 8 << 20;
/// Smaller files travel in batches (read whole, sent many per request, made
/// durable together on the server): at most this many files ...
const BATCH_FILES: usize = 256;
/// ... and this many bytes of content per batch.
const BATCH_BYTES: u64 = 4 << 20;
/// The state is saved at least this often during a long pass.
const SAVE_EVERY: Duration = Duration::from_secs(3);
/// Attempts per request when the server answers 5xx or cannot be reached.
const ATTEMPTS: u32 = 4;

#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub scanned: usize,
    pub uploaded: usize,
    pub bytes: u64,
    /// Deletions the server recorded.
    pub deleted: usize,
    pub unchanged: usize,
    /// Changed files waiting to settle, or changed while being read.
    pub pending: usize,
    pub errors: usize,
    /// Why the pass stopped early, if it did.
    pub server_problem: Option<String>,
    /// The server refused this machine's token, or its certificate is not
    /// trusted (`LoggedOut` or `Untrusted`): nothing more can be sent.
    pub auth_problem: Option<crate::ClientError>,
    /// Failed files and why, for `--once`'s report.
    pub failures: Vec<String>,
    /// The same, for the status report.
    pub problems: Vec<nimbus_common::wire::Problem>,
    /// The pass was outside every backup window: it only looked.
    pub outside_window: bool,
}

impl Summary {
    /// Notes a file (or folder) that could not be backed up.
    fn fail(&mut self, path: &str, why: &str) {
        self.failures.push(format!("{path}: {why}"));
        self.problems.push(nimbus_common::wire::Problem {
            path: path.to_string(),
            message: why.to_string(),
        });
    }

    pub fn did_something(&self) -> bool {
        self.uploaded + self.deleted + self.errors + self.pending > 0
            || self.server_problem.is_some()
            || self.auth_problem.is_some()
    }

    pub fn line(&self) -> String {
        format!(
            "pass: scanned {}, uploaded {} ({} bytes), deleted {}, unchanged {}, pending {}, errors {}{}",
            self.scanned,
            self.uploaded,
            self.bytes,
            self.deleted,
            self.unchanged,
            self.pending,
            self.errors,
            match (&self.server_problem, self.outside_window) {
                (Some(p), _) => format!(" (stopped early: {p})"),
                (None, true) => " (outside the backup window: nothing sent)".to_string(),
                (None, false) => String::new(),
            }
        )
    }
}

pub struct Backup {
    pub api: Api,
    pub state: State,
    pub state_path: PathBuf,
    pub settle: Duration,
    pub stop: Arc<AtomicBool>,
    /// Files hashed and sent at once.
    pub jobs: usize,
    /// When each changed (path, size, mtime) was first seen, to settle files
    /// whose mtime is in the future or preserved from elsewhere.
    first_seen: HashMap<String, (u64, i64, Instant)>,
    /// Permanent problems already reported, so they are not repeated.
    reported: HashSet<Skipped>,
    /// Files the server refused (4xx), by (size, mtime): not sent again, and
    /// not hashed again every pass, until they change.
    refused: Refused,
    /// The folders backed up: the `--dir` first (with what its walk leaves
    /// out: the policy's exclusions and largest file), then named ones.
    pub sources: Vec<scan::Source>,
    /// Whether this pass may send (inside a backup window).
    pub may_upload: bool,
}

/// Files the server refused, by path: (size, mtime in ns, why).
type Refused = HashMap<String, (u64, i64, String)>;

impl Backup {
    pub fn new(
        root: PathBuf,
        api: Api,
        state: State,
        state_path: PathBuf,
        settle: Duration,
        stop: Arc<AtomicBool>,
        jobs: usize,
    ) -> Backup {
        Backup {
            api,
            state,
            state_path,
            settle,
            stop,
            jobs: jobs.max(1),
            first_seen: HashMap::new(),
            reported: HashSet::new(),
            refused: HashMap::new(),
            sources: vec![scan::Source {
                name: String::new(),
                path: root,
                filter: scan::Filter::none(),
            }],
            may_upload: true,
        }
    }

    /// One pass over the folder: scan it, record what was deleted here,
    /// then hash and send what changed. Nothing counts as backed up before
    /// the server acknowledged it; the state is saved as acknowledgements
    /// come in.
    pub fn pass(&mut self) -> Summary {
        let mut sum = Summary::default();
        let (scan, walked) = scan::scan_sources(&self.sources);
        sum.scanned = scan.files.len();
        let mut dirty = self.note_folders(walked);
        let unsure = self.note_skipped(scan.skipped, &mut sum);
        if !self.may_upload {
            // Outside the windows: what waits is counted, nothing is sent.
            sum.outside_window = true;
            if dirty {
                self.save();
            }
            sum.pending = scan
                .files
                .iter()
                .filter(|f| {
                    self.state
                        .files
                        .get(&f.rel)
                        .is_none_or(|e| (e.size, e.mtime_ns) != (f.size, f.mtime_ns))
                })
                .count();
            return sum;
        }
        dirty |= self.record_deletions(&scan.files, &unsure, &mut sum);
        if sum.server_problem.is_none() && sum.auth_problem.is_none() {
            let jobs = self.plan(scan.files, &mut sum);
            dirty = self.send(jobs, &mut sum, dirty);
        }
        if dirty {
            self.save();
        }
        sum
    }

    /// Reports what the scan skipped (permanent problems once); returns
    /// the folders whose walk failed, where absence proves nothing ("" for
    /// the whole folder).
    fn note_skipped(&mut self, skipped: Vec<Skipped>, sum: &mut Summary) -> Vec<String> {
        let mut unsure = Vec::new();
        for s in skipped {
            match &s {
                Skipped::Permanent { path, why } => {
                    if self.reported.insert(s.clone()) {
                        warn!("skipped {path}: {why}");
                    }
                }
                Skipped::Folder { path, why } => {
                    warn!("{path}: {why}");
                    sum.errors += 1;
                    sum.fail(path, why);
                }
                Skipped::Error { path, why } => {
                    warn!("cannot read {path}: {why}; retrying next pass");
                    sum.errors += 1;
                    sum.fail(path, why);
                    // The folder itself (missing, unreadable): nothing is sure.
                    unsure.push(scan::key_of(&self.sources, Path::new(path)));
                }
            }
        }
        unsure
    }

    /// Files in the state that are gone were deleted here: the server
    /// records each deletion (a tombstone), and only then does the state
    /// forget the file, so a deletion is never lost to a server that is
    /// down or a client that is killed. Returns whether the state changed.
    fn record_deletions(&mut self, files: &[Found], unsure: &[String], sum: &mut Summary) -> bool {
        let present: HashSet<&str> = files.iter().map(|f| f.rel.as_str()).collect();
        let gone: Vec<String> = self
            .state
            .files
            .keys()
            .filter(|rel| !present.contains(rel.as_str()))
            .filter(|rel| {
                !unsure
                    .iter()
                    .any(|u| nimbus_common::paths::is_within(rel, u))
            })
            // Still there, but left out (excluded now, or too large): not
            // deleted, its versions stay as they are.
            .filter(|rel| !self.still_there(rel))
            .cloned()
            .collect();
        let mut dirty = false;
        for rel in gone {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            match self.api.delete(&rel) {
                Ok(()) => {
                    info!("deleted {rel} (its versions stay on the server)");
                    self.state.files.remove(&rel);
                    sum.deleted += 1;
                    dirty = true;
                }
                Err(e) => match classify(e) {
                    FileError::Server(why) => {
                        sum.pending += 1;
                        sum.server_problem.get_or_insert(why);
                        break;
                    }
                    FileError::Auth(why) => {
                        sum.auth_problem.get_or_insert(why);
                        break;
                    }
                    FileError::Refused(why) | FileError::File(why) => {
                        warn!("{rel}: deletion not recorded: {why}; retrying next pass");
                        sum.errors += 1;
                        sum.fail(&rel, &why);
                    }
                    FileError::Stopped => break,
                },
            }
        }
        dirty
    }

    /// Remembers the named folders walked; a folder that is no longer
    /// backed up (gone from the policy) leaves the state: its files stay on
    /// the server as they are, not marked deleted (as an exclusion leaves
    /// them), and come back at no upload cost if it returns. Returns whether
    /// the state changed.
    fn note_folders(&mut self, walked: Vec<String>) -> bool {
        let named: HashSet<&str> = self
            .sources
            .iter()
            .map(|s| s.name.as_str())
            .filter(|n| !n.is_empty())
            .collect();
        let retired: Vec<String> = self
            .state
            .folders
            .iter()
            .filter(|n| !named.contains(n.as_str()))
            .cloned()
            .collect();
        let mut dirty = false;
        for name in retired {
            let before = self.state.files.len();
            self.state
                .files
                .retain(|rel, _| !nimbus_common::paths::is_within(rel, &name));
            info!(
                "folder {name:?} is no longer backed up; its {} file(s) stay on the server as they are",
                before - self.state.files.len()
            );
            self.state.folders.remove(&name);
            dirty = true;
        }
        for name in walked {
            dirty |= self.state.folders.insert(name);
        }
        dirty
    }

    /// Whether the file the state knows as `rel` is still in its folder.
    fn still_there(&self, rel: &str) -> bool {
        let Some((src, inner)) = scan::source_of(&self.sources, rel) else {
            return false;
        };
        let root = src.path.to_string_lossy();
        nimbus_common::localpath::to_local(
            nimbus_common::localpath::Style::HOST,
            false,
            &root,
            inner,
            false,
        )
        .is_ok_and(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
    }

    /// The files to send now (with the content the state knows for each):
    /// changed since the state, settled, and not refused as they are.
    fn plan(&mut self, files: Vec<Found>, sum: &mut Summary) -> Vec<(Found, Option<ContentHash>)> {
        let mut todo = Vec::new();
        for f in files {
            match self.state.files.get(&f.rel) {
                Some(e) if e.size == f.size && e.mtime_ns == f.mtime_ns => sum.unchanged += 1,
                _ => todo.push(f),
            }
        }
        let changed: HashSet<String> = todo.iter().map(|f| f.rel.clone()).collect();
        self.first_seen
            .retain(|rel, _| changed.contains(rel.as_str()));
        self.refused.retain(|rel, _| changed.contains(rel.as_str()));
        let mut jobs = Vec::new();
        for f in todo {
            if let Some((size, mtime_ns, why)) = self.refused.get(&f.rel) {
                if (*size, *mtime_ns) == (f.size, f.mtime_ns) {
                    sum.errors += 1;
                    sum.fail(&f.rel, why);
                    continue;
                }
            }
            if self.settled(&f) {
                let prior = self.state.files.get(&f.rel).map(|e| e.hash);
                jobs.push((f, prior));
            } else {
                sum.pending += 1;
            }
        }
        jobs
    }

    /// Hashes and sends `jobs` on `self.jobs` threads; acknowledgements
    /// come back here, the only place the state changes (saved every
    /// `SAVE_EVERY`). Returns whether the state changed since it was last
    /// saved.
    fn send(
        &mut self,
        jobs: Vec<(Found, Option<ContentHash>)>,
        sum: &mut Summary,
        mut dirty: bool,
    ) -> bool {
        let total: u64 = jobs.iter().map(|(f, _)| f.size).sum();
        let bar = progress_bar(jobs.len(), total);
        let jobs = into_jobs(jobs);
        let queue = Mutex::new(jobs.into_iter());
        let abort = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<(Found, Result<Done, FileError>)>();
        let mut last_save = Instant::now();
        let worker = Worker {
            api: &self.api,
            stop: &self.stop,
            abort: &abort,
        };
        std::thread::scope(|scope| {
            for _ in 0..self.jobs {
                let (tx, queue, worker, bar) = (tx.clone(), &queue, &worker, &bar);
                scope.spawn(move || loop {
                    if worker.abort.load(Ordering::SeqCst) || worker.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let results = match next {
                        None => break,
                        Some(Job::One(f, prior)) => {
                            let result = worker.back_up(&f, prior, bar);
                            vec![(f, result)]
                        }
                        Some(Job::Batch(files)) => worker.back_up_batch(files, bar),
                    };
                    for (f, result) in results {
                        if matches!(
                            result,
                            Err(FileError::Server(_) | FileError::Auth(_) | FileError::Stopped)
                        ) {
                            worker.abort.store(true, Ordering::SeqCst);
                        }
                        if tx.send((f, result)).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            for (f, result) in rx {
                dirty |= acknowledge(&mut self.state, &mut self.refused, f, result, sum);
                if dirty && last_save.elapsed() >= SAVE_EVERY {
                    if let Err(e) = self.state.save(&self.state_path) {
                        warn!("{e}; progress will be re-checked after a restart");
                    }
                    dirty = false;
                    last_save = Instant::now();
                }
            }
        });
        // Files never started because the pass was cut short.
        sum.pending += queue
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .map(|job| job.files())
            .sum::<usize>();
        bar.finish_and_clear();
        dirty
    }

    fn save(&self) {
        if let Err(e) = self.state.save(&self.state_path) {
            warn!("{e}; progress will be re-checked after a restart");
        }
    }

    fn settled(&mut self, f: &Found) -> bool {
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let settle_ns = self.settle.as_nanos() as i64;
        if now_ns.saturating_sub(f.mtime_ns) >= settle_ns && f.mtime_ns <= now_ns {
            return true;
        }
        let entry =
            self.first_seen
                .entry(f.rel.clone())
                .or_insert((f.size, f.mtime_ns, Instant::now()));
        if (entry.0, entry.1) != (f.size, f.mtime_ns) {
            *entry = (f.size, f.mtime_ns, Instant::now());
        }
        entry.2.elapsed() >= self.settle
    }
}

/// What one file's attempt means for the state and the summary;
/// returns whether the state changed.
fn acknowledge(
    state: &mut State,
    refused: &mut Refused,
    f: Found,
    result: Result<Done, FileError>,
    sum: &mut Summary,
) -> bool {
    match result {
        Ok(Done::Sent { entry, new_version }) => {
            if new_version {
                info!("backed up {} ({} bytes)", f.rel, f.size);
            }
            state.files.insert(f.rel.clone(), entry);
            sum.uploaded += 1;
            sum.bytes += f.size;
            return true;
        }
        Ok(Done::SameContent(entry)) => {
            state.files.insert(f.rel.clone(), entry);
            sum.unchanged += 1;
            return true;
        }
        Ok(Done::Changed) => sum.pending += 1,
        Err(FileError::File(why)) => {
            warn!("{}: {why}; retrying next pass", f.path.display());
            sum.errors += 1;
            sum.fail(&f.rel, &why);
        }
        Err(FileError::Refused(why)) => {
            warn!(
                "{}: {why}; it is tried again when it changes",
                f.path.display()
            );
            sum.errors += 1;
            sum.fail(&f.rel, &why);
            refused.insert(f.rel, (f.size, f.mtime_ns, why));
        }
        Err(FileError::Server(why)) => {
            sum.pending += 1;
            sum.server_problem.get_or_insert(why);
        }
        Err(FileError::Auth(why)) => {
            sum.pending += 1;
            sum.auth_problem.get_or_insert(why);
        }
        Err(FileError::Stopped) => sum.pending += 1,
    }
    false
}

/// The part of a pass that runs on worker threads: hashing and sending.
struct Worker<'a> {
    api: &'a Api,
    stop: &'a Arc<AtomicBool>,
    /// Set when the server is unreachable: no new files are started.
    abort: &'a AtomicBool,
}

impl Worker<'_> {
    /// Hashes and sends one file. The hash is taken first; the state records
    /// the (size, mtime) seen before reading, so a change during the upload
    /// shows up as a difference next pass.
    fn back_up(
        &self,
        f: &Found,
        prior: Option<ContentHash>,
        bar: &ProgressBar,
    ) -> Result<Done, FileError> {
        if f.size >= CHUNKED_BYTES {
            match self.back_up_chunked(f, prior, bar) {
                // A server from before chunks: the whole file, as before.
                Err(ApiError::Refused {
                    status: 404 | 405, ..
                }) => {}
                Ok(done) => return Ok(done),
                Err(ApiError::Changed) => return Ok(Done::Changed),
                Err(e) => return Err(classify(e)),
            }
        }
        let file = File::open(&f.path).map_err(|e| FileError::File(e.to_string()))?;
        let (hash, size) =
            ContentHash::of_reader(&file).map_err(|e| FileError::File(e.to_string()))?;
        if !unchanged_since(&f.path, f) || size != f.size {
            return Ok(Done::Changed);
        }
        let entry = Entry {
            size,
            mtime_ns: f.mtime_ns,
            hash,
        };
        if prior == Some(hash) {
            // Touched but not changed: no upload, no new version.
            bar.inc(size);
            return Ok(Done::SameContent(entry));
        }
        let version = RecordRequest {
            hash,
            size,
            mtime: wire_mtime(f.mtime_ns),
        };
        if size >= RECORD_FIRST_BYTES {
            match self.with_retries(|api| api.record(&f.rel, &version)) {
                Ok(reply) => {
                    bar.inc(size);
                    return Ok(Done::Sent {
                        entry,
                        new_version: reply.new_version,
                    });
                }
                Err(ApiError::ContentUnknown) => {}
                Err(e) => return Err(classify(e)),
            }
        }
        let result = self.with_retries(|api| {
            let file = File::open(&f.path).map_err(ApiError::Local)?;
            let inc = |n: u64| bar.inc(n);
            api.upload(&f.rel, file, &version, self.stop, &inc)
        });
        match result {
            Ok(reply) => Ok(Done::Sent {
                entry,
                new_version: reply.new_version,
            }),
            Err(ApiError::Changed) => Ok(Done::Changed),
            Err(e) => Err(classify(e)),
        }
    }

    /// Backs up a large file as content-defined chunks: read once, cut
    /// with FastCDC and hashed (each chunk, and the whole) as it goes;
    /// every group of chunks is asked about and only those the server lacks
    /// are sent; then the version is committed as the list of its chunks.
    /// A commit told of chunks missing (pruned meanwhile, or cut short on
    /// the server by a power cut) sends those and commits again.
    fn back_up_chunked(
        &self,
        f: &Found,
        prior: Option<ContentHash>,
        bar: &ProgressBar,
    ) -> Result<Done, ApiError> {
        let file = File::open(&f.path).map_err(ApiError::Local)?;
        // Cutting and hashing the whole here; hashing each chunk, asking
        // and sending on a second thread: the next group is cut while the
        // last one travels, and the two hashes share the two cores.
        let (tx, rx) = mpsc::sync_channel::<Vec<Vec<u8>>>(1);
        let (read, sent) = std::thread::scope(|scope| {
            let sender = scope.spawn(move || -> Result<Vec<(ContentHash, u64)>, ApiError> {
                let mut chunks = Vec::new();
                for group in rx {
                    let group: Vec<(ContentHash, Vec<u8>)> = group
                        .into_iter()
                        .map(|data| (ContentHash::of_bytes(&data), data))
                        .collect();
                    chunks.extend(group.iter().map(|(h, d)| (*h, d.len() as u64)));
                    self.send_missing(group, bar)?;
                }
                Ok(chunks)
            });
            let read = self.cut(file, tx);
            let sent = sender
                .join()
                .unwrap_or_else(|_| Err(ApiError::Local(io::Error::other("sender panicked"))));
            (read, sent)
        });
        let chunks = sent?;
        let whole = read?;
        let (hash, size) = whole.finish();
        if !unchanged_since(&f.path, f) || size != f.size {
            return Err(ApiError::Changed);
        }
        let entry = Entry {
            size,
            mtime_ns: f.mtime_ns,
            hash,
        };
        if prior == Some(hash) {
            return Ok(Done::SameContent(entry));
        }
        let commit = ManifestCommit {
            hash,
            size,
            mtime: wire_mtime(f.mtime_ns),
            chunks,
        };
        let mut attempts = 0;
        loop {
            match self.with_retries(|api| api.commit_manifest(&f.rel, &commit)) {
                Ok(reply) => {
                    return Ok(Done::Sent {
                        entry,
                        new_version: reply.new_version,
                    })
                }
                Err(ApiError::ChunksMissing(missing)) if attempts < 2 => {
                    attempts += 1;
                    warn!(
                        "{}: the server asks again for {} chunk(s)",
                        f.rel,
                        missing.len()
                    );
                    self.resend(f, &commit.chunks, &missing)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Cuts `file` into chunks, hashing the whole, and hands them on in
    /// groups of about `GROUP_BYTES`; the whole's hasher when done (or when
    /// the other side stopped taking them).
    fn cut(&self, file: File, groups: mpsc::SyncSender<Vec<Vec<u8>>>) -> Result<Hasher, ApiError> {
        let mut whole = Hasher::new();
        let mut group: Vec<Vec<u8>> = Vec::new();
        let mut group_bytes = 0;
        for data in nimbus_common::chunking::chunks(file) {
            let data = data.map_err(ApiError::Local)?;
            if self.stop.load(Ordering::SeqCst) {
                return Err(ApiError::Stopped);
            }
            whole.update(&data);
            group_bytes += data.len();
            group.push(data);
            if group_bytes >= GROUP_BYTES {
                if groups.send(std::mem::take(&mut group)).is_err() {
                    // The sender failed; its error is the one to report.
                    return Ok(whole);
                }
                group_bytes = 0;
            }
        }
        let _ = groups.send(group);
        Ok(whole)
    }

    /// Asks which chunks of `group` the server lacks, and sends those.
    fn send_missing(
        &self,
        group: Vec<(ContentHash, Vec<u8>)>,
        bar: &ProgressBar,
    ) -> Result<(), ApiError> {
        if group.is_empty() {
            return Ok(());
        }
        let mut asked: Vec<ContentHash> = group.iter().map(|(h, _)| *h).collect();
        asked.sort();
        asked.dedup();
        let missing: HashSet<ContentHash> = self
            .with_retries(|api| api.missing_chunks(&asked))?
            .into_iter()
            .collect();
        let bytes: u64 = group.iter().map(|(_, d)| d.len() as u64).sum();
        let mut body = Vec::new();
        let mut sent = HashSet::new();
        for (h, data) in &group {
            if missing.contains(h) && sent.insert(*h) {
                chunk_entry(&mut body, h, data);
            }
        }
        if !body.is_empty() {
            self.with_retries(|api| api.send_chunks(&body))?;
        }
        bar.inc(bytes);
        Ok(())
    }

    /// Sends the chunks `missing` of `f` again, read back from the file at
    /// their offsets; a chunk that no longer reads the same means the file
    /// changed.
    fn resend(
        &self,
        f: &Found,
        chunks: &[(ContentHash, u64)],
        missing: &[ContentHash],
    ) -> Result<(), ApiError> {
        use std::io::{Seek, SeekFrom};
        let mut file = File::open(&f.path).map_err(ApiError::Local)?;
        let mut body = Vec::new();
        let mut offset = 0;
        let missing: HashSet<&ContentHash> = missing.iter().collect();
        let mut sent = HashSet::new();
        for (h, len) in chunks {
            if missing.contains(h) && sent.insert(*h) {
                let mut data = vec![0u8; *len as usize];
                file.seek(SeekFrom::Start(offset))
                    .map_err(ApiError::Local)?;
                file.read_exact(&mut data).map_err(ApiError::Local)?;
                if ContentHash::of_bytes(&data) != *h {
                    return Err(ApiError::Changed);
                }
                chunk_entry(&mut body, h, &data);
                if body.len() >= GROUP_BYTES {
                    self.with_retries(|api| api.send_chunks(&body))?;
                    body.clear();
                }
            }
            offset += len;
        }
        if !body.is_empty() {
            self.with_retries(|api| api.send_chunks(&body))?;
        }
        Ok(())
    }

    /// Backs up small files in one request: each read whole and hashed (the
    /// bytes sent are the bytes hashed), those unchanged since their last
    /// backup only noted, the rest sent as one batch. A server from before
    /// batches (404, 405), or one that refuses the batch (400, 413: a file
    /// in it is bad or too large), gets them one by one instead, so each
    /// file has its own answer.
    fn back_up_batch(
        &self,
        files: Vec<(Found, Option<ContentHash>)>,
        bar: &ProgressBar,
    ) -> Vec<(Found, Result<Done, FileError>)> {
        let mut done = Vec::new();
        let mut sent: Vec<(Found, Option<ContentHash>, Entry)> = Vec::new();
        let mut body = Vec::new();
        for (f, prior) in files {
            let mut content = Vec::with_capacity(f.size as usize);
            let read = File::open(&f.path)
                .and_then(|file| file.take(RECORD_FIRST_BYTES).read_to_end(&mut content));
            if let Err(e) = read {
                done.push((f, Err(FileError::File(e.to_string()))));
                continue;
            }
            if !unchanged_since(&f.path, &f) || content.len() as u64 != f.size {
                done.push((f, Ok(Done::Changed)));
                continue;
            }
            let hash = ContentHash::of_bytes(&content);
            let entry = Entry {
                size: f.size,
                mtime_ns: f.mtime_ns,
                hash,
            };
            if prior == Some(hash) {
                bar.inc(f.size);
                done.push((f, Ok(Done::SameContent(entry))));
                continue;
            }
            let header = BatchEntry {
                path: f.rel.clone(),
                hash,
                size: f.size,
                mtime: wire_mtime(f.mtime_ns),
            };
            serde_json::to_writer(&mut body, &header).expect("serialisable");
            body.push(b'\n');
            body.extend_from_slice(&content);
            sent.push((f, prior, entry));
        }
        if sent.is_empty() {
            return done;
        }
        if self.stop.load(Ordering::SeqCst) {
            done.extend(sent.into_iter().map(|(f, ..)| (f, Err(FileError::Stopped))));
            return done;
        }
        match self.with_retries(|api| api.batch(&body)) {
            Ok(replies) if replies.len() == sent.len() => {
                for ((f, _, entry), reply) in sent.into_iter().zip(replies) {
                    bar.inc(f.size);
                    let new_version = reply.new_version;
                    done.push((f, Ok(Done::Sent { entry, new_version })));
                }
            }
            Ok(replies) => {
                let why = format!(
                    "the server answered {} of {} files of a batch",
                    replies.len(),
                    sent.len()
                );
                done.extend(
                    sent.into_iter()
                        .map(|(f, ..)| (f, Err(FileError::Server(why.clone())))),
                );
            }
            // A server from before batches (404, 405), or one refusing
            // the batch for one of its files (400, 413): one by one, so
            // each file gets its own answer.
            Err(ApiError::Refused { .. }) => {
                for (f, prior, _) in sent {
                    // Small files never go up in pieces.
                    let result = self.back_up(&f, prior, bar);
                    done.push((f, result));
                }
            }
            Err(e) => {
                let why = classify(e);
                for (f, ..) in sent {
                    done.push((f, Err(why.clone())));
                }
            }
        }
        done
    }

    fn with_retries<T>(
        &self,
        mut call: impl FnMut(&Api) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            match call(self.api) {
                Err(ApiError::Unavailable(why)) if attempt < ATTEMPTS => {
                    if self.abort.load(Ordering::SeqCst) {
                        return Err(ApiError::Unavailable(why));
                    }
                    warn!("server unavailable ({why}); retrying in {delay:?}");
                    if sleep_unless_stopped(delay, self.stop) {
                        return Err(ApiError::Stopped);
                    }
                    delay *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Appends one chunk to a chunk upload's body: its header line, its bytes.
fn chunk_entry(body: &mut Vec<u8>, hash: &ContentHash, data: &[u8]) {
    let header = ChunkEntry {
        hash: *hash,
        size: data.len() as u64,
    };
    serde_json::to_writer(&mut *body, &header).expect("serialisable");
    body.push(b'\n');
    body.extend_from_slice(data);
}

/// What a worker takes from the queue: one file, or a batch of small ones.
enum Job {
    One(Found, Option<ContentHash>),
    Batch(Vec<(Found, Option<ContentHash>)>),
}

impl Job {
    fn files(&self) -> usize {
        match self {
            Job::One(..) => 1,
            Job::Batch(files) => files.len(),
        }
    }
}

/// Small files into batches (of at most `BATCH_FILES` files and
/// `BATCH_BYTES` bytes), larger ones alone; batches first, so the many
/// small files do not wait behind one big one.
fn into_jobs(files: Vec<(Found, Option<ContentHash>)>) -> Vec<Job> {
    let (small, large): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(f, _)| f.size < RECORD_FIRST_BYTES);
    let mut jobs = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for (f, prior) in small {
        if batch.len() == BATCH_FILES || bytes + f.size > BATCH_BYTES {
            jobs.push(Job::Batch(std::mem::take(&mut batch)));
            bytes = 0;
        }
        bytes += f.size;
        batch.push((f, prior));
    }
    if !batch.is_empty() {
        jobs.push(Job::Batch(batch));
    }
    jobs.extend(large.into_iter().map(|(f, prior)| Job::One(f, prior)));
    jobs
}

enum Done {
    /// The server acknowledged it (a new version, or the same as its latest).
    Sent { entry: Entry, new_version: bool },
    /// Same content as last backed up: only the state changes.
    SameContent(Entry),
    /// It changed while being read or sent: next pass.
    Changed,
}

#[derive(Clone)]
enum FileError {
    /// This file failed; the pass goes on.
    File(String),
    /// The server refused this file (4xx); the pass goes on.
    Refused(String),
    /// The server is unreachable or full; the pass ends.
    Server(String),
    /// The server refused the token, or its certificate is not trusted:
    /// nothing can be sent until the user acts; the pass ends.
    Auth(crate::ClientError),
    Stopped,
}

fn classify(e: ApiError) -> FileError {
    match e {
        ApiError::Unavailable(w) => FileError::Server(w),
        ApiError::ServerFull(w) => FileError::Server(format!("the server's disk is full: {w}")),
        ApiError::Refused {
            status, message, ..
        } => FileError::Refused(format!("server refused it ({status}): {message}")),
        ApiError::Local(e) => FileError::File(format!("cannot read it: {e}")),
        ApiError::ContentUnknown => {
            FileError::File("server lost track of content it just reported".into())
        }
        ApiError::ChunksMissing(m) => FileError::File(format!(
            "the server still lacks {} chunk(s) after they were sent again",
            m.len()
        )),
        ApiError::Changed => FileError::File("changed while being sent".into()),
        ApiError::Stopped => FileError::Stopped,
        ApiError::Unauthorized(w) => FileError::Auth(crate::ClientError::LoggedOut(w)),
        ApiError::Untrusted(w) => FileError::Auth(crate::ClientError::Untrusted(w)),
    }
}

/// A modification time as the server takes it: whole seconds, from 1970
/// to 9999 (a time outside is sent clamped).
fn wire_mtime(mtime_ns: i64) -> i64 {
    mtime_ns
        .div_euclid(1_000_000_000)
        .clamp(0, nimbus_common::wire::MTIME_MAX)
}

fn unchanged_since(path: &Path, f: &Found) -> bool {
    match std::fs::metadata(path) {
        Ok(m) => m.len() == f.size && scan::mtime_ns(&m) == f.mtime_ns,
        Err(_) => false,
    }
}

/// Sleeps, waking early when `stop` is set; returns true if stopped.
pub fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    stop.load(Ordering::SeqCst)
}

fn progress_bar(files: usize, bytes: u64) -> ProgressBar {
    // Only a long pass on a terminal gets a bar; logs and pipes stay clean.
    if files < 20 && bytes < 64 << 20 || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
