//! `catalog/snapshot.json`: the catalog as of one journal sequence number,
//! written and read a line at a time, so neither side ever holds a second
//! copy of the catalog (or the whole document) in memory.
//!
//! Format 2 is JSON lines:
//!
//! ```text
//! {"format":2,"seq":N,"blobs":B}
//! B blob lines, in record order (a version names its blob by this index):
//!   {"h":HASH,"s":SIZE,"a":LAST_ACCESS[,"f":"packed"|"missing"][,"p":PACKED][,"i":1][,"c":1][,"k":[HOLDERS]]}
//!   {"h":HASH,"s":SIZE,"gone":1}     dropped, named only by tombstones
//!   null                             an unused record
//! then per machine {"m":KEY}, per folder {"d":PATH}, and per file
//!   {"f":NAME,"v":[[N,BLOB,MTIME,AT(,1 if a tombstone)],...]}  oldest first
//! {"end":FILES}
//! ```
//!
//! The last line makes a truncated file detectable. Format 1 (one JSON
//! document with `files` and `blobs` arrays, written by earlier releases)
//! is still read, streamed entry by entry.

use super::catalog::blobs::RawBlob;
use super::catalog::tree::split_last;
use super::catalog::{BlobForm, BlobInfo, Catalog, RawVersion, Version};
use nimbus_common::hash::ContentHash;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{self, BufRead, Read, Write};

pub const FORMAT: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("line {line}: {message}")]
    Invalid { line: usize, message: String },
    #[error("format {0}, this server reads formats 1 and {FORMAT}")]
    Format(u32),
}

#[derive(Serialize, Deserialize)]
struct Head {
    format: u32,
    seq: u64,
    #[serde(default)]
    blobs: usize,
}

#[derive(Serialize, Deserialize)]
struct BlobLine<'a> {
    /// A late blob's record index (blob lines in the head's count have it
    /// by their order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    b: Option<u32>,
    h: ContentHash,
    s: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    a: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<BlobForm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<u64>,
    #[serde(default, skip_serializing_if = "is_false")]
    i: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    c: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    gone: bool,
    #[serde(borrow, default, skip_serializing_if = "Vec::is_empty")]
    k: Vec<std::borrow::Cow<'a, str>>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A line after the blobs: exactly one of its fields is set.
#[derive(Deserialize, Default)]
struct TreeLine<'a> {
    #[serde(borrow, default)]
    m: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    d: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    f: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    v: Vec<Vec<i64>>,
    #[serde(default)]
    end: Option<usize>,
}

/// Writes `catalog` as format 2. The caller keeps it from changing.
pub fn write<W: Write>(w: &mut W, catalog: &Catalog) -> io::Result<()> {
    let mut sliced = Sliced::new(catalog.seq);
    while !sliced.step(w, catalog)? {}
    Ok(())
}

/// Blob lines written per slice.
const BLOB_SLICE: u32 = 32_768;
/// Files written per slice.
const FILE_SLICE: usize = 8_192;

/// A snapshot written a slice at a time, the catalog free to change in
/// between (the caller takes the read lock for each [`Sliced::step`]).
///
/// The head names `seq`, the last record every slice already holds; each
/// slice holds the records up to when it was written. Replay applies every
/// record after `seq`, and records apply idempotently (versions and
/// tombstones carry their number; blob records set what they say), so a
/// record a slice already holds changes nothing when applied again, and one
/// it lacks is applied. Blobs created after the blob lines were written
/// get a line of their own (`"b"`: their index) before the first file line
/// naming them; meanwhile no blob record index is reused
/// ([`Catalog::set_compacting`]).
pub struct Sliced {
    seq: u64,
    started: bool,
    blobs_end: u32,
    next_blob: u32,
    after: Option<(String, String)>,
    late: std::collections::HashSet<u32>,
    machine: String,
    dir: Option<String>,
    files: usize,
    line: Vec<u8>,
    blob_slice: u32,
    file_slice: usize,
}

impl Sliced {
    /// `seq`: the journal's last sequence number when writing starts.
    pub fn new(seq: u64) -> Sliced {
        Sliced::with_slices(seq, BLOB_SLICE, FILE_SLICE)
    }

    /// With slices of `blobs` blob lines and `files` files.
    pub fn with_slices(seq: u64, blobs: u32, files: usize) -> Sliced {
        Sliced {
            blob_slice: blobs.max(1),
            file_slice: files.max(1),
            seq,
            started: false,
            blobs_end: 0,
            next_blob: 0,
            after: None,
            late: Default::default(),
            machine: String::new(),
            dir: None,
            files: 0,
            line: Vec::with_capacity(256),
        }
    }

    /// Writes the next slice of `catalog`; true when the snapshot is whole.
    pub fn step<W: Write>(&mut self, w: &mut W, catalog: &Catalog) -> io::Result<bool> {
        if !self.started {
            self.started = true;
            self.blobs_end = catalog.raw_blob_count();
            serde_json::to_writer(
                &mut *w,
                &Head {
                    format: FORMAT,
                    seq: self.seq,
                    blobs: self.blobs_end as usize,
                },
            )?;
            w.write_all(b"\n")?;
        }
        if self.next_blob < self.blobs_end {
            let end = self.blobs_end.min(self.next_blob + self.blob_slice);
            for i in self.next_blob..end {
                write_blob(w, catalog.raw_blob(i), None)?;
            }
            self.next_blob = end;
            return Ok(false);
        }
        let mut result = Ok(());
        let mut written = 0;
        let mut last: Option<(String, String)> = None;
        let cursor = self.after.take();
        let after = cursor.as_ref().map(|(k, p)| (k.as_str(), p.as_str()));
        let stopped = catalog.raw_files_after(after, |key, path, versions| {
            if written == self.file_slice {
                return false;
            }
            written += 1;
            last = Some((key.to_string(), path.to_string()));
            result = self.write_file(w, catalog, key, path, versions);
            result.is_ok()
        });
        result?;
        self.after = last.or(cursor);
        if stopped {
            return Ok(false);
        }
        writeln!(w, "{{\"end\":{}}}", self.files)?;
        Ok(true)
    }

    fn write_file<W: Write>(
        &mut self,
        w: &mut W,
        catalog: &Catalog,
        key: &str,
        path: &str,
        versions: &[RawVersion],
    ) -> io::Result<()> {
        for v in versions {
            if v.blob >= self.blobs_end && self.late.insert(v.blob) {
                write_blob(w, catalog.raw_blob(v.blob), Some(v.blob))?;
            }
        }
        let line = &mut self.line;
        line.clear();
        if key != self.machine {
            self.machine = key.to_string();
            self.dir = None;
            line.extend_from_slice(b"{\"m\":");
            push_json_str(line, key);
            line.extend_from_slice(b"}\n");
        }
        let (d, name) = split_last(path);
        if self.dir.as_deref() != Some(d) {
            self.dir = Some(d.to_string());
            line.extend_from_slice(b"{\"d\":");
            push_json_str(line, d);
            line.extend_from_slice(b"}\n");
        }
        line.extend_from_slice(b"{\"f\":");
        push_json_str(line, name);
        line.extend_from_slice(b",\"v\":[");
        for (i, v) in versions.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            let _ = write!(line, "[{},{},{},{}", v.n, v.blob, v.mtime, v.at);
            if v.deleted {
                line.extend_from_slice(b",1");
            }
            line.push(b']');
        }
        line.extend_from_slice(b"]}\n");
        self.files += 1;
        w.write_all(line)
    }
}

fn write_blob<W: Write>(w: &mut W, raw: RawBlob<'_>, late: Option<u32>) -> io::Result<()> {
    match raw {
        RawBlob::Free => w.write_all(b"null")?,
        RawBlob::Gone { hash, size } => serde_json::to_writer(
            &mut *w,
            &BlobLine {
                b: late,
                h: hash,
                s: size,
                a: 0,
                f: None,
                p: None,
                i: false,
                c: false,
                gone: true,
                k: Vec::new(),
            },
        )?,
        RawBlob::Live {
            hash,
            info,
            holders,
        } => serde_json::to_writer(
            &mut *w,
            &BlobLine {
                b: late,
                h: hash,
                s: info.size,
                a: info.last_access,
                f: (info.form != BlobForm::Hot).then_some(info.form),
                p: info.packed_size,
                i: info.incompressible,
                c: info.chunked,
                gone: false,
                k: holders.into_iter().map(Into::into).collect(),
            },
        )?,
    }
    w.write_all(b"\n")
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("a string serialises");
}

/// Reads a snapshot (format 1 or 2) into the empty `catalog`; returns the
/// sequence number it holds.
pub fn read<R: BufRead>(mut r: R, catalog: &mut Catalog) -> Result<u64, SnapshotError> {
    let mut first = Vec::new();
    r.read_until(b'\n', &mut first)?;
    let head = serde_json::from_slice::<Head>(&first);
    match head {
        Ok(h) if h.format == FORMAT => read_v2(r, h, catalog),
        Ok(h) if h.format != 1 => Err(SnapshotError::Format(h.format)),
        Ok(_) => read_v1(io::Cursor::new(first).chain(r), catalog),
        // Format 1 is one document, usually spanning many lines.
        Err(_) => read_v1(io::Cursor::new(first).chain(r), catalog),
    }
}

impl<'a> BlobLine<'a> {
    fn raw(&'a self) -> RawBlob<'a> {
        if self.gone {
            return RawBlob::Gone {
                hash: self.h,
                size: self.s,
            };
        }
        let form = self.f.unwrap_or(BlobForm::Hot);
        RawBlob::Live {
            hash: self.h,
            info: BlobInfo {
                size: self.s,
                form,
                packed_size: if form == BlobForm::Packed {
                    self.p
                } else {
                    None
                },
                incompressible: self.i,
                last_access: self.a,
                chunked: self.c,
                has_owners: false,
                has_holders: false,
            },
            holders: self.k.iter().map(|k| k.as_ref()).collect(),
        }
    }
}

fn read_v2<R: BufRead>(mut r: R, head: Head, catalog: &mut Catalog) -> Result<u64, SnapshotError> {
    let mut no = 1usize;
    let invalid = |line: usize, message: String| SnapshotError::Invalid { line, message };
    let mut buf = Vec::with_capacity(1 << 12);
    let mut next = |buf: &mut Vec<u8>, no: &mut usize| -> Result<bool, SnapshotError> {
        buf.clear();
        *no += 1;
        Ok(r.read_until(b'\n', buf)? > 0)
    };
    catalog.reserve_blobs(head.blobs);
    let mut index: Vec<Option<u32>> = Vec::with_capacity(head.blobs);
    for _ in 0..head.blobs {
        if !next(&mut buf, &mut no)? {
            return Err(invalid(no, "the file ends inside the blobs".into()));
        }
        if buf.trim_ascii() == b"null" {
            index.push(None);
            continue;
        }
        let b = match fast::blob(&buf) {
            Some(b) => b,
            None => serde_json::from_slice(&buf).map_err(|e| invalid(no, e.to_string()))?,
        };
        index.push(catalog.load_raw_blob(b.raw()));
    }
    let mut machine: Option<String> = None;
    let mut dir = String::new();
    let mut versions = Vec::new();
    let mut nums: Vec<[i64; 5]> = Vec::new();
    // The folder files go into, found once per folder line.
    let mut folder = None;
    let mut files = 0usize;
    // Blobs created while the snapshot was written, by record index.
    let mut late: std::collections::HashMap<u32, Option<u32>> = Default::default();
    loop {
        if !next(&mut buf, &mut no)? {
            return Err(invalid(no, "the file ends before its last line".into()));
        }
        if buf.starts_with(b"{\"b\":") {
            let b: BlobLine =
                serde_json::from_slice(&buf).map_err(|e| invalid(no, e.to_string()))?;
            let at = b.b.unwrap_or(u32::MAX);
            late.insert(at, catalog.load_raw_blob(b.raw()));
            continue;
        }
        let fast_name = fast::file(&buf, &mut nums);
        let line: TreeLine = match fast_name {
            Some(_) => TreeLine::default(),
            None => {
                let line: TreeLine =
                    serde_json::from_slice(&buf).map_err(|e| invalid(no, e.to_string()))?;
                nums.clear();
                for v in &line.v {
                    match v.as_slice() {
                        [n, b, m, a] => nums.push([*n, *b, *m, *a, 0]),
                        [n, b, m, a, d] => nums.push([*n, *b, *m, *a, *d]),
                        _ => return Err(invalid(no, "a version is not [n,blob,mtime,at]".into())),
                    }
                }
                line
            }
        };
        let name = fast_name.or(line.f.as_deref());
        if let Some(end) = line.end {
            if end != files {
                return Err(invalid(no, format!("{files} files read, {end} written")));
            }
            return Ok(head.seq);
        } else if let Some(m) = line.m {
            machine = Some(m.into_owned());
            dir.clear();
            folder = None;
        } else if let Some(d) = line.d {
            dir = d.into_owned();
            folder = None;
        } else if let Some(f) = name {
            let Some(key) = machine.as_deref() else {
                return Err(invalid(no, "a file before any machine".into()));
            };
            versions.clear();
            for &[n, b, mtime, at, deleted] in &nums {
                let blob = u32::try_from(b)
                    .ok()
                    .and_then(|b| match index.get(b as usize) {
                        Some(i) => *i,
                        None => late.get(&b).copied().flatten(),
                    })
                    .ok_or_else(|| {
                        invalid(no, format!("version names blob {b}, not in the file"))
                    })?;
                versions.push(RawVersion {
                    n: n.max(1) as u64,
                    blob,
                    mtime,
                    at,
                    deleted: deleted == 1,
                });
            }
            let into = *folder.get_or_insert_with(|| catalog.load_folder(key, &dir));
            catalog.load_raw_file(key, into, f, &versions);
            files += 1;
        } else {
            return Err(invalid(no, "an unknown line".into()));
        }
    }
}

/// Hand-written readers for the two lines that make up nearly all of a
/// snapshot, exactly as [`Sliced`] writes them (serde's general parser took
/// twice as long at start-up). Anything else, or anything unexpected,
/// returns `None` and is read by serde, which also reports errors.
mod fast {
    use super::BlobLine;
    use crate::store::catalog::BlobForm;
    use nimbus_common::hash::ContentHash;

    /// Hex digit values; 0xff for anything else.
    const HEX: [u8; 256] = {
        let mut t = [0xffu8; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            t[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };

    fn int(s: &[u8]) -> Option<(i64, &[u8])> {
        let (neg, s) = match s.strip_prefix(b"-") {
            Some(r) => (true, r),
            None => (false, s),
        };
        let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 18 {
            return None;
        }
        let mut n: i64 = 0;
        for &c in &s[..digits] {
            n = n * 10 + (c - b'0') as i64;
        }
        Some((if neg { -n } else { n }, &s[digits..]))
    }

    fn end(s: &[u8]) -> bool {
        s.strip_prefix(b"}")
            .is_some_and(|r| r.iter().all(|c| c.is_ascii_whitespace()))
    }

    /// `{"h":HEX,"s":N[,"a":N][,"f":"packed"|"missing"|"hot"][,"p":N][,"i":true][,"c":true]}`
    pub fn blob(line: &[u8]) -> Option<BlobLine<'static>> {
        let rest = line.strip_prefix(b"{\"h\":\"")?;
        let digits = rest.get(..64)?;
        let mut bytes = [0u8; 32];
        let mut bad = 0u8;
        for (i, out) in bytes.iter_mut().enumerate() {
            let (hi, lo) = (HEX[digits[2 * i] as usize], HEX[digits[2 * i + 1] as usize]);
            bad |= (hi | lo) & 0xf0;
            *out = hi << 4 | lo;
        }
        if bad != 0 {
            return None;
        }
        let mut rest = rest.get(64..)?.strip_prefix(b"\"")?;
        let mut b = BlobLine {
            b: None,
            h: ContentHash::from_bytes(bytes),
            s: 0,
            a: 0,
            f: None,
            p: None,
            i: false,
            c: false,
            gone: false,
            k: Vec::new(),
        };
        let mut sized = false;
        while !end(rest) {
            rest = rest.strip_prefix(b",\"")?;
            let q = rest.iter().position(|&c| c == b'"')?;
            let key = &rest[..q];
            rest = rest[q + 1..].strip_prefix(b":")?;
            match key {
                b"s" | b"a" | b"p" => {
                    let (n, r) = int(rest)?;
                    rest = r;
                    match key {
                        b"s" => (b.s, sized) = (u64::try_from(n).ok()?, true),
                        b"a" => b.a = n,
                        _ => b.p = Some(u64::try_from(n).ok()?),
                    }
                }
                b"f" => {
                    let (form, r) = [
                        (BlobForm::Packed, &b"\"packed\""[..]),
                        (BlobForm::Missing, b"\"missing\""),
                        (BlobForm::Hot, b"\"hot\""),
                    ]
                    .into_iter()
                    .find_map(|(f, text)| rest.strip_prefix(text).map(|r| (f, r)))?;
                    (b.f, rest) = (Some(form), r);
                }
                b"i" | b"c" => {
                    let (v, r) = match rest.strip_prefix(b"true") {
                        Some(r) => (true, r),
                        None => (false, rest.strip_prefix(b"false")?),
                    };
                    rest = r;
                    if key == b"i" {
                        b.i = v;
                    } else {
                        b.c = v;
                    }
                }
                _ => return None,
            }
        }
        sized.then_some(b)
    }

    /// `{"f":NAME,"v":[[N,BLOB,MTIME,AT(,1)],...]}` with a name that has no
    /// escapes: the name, and the versions in `nums`.
    pub fn file<'a>(line: &'a [u8], nums: &mut Vec<[i64; 5]>) -> Option<&'a str> {
        let rest = line.strip_prefix(b"{\"f\":\"")?;
        let q = rest.iter().position(|&c| c == b'"' || c == b'\\')?;
        if rest[q] != b'"' {
            return None;
        }
        let raw = &rest[..q];
        // serde_json escapes control characters, so none is here.
        if raw.iter().any(|&c| c < 0x20) {
            return None;
        }
        let name = std::str::from_utf8(raw).ok()?;
        let mut rest = rest[q + 1..].strip_prefix(b",\"v\":[")?;
        nums.clear();
        loop {
            if let Some(r) = rest.strip_prefix(b"]") {
                return end(r).then_some(name);
            }
            if !nums.is_empty() {
                rest = rest.strip_prefix(b",")?;
            }
            rest = rest.strip_prefix(b"[")?;
            let mut v = [0i64; 5];
            for (i, slot) in v.iter_mut().enumerate() {
                if i == 4 {
                    if let Some(r) = rest.strip_prefix(b",") {
                        let (d, r) = int(r)?;
                        (*slot, rest) = (d, r);
                    }
                    break;
                }
                if i > 0 {
                    rest = rest.strip_prefix(b",")?;
                }
                let (n, r) = int(rest)?;
                (*slot, rest) = (n, r);
            }
            rest = rest.strip_prefix(b"]")?;
            nums.push(v);
        }
    }
}

/// Format 1, streamed: each `files` and `blobs` entry is applied as it is
/// parsed.
fn read_v1<R: Read>(r: R, catalog: &mut Catalog) -> Result<u64, SnapshotError> {
    #[derive(Deserialize)]
    struct Entry {
        #[serde(rename = "client")]
        key: String,
        path: String,
        versions: Vec<Version>,
    }
    #[derive(Deserialize)]
    struct Blob {
        hash: ContentHash,
        size: u64,
        form: BlobForm,
        #[serde(default)]
        packed_size: Option<u64>,
        #[serde(default)]
        incompressible: bool,
        last_access: i64,
        #[serde(default)]
        chunked: bool,
        #[serde(default)]
        holders: Vec<String>,
    }
    struct Doc<'a>(&'a mut Catalog);
    struct Files<'a>(&'a mut Catalog);
    struct Blobs<'a>(&'a mut Catalog);
    impl<'de> Visitor<'de> for Doc<'_> {
        type Value = (u32, u64);
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a catalog snapshot")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(u32, u64), A::Error> {
            let (mut format, mut seq) = (0, 0);
            while let Some(k) = map.next_key::<String>()? {
                match k.as_str() {
                    "format" => format = map.next_value()?,
                    "seq" => seq = map.next_value()?,
                    "files" => map.next_value_seed(Files(&mut *self.0))?,
                    "blobs" => map.next_value_seed(Blobs(&mut *self.0))?,
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok((format, seq))
        }
    }
    impl<'de> DeserializeSeed<'de> for Files<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Files<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of files")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(e) = seq.next_element::<Entry>()? {
                self.0.load_file(&e.key, &e.path, &e.versions);
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Blobs<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Blobs<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of blobs")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(b) = seq.next_element::<Blob>()? {
                self.0.load_raw_blob(RawBlob::Live {
                    hash: b.hash,
                    info: BlobInfo {
                        size: b.size,
                        form: b.form,
                        packed_size: b.packed_size,
                        incompressible: b.incompressible,
                        last_access: b.last_access,
                        chunked: b.chunked,
                        has_owners: false,
                        has_holders: false,
                    },
                    holders: b.holders.iter().map(String::as_str).collect(),
                });
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_reader(r);
    let (format, seq) =
        serde::Deserializer::deserialize_map(&mut de, Doc(catalog)).map_err(|e| {
            match e.classify() {
                serde_json::error::Category::Io => SnapshotError::Io(e.into()),
                _ => SnapshotError::Invalid {
                    line: e.line(),
                    message: e.to_string(),
                },
            }
        })?;
    de.end().map_err(|e| SnapshotError::Invalid {
        line: e.line(),
        message: e.to_string(),
    })?;
    if format != 1 {
        return Err(SnapshotError::Format(format));
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_readers_agree_with_serde_or_step_aside() {
        let h = "ab".repeat(32);
        for line in [
            format!(r#"{{"h":"{h}","s":5,"a":9}}"#),
            format!(r#"{{"h":"{h}","s":5,"a":-9,"f":"packed","p":3,"i":true,"c":true}}"#),
            format!(r#"{{"h":"{h}","s":5,"f":"missing"}}"#),
        ] {
            let fast = fast::blob(line.as_bytes()).expect(&line);
            let slow: BlobLine = serde_json::from_str(&line).unwrap();
            assert_eq!(
                (fast.h, fast.s, fast.a, fast.f, fast.p, fast.i, fast.c),
                (slow.h, slow.s, slow.a, slow.f, slow.p, slow.i, slow.c)
            );
        }
        for line in [
            format!(r#"{{"h":"{h}","s":5,"k":["ann"]}}"#),
            format!(r#"{{"h":"{h}","s":5,"gone":true}}"#),
            format!(r#"{{"h":"{h}","a":1}}"#),
            format!(r#"{{"h":"{h}","s":5"#),
            r#"{"h":"zz","s":5}"#.to_string(),
        ] {
            assert!(fast::blob(line.as_bytes()).is_none(), "{line}");
        }
        let mut nums = Vec::new();
        let line = br#"{"f":"IMG 1.jpg","v":[[1,0,-5,7],[2,3,6,8,1]]}"#;
        assert_eq!(fast::file(line, &mut nums), Some("IMG 1.jpg"));
        assert_eq!(nums, [[1, 0, -5, 7, 0], [2, 3, 6, 8, 1]]);
        assert_eq!(fast::file(br#"{"f":"e","v":[]}"#, &mut nums), Some("e"));
        assert!(nums.is_empty());
        for bad in [
            &br#"{"f":"a\"b","v":[[1,0,5,7]]}"#[..],
            br#"{"f":"a","v":[[1,0,5]]}"#,
            br#"{"f":"a","v":[[1,0,5,7]]"#,
            br#"{"m":"ann/pc"}"#,
        ] {
            assert!(fast::file(bad, &mut nums).is_none());
        }
        // A name with an escape goes through serde and loads the same.
        let mut c = Catalog::default();
        c.apply(&crate::store::catalog::Record::Version {
            key: "ann/pc".into(),
            path: "d\"q/na\\me \u{1}.txt".into(),
            hash: ContentHash::from_bytes([1; 32]),
            size: 1,
            mtime: 1,
            at: 2,
            chunked: false,
            n: None,
        });
        let mut bytes = Vec::new();
        write(&mut bytes, &c).unwrap();
        let mut back = Catalog::default();
        read(&bytes[..], &mut back).unwrap();
        assert!(back.latest("ann/pc", "d\"q/na\\me \u{1}.txt").is_some());
    }
}
