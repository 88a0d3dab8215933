//! Folder downloads as one archive, tar or zip, streamed while it is built.
//!
//! Sizes are known before the first byte is sent (the catalog holds them), so
//! the archive's exact length is computed up front: the response carries a
//! Content-Length and browsers show real progress. Each file's content is
//! opened only when the archive reaches it and is copied through a fixed
//! buffer; memory holds the list of entries, never their contents.
//!
//! - tar: POSIX ustar, with a pax header for names over 100 bytes or sizes
//!   ustar cannot write (8 GiB and more).
//! - zip: entries stored (no compression: backups are mostly compressed
//!   media already, and a stored zip streams at disk speed), UTF-8 names,
//!   CRC-32 in a data descriptor after each entry, zip64 where sizes or
//!   offsets need it.

use nimbus_common::hash::ContentHash;
use std::collections::VecDeque;
use std::io::{self, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tar,
    Zip,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "tar" => Some(Format::Tar),
            "zip" => Some(Format::Zip),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Tar => "tar",
            Format::Zip => "zip",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Tar => "application/x-tar",
            Format::Zip => "application/zip",
        }
    }
}

/// One file of the archive.
#[derive(Debug, Clone)]
pub struct Item {
    /// Path inside the archive, `/`-separated.
    pub name: String,
    pub size: u64,
    /// Unix seconds.
    pub mtime: i64,
    pub hash: ContentHash,
}

/// Opens an item's content (exactly `size` bytes).
pub type Opener = Box<dyn FnMut(&Item) -> io::Result<Box<dyn Read + Send>> + Send>;

const BLOCK: u64 = 512;
const U32_MAX: u64 = 0xFFFF_FFFF;

/// Where each zip entry's local header starts, and whether it is zip64.
struct ZipEntry {
    offset: u64,
    zip64: bool,
}

/// The archive of `items` in `format`: its exact length, and a reader.
pub struct Archive {
    format: Format,
    items: Vec<Item>,
    zip: Vec<ZipEntry>,
    /// Zip: where the central directory starts, and its length.
    cd_offset: u64,
    cd_len: u64,
    len: u64,
}

impl Archive {
    pub fn new(format: Format, items: Vec<Item>) -> Archive {
        let mut a = Archive {
            format,
            items,
            zip: Vec::new(),
            cd_offset: 0,
            cd_len: 0,
            len: 0,
        };
        match format {
            Format::Tar => {
                a.len = a
                    .items
                    .iter()
                    .map(|i| tar_header(i).len() as u64 + padded(i.size))
                    .sum::<u64>()
                    + 2 * BLOCK;
            }
            Format::Zip => {
                let mut offset = 0u64;
                for i in &a.items {
                    let zip64 = i.size >= U32_MAX;
                    a.zip.push(ZipEntry { offset, zip64 });
                    offset += local_header_len(i, zip64) + i.size + descriptor_len(zip64);
                }
                a.cd_offset = offset;
                a.cd_len = a
                    .items
                    .iter()
                    .zip(&a.zip)
                    .map(|(i, z)| central_entry(i, z, 0).len() as u64)
                    .sum();
                a.len = offset + a.cd_len + a.end_len();
            }
        }
        a
    }

    /// The archive's exact length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn zip64_end(&self) -> bool {
        self.items.len() >= 0xFFFF || self.cd_offset >= U32_MAX || self.cd_len >= U32_MAX
    }

    fn end_len(&self) -> u64 {
        if self.zip64_end() {
            56 + 20 + 22
        } else {
            22
        }
    }

    /// Streams the archive; `open` is called for each item in turn.
    pub fn into_reader(self, open: Opener) -> ArchiveReader {
        ArchiveReader {
            archive: self,
            open,
            next: 0,
            pending: VecDeque::new(),
            body: None,
            crcs: Vec::new(),
            finished: false,
        }
    }
}

/// A file's content being copied into the archive.
struct Body {
    reader: Box<dyn Read + Send>,
    remaining: u64,
    crc: crc32fast::Hasher,
    /// Tar: zero bytes after the content, to the block boundary.
    padding: u64,
    zip64: bool,
    size: u64,
}

pub struct ArchiveReader {
    archive: Archive,
    open: Opener,
    /// Index of the next item to start.
    next: usize,
    /// Header or trailer bytes waiting to be read.
    pending: VecDeque<u8>,
    body: Option<Body>,
    crcs: Vec<u32>,
    finished: bool,
}

impl ArchiveReader {
    /// Queues what comes next: the end of the current item, the next
    /// item's header, or the archive's end. False when all is queued.
    fn advance(&mut self) -> io::Result<bool> {
        if let Some(body) = self.body.take() {
            let crc = body.crc.finalize();
            match self.archive.format {
                Format::Tar => self
                    .pending
                    .extend(std::iter::repeat_n(0u8, body.padding as usize)),
                Format::Zip => {
                    self.pending
                        .extend(data_descriptor(crc, body.size, body.zip64));
                    self.crcs.push(crc);
                }
            }
            return Ok(true);
        }
        if self.next < self.archive.items.len() {
            let i = self.next;
            self.next += 1;
            let item = self.archive.items[i].clone();
            let (header, zip64) = match self.archive.format {
                Format::Tar => (tar_header(&item), false),
                Format::Zip => {
                    let z = &self.archive.zip[i];
                    (local_header(&item, z.zip64), z.zip64)
                }
            };
            self.pending.extend(header);
            let reader = (self.open)(&item)?;
            self.body = Some(Body {
                reader,
                remaining: item.size,
                crc: crc32fast::Hasher::new(),
                padding: padded(item.size) - item.size,
                zip64,
                size: item.size,
            });
            return Ok(true);
        }
        if self.finished {
            return Ok(false);
        }
        self.finished = true;
        match self.archive.format {
            Format::Tar => self
                .pending
                .extend(std::iter::repeat_n(0u8, 2 * BLOCK as usize)),
            Format::Zip => {
                let a = &self.archive;
                for ((item, z), crc) in a.items.iter().zip(&a.zip).zip(&self.crcs) {
                    self.pending.extend(central_entry(item, z, *crc));
                }
                self.pending.extend(end_records(a));
            }
        }
        Ok(true)
    }
}

impl Read for ArchiveReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.pending.is_empty() {
                let n = buf.len().min(self.pending.len());
                for (slot, b) in buf.iter_mut().zip(self.pending.drain(..n)) {
                    *slot = b;
                }
                return Ok(n);
            }
            if let Some(body) = &mut self.body {
                if body.remaining > 0 {
                    let want = buf.len().min(body.remaining.min(1 << 20) as usize);
                    let n = body.reader.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "a file's stored content is shorter than the catalog says",
                        ));
                    }
                    body.crc.update(&buf[..n]);
                    body.remaining -= n as u64;
                    return Ok(n);
                }
            }
            if !self.advance()? {
                return Ok(0);
            }
        }
    }
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK) * BLOCK
}

/// `len key=value\n`, where len counts the whole record, itself included.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    format!("{len} {key}={value}\n").into_bytes()
}

/// An item's tar header blocks: a pax header when ustar cannot say it all,
/// then the ustar header.
fn tar_header(item: &Item) -> Vec<u8> {
    const USTAR_MAX_SIZE: u64 = 0o77777777777;
    let mut pax = Vec::new();
    if item.name.len() > 100 {
        pax.extend(pax_record("path", &item.name));
    }
    if item.size > USTAR_MAX_SIZE {
        pax.extend(pax_record("size", &item.size.to_string()));
    }
    let mut out = Vec::new();
    if !pax.is_empty() {
        let len = pax.len() as u64;
        out.extend(ustar_block("././@PaxHeader", len, item.mtime, b'x'));
        out.extend(&pax);
        out.resize(out.len() + (padded(len) - len) as usize, 0);
    }
    let mut short = item.name.as_str();
    while short.len() > 100 {
        short = &short[..short.floor_char_boundary(100)];
    }
    out.extend(ustar_block(
        short,
        item.size.min(USTAR_MAX_SIZE),
        item.mtime,
        b'0',
    ));
    out
}

fn ustar_block(name: &str, size: u64, mtime: i64, kind: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, bytes: &[u8]| {
        h[at..at + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut h, 0, name.as_bytes());
    put(&mut h, 100, b"0000644\0");
    put(&mut h, 108, b"0000000\0");
    put(&mut h, 116, b"0000000\0");
    put(&mut h, 124, format!("{size:011o}\0").as_bytes());
    put(&mut h, 136, format!("{:011o}\0", mtime.max(0)).as_bytes());
    put(&mut h, 148, b"        ");
    h[156] = kind;
    put(&mut h, 257, b"ustar\0");
    put(&mut h, 263, b"00");
    put(&mut h, 265, b"nimbus");
    put(&mut h, 297, b"nimbus");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    h
}

const ZIP_FLAGS: u16 = 0x0008 | 0x0800; // data descriptor, UTF-8 names

fn dos_time(mtime: i64) -> (u16, u16) {
    let (y, m, d, hh, mm, ss) = nimbus_common::time::utc_parts(mtime);
    if y < 1980 {
        return (0, (1 << 5) | 1);
    }
    let y = y.min(2107) as u16;
    (
        ((hh as u16) << 11) | ((mm as u16) << 5) | (ss as u16 / 2),
        ((y - 1980) << 9) | ((m as u16) << 5) | d as u16,
    )
}

/// The "extended timestamp" extra field: the mtime in UTC seconds, which
/// unzip and others prefer to the DOS time (local time, 2 s steps).
fn ut_extra(mtime: i64) -> [u8; 9] {
    let mut e = [0u8; 9];
    e[..2].copy_from_slice(&0x5455u16.to_le_bytes());
    e[2..4].copy_from_slice(&5u16.to_le_bytes());
    e[4] = 1; // mtime present
    let t = mtime.clamp(0, i32::MAX as i64) as u32;
    e[5..].copy_from_slice(&t.to_le_bytes());
    e
}

fn local_header_len(item: &Item, zip64: bool) -> u64 {
    30 + item.name.len() as u64 + 9 + if zip64 { 20 } else { 0 }
}

fn descriptor_len(zip64: bool) -> u64 {
    if zip64 {
        24
    } else {
        16
    }
}

fn local_header(item: &Item, zip64: bool) -> Vec<u8> {
    let (time, date) = dos_time(item.mtime);
    let mut h = Vec::with_capacity(local_header_len(item, zip64) as usize);
    h.extend(0x04034b50u32.to_le_bytes());
    h.extend((if zip64 { 45u16 } else { 20u16 }).to_le_bytes());
    h.extend(ZIP_FLAGS.to_le_bytes());
    h.extend(0u16.to_le_bytes()); // stored
    h.extend(time.to_le_bytes());
    h.extend(date.to_le_bytes());
    h.extend(0u32.to_le_bytes()); // CRC: in the descriptor
    let unknown: u32 = if zip64 { 0xFFFF_FFFF } else { 0 };
    h.extend(unknown.to_le_bytes());
    h.extend(unknown.to_le_bytes());
    h.extend((item.name.len() as u16).to_le_bytes());
    h.extend((if zip64 { 29u16 } else { 9u16 }).to_le_bytes());
    h.extend(item.name.as_bytes());
    h.extend(ut_extra(item.mtime));
    if zip64 {
        h.extend(1u16.to_le_bytes());
        h.extend(16u16.to_le_bytes());
        h.extend(0u64.to_le_bytes());
        h.extend(0u64.to_le_bytes());
    }
    h
}

fn data_descriptor(crc: u32, size: u64, zip64: bool) -> Vec<u8> {
    let mut d = Vec::with_capacity(24);
    d.extend(0x08074b50u32.to_le_bytes());
    d.extend(crc.to_le_bytes());
    if zip64 {
        d.extend(size.to_le_bytes());
        d.extend(size.to_le_bytes());
    } else {
        d.extend((size as u32).to_le_bytes());
        d.extend((size as u32).to_le_bytes());
    }
    d
}

fn central_entry(item: &Item, z: &ZipEntry, crc: u32) -> Vec<u8> {
    let (time, date) = dos_time(item.mtime);
    let big_size = item.size >= U32_MAX;
    let big_offset = z.offset >= U32_MAX;
    let mut extra = ut_extra(item.mtime).to_vec();
    if big_size || big_offset {
        let mut fields = Vec::new();
        if big_size {
            fields.extend(item.size.to_le_bytes());
            fields.extend(item.size.to_le_bytes());
        }
        if big_offset {
            fields.extend(z.offset.to_le_bytes());
        }
        extra.extend(1u16.to_le_bytes());
        extra.extend((fields.len() as u16).to_le_bytes());
        extra.extend(fields);
    }
    let needed: u16 = if z.zip64 || big_offset { 45 } else { 20 };
    let mut c = Vec::with_capacity(46 + item.name.len() + extra.len());
    c.extend(0x02014b50u32.to_le_bytes());
    c.extend((0x0300u16 | needed).to_le_bytes()); // made by: Unix
    c.extend(needed.to_le_bytes());
    c.extend(ZIP_FLAGS.to_le_bytes());
    c.extend(0u16.to_le_bytes());
    c.extend(time.to_le_bytes());
    c.extend(date.to_le_bytes());
    c.extend(crc.to_le_bytes());
    let size32 = if big_size {
        0xFFFF_FFFF
    } else {
        item.size as u32
    };
    c.extend(size32.to_le_bytes());
    c.extend(size32.to_le_bytes());
    c.extend((item.name.len() as u16).to_le_bytes());
    c.extend((extra.len() as u16).to_le_bytes());
    c.extend(0u16.to_le_bytes()); // comment
    c.extend(0u16.to_le_bytes()); // disk
    c.extend(0u16.to_le_bytes()); // internal attributes
    c.extend(((0o100644u32) << 16).to_le_bytes()); // regular file, rw-r--r--
    let offset32 = if big_offset {
        0xFFFF_FFFF
    } else {
        z.offset as u32
    };
    c.extend(offset32.to_le_bytes());
    c.extend(item.name.as_bytes());
    c.extend(extra);
    c
}

fn end_records(a: &Archive) -> Vec<u8> {
    let count = a.items.len() as u64;
    let mut e = Vec::new();
    if a.zip64_end() {
        let eocd64_offset = a.cd_offset + a.cd_len;
        e.extend(0x06064b50u32.to_le_bytes());
        e.extend(44u64.to_le_bytes());
        e.extend(0x032Du16.to_le_bytes());
        e.extend(45u16.to_le_bytes());
        e.extend(0u32.to_le_bytes());
        e.extend(0u32.to_le_bytes());
        e.extend(count.to_le_bytes());
        e.extend(count.to_le_bytes());
        e.extend(a.cd_len.to_le_bytes());
        e.extend(a.cd_offset.to_le_bytes());
        e.extend(0x07064b50u32.to_le_bytes());
        e.extend(0u32.to_le_bytes());
        e.extend(eocd64_offset.to_le_bytes());
        e.extend(1u32.to_le_bytes());
    }
    let clamp16 = |v: u64| if v >= 0xFFFF { 0xFFFF } else { v as u16 };
    let clamp32 = |v: u64| if v >= U32_MAX { 0xFFFF_FFFF } else { v as u32 };
    e.extend(0x06054b50u32.to_le_bytes());
    e.extend(0u16.to_le_bytes());
    e.extend(0u16.to_le_bytes());
    e.extend(clamp16(count).to_le_bytes());
    e.extend(clamp16(count).to_le_bytes());
    e.extend(clamp32(a.cd_len).to_le_bytes());
    e.extend(clamp32(a.cd_offset).to_le_bytes());
    e.extend(0u16.to_le_bytes());
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(specs: &[(&str, usize)]) -> Vec<(Item, Vec<u8>)> {
        specs
            .iter()
            .enumerate()
            .map(|(n, (name, size))| {
                let data: Vec<u8> = (0..*size).map(|i| (i * 7 + n) as u8).collect();
                let item = Item {
                    name: name.to_string(),
                    size: *size as u64,
                    mtime: 1_795_305_600 + n as i64,
                    hash: ContentHash::of_bytes(&data),
                };
                (item, data)
            })
            .collect()
    }

    fn build(format: Format, specs: &[(&str, usize)]) -> (u64, Vec<u8>) {
        let list = items(specs);
        let contents: std::collections::HashMap<String, Vec<u8>> = list
            .iter()
            .map(|(i, d)| (i.name.clone(), d.clone()))
            .collect();
        let a = Archive::new(format, list.into_iter().map(|(i, _)| i).collect());
        let len = a.len();
        let mut r = a.into_reader(Box::new(move |i: &Item| {
            Ok(Box::new(io::Cursor::new(contents[&i.name].clone())) as Box<dyn Read + Send>)
        }));
        let mut out = Vec::new();
        // Small reads, to cross every boundary.
        let mut buf = [0u8; 777];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        (len, out)
    }

    #[test]
    fn declared_length_is_exact() {
        let long = format!("{}/file.txt", "d".repeat(150));
        for format in [Format::Tar, Format::Zip] {
            for specs in [
                vec![],
                vec![("a.txt", 0)],
                vec![("a.txt", 5), ("sub/b.bin", 513), (long.as_str(), 1024)],
            ] {
                let (len, out) = build(format, &specs);
                assert_eq!(len, out.len() as u64, "{format:?} {specs:?}");
            }
        }
    }

    #[test]
    fn pax_records_count_their_own_length() {
        for v in ["x", &"y".repeat(90), &"z".repeat(200)] {
            let r = pax_record("path", v);
            let text = String::from_utf8(r.clone()).unwrap();
            let n: usize = text.split(' ').next().unwrap().parse().unwrap();
            assert_eq!(n, r.len());
        }
    }

    #[test]
    fn tar_headers_checksum() {
        let h = ustar_block("a", 5, 0, b'0');
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        let mut copy = h;
        copy[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, copy.iter().map(|&b| b as u32).sum::<u32>());
    }

    #[test]
    fn a_short_content_is_an_error_not_a_short_archive() {
        let (item, _) = items(&[("a", 10)]).remove(0);
        let a = Archive::new(Format::Tar, vec![item]);
        let mut r = a.into_reader(Box::new(|_: &Item| {
            Ok(Box::new(io::Cursor::new(vec![1u8; 3])) as Box<dyn Read + Send>)
        }));
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err());
    }
}
