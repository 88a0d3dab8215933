//! A data directory written by an earlier release opens and serves as it
//! did. `server/tests/data/release-0049984` was made by the binaries of
//! commit 0049984 (before frames and batches): whole-file blobs, one of
//! them packed as a single bzip2 stream with no frame index, a file with
//! two versions, a deleted file, a snapshot written at a clean stop, and a
//! journal whose last record a kill -9 left behind.

use crate::fixtures::*;
use std::path::Path;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/release-0049984");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// What the old release was given (the script that made the fixture wrote
/// the same bytes).
fn notes() -> Vec<u8> {
    (0..120_000)
        .map(|i| format!("line {i} of the old notes\n"))
        .collect::<String>()
        .into_bytes()
}

fn photo() -> Vec<u8> {
    let mut x: u64 = 12345;
    (0..100_000)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

#[test]
fn a_data_directory_of_the_previous_release_opens_without_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    copy_dir(Path::new(FIXTURE), &data);
    let mut server = Server::start_on(&data, &[]);

    let files = server.files();
    let by_path = |p: &str| files.iter().find(|f| f["path"] == p).cloned();
    let names: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    let notes_entry = by_path("notes.txt").expect("notes.txt");
    assert_eq!(notes_entry["packed"], true);
    assert_eq!(by_path("docs/a.txt").unwrap()["versions"], 2);
    assert!(by_path("gone.txt").is_none());
    let all = request(server.port, "GET", "/api/v1/files?deleted=1", &[], b"").json();
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == "gone.txt" && f["deleted"] == true));

    // Every content byte for byte: the packed one (one stream, no index)
    // whole and by ranges across where frames would be, the hot ones, both
    // versions of the edited file, and the file only the journal held.
    let notes = notes();
    assert!(server.get("/download/pc/notes.txt").body == notes);
    for (a, b) in [
        (0usize, 99usize),
        (1_048_500, 1_048_700),
        (notes.len() - 10, notes.len() - 1),
    ] {
        let r = request(
            server.port,
            "GET",
            "/download/pc/notes.txt",
            &[("Range", &format!("bytes={a}-{b}"))],
            b"",
        );
        assert_eq!(r.status, 206);
        assert_eq!(r.body, &notes[a..=b]);
    }
    assert!(server.get("/download/pc/photo.bin").body == photo());
    assert_eq!(server.get("/download/pc/docs/a.txt").body, b"second\n");
    assert_eq!(
        server.get("/download/pc/docs/a.txt?version=1").body,
        b"first"
    );
    assert_eq!(
        server.get("/download/pc/docs/b.txt").body,
        b"third, in the journal\n"
    );
    assert_eq!(
        server.get("/download/pc/gone.txt?version=1").body,
        b"deleted later"
    );

    // The old admin's account is there, and the store checks clean.
    server.kill();
    let out = server.command(&["user", "list"], "");
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("admin"));
    assert_ok(&server.command(&["check", "--read-data"], ""));
}
