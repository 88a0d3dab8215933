//! History and restore with the real binaries: deletions become tombstones,
//! every version stays downloadable by number or by time, and
//! `nimbus-client restore` brings back a file, a folder or everything as it
//! was, verified, with mtimes, resuming after an interruption.

use crate::fixtures::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, UNIX_EPOCH};

/// Runs `nimbus-client restore` with the test machine's login.
fn restore(server: &Server, state: &Path, args: &[&str]) -> Output {
    Command::new(client_bin())
        .args(["restore", "--server", &server.url(), "--config"])
        .arg(state.with_extension("client.json"))
        .arg("--state")
        .arg(state)
        .args(args)
        .output()
        .unwrap()
}

fn backup_once(server: &Server, src: &Path, state: &Path) {
    assert_ok(&client_once(&server.url(), src, "pc", state, &[]));
}

/// Unix seconds now, then a pause so the next backup lands in a later
/// second (versions are timed to the second).
fn mark() -> i64 {
    let t = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    std::thread::sleep(Duration::from_millis(1100));
    t
}

/// name -> (bytes, mtime in seconds) of every file under `root`.
fn tree(root: &Path) -> BTreeMap<String, (Vec<u8>, i64)> {
    list_files(root)
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let mtime = std::fs::metadata(&p)
                .unwrap()
                .modified()
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            (rel, (std::fs::read(&p).unwrap(), mtime))
        })
        .collect()
}

fn summary(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_file_changed_three_times_and_deleted_comes_back_in_each_state() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    let states: [&[u8]; 3] = [b"first", b"second, longer", b"third"];
    let mut times = Vec::new();
    for (i, content) in states.iter().enumerate() {
        write(&src, "docs/report.txt", content);
        // Distinct mtimes, in the past, so restores can be told apart.
        let f = std::fs::File::options()
            .write(true)
            .open(src.join("docs/report.txt"))
            .unwrap();
        f.set_modified(UNIX_EPOCH + Duration::from_secs(1_700_000_000 + i as u64 * 1000))
            .unwrap();
        backup_once(&server, &src, &state);
        times.push(mark());
    }
    std::fs::remove_file(src.join("docs/report.txt")).unwrap();
    let out = client_once(&server.url(), &src, "pc", &state, &[]);
    assert_ok(&out);
    assert!(summary(&out).contains("deleted 1"), "{}", summary(&out));
    times.push(mark());

    // The history: three versions and a deletion.
    let v = server.get("/api/v1/versions/pc/docs/report.txt").json();
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 4, "{v:?}");
    for (i, content) in states.iter().enumerate() {
        assert_eq!(v[i]["version"], i as u64 + 1);
        assert_eq!(v[i]["hash"], hex(content));
        assert_eq!(v[i]["size"], content.len());
        assert!(v[i].get("deleted").is_none());
    }
    assert_eq!(v[3]["deleted"], true);

    // The listing: gone now, present at each earlier time, and a tombstone
    // with deleted=1.
    assert!(server.files().is_empty());
    let deleted = server.get("/api/v1/files?deleted=1").json();
    assert_eq!(deleted[0]["deleted"], true);
    assert_eq!(deleted[0]["version"], 4);

    // The browser's way: by time and by number, with a session cookie.
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    for (i, content) in states.iter().enumerate() {
        let r = get_with_cookie(
            &server,
            &format!("/download/pc/docs/report.txt?at={}", times[i]),
            &session,
        );
        assert_eq!((r.status, r.body.as_slice()), (200, *content), "state {i}");
        let r = get_with_cookie(
            &server,
            &format!("/download/pc/docs/report.txt?version={}", i + 1),
            &session,
        );
        assert_eq!((r.status, r.body.as_slice()), (200, *content));
        let listed = server.get(&format!("/api/v1/files?at={}", times[i])).json();
        assert_eq!(listed[0]["hash"], hex(content));
        // A range of a past version, as a resumed download asks.
        let r = request(
            server.port,
            "GET",
            &format!("/download/pc/docs/report.txt?version={}", i + 1),
            &[("Range", "bytes=2-")],
            b"",
        );
        assert_eq!((r.status, r.body.as_slice()), (206, &content[2..]));
    }
    for gone in [
        format!("/download/pc/docs/report.txt?at={}", times[3]),
        "/download/pc/docs/report.txt".to_string(),
        "/download/pc/docs/report.txt?version=4".to_string(),
        format!("/download/pc/docs/report.txt?at={}", times[0] - 3600),
    ] {
        assert_eq!(
            get_with_cookie(&server, &gone, &session).status,
            404,
            "{gone}"
        );
    }
    assert_eq!(
        server
            .get("/download/pc/docs/report.txt?at=yesterday")
            .status,
        400
    );

    // The client's way: each of the four states.
    for (i, content) in states.iter().enumerate() {
        let to = tmp.path().join(format!("restored-{i}"));
        let at = times[i].to_string();
        let out = restore(
            &server,
            &state,
            &["--at", &at, "--to", to.to_str().unwrap()],
        );
        assert_ok(&out);
        assert!(summary(&out).contains("restored 1"), "{}", summary(&out));
        let got = tree(&to);
        assert_eq!(
            got["docs/report.txt"],
            (content.to_vec(), 1_700_000_000 + i as i64 * 1000),
            "bytes and mtime of state {i}"
        );
    }
    // RFC 3339 works as well as unix seconds.
    let to = tmp.path().join("restored-rfc");
    let at = format_rfc3339(times[1]);
    assert_ok(&restore(
        &server,
        &state,
        &["--at", &at, "--to", to.to_str().unwrap()],
    ));
    assert_eq!(tree(&to)["docs/report.txt"].0, states[1]);
    // At the fourth state the file is deleted: nothing to restore.
    let to = tmp.path().join("restored-3");
    let at = times[3].to_string();
    let out = restore(
        &server,
        &state,
        &["--at", &at, "--to", to.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to restore"));
    assert!(!to.join("docs/report.txt").exists());
}

fn format_rfc3339(secs: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_folder_restored_at_a_past_time_equals_the_folder_then() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    write(&src, "a.txt", b"alpha");
    write(&src, "old.txt", b"to be deleted");
    write(&src, "sub/b.bin", &noise(300_000, 1));
    write(&src, "sub/deep/c.txt", b"gamma");
    write(&src, "keep/same.txt", b"unchanged");
    backup_once(&server, &src, &state);
    let then = tree(&src);
    let t1 = mark();

    write(&src, "a.txt", b"alpha, edited");
    std::fs::remove_file(src.join("old.txt")).unwrap();
    write(&src, "new.txt", b"created later");
    write(&src, "sub/b.bin", &noise(300_000, 2));
    let out = client_once(&server.url(), &src, "pc", &state, &[]);
    assert_ok(&out);
    assert!(summary(&out).contains("deleted 1"), "{}", summary(&out));

    // Everything as it was at t1: the deleted file back, the new one absent.
    let to = tmp.path().join("then");
    let at = t1.to_string();
    let out = restore(
        &server,
        &state,
        &["--at", &at, "--to", to.to_str().unwrap()],
    );
    assert_ok(&out);
    assert_eq!(tree(&to), then);
    assert!(summary(&out).contains("restored 5"), "{}", summary(&out));

    // Again: nothing fetched, all already correct.
    let out = restore(
        &server,
        &state,
        &["--at", &at, "--to", to.to_str().unwrap()],
    );
    assert_ok(&out);
    assert!(
        summary(&out).contains("restored 0 (0 bytes), already correct 5"),
        "{}",
        summary(&out)
    );

    // One folder only.
    let to = tmp.path().join("sub-only");
    let out = restore(
        &server,
        &state,
        &["--at", &at, "--to", to.to_str().unwrap(), "sub/"],
    );
    assert_ok(&out);
    let got: Vec<String> = tree(&to).into_keys().collect();
    assert_eq!(got, ["sub/b.bin", "sub/deep/c.txt"]);

    // Into the watched folder itself (the default --to): a local file that
    // differs is kept unless --overwrite, then replaced and verified.
    let out = restore(&server, &state, &["--at", &at, "a.txt", "old.txt"]);
    assert_ok(&out);
    assert!(
        summary(&out).contains("restored 1") && summary(&out).contains("skipped 1"),
        "{}",
        summary(&out)
    );
    assert_eq!(std::fs::read(src.join("a.txt")).unwrap(), b"alpha, edited");
    assert_eq!(
        std::fs::read(src.join("old.txt")).unwrap(),
        b"to be deleted"
    );
    let out = restore(&server, &state, &["--at", &at, "--overwrite", "a.txt"]);
    assert_ok(&out);
    assert_eq!(std::fs::read(src.join("a.txt")).unwrap(), b"alpha");
    assert_eq!(tree(&src)["a.txt"], then["a.txt"]);
    assert!(list_files(&src)
        .iter()
        .all(|p| !p.to_string_lossy().ends_with(".nimbus-part")));
}

#[test]
fn names_windows_cannot_hold_are_skipped_or_renamed() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    write(&src, "aux.txt", b"device name");
    write(&src, "note: draft.txt", b"colon");
    write(&src, "fine.txt", b"fine");
    backup_once(&server, &src, &state);
    let to = tmp.path().join("win");
    let out = restore(
        &server,
        &state,
        &["--windows-names", "--to", to.to_str().unwrap()],
    );
    assert_ok(&out);
    assert!(
        summary(&out).contains("restored 1") && summary(&out).contains("skipped 2"),
        "{}",
        summary(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reserved") && err.contains("--rename-invalid"),
        "{err}"
    );
    let out = restore(
        &server,
        &state,
        &[
            "--windows-names",
            "--rename-invalid",
            "--to",
            to.to_str().unwrap(),
        ],
    );
    assert_ok(&out);
    let got: Vec<String> = tree(&to).into_keys().collect();
    assert_eq!(got, ["aux_.txt", "fine.txt", "note_ draft.txt"]);
}

#[test]
fn an_interrupted_restore_resumes_without_fetching_again() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    for i in 0..20 {
        write(
            &src,
            &format!("small/{i:02}.txt"),
            format!("file {i}").as_bytes(),
        );
    }
    let big = noise(160 << 20, 7);
    write(&src, "zz-big.bin", &big);
    backup_once(&server, &src, &state);

    let to = tmp.path().join("out");
    let mut child = Command::new(client_bin())
        .args(["restore", "--server", &server.url(), "--config"])
        .arg(state.with_extension("client.json"))
        .arg("--to")
        .arg(&to)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it while the big file is half there.
    let part = |to: &Path| {
        list_files(to)
            .into_iter()
            .find(|p| p.to_string_lossy().ends_with(".nimbus-part"))
    };
    wait_for(60, "the big file's part file to grow", || {
        part(&to).is_some_and(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) > 1 << 20)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let done = std::fs::metadata(part(&to).expect("a part file is left"))
        .unwrap()
        .len();
    assert!(done < big.len() as u64, "killed before the end");
    assert!(
        !to.join("zz-big.bin").exists(),
        "nothing half-written in place"
    );

    let out = restore(&server, &state, &["--to", to.to_str().unwrap()]);
    assert_ok(&out);
    let line = summary(&out);
    assert!(
        line.contains("restored 1 ") && line.contains("already correct 20"),
        "{line}"
    );
    let fetched: u64 = line
        .split("restored 1 (")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        fetched,
        big.len() as u64 - done,
        "only the missing part is fetched"
    );
    assert!(std::fs::read(to.join("zz-big.bin")).unwrap() == big);
    assert!(part(&to).is_none());
}

/// GETs an archive with a browser session and unpacks it with the system's
/// own tool into `into`; returns the response.
fn fetch_archive(server: &Server, session: &str, query: &str, into: &Path) -> Resp {
    let r = get_with_cookie(server, &format!("/archive?{query}"), session);
    if r.status != 200 {
        return r;
    }
    assert_eq!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        r.body.len(),
        "the declared length is exact"
    );
    std::fs::create_dir_all(into).unwrap();
    let zip = r.header("content-type") == Some("application/zip");
    let file = into.with_extension(if zip { "zip" } else { "tar" });
    std::fs::write(&file, &r.body).unwrap();
    let out = if zip {
        Command::new("unzip")
            .arg("-q")
            .arg(&file)
            .arg("-d")
            .arg(into)
            .output()
            .unwrap()
    } else {
        Command::new("tar")
            .arg("-xf")
            .arg(&file)
            .arg("-C")
            .arg(into)
            .output()
            .unwrap()
    };
    assert!(
        out.status.success(),
        "unpacking failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    r
}

#[test]
fn the_browser_downloads_a_folder_or_a_machine_as_it_was_as_zip_or_tar() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    let long = format!("docs/{}/deep-name.txt", "a-long-folder-name".repeat(8));
    write(&src, "docs/a.txt", b"alpha");
    write(&src, "docs/old.txt", b"deleted later");
    write(&src, &long, b"a name over 100 bytes");
    write(&src, "docs/r\u{e9}sum\u{e9} <1>.txt", b"unicode and markup");
    write(&src, "photos/big.bin", &noise(2_000_000, 3));
    write(&src, "empty.txt", b"");
    backup_once(&server, &src, &state);
    let then = tree(&src);
    let t1 = mark();
    write(&src, "docs/a.txt", b"alpha, edited");
    std::fs::remove_file(src.join("docs/old.txt")).unwrap();
    write(&src, "docs/new.txt", b"later");
    backup_once(&server, &src, &state);

    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    // The page offers it.
    let page = get_with_cookie(&server, "/", &session).text();
    assert!(page.contains("action=\"/archive\"") && page.contains("<option>pc</option>"));

    for format in ["zip", "tar"] {
        // The whole machine at t1.
        let into = tmp.path().join(format!("all-{format}"));
        let r = fetch_archive(
            &server,
            &session,
            &format!("machine=pc&at={t1}&format={format}"),
            &into,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let cd = r.header("content-disposition").unwrap();
        assert!(
            cd.starts_with("attachment;") && cd.contains(&format!(".{format}")),
            "{cd}"
        );
        assert_eq!(
            tree(&into),
            then,
            "{format}: names, bytes and mtimes as at t1"
        );

        // One folder, now: the folder is the archive's top level.
        let into = tmp.path().join(format!("docs-{format}"));
        let r = fetch_archive(
            &server,
            &session,
            &format!("machine=pc&path=docs&format={format}"),
            &into,
        );
        assert_eq!(r.status, 200);
        let names: Vec<String> = tree(&into).into_keys().collect();
        assert!(
            names.contains(&"docs/new.txt".to_string())
                && !names.contains(&"docs/old.txt".to_string()),
            "{names:?}"
        );
        assert_eq!(
            std::fs::read(into.join("docs/a.txt")).unwrap(),
            b"alpha, edited"
        );
        assert!(names.iter().all(|n| n.starts_with("docs/")));
    }

    // Bad requests: a clear 4xx, never a partial archive.
    for (query, status) in [
        ("", 400),
        ("machine=pc&format=rar", 400),
        ("machine=pc&at=soon", 400),
        ("machine=pc&path=../etc", 400),
        ("machine=pc&path=nothing-here", 404),
        ("machine=someone-else", 404),
        ("machine=pc&at=1000", 404),
    ] {
        let r = get_with_cookie(&server, &format!("/archive?{query}"), &session);
        assert_eq!(r.status, status, "{query}: {}", r.text());
    }
    // Another user gets nothing of ours.
    add_user(&server, "mallory", "mallory's password");
    let m = browser_login(&server, "mallory", "mallory's password");
    assert_eq!(
        get_with_cookie(&server, "/archive?machine=pc", &m).status,
        404
    );
    assert_eq!(
        get_with_cookie(&server, "/versions/pc/docs/a.txt", &m).status,
        404
    );

    // A file's versions page links every version.
    let page = get_with_cookie(&server, "/versions/pc/docs/a.txt", &session).text();
    assert!(
        page.contains("/download/pc/docs/a.txt?version=1")
            && page.contains("/download/pc/docs/a.txt?version=2"),
        "{page}"
    );
    let page = get_with_cookie(&server, "/versions/pc/docs/old.txt", &session).text();
    assert!(page.contains("deleted"));
    // The files page at t1, and with deleted files now.
    let page = get_with_cookie(&server, &format!("/files?at={t1}"), &session).text();
    assert!(page.contains("old.txt") && !page.contains("new.txt"));
    assert!(page.contains("/download/pc/docs/a.txt?version=1"));
    let page = get_with_cookie(&server, "/files?deleted=1", &session).text();
    assert!(page.contains("<s>docs/old.txt</s> (deleted)"), "{page}");
    assert!(!get_with_cookie(&server, "/files", &session)
        .text()
        .contains("old.txt"));
}

#[test]
fn a_rename_is_a_deletion_and_a_new_file_that_costs_no_new_bytes() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    let data = noise(300_000, 9);
    write(&src, "old-name.bin", &data);
    write(&src, "small.txt", b"a small file");
    backup_once(&server, &src, &state);
    let blobs = server.blob_files().len();
    std::fs::rename(src.join("old-name.bin"), src.join("new-name.bin")).unwrap();
    std::fs::create_dir_all(src.join("moved")).unwrap();
    std::fs::rename(src.join("small.txt"), src.join("moved/small.txt")).unwrap();
    let out = client_once(&server.url(), &src, "pc", &state, &[]);
    assert_ok(&out);
    assert!(summary(&out).contains("deleted 2"), "{}", summary(&out));
    assert_eq!(server.blob_files().len(), blobs, "no new content stored");
    let now: Vec<String> = server
        .files()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(now, ["moved/small.txt", "new-name.bin"]);
    let all = server.get("/api/v1/files?deleted=1").json();
    let gone: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["deleted"] == true)
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(gone, ["old-name.bin", "small.txt"]);
    assert_eq!(server.get("/download/pc/new-name.bin").body, data);
}

#[test]
fn a_folder_that_cannot_be_read_deletes_nothing() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    write(&src, "a.txt", b"a");
    write(&src, "sub/b.txt", b"b");
    let mut client = spawn_client(
        &server.url(),
        &src,
        &state,
        &["--interval", "0.2", "--settle", "0"],
    );
    wait_for(20, "the first backup", || server.files().len() == 2);
    // The whole folder gone under a running client (an unplugged drive, a
    // share that went away): passes go on, and nothing is taken as deleted.
    let away = tmp.path().join("away");
    std::fs::rename(&src, &away).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let tombstones = || {
        server
            .get("/api/v1/files?deleted=1")
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["deleted"] == true)
            .count()
    };
    assert_eq!((server.files().len(), tombstones()), (2, 0));
    // Back, with one file really deleted meanwhile: that one, only.
    std::fs::remove_file(away.join("a.txt")).unwrap();
    std::fs::rename(&away, &src).unwrap();
    wait_for(20, "the deletion", || tombstones() == 1);
    let _ = client.kill();
    let _ = client.wait();
    assert_eq!(server.files().len(), 1);
}
