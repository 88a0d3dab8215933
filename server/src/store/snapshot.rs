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
#[derive(Deserialize)]
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
    let count = catalog.raw_blobs().count();
    serde_json::to_writer(
        &mut *w,
        &Head {
            format: FORMAT,
            seq: catalog.seq,
            blobs: count,
        },
    )?;
    w.write_all(b"\n")?;
    for raw in catalog.raw_blobs() {
        match raw {
            RawBlob::Free => w.write_all(b"null")?,
            RawBlob::Gone { hash, size } => serde_json::to_writer(
                &mut *w,
                &BlobLine {
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
        w.write_all(b"\n")?;
    }
    let mut machine = String::new();
    let mut dir: Option<String> = None;
    let mut files = 0usize;
    let mut result = Ok(());
    let mut line = Vec::with_capacity(256);
    catalog.raw_files(|key, path, versions| {
        line.clear();
        if key != machine {
            machine = key.to_string();
            dir = None;
            line.extend_from_slice(b"{\"m\":");
            push_json_str(&mut line, key);
            line.extend_from_slice(b"}\n");
        }
        let (d, name) = split_last(path);
        if dir.as_deref() != Some(d) {
            dir = Some(d.to_string());
            line.extend_from_slice(b"{\"d\":");
            push_json_str(&mut line, d);
            line.extend_from_slice(b"}\n");
        }
        line.extend_from_slice(b"{\"f\":");
        push_json_str(&mut line, name);
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
        files += 1;
        match w.write_all(&line) {
            Ok(()) => true,
            Err(e) => {
                result = Err(e);
                false
            }
        }
    });
    result?;
    writeln!(w, "{{\"end\":{files}}}")
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
        let b: BlobLine = serde_json::from_slice(&buf).map_err(|e| invalid(no, e.to_string()))?;
        let raw = if b.gone {
            RawBlob::Gone {
                hash: b.h,
                size: b.s,
            }
        } else {
            let form = b.f.unwrap_or(BlobForm::Hot);
            RawBlob::Live {
                hash: b.h,
                info: BlobInfo {
                    size: b.s,
                    form,
                    packed_size: if form == BlobForm::Packed { b.p } else { None },
                    incompressible: b.i,
                    last_access: b.a,
                    chunked: b.c,
                    has_owners: false,
                    has_holders: false,
                },
                holders: b.k.iter().map(|k| k.as_ref()).collect(),
            }
        };
        index.push(catalog.load_raw_blob(raw));
    }
    let mut machine: Option<String> = None;
    let mut dir = String::new();
    let mut versions = Vec::new();
    let mut files = 0usize;
    loop {
        if !next(&mut buf, &mut no)? {
            return Err(invalid(no, "the file ends before its last line".into()));
        }
        let line: TreeLine =
            serde_json::from_slice(&buf).map_err(|e| invalid(no, e.to_string()))?;
        if let Some(end) = line.end {
            if end != files {
                return Err(invalid(no, format!("{files} files read, {end} written")));
            }
            return Ok(head.seq);
        } else if let Some(m) = line.m {
            machine = Some(m.into_owned());
            dir.clear();
        } else if let Some(d) = line.d {
            dir = d.into_owned();
        } else if let Some(f) = line.f {
            let Some(key) = machine.as_deref() else {
                return Err(invalid(no, "a file before any machine".into()));
            };
            versions.clear();
            for v in &line.v {
                let (&[n, b, mtime, at], deleted) = match v.as_slice() {
                    [n, b, m, a] => (&[*n, *b, *m, *a], false),
                    [n, b, m, a, d] => (&[*n, *b, *m, *a], *d == 1),
                    _ => return Err(invalid(no, "a version is not [n,blob,mtime,at]".into())),
                };
                let blob = usize::try_from(b)
                    .ok()
                    .and_then(|b| index.get(b).copied().flatten())
                    .ok_or_else(|| {
                        invalid(no, format!("version names blob {b}, not in the file"))
                    })?;
                versions.push(RawVersion {
                    n: n.max(1) as u64,
                    blob,
                    mtime,
                    at,
                    deleted,
                });
            }
            catalog.load_raw_file(key, &dir, &f, &versions);
            files += 1;
        } else {
            return Err(invalid(no, "an unknown line".into()));
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
