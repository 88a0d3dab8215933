//! What the catalog knows about each blob, in flat arrays: one 64-byte
//! record per blob in a `Vec`, found by hash through a table of `u32`
//! slots (the hash is stored once, in the record), with the users whose
//! space holds it as one interned set id, and the totals that health and
//! metrics show kept as records change.

use super::{BlobForm, BlobInfo};
use nimbus_common::hash::ContentHash;
use std::collections::HashMap;

/// Index of a blob's record.
pub type BlobIdx = u32;

const FORM_MASK: u8 = 0b11;
const INCOMPRESSIBLE: u8 = 1 << 2;
const CHUNKED: u8 = 1 << 3;
/// Dropped from disk; kept only while a tombstone still names its hash.
const GONE: u8 = 1 << 4;
const SIZE_BITS: u32 = 56;
const SIZE_MASK: u64 = (1 << SIZE_BITS) - 1;

#[derive(Clone, Copy)]
struct Rec {
    hash: [u8; 32],
    size: u64,
    /// Packed size in the low 56 bits, flags in the top 8.
    packed_flags: u64,
    last_access: i64,
    /// Interned (owners, holders) pair.
    spaces: u32,
    /// Files whose current version (not a tombstone) is this content.
    current: u32,
}

impl Rec {
    fn flags(&self) -> u8 {
        (self.packed_flags >> SIZE_BITS) as u8
    }
    fn set_flags(&mut self, f: u8) {
        self.packed_flags = (self.packed_flags & SIZE_MASK) | ((f as u64) << SIZE_BITS);
    }
    fn form(&self) -> BlobForm {
        match self.flags() & FORM_MASK {
            0 => BlobForm::Hot,
            1 => BlobForm::Packed,
            _ => BlobForm::Missing,
        }
    }
    fn gone(&self) -> bool {
        self.flags() & GONE != 0
    }
    fn info(&self, spaces: &Spaces) -> BlobInfo {
        let (owners, holders) = spaces.get(self.spaces);
        let form = self.form();
        BlobInfo {
            size: self.size,
            form,
            packed_size: (form == BlobForm::Packed).then_some(self.packed_flags & SIZE_MASK),
            incompressible: self.flags() & INCOMPRESSIBLE != 0,
            last_access: self.last_access,
            chunked: self.flags() & CHUNKED != 0,
            has_owners: !owners.is_empty(),
            has_holders: !holders.is_empty(),
        }
    }
    fn store(&mut self, b: &BlobInfo) {
        let form = match b.form {
            BlobForm::Hot => 0,
            BlobForm::Packed => 1,
            BlobForm::Missing => 2,
        };
        let flags = form
            | if b.incompressible { INCOMPRESSIBLE } else { 0 }
            | if b.chunked { CHUNKED } else { 0 }
            | (self.flags() & GONE);
        self.size = b.size;
        self.packed_flags = b.packed_size.unwrap_or(0).min(SIZE_MASK);
        self.set_flags(flags);
        self.last_access = b.last_access;
    }
}

fn slot_hash(hash: &[u8; 32]) -> u64 {
    // Content hashes are BLAKE3 outputs, uniform already; and only content
    // the server verified is ever inserted.
    u64::from_le_bytes(hash[..8].try_into().expect("8 bytes"))
}

/// Totals over every blob that has bytes of its own (not manifests), plus
/// the distinct content of current files: what health and metrics show.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BlobTotals {
    pub blobs: usize,
    pub hot: usize,
    pub packed: usize,
    pub missing: usize,
    pub bytes_original: u64,
    pub bytes_stored: u64,
    /// Sum of the sizes of the distinct contents current files have.
    pub current_distinct: u64,
}

impl BlobTotals {
    fn account(&mut self, info: &BlobInfo, add: bool) {
        if info.chunked {
            return;
        }
        let (n, bytes, stored) = (1usize, info.size, info.stored_bytes());
        let form = match info.form {
            BlobForm::Hot => &mut self.hot,
            BlobForm::Packed => &mut self.packed,
            BlobForm::Missing => &mut self.missing,
        };
        if add {
            *form += n;
            self.blobs += n;
            self.bytes_original += bytes;
            self.bytes_stored += stored;
        } else {
            *form -= n;
            self.blobs -= n;
            self.bytes_original -= bytes;
            self.bytes_stored -= stored;
        }
    }
}

/// (owners, holders): sorted user numbers.
type SpaceSet = (Box<[u32]>, Box<[u32]>);

/// Users by number, and the distinct (owners, holders) pairs of user
/// numbers that blobs have: a family's server has a handful, so each
/// blob names its pair with a `u32` instead of a set of strings.
#[derive(Default)]
pub struct Spaces {
    users: Vec<Box<str>>,
    user_ids: HashMap<Box<str>, u32>,
    sets: Vec<SpaceSet>,
    ids: HashMap<SpaceSet, u32>,
    /// (set, user) -> set with that user added as owner / as holder.
    plus_owner: HashMap<(u32, u32), u32>,
    plus_holder: HashMap<(u32, u32), u32>,
}

impl Spaces {
    fn empty() -> Spaces {
        let mut s = Spaces::default();
        s.intern(Box::default(), Box::default());
        s
    }

    pub fn user_id(&mut self, user: &str) -> u32 {
        if let Some(&id) = self.user_ids.get(user) {
            return id;
        }
        let id = self.users.len() as u32;
        self.users.push(user.into());
        self.user_ids.insert(user.into(), id);
        id
    }

    pub fn find_user(&self, user: &str) -> Option<u32> {
        self.user_ids.get(user).copied()
    }

    pub fn user_name(&self, id: u32) -> &str {
        &self.users[id as usize]
    }

    fn get(&self, set: u32) -> (&[u32], &[u32]) {
        let (o, h) = &self.sets[set as usize];
        (o, h)
    }

    fn intern(&mut self, owners: Box<[u32]>, holders: Box<[u32]>) -> u32 {
        let key = (owners, holders);
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.sets.len() as u32;
        self.sets.push(key.clone());
        self.ids.insert(key, id);
        id
    }

    fn with(&mut self, set: u32, user: u32, holder: bool) -> u32 {
        let memo = if holder {
            &self.plus_holder
        } else {
            &self.plus_owner
        };
        if let Some(&id) = memo.get(&(set, user)) {
            return id;
        }
        let (o, h) = &self.sets[set as usize];
        let (mut o, mut h) = (o.to_vec(), h.to_vec());
        let list = if holder { &mut h } else { &mut o };
        if let Err(at) = list.binary_search(&user) {
            list.insert(at, user);
        }
        let id = self.intern(o.into(), h.into());
        let memo = if holder {
            &mut self.plus_holder
        } else {
            &mut self.plus_owner
        };
        memo.insert((set, user), id);
        id
    }

    fn without_owners(&mut self, set: u32) -> u32 {
        let h = self.sets[set as usize].1.clone();
        self.intern(Box::default(), h)
    }
}

/// A blob record as a snapshot stores it.
pub enum RawBlob<'a> {
    /// An unused record.
    Free,
    /// Dropped from disk; named by a tombstone.
    Gone { hash: ContentHash, size: u64 },
    Live {
        hash: ContentHash,
        info: BlobInfo,
        holders: Vec<&'a str>,
    },
}

pub struct BlobTable {
    recs: Vec<Rec>,
    slots: hashbrown::HashTable<BlobIdx>,
    free: Vec<BlobIdx>,
    pub spaces: Spaces,
    totals: BlobTotals,
    /// While a snapshot is written in slices, a record's index names the
    /// same blob throughout: freed records are not reused.
    pub keep_indices: bool,
}

impl Default for BlobTable {
    fn default() -> Self {
        BlobTable {
            recs: Vec::new(),
            slots: hashbrown::HashTable::new(),
            free: Vec::new(),
            spaces: Spaces::empty(),
            totals: BlobTotals::default(),
            keep_indices: false,
        }
    }
}

impl BlobTable {
    pub fn reserve(&mut self, n: usize) {
        self.recs.reserve(n);
        let recs = &self.recs;
        self.slots
            .reserve(n, |&i| slot_hash(&recs[i as usize].hash));
    }

    /// The record of `hash`, gone ones included.
    pub fn find(&self, hash: &ContentHash) -> Option<BlobIdx> {
        let h = hash.as_bytes();
        self.slots
            .find(slot_hash(h), |&i| &self.recs[i as usize].hash == h)
            .copied()
    }

    /// A blob that exists (not dropped).
    pub fn live(&self, hash: &ContentHash) -> Option<BlobIdx> {
        self.find(hash).filter(|&i| !self.recs[i as usize].gone())
    }

    pub fn info(&self, idx: BlobIdx) -> BlobInfo {
        self.recs[idx as usize].info(&self.spaces)
    }

    pub fn get(&self, hash: &ContentHash) -> Option<BlobInfo> {
        self.live(hash).map(|i| self.info(i))
    }

    pub fn hash(&self, idx: BlobIdx) -> ContentHash {
        ContentHash::from_bytes(self.recs[idx as usize].hash)
    }

    pub fn size(&self, idx: BlobIdx) -> u64 {
        self.recs[idx as usize].size
    }

    pub fn form(&self, idx: BlobIdx) -> BlobForm {
        let r = &self.recs[idx as usize];
        if r.gone() {
            BlobForm::Missing
        } else {
            r.form()
        }
    }

    pub fn totals(&self) -> BlobTotals {
        self.totals
    }

    /// The record of `hash`, created (live, hot, no spaces) if it has none
    /// or brought back if it was dropped; `fresh` says whether it was.
    pub fn ensure(&mut self, hash: &ContentHash, size: u64, at: i64, chunked: bool) -> BlobIdx {
        if let Some(i) = self.find(hash) {
            if self.recs[i as usize].gone() {
                let r = &mut self.recs[i as usize];
                let f = r.flags() & !GONE;
                r.set_flags(f);
                let mut info = r.info(&self.spaces);
                info.size = size;
                info.form = BlobForm::Hot;
                info.packed_size = None;
                info.incompressible = false;
                info.chunked = chunked;
                info.last_access = at;
                self.recs[i as usize].store(&info);
                self.totals.account(&info, true);
                if self.recs[i as usize].current > 0 {
                    self.totals.current_distinct += size;
                }
            }
            return i;
        }
        let mut rec = Rec {
            hash: *hash.as_bytes(),
            size,
            packed_flags: 0,
            last_access: at,
            spaces: 0,
            current: 0,
        };
        if chunked {
            rec.set_flags(CHUNKED);
        }
        let reuse = if self.keep_indices {
            None
        } else {
            self.free.pop()
        };
        let idx = match reuse {
            Some(i) => {
                self.recs[i as usize] = rec;
                i
            }
            None => {
                self.recs.push(rec);
                (self.recs.len() - 1) as BlobIdx
            }
        };
        let recs = &self.recs;
        self.slots.insert_unique(slot_hash(&rec.hash), idx, |&i| {
            slot_hash(&recs[i as usize].hash)
        });
        self.totals.account(&rec.info(&self.spaces), true);
        idx
    }

    /// A record kept only for a tombstone's sake: its blob is not on disk.
    pub fn ensure_gone(&mut self, hash: &ContentHash, size: u64, at: i64) -> BlobIdx {
        if let Some(i) = self.find(hash) {
            return i;
        }
        let i = self.ensure(hash, size, at, false);
        self.drop_blob(i);
        i
    }

    /// Changes what is known of a live blob; totals follow.
    pub fn update(&mut self, idx: BlobIdx, f: impl FnOnce(&mut BlobInfo)) {
        let r = &self.recs[idx as usize];
        if r.gone() {
            return;
        }
        let before = r.info(&self.spaces);
        let mut after = before.clone();
        f(&mut after);
        self.totals.account(&before, false);
        self.totals.account(&after, true);
        self.recs[idx as usize].store(&after);
    }

    pub fn add_owner(&mut self, idx: BlobIdx, user: u32) {
        let set = self.recs[idx as usize].spaces;
        self.recs[idx as usize].spaces = self.spaces.with(set, user, false);
    }

    pub fn add_holder(&mut self, idx: BlobIdx, user: u32) {
        let set = self.recs[idx as usize].spaces;
        self.recs[idx as usize].spaces = self.spaces.with(set, user, true);
    }

    pub fn held_by(&self, idx: BlobIdx, user: u32) -> bool {
        let (o, h) = self.spaces.get(self.recs[idx as usize].spaces);
        o.binary_search(&user).is_ok() || h.binary_search(&user).is_ok()
    }

    pub fn owned_by(&self, idx: BlobIdx, user: u32) -> bool {
        let (o, _) = self.spaces.get(self.recs[idx as usize].spaces);
        o.binary_search(&user).is_ok()
    }

    /// The names of the users that sent or committed this blob as a chunk.
    pub fn holders(&self, idx: BlobIdx) -> impl Iterator<Item = &str> {
        let (_, h) = self.spaces.get(self.recs[idx as usize].spaces);
        h.iter().map(|&u| self.spaces.user_name(u))
    }

    pub fn clear_owners(&mut self) {
        let mut memo: HashMap<u32, u32> = HashMap::new();
        for i in 0..self.recs.len() {
            let set = self.recs[i].spaces;
            let to = *memo
                .entry(set)
                .or_insert_with(|| self.spaces.without_owners(set));
            self.recs[i].spaces = to;
        }
    }

    /// Calls `f` with every live blob's hash and info, storing what it
    /// leaves in the info (totals follow); stops at the first error.
    pub fn try_update_each<E>(
        &mut self,
        mut f: impl FnMut(&ContentHash, &mut BlobInfo) -> Result<(), E>,
    ) -> Result<(), E> {
        for i in 0..self.recs.len() {
            if self.recs[i].gone() || self.is_free(i) {
                continue;
            }
            let hash = ContentHash::from_bytes(self.recs[i].hash);
            let mut result = Ok(());
            self.update(i as BlobIdx, |info| result = f(&hash, info));
            result?;
        }
        Ok(())
    }

    /// One more (or one fewer) current file has this content.
    pub fn count_current(&mut self, idx: BlobIdx, add: bool) {
        let r = &mut self.recs[idx as usize];
        let was = r.current;
        r.current = if add { was + 1 } else { was.saturating_sub(1) };
        let counts = !r.gone();
        if counts && was == 0 && r.current == 1 {
            self.totals.current_distinct += r.size;
        } else if counts && was == 1 && r.current == 0 {
            self.totals.current_distinct -= r.size;
        }
    }

    /// The blob was deleted from disk. Its record stays (hash and size)
    /// while a tombstone names it; [`Self::release_unreferenced`] frees it.
    pub fn drop_blob(&mut self, idx: BlobIdx) {
        let r = &self.recs[idx as usize];
        if r.gone() {
            return;
        }
        let info = r.info(&self.spaces);
        self.totals.account(&info, false);
        if r.current > 0 {
            self.totals.current_distinct -= r.size;
        }
        let r = &mut self.recs[idx as usize];
        let f = r.flags() | GONE;
        r.set_flags(f);
        r.spaces = 0;
    }

    /// Frees the records of dropped blobs that no version names any more.
    pub fn release_unreferenced(&mut self, named: &[bool]) {
        for i in 0..self.recs.len() {
            if self.recs[i].gone() && !named.get(i).copied().unwrap_or(false) {
                let h = self.recs[i].hash;
                if let Ok(e) = self.slots.find_entry(slot_hash(&h), |&j| j as usize == i) {
                    e.remove();
                    self.recs[i].hash = [0; 32];
                    // Marked free by a hash nobody has and no slot.
                    self.free.push(i as BlobIdx);
                }
            }
        }
    }

    /// Every live blob (index, hash, info).
    pub fn iter(&self) -> impl Iterator<Item = (BlobIdx, ContentHash, BlobInfo)> + '_ {
        self.recs
            .iter()
            .enumerate()
            .filter(|(i, r)| !r.gone() && !self.is_free(*i))
            .map(|(i, r)| {
                (
                    i as BlobIdx,
                    ContentHash::from_bytes(r.hash),
                    r.info(&self.spaces),
                )
            })
    }

    fn is_free(&self, i: usize) -> bool {
        // A freed record is gone and has no slot; gone records with a slot
        // are tombstones' and skipped by `iter` anyway.
        self.recs[i].gone() && self.recs[i].hash == [0; 32]
    }

    /// Record `idx` as a snapshot writes it.
    pub fn raw(&self, idx: BlobIdx) -> RawBlob<'_> {
        let r = &self.recs[idx as usize];
        if self.is_free(idx as usize) {
            RawBlob::Free
        } else if r.gone() {
            RawBlob::Gone {
                hash: ContentHash::from_bytes(r.hash),
                size: r.size,
            }
        } else {
            RawBlob::Live {
                hash: ContentHash::from_bytes(r.hash),
                info: r.info(&self.spaces),
                holders: self.holders(idx).collect(),
            }
        }
    }

    /// Number of records (live, gone and free): the range of indices.
    pub fn capacity(&self) -> usize {
        self.recs.len()
    }

    /// Bytes the arrays take (for the benchmark's account of memory).
    pub fn heap_bytes(&self) -> usize {
        self.recs.capacity() * std::mem::size_of::<Rec>()
            + self.slots.capacity() * (std::mem::size_of::<BlobIdx>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_64_bytes() {
        assert_eq!(std::mem::size_of::<Rec>(), 64);
    }

    #[test]
    fn totals_follow_changes_and_drops() {
        let mut t = BlobTable::default();
        let h = |n: u8| ContentHash::from_bytes([n; 32]);
        let a = t.ensure(&h(1), 10, 5, false);
        let b = t.ensure(&h(2), 20, 5, false);
        assert_eq!(t.ensure(&h(1), 10, 9, false), a);
        t.update(b, |i| {
            i.form = BlobForm::Packed;
            i.packed_size = Some(3);
        });
        let tot = t.totals();
        assert_eq!((tot.blobs, tot.hot, tot.packed), (2, 1, 1));
        assert_eq!((tot.bytes_original, tot.bytes_stored), (30, 13));
        t.count_current(a, true);
        t.count_current(a, true);
        assert_eq!(t.totals().current_distinct, 10);
        t.drop_blob(a);
        assert!(t.get(&h(1)).is_none() && t.find(&h(1)).is_some());
        assert_eq!(t.totals().blobs, 1);
        assert_eq!(t.totals().current_distinct, 0);
        t.release_unreferenced(&[false, true]);
        assert!(t.find(&h(1)).is_none());
        let c = t.ensure(&h(3), 1, 1, false);
        assert_eq!(c, a, "a freed record is reused");
        assert_eq!(t.iter().count(), 2);
    }

    #[test]
    fn spaces_are_interned_sets() {
        let mut t = BlobTable::default();
        let h = ContentHash::from_bytes([7; 32]);
        let i = t.ensure(&h, 1, 1, false);
        let ann = t.spaces.user_id("ann");
        let bob = t.spaces.user_id("bob");
        t.add_owner(i, bob);
        t.add_holder(i, ann);
        assert!(t.held_by(i, ann) && t.held_by(i, bob));
        assert!(!t.owned_by(i, ann) && t.owned_by(i, bob));
        assert_eq!(t.holders(i).collect::<Vec<_>>(), ["ann"]);
        t.clear_owners();
        assert!(!t.owned_by(i, bob) && t.held_by(i, ann));
    }
}
