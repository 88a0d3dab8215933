//! One machine's files as a tree: a folder's name is stored once (in a
//! name arena), not once per file under it; versions are fixed-size
//! records in one array, chained newest to oldest; and every folder keeps
//! its children sorted plus running totals of the current files under it
//! (count, bytes, newest backup), so a folder page costs what it shows.

use super::blobs::{BlobIdx, BlobTable};
use std::cmp::Ordering;
use std::collections::BTreeMap;

pub type NodeIdx = u32;
const NONE: u32 = u32::MAX;
const ROOT: NodeIdx = 0;
const FOLDER_BIT: u32 = 1 << 31;
const DELETED_BIT: u32 = 1 << 31;
/// A folder with no current file has no newest backup.
pub const NO_TIME: i64 = i64::MIN;

#[derive(Clone, Copy)]
struct Node {
    name: u32,
    /// Name length; the top bit marks a folder.
    len_kind: u32,
    parent: NodeIdx,
    /// A file's newest version, or a folder's index in `folders`.
    link: u32,
}

impl Node {
    fn is_folder(&self) -> bool {
        self.len_kind & FOLDER_BIT != 0
    }
}

#[derive(Default)]
struct Folder {
    /// Sorted by (name, files before folders).
    children: Vec<NodeIdx>,
    totals: Totals,
}

/// The current (not deleted) files under a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub files: u64,
    pub bytes: u64,
    /// The latest `backed_up_at` among them, [`NO_TIME`] if none.
    pub newest: i64,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            files: 0,
            bytes: 0,
            newest: NO_TIME,
        }
    }
}

/// A version as the tree keeps it: 24 bytes.
#[derive(Clone, Copy)]
pub struct VRec {
    pub mtime: i64,
    pub blob: BlobIdx,
    n_deleted: u32,
    at: u32,
    prev: u32,
}

impl VRec {
    pub fn n(&self) -> u64 {
        (self.n_deleted & !DELETED_BIT) as u64
    }
    pub fn deleted(&self) -> bool {
        self.n_deleted & DELETED_BIT != 0
    }
    pub fn at(&self) -> i64 {
        self.at as i64
    }
}

/// A file's contribution to its folders' totals: (content, size, time).
type Live = Option<(BlobIdx, u64, i64)>;

pub struct Tree {
    nodes: Vec<Node>,
    free_nodes: Vec<NodeIdx>,
    names: Vec<u8>,
    folders: Vec<Folder>,
    free_folders: Vec<u32>,
    vers: Vec<VRec>,
    free_vers: Vec<u32>,
    /// File entries (deleted ones included).
    file_nodes: usize,
    /// Bumped by every change: caches of derived figures compare it.
    pub generation: u64,
    /// Versions with content backed up per UTC day (days since the epoch):
    /// (how many, their bytes). Kept as versions come and go, so pages
    /// read it without walking the files.
    activity: BTreeMap<u32, (u32, u64)>,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            nodes: vec![Node {
                name: 0,
                len_kind: FOLDER_BIT,
                parent: NONE,
                link: 0,
            }],
            free_nodes: Vec::new(),
            names: Vec::new(),
            folders: vec![Folder::default()],
            free_folders: Vec::new(),
            vers: Vec::new(),
            free_vers: Vec::new(),
            file_nodes: 0,
            generation: 0,
            activity: BTreeMap::new(),
        }
    }
}

/// A version to add: what a record or a snapshot line says.
pub struct NewVersion {
    pub n: Option<u64>,
    pub blob: BlobIdx,
    pub mtime: i64,
    pub at: i64,
    pub deleted: bool,
}

impl Tree {
    pub fn is_empty(&self) -> bool {
        self.file_nodes == 0
    }

    pub fn file_count(&self) -> usize {
        self.file_nodes
    }

    pub fn name(&self, node: NodeIdx) -> &str {
        let n = &self.nodes[node as usize];
        let len = (n.len_kind & !FOLDER_BIT) as usize;
        let bytes = &self.names[n.name as usize..n.name as usize + len];
        // Names are stored from `&str` segments, whole.
        std::str::from_utf8(bytes).unwrap_or("")
    }

    pub fn is_folder(&self, node: NodeIdx) -> bool {
        self.nodes[node as usize].is_folder()
    }

    fn folder(&self, node: NodeIdx) -> &Folder {
        &self.folders[self.nodes[node as usize].link as usize]
    }

    fn folder_mut(&mut self, node: NodeIdx) -> &mut Folder {
        let f = self.nodes[node as usize].link as usize;
        &mut self.folders[f]
    }

    pub fn totals(&self, folder: NodeIdx) -> Totals {
        self.folder(folder).totals
    }

    pub fn root_totals(&self) -> Totals {
        self.totals(ROOT)
    }

    pub fn children(&self, folder: NodeIdx) -> &[NodeIdx] {
        &self.folder(folder).children
    }

    fn cmp_child(&self, child: NodeIdx, name: &str, folder: bool) -> Ordering {
        self.name(child)
            .as_bytes()
            .cmp(name.as_bytes())
            .then(self.is_folder(child).cmp(&folder))
    }

    /// Where (`name`, kind) is or would be among `parent`'s children.
    fn position(&self, parent: NodeIdx, name: &str, folder: bool) -> Result<usize, usize> {
        self.children(parent)
            .binary_search_by(|&c| self.cmp_child(c, name, folder))
    }

    fn child(&self, parent: NodeIdx, name: &str, folder: bool) -> Option<NodeIdx> {
        self.position(parent, name, folder)
            .ok()
            .map(|i| self.children(parent)[i])
    }

    /// The folder at `path` (`""` is the machine's top).
    pub fn find_folder(&self, path: &str) -> Option<NodeIdx> {
        if path.is_empty() {
            return Some(ROOT);
        }
        path.split('/')
            .try_fold(ROOT, |at, seg| self.child(at, seg, true))
    }

    /// The file at `path`.
    pub fn find_file(&self, path: &str) -> Option<NodeIdx> {
        let (dir, name) = split_last(path);
        let parent = self.find_folder(dir)?;
        self.child(parent, name, false)
    }

    /// A file's versions, oldest first.
    pub fn versions(&self, file: NodeIdx) -> Vec<VRec> {
        let mut out = Vec::new();
        let mut v = self.nodes[file as usize].link;
        while v != NONE {
            let r = self.vers[v as usize];
            out.push(r);
            v = r.prev;
        }
        out.reverse();
        out
    }

    /// A file's newest version.
    pub fn newest(&self, file: NodeIdx) -> Option<VRec> {
        let v = self.nodes[file as usize].link;
        (v != NONE).then(|| self.vers[v as usize])
    }

    /// The version current at `at` (the last recorded at or before it).
    pub fn version_at(&self, file: NodeIdx, at: Option<i64>) -> Option<VRec> {
        let mut v = self.nodes[file as usize].link;
        while v != NONE {
            let r = self.vers[v as usize];
            if at.is_none_or(|t| r.at() <= t) {
                return Some(r);
            }
            v = r.prev;
        }
        None
    }

    /// How many versions with content the file has.
    pub fn content_versions(&self, file: NodeIdx) -> usize {
        let mut n = 0;
        let mut v = self.nodes[file as usize].link;
        while v != NONE {
            let r = self.vers[v as usize];
            n += usize::from(!r.deleted());
            v = r.prev;
        }
        n
    }

    /// The file's path, from the top of the machine.
    pub fn path(&self, node: NodeIdx) -> String {
        let mut parts = Vec::new();
        let mut at = node;
        while at != ROOT && at != NONE {
            parts.push(self.name(at));
            at = self.nodes[at as usize].parent;
        }
        parts.reverse();
        parts.join("/")
    }

    fn live(&self, file: NodeIdx, blobs: &BlobTable) -> Live {
        self.newest(file)
            .filter(|v| !v.deleted())
            .map(|v| (v.blob, blobs.size(v.blob), v.at()))
    }

    fn add_name(&mut self, name: &str) -> u32 {
        let at = self.names.len() as u32;
        self.names.extend_from_slice(name.as_bytes());
        at
    }

    fn new_node(&mut self, parent: NodeIdx, name: &str, folder: bool) -> NodeIdx {
        let link = if folder {
            alloc(&mut self.folders, &mut self.free_folders, Folder::default())
        } else {
            NONE
        };
        let node = Node {
            name: self.add_name(name),
            len_kind: name.len() as u32 | if folder { FOLDER_BIT } else { 0 },
            parent,
            link,
        };
        alloc(&mut self.nodes, &mut self.free_nodes, node)
    }

    fn child_or_new(&mut self, parent: NodeIdx, name: &str, folder: bool) -> NodeIdx {
        match self.position(parent, name, folder) {
            Ok(i) => self.children(parent)[i],
            Err(i) => {
                let node = self.new_node(parent, name, folder);
                self.folder_mut(parent).children.insert(i, node);
                node
            }
        }
    }

    /// The folder at `dir`, created with its parents if missing.
    pub fn folder_or_new(&mut self, dir: &str) -> NodeIdx {
        let mut parent = ROOT;
        if !dir.is_empty() {
            for seg in dir.split('/') {
                parent = self.child_or_new(parent, seg, true);
            }
        }
        parent
    }

    /// Adds a version to the file at `path`, creating it and its folders.
    pub fn add_version(&mut self, path: &str, v: NewVersion, blobs: &mut BlobTable) {
        let (dir, name) = split_last(path);
        let parent = self.folder_or_new(dir);
        self.add_versions(parent, name, std::iter::once(v), blobs);
    }

    /// Adds versions, oldest first, to the file `name` in `folder` (a node
    /// [`Self::folder_or_new`] gave), creating it; the folders' totals are
    /// brought up to date once, after the last.
    pub fn add_versions(
        &mut self,
        folder: NodeIdx,
        name: &str,
        versions: impl IntoIterator<Item = NewVersion>,
        blobs: &mut BlobTable,
    ) {
        let file = match self.position(folder, name, false) {
            Ok(i) => self.children(folder)[i],
            Err(i) => {
                let node = self.new_node(folder, name, false);
                self.folder_mut(folder).children.insert(i, node);
                self.file_nodes += 1;
                node
            }
        };
        let old = self.live(file, blobs);
        for v in versions {
            let head = self.nodes[file as usize].link;
            if let Some(k) = v.n.filter(|_| head != NONE) {
                if self.vers[head as usize].n() >= k {
                    // Not the newest: a record applied again, or one of a
                    // replay behind a snapshot slice.
                    if !self.has_version(file, k) {
                        self.count(&v, blobs.size(v.blob));
                        self.insert_version(file, k, &v);
                    }
                    continue;
                }
            }
            self.count(&v, blobs.size(v.blob));
            let prev = self.nodes[file as usize].link;
            let n = v.n.unwrap_or_else(|| {
                if prev != NONE {
                    self.vers[prev as usize].n() + 1
                } else {
                    1
                }
            });
            self.nodes[file as usize].link = self.store_version(n, &v, prev);
        }
        let new = self.live(file, blobs);
        self.changed(file, old, new, blobs);
    }

    /// Counts a version with content in its day's activity.
    fn count(&mut self, v: &NewVersion, size: u64) {
        if v.deleted {
            return;
        }
        let day = (v.at.max(0) / 86_400) as u32;
        let e = self.activity.entry(day).or_default();
        e.0 = e.0.saturating_add(1);
        e.1 = e.1.saturating_add(size);
    }

    fn uncount(&mut self, at: i64, size: u64) {
        let day = (at.max(0) / 86_400) as u32;
        if let Some(e) = self.activity.get_mut(&day) {
            e.0 = e.0.saturating_sub(1);
            e.1 = e.1.saturating_sub(size);
            if e.0 == 0 {
                self.activity.remove(&day);
            }
        }
    }

    /// Versions with content and their bytes per UTC day (days since the
    /// epoch), from `from_day` on.
    pub fn activity(&self, from_day: u32) -> Vec<(u32, u32, u64)> {
        self.activity
            .range(from_day..)
            .map(|(d, (n, b))| (*d, *n, *b))
            .collect()
    }

    /// Whether `file` has version `n`.
    /// The same per-day figures for the files under `folder`, counted by
    /// walking its versions from `from_day` on (a folder keeps no running
    /// figures of its own); `None` when that means looking at more than
    /// `budget` versions.
    pub fn activity_under(
        &self,
        folder: NodeIdx,
        from_day: u32,
        blobs: &BlobTable,
        budget: usize,
    ) -> Option<Vec<(u32, u32, u64)>> {
        let from = from_day as i64 * 86_400;
        let mut days: BTreeMap<u32, (u32, u64)> = BTreeMap::new();
        let mut seen = 0usize;
        let mut stack = vec![folder];
        while let Some(dir) = stack.pop() {
            for &child in self.children(dir) {
                if self.is_folder(child) {
                    stack.push(child);
                    continue;
                }
                let mut v = self.nodes[child as usize].link;
                while v != NONE {
                    let r = self.vers[v as usize];
                    if r.at() < from {
                        break;
                    }
                    seen += 1;
                    if seen > budget {
                        return None;
                    }
                    if !r.deleted() {
                        let e = days.entry((r.at() / 86_400) as u32).or_default();
                        e.0 = e.0.saturating_add(1);
                        e.1 = e.1.saturating_add(blobs.size(r.blob));
                    }
                    v = r.prev;
                }
            }
        }
        Some(days.into_iter().map(|(d, (n, b))| (d, n, b)).collect())
    }

    pub fn has_version(&self, file: NodeIdx, n: u64) -> bool {
        let mut v = self.nodes[file as usize].link;
        while v != NONE {
            let r = self.vers[v as usize];
            if r.n() == n {
                return true;
            }
            v = r.prev;
        }
        false
    }

    /// Links version `n` in number order below the newest.
    fn insert_version(&mut self, file: NodeIdx, n: u64, v: &NewVersion) {
        let mut after = self.nodes[file as usize].link;
        while self.vers[after as usize].prev != NONE
            && self.vers[self.vers[after as usize].prev as usize].n() > n
        {
            after = self.vers[after as usize].prev;
        }
        let below = self.vers[after as usize].prev;
        self.vers[after as usize].prev = self.store_version(n, v, below);
    }

    /// A new version record (number `n`, linked to `prev`); its index.
    fn store_version(&mut self, n: u64, v: &NewVersion, prev: u32) -> u32 {
        let rec = VRec {
            mtime: v.mtime,
            blob: v.blob,
            n_deleted: (n.min((DELETED_BIT - 1) as u64) as u32)
                | if v.deleted { DELETED_BIT } else { 0 },
            at: v.at.clamp(0, u32::MAX as i64) as u32,
            prev,
        };
        alloc(&mut self.vers, &mut self.free_vers, rec)
    }

    /// Keeps only the versions of `file` for which `keep` holds; a file
    /// left with none is removed, and so are folders left empty.
    pub fn retain_versions(
        &mut self,
        file: NodeIdx,
        mut keep: impl FnMut(&VRec) -> bool,
        blobs: &mut BlobTable,
    ) {
        let old = self.live(file, blobs);
        // Walk the chain newest to oldest, unlinking what goes.
        let mut next: Option<u32> = None;
        let mut v = self.nodes[file as usize].link;
        while v != NONE {
            let r = self.vers[v as usize];
            if keep(&r) {
                next = Some(v);
            } else {
                if !r.deleted() {
                    self.uncount(r.at as i64, blobs.size(r.blob));
                }
                match next {
                    None => self.nodes[file as usize].link = r.prev,
                    Some(n) => self.vers[n as usize].prev = r.prev,
                }
                self.free_vers.push(v);
            }
            v = r.prev;
        }
        let new = self.live(file, blobs);
        self.changed(file, old, new, blobs);
        if self.nodes[file as usize].link == NONE {
            self.remove_node(file);
        }
    }

    fn remove_node(&mut self, node: NodeIdx) {
        let mut node = node;
        loop {
            let parent = self.nodes[node as usize].parent;
            let name = self.name(node).to_string();
            let folder = self.is_folder(node);
            if let Ok(i) = self.position(parent, &name, folder) {
                self.folder_mut(parent).children.remove(i);
            }
            if folder {
                let f = self.nodes[node as usize].link;
                self.folders[f as usize] = Folder::default();
                self.free_folders.push(f);
            } else {
                self.file_nodes -= 1;
            }
            self.free_nodes.push(node);
            if parent == ROOT || !self.children(parent).is_empty() {
                break;
            }
            node = parent;
        }
    }

    /// A file's contribution changed from `old` to `new`: the totals of
    /// every folder above it follow, and the blobs' current counts.
    fn changed(&mut self, file: NodeIdx, old: Live, new: Live, blobs: &mut BlobTable) {
        self.generation += 1;
        if old.map(|o| o.0) != new.map(|n| n.0) {
            if let Some((b, ..)) = old {
                blobs.count_current(b, false);
            }
            if let Some((b, ..)) = new {
                blobs.count_current(b, true);
            }
        }
        if old.map(|o| (o.1, o.2)) == new.map(|n| (n.1, n.2)) {
            return;
        }
        let files = new.is_some() as i64 - old.is_some() as i64;
        let bytes = new.map_or(0, |n| n.1) as i128 - old.map_or(0, |o| o.1) as i128;
        let (old_at, new_at) = (old.map_or(NO_TIME, |o| o.2), new.map_or(NO_TIME, |n| n.2));
        let mut at = self.nodes[file as usize].parent;
        while at != NONE {
            let t = &mut self.folder_mut(at).totals;
            t.files = (t.files as i64 + files) as u64;
            t.bytes = (t.bytes as i128 + bytes) as u64;
            if new_at > t.newest {
                t.newest = new_at;
            } else if old_at == t.newest && new_at < old_at {
                let newest = self.recount_newest(at, blobs);
                self.folder_mut(at).totals.newest = newest;
            }
            at = self.nodes[at as usize].parent;
        }
    }

    /// A folder's newest backup from its children (their totals are right).
    fn recount_newest(&self, folder: NodeIdx, blobs: &BlobTable) -> i64 {
        self.children(folder)
            .iter()
            .map(|&c| {
                if self.is_folder(c) {
                    self.totals(c).newest
                } else {
                    self.live(c, blobs).map_or(NO_TIME, |l| l.2)
                }
            })
            .max()
            .unwrap_or(NO_TIME)
    }

    /// Walks the files under `folder` in order (by name, segment by
    /// segment; a file before a folder of the same name), starting after
    /// the file `after` (a path relative to `folder`) when given. `visit`
    /// gets each file and its path relative to `folder`, and returns
    /// whether to go on. Returns true if the walk ended early.
    pub fn walk(
        &self,
        folder: NodeIdx,
        after: Option<&str>,
        mut visit: impl FnMut(NodeIdx, &str) -> bool,
    ) -> bool {
        // (folder, next child position, path length before its name)
        let mut stack: Vec<(NodeIdx, usize, usize)> = Vec::new();
        let mut path = String::new();
        match after {
            None => stack.push((folder, 0, 0)),
            Some(after) => {
                let mut at = folder;
                // The path's length before `at`'s name.
                let mut before = 0;
                let segs: Vec<&str> = after.split('/').collect();
                for (i, seg) in segs.iter().enumerate() {
                    let last = i + 1 == segs.len();
                    match self.position(at, seg, !last) {
                        Ok(p) if !last => {
                            stack.push((at, p + 1, before));
                            before = path.len();
                            if !path.is_empty() {
                                path.push('/');
                            }
                            path.push_str(seg);
                            at = self.children(at)[p];
                        }
                        Ok(p) => {
                            stack.push((at, p + 1, before));
                            break;
                        }
                        Err(p) => {
                            stack.push((at, p, before));
                            break;
                        }
                    }
                }
            }
        }
        while let Some(top) = stack.last_mut() {
            let (dir, pos, before) = *top;
            let children = self.children(dir);
            if pos >= children.len() {
                stack.pop();
                path.truncate(before);
                continue;
            }
            top.1 += 1;
            let child = children[pos];
            let base = path.len();
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(self.name(child));
            if self.is_folder(child) {
                stack.push((child, 0, base));
            } else {
                let go_on = visit(child, &path);
                path.truncate(base);
                if !go_on {
                    return true;
                }
            }
        }
        false
    }

    /// The path of the most recently backed-up current file: down from the
    /// top along the child whose newest backup is the folder's.
    pub fn last_file(&self, blobs: &BlobTable) -> Option<NodeIdx> {
        let mut at = ROOT;
        let want = self.totals(ROOT).newest;
        if want == NO_TIME {
            return None;
        }
        'down: loop {
            for &c in self.children(at) {
                if self.is_folder(c) {
                    if self.totals(c).newest == want {
                        at = c;
                        continue 'down;
                    }
                } else if self.live(c, blobs).is_some_and(|l| l.2 == want) {
                    return Some(c);
                }
            }
            return None;
        }
    }

    /// Every version's blob (for marking which blobs versions name).
    pub fn each_version_blob(&self, mut f: impl FnMut(BlobIdx, bool)) {
        self.walk(ROOT, None, |file, _| {
            let mut v = self.nodes[file as usize].link;
            while v != NONE {
                let r = self.vers[v as usize];
                f(r.blob, r.deleted());
                v = r.prev;
            }
            true
        });
    }

    /// Bytes the arrays take.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.names.capacity()
            + self.vers.capacity() * std::mem::size_of::<VRec>()
            + self
                .folders
                .iter()
                .map(|f| std::mem::size_of::<Folder>() + f.children.capacity() * 4)
                .sum::<usize>()
    }
}

/// Puts `item` in a slot of `items` that `free` lists, or at the end;
/// returns its index.
fn alloc<T>(items: &mut Vec<T>, free: &mut Vec<u32>, item: T) -> u32 {
    match free.pop() {
        Some(i) => {
            items[i as usize] = item;
            i
        }
        None => {
            items.push(item);
            (items.len() - 1) as u32
        }
    }
}

/// ("a/b", "c") from "a/b/c"; ("", "c") from "c".
pub fn split_last(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_small() {
        assert_eq!(std::mem::size_of::<Node>(), 16);
        assert_eq!(std::mem::size_of::<VRec>(), 24);
    }
}
