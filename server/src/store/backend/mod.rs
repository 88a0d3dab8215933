//! Where published blob files live: the narrow interface between the blob
//! layer (`blobs`: names, forms, sealing, packing) and a place that holds
//! named byte strings. Two implementations: a directory on local disk
//! (`local`), the default, and an S3-compatible bucket (`s3`).
//!
//! A key is a blob file's path relative to the blob root, `ab/<name>`,
//! `ab/<name>.bz2`, `ab/<name>.bz2.idx` or `ab/<name>.manifest` (see
//! `blobs`). Staging files always lie on local disk, in `DATA/tmp`; a
//! backend only publishes a finished one.
//!
//! Promise of every backend: [`Backend::put`] makes the whole file visible
//! under its key, or nothing; once it returns with [`Durability::Now`] the
//! object survives a crash of this process and of the machine (local: the
//! file and its directory are fsync'd; S3: the store answered 200).

pub mod cache;
pub mod credentials;
pub mod local;
pub mod s3;

use nimbus_common::durable;
use s3::S3Options;
use std::fmt;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// When a published object must be durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Before `put` returns.
    Now,
    /// By the next [`Backend::sync`] (chunks, which a manifest waits for).
    Deferred,
}

/// An object open for reading: seekable, its length known.
pub trait Object: Read + Seek + Send {
    /// Its length in bytes.
    fn size(&self) -> u64;
}

/// The blob files' store.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Opens `key`; NotFound if there is no such object.
    fn open(&self, key: &str) -> io::Result<Box<dyn Object>>;

    /// The whole of a small object (an index, a manifest).
    fn read_all(&self, key: &str) -> io::Result<Vec<u8>> {
        let mut o = self.open(key)?;
        let mut v = Vec::with_capacity(o.size() as usize);
        o.read_to_end(&mut v)?;
        Ok(v)
    }

    /// An object's length; NotFound if absent.
    fn len(&self, key: &str) -> io::Result<u64>;

    /// Publishes the local staging file `from` (complete, verified) as
    /// `key`, replacing any object there. On success `from` is gone (moved
    /// or uploaded and removed); on failure it is left to the caller.
    fn put(&self, from: &Path, key: &str, durability: Durability) -> io::Result<()>;

    /// Publishes many, all durable when it returns (one sync for all where
    /// the backend can). Stops at the first failure; the files not yet
    /// published are left to the caller.
    fn put_all(&self, items: &mut dyn Iterator<Item = (PathBuf, String)>) -> io::Result<()> {
        for (from, key) in items {
            self.put(&from, &key, Durability::Now)?;
        }
        Ok(())
    }

    /// Publishes each of `items` as [`Backend::put`] does; a remote
    /// backend sends several at once. On failure (the first one is
    /// returned) the files of the puts that did not succeed are left to the
    /// caller.
    fn put_many(&self, items: &[(PathBuf, String)], durability: Durability) -> io::Result<()> {
        for (from, key) in items {
            self.put(from, key, durability)?;
        }
        Ok(())
    }

    /// Makes every [`Durability::Deferred`] put durable.
    fn sync(&self) -> io::Result<()>;

    /// Removes `key`, durably; Ok(false) if it was not there.
    fn remove(&self, key: &str) -> io::Result<bool>;

    /// Calls `visit` with every key, in no particular order.
    fn list(&self, visit: &mut dyn FnMut(&str)) -> io::Result<()>;

    /// Where it is, for the log (never a secret).
    fn describe(&self) -> String;

    /// The process is done with the store (a clean shutdown): what the
    /// backend keeps beside it may be made durable and marked sound.
    fn close(&self) -> io::Result<()> {
        Ok(())
    }

    /// Whether every read is a round trip to another machine (worth
    /// fetching ahead).
    fn is_remote(&self) -> bool {
        false
    }

    /// The local directory holding the objects, for a backend on local
    /// disk (in-place conversions and tests read the files).
    fn local_root(&self) -> Option<&Path> {
        None
    }
}

/// Runs `put` over `items` on up to `threads` threads, each taking the next
/// item; after a failure no new item is started. The first failure.
pub(crate) fn in_parallel(
    items: &[(PathBuf, String)],
    threads: usize,
    put: &(dyn Fn(&Path, &str) -> io::Result<()> + Sync),
) -> io::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().try_for_each(|(from, key)| put(from, key));
    }
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<io::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((from, key)) = items.get(i) else {
                    return;
                };
                if let Err(e) = put(from, key) {
                    failed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e);
                    next.store(items.len(), Ordering::Relaxed);
                    return;
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl crate::vault::AsLen for Box<dyn Object> {
    fn stored_len(&self) -> io::Result<u64> {
        Ok(self.size())
    }
}

/// The error inside an `io::Error` when the content store could not be
/// reached or failed on its side (a broken connection, a timeout, 5xx
/// after the retries): the request may succeed later, and is answered 503.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

/// Whether `e` is the store being unavailable (see [`Unavailable`]).
pub fn is_unavailable(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Unavailable>())
}

/// `DATA/store.json`: which bucket holds this data directory's content,
/// written when a bucket is first used, so that the directory is never
/// opened against another store (or local disk) by mistake.
pub const STORE_MARKER: &str = "store.json";

fn err(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `PREFIX/meta/owner` in the bucket: the id of the one data directory
/// whose catalog names the prefix's objects (`"owner"` in its store
/// marker). Only that directory may start on the prefix: any other would
/// remove the objects its own catalog does not name, the owner's content.
pub const OWNER_KEY: &str = "owner";

/// `DATA/takeover`: written by `recover` before anything else, holding the
/// id it gives the directory; removed once the bucket names that id. While
/// it is there the directory does not start (its catalog may be partial).
pub const TAKEOVER: &str = "takeover";

/// A data directory's store marker.
struct Marker {
    store: String,
    owner: Option<String>,
}

fn read_marker(data: &Path) -> io::Result<Option<Marker>> {
    match std::fs::read(data.join(STORE_MARKER)) {
        Ok(bytes) => {
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| err(format!("{STORE_MARKER} is damaged: {e}")))?;
            let store = v["store"]
                .as_str()
                .ok_or_else(|| err(format!("{STORE_MARKER} names no store")))?;
            Ok(Some(Marker {
                store: store.to_string(),
                owner: v["owner"].as_str().map(str::to_string),
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_marker(data: &Path, store: &str, owner: &str) -> io::Result<()> {
    std::fs::create_dir_all(data)?;
    let body = serde_json::json!({ "store": store, "owner": owner }).to_string();
    durable::write_atomic(&data.join(STORE_MARKER), |w| w.write_all(body.as_bytes()))
}

/// The bucket named by a data directory's store marker, if it has one.
pub fn marked_store(data: &Path) -> io::Result<Option<String>> {
    Ok(read_marker(data)?.map(|m| m.store))
}

/// A fresh owner id: 16 random bytes in hex.
pub fn new_owner_id() -> String {
    use rand_core::RngCore;
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The owner id the bucket's `meta/` names, if any.
fn bucket_owner(meta: &dyn Backend) -> io::Result<Option<String>> {
    match meta.read_all(OWNER_KEY) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).trim().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes the bucket's `meta/owner` say `owner`.
fn set_bucket_owner(data: &Path, meta: &dyn Backend, owner: &str) -> io::Result<()> {
    let tmp = data.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let staged = durable::temp_path_for(&tmp.join("owner"));
    std::fs::write(&staged, owner.as_bytes())?;
    let r = meta.put(&staged, OWNER_KEY, Durability::Now);
    let _ = std::fs::remove_file(&staged);
    r
}

/// Checks that this data directory owns the bucket's prefix, claiming a
/// prefix nobody owns yet (a first start, or a directory from before
/// owners): the local marker first, so that a crash between leaves a
/// directory that claims it again at its next start.
/// A directory new to the bucket (no marker) claims only a prefix that
/// holds nothing (`holds`: whether it does).
fn check_owner(
    data: &Path,
    url: &str,
    marker: Option<Marker>,
    meta: &dyn Backend,
    holds: impl FnOnce() -> io::Result<bool>,
) -> io::Result<()> {
    let fresh = marker.is_none();
    let in_use = || {
        err(format!(
            "{url} is in use by another Nimbus data directory: give this one a prefix of its \
             own (s3://BUCKET/OTHER-PREFIX), or take the content over with `recover` into an \
             empty data directory"
        ))
    };
    match (marker.and_then(|m| m.owner), bucket_owner(meta)?) {
        (Some(mine), Some(theirs)) if mine == theirs => Ok(()),
        (Some(_), Some(_)) => Err(err(format!(
            "{url} is now kept by another data directory (a server recovered from the bucket \
             took it over): this one is out of date and must not start on it, or it would \
             delete the other's content. To serve from this machine again, recover into an \
             empty data directory"
        ))),
        (None, Some(_)) => Err(in_use()),
        (Some(mine), None) => set_bucket_owner(data, meta, &mine),
        (None, None) => {
            if fresh && holds()? {
                return Err(in_use());
            }
            let mine = new_owner_id();
            write_marker(data, url, &mine)?;
            set_bucket_owner(data, meta, &mine)
        }
    }
}

/// Ends a `recover` into `data`: its marker names the bucket and the id of
/// `DATA/takeover`, the bucket's `meta/owner` that id (the directory the
/// bucket had before is out of date from now on), and the takeover file
/// goes. Run after the catalog is written.
pub fn finish_takeover(data: &Path, opts: &S3Options) -> io::Result<()> {
    let path = data.join(TAKEOVER);
    let id = std::fs::read_to_string(&path)?.trim().to_string();
    let meta = s3::S3Backend::connect(opts.clone(), "meta/")?;
    write_marker(data, &opts.url(), &id)?;
    set_bucket_owner(data, &meta, &id)?;
    std::fs::remove_file(&path)?;
    durable::sync_dir(data)
}

/// The backend a data directory's content is in: `DATA/blobs`, or the
/// bucket of `store` (connected and checked). Refuses a bucket other than
/// the one the directory was set up with, local disk for a directory whose
/// content is in a bucket, and a bucket for one whose content is on disk.
pub fn open_configured(data: &Path, store: Option<&S3Options>) -> io::Result<Arc<dyn Backend>> {
    let marker = read_marker(data)?;
    let marked = marker.as_ref().map(|m| m.store.clone());
    let Some(opts) = store else {
        if let Some(url) = marked {
            return Err(err(format!(
                "the content of this data directory is in {url}: start with --store {url} and its --s3-endpoint"
            )));
        }
        return Ok(Arc::new(local::LocalBackend::open(data.join("blobs"))?));
    };
    match &marked {
        Some(url) if *url != opts.url() => {
            return Err(err(format!(
                "the content of this data directory is in {url}, not {}",
                opts.url()
            )))
        }
        Some(_) => {}
        None => {
            let local = data.join("blobs");
            if std::fs::read_dir(&local).is_ok_and(|mut d| d.next().is_some()) {
                return Err(err(format!(
                    "this data directory keeps its content on local disk (blobs/); it cannot be moved to {} by a flag",
                    opts.url()
                )));
            }
        }
    }
    if data.join(TAKEOVER).exists() {
        return Err(err(format!(
            "a recover into {} did not finish: run the same `recover` again",
            data.display()
        )));
    }
    let bucket = s3::S3Backend::connect(opts.clone(), "blobs/")?;
    let meta = s3::S3Backend::connect(opts.clone(), "meta/")?;
    check_owner(data, &opts.url(), marker, &meta, || {
        Ok(bucket.holds_anything()? || meta.holds_anything()?)
    })?;
    let backend = cache::CachedBackend::open(
        data.join("cache"),
        Arc::new(bucket),
        opts.cache_bytes,
        cache::Mode::Use,
    )?;
    Ok(Arc::new(backend))
}
