//! Accounts from the shell: the first admin at first start, and
//! `nimbus-server user list|add|passwd|remove|disable`, also while a server
//! runs on the same data directory.

use crate::fixtures::*;
use std::process::Command;
use std::time::Duration;

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn first_start_creates_admin_once_and_the_cli_manages_accounts() {
    let mut server = Server::start_fresh(&[]);
    wait_for(10, "the first admin's password", || {
        server.stdout.lock().unwrap().contains("password ")
    });
    let shown = server.stdout.lock().unwrap().clone();
    assert!(
        shown.contains("created the first account: user admin, password "),
        "{shown}"
    );
    let password = shown
        .split("password ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(password.len(), 20);
    assert!(
        !server.log().contains(&password),
        "the password reached the log"
    );

    // The running server's accounts, listed from the shell.
    let (out, _) = text(&server.command(&["user", "list"], ""));
    assert!(out.starts_with("admin\tadmin\tenabled"), "{out}");

    let added = server.command(
        &["user", "add", "bob", "--password-stdin"],
        "bob's secret pw\n",
    );
    assert!(added.status.success(), "{:?}", text(&added));
    let (out, _) = text(&server.command(&["user", "list"], ""));
    assert!(out.contains("bob\tuser\tenabled"), "{out}");

    // Refusals, each with a message a user can act on, changing nothing.
    for (args, stdin, expect) in [
        (vec!["user", "add", "carol"], "", "--password-stdin"),
        (
            vec!["user", "add", "<script>", "--password-stdin"],
            "long enough pw\n",
            "user names are",
        ),
        (
            vec!["user", "add", "carol", "--password-stdin"],
            "short\n",
            "passwords must be",
        ),
        (
            vec!["user", "add", "bob", "--password-stdin"],
            "another password\n",
            "already exists",
        ),
        (
            vec!["user", "passwd", "nobody", "--password-stdin"],
            "whatever123\n",
            "no user \"nobody\"",
        ),
        (vec!["user", "disable", "admin"], "", "last enabled admin"),
        (vec!["user", "remove", "admin"], "", "last enabled admin"),
    ] {
        let out = server.command(&args, stdin);
        let (_, err) = text(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    let (out, _) = text(&server.command(&["user", "list"], ""));
    assert_eq!(out.lines().count(), 2, "{out}");

    assert!(server
        .command(
            &["user", "passwd", "bob", "--password-stdin"],
            "a new password\n"
        )
        .status
        .success());
    assert!(server
        .command(&["user", "disable", "bob"], "")
        .status
        .success());
    let (out, _) = text(&server.command(&["user", "list"], ""));
    assert!(out.contains("bob\tuser\tdisabled"), "{out}");
    assert!(server
        .command(&["user", "disable", "bob", "--enable"], "")
        .status
        .success());
    assert!(server
        .command(&["user", "remove", "bob"], "")
        .status
        .success());

    // Only hashes on disk.
    let file = std::fs::read_to_string(server.data.join("accounts.json")).unwrap();
    assert!(!file.contains(&password) && !file.contains("a new password"));
    assert!(file.contains("$argon2id$"));

    // A restart creates no second admin and shows no password.
    server.stdout.lock().unwrap().clear();
    server.restart();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!server.stdout.lock().unwrap().contains("password"));
}

#[test]
fn kill_9_during_account_changes_leaves_accounts_that_load() {
    let server = Server::start(&[]);
    let mut rng = 0x2545F4914F6CDD1Du64;
    for i in 0..40 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = std::process::Command::new(server_bin())
            .arg("--data")
            .arg(&server.data)
            .args(["user", "add", &format!("user{i}"), "--password-stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"a long password\n")
            .unwrap();
        // Somewhere in hashing, writing, renaming, or after.
        std::thread::sleep(std::time::Duration::from_micros(rng % 120_000));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever the moment, the accounts load, for the CLI and the server.
        let out = server.command(&["user", "list"], "");
        assert!(
            out.status.success(),
            "round {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(server.get("/api/v1/files").status, 200, "round {i}");
    }
    // The next change sweeps what killed writers left behind.
    assert!(server
        .command(
            &["user", "add", "last", "--password-stdin"],
            "a long password\n"
        )
        .status
        .success());
    let leftovers: Vec<_> = std::fs::read_dir(&server.data)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".nimbus-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let out = server.command(&["user", "list"], "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("last\tuser\tenabled"));
}

/// The catalog is keyed by the user name, so a removed account's name
/// stays reserved while its backups remain: no later account, added from
/// the shell or registered in the browser, can take it and see them.
/// `user remove --delete-data` (server stopped) deletes them and frees it.
#[test]
fn a_removed_accounts_backups_never_pass_to_a_new_account_of_that_name() {
    let mut server = Server::start(&["--registration", "open"]);
    add_user(&server, "carol", "carol's password 1");
    let r = api_login(server.port, "carol", "carol's password 1", "laptop");
    let old_token = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let data = b"carol's private notes";
    let hash = blake3::hash(data).to_hex().to_string();
    let r = request(
        server.port,
        "PUT",
        "/api/v1/files/laptop/notes.txt",
        &[
            ("Authorization", &old_token),
            ("X-Nimbus-Hash", &hash),
            ("X-Nimbus-Mtime", "1700000000"),
        ],
        data,
    );
    assert_eq!(r.status, 201, "{}", r.text());

    let out = server.command(&["user", "remove", "carol"], "");
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains("--delete-data"), "{:?}", text(&out));
    // The old device is refused; the name cannot be taken again.
    let auth = [("Authorization", old_token.as_str())];
    assert_eq!(
        request(server.port, "GET", "/api/v1/files", &auth, b"").status,
        401
    );
    let out = server.command(
        &["user", "add", "carol", "--password-stdin"],
        "another password\n",
    );
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("belonged to a removed account"),
        "{:?}",
        text(&out)
    );
    let form = "user=carol&password=mallory%20pw%201&password2=mallory%20pw%201";
    let r = post_form(&server, "/register", form, None);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("taken"));
    assert!(api_login(server.port, "carol", "mallory pw 1", "laptop").status == 401);

    // Data directories from before names were reserved: a start reserves
    // the name of backups that have no account.
    server.kill();
    let accounts_path = server.data.join("accounts.json");
    let mut accounts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&accounts_path).unwrap()).unwrap();
    accounts.as_object_mut().unwrap().remove("reserved");
    std::fs::write(&accounts_path, serde_json::to_vec(&accounts).unwrap()).unwrap();
    server.restart();
    wait_for(10, "the start to reserve carol", || {
        server.log().contains("keep their names reserved")
    });
    let out = server.command(
        &["user", "add", "carol", "--password-stdin"],
        "another password\n",
    );
    assert!(!out.status.success(), "{:?}", text(&out));

    // Deleting the data needs the server stopped.
    let out = server.command(&["user", "remove", "carol", "--delete-data"], "");
    assert!(!out.status.success());
    assert!(text(&out).1.contains("stop it first"), "{:?}", text(&out));
    server.terminate();
    let blobs_before = server.blob_files().len();
    let out = server.command(&["user", "remove", "carol", "--delete-data"], "");
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains("1 file(s)"), "{:?}", text(&out));
    assert_eq!(server.blob_files().len(), blobs_before - 1);

    // A new carol starts with nothing.
    server.restart();
    add_user(&server, "carol", "the new carol pw");
    let r = api_login(server.port, "carol", "the new carol pw", "laptop");
    let new_auth = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let auth = [("Authorization", new_auth.as_str())];
    let r = request(server.port, "GET", "/api/v1/files", &auth, b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!([]));
    let r = request(server.port, "GET", "/download/laptop/notes.txt", &auth, b"");
    assert_eq!(r.status, 404);
}

/// `user remove --delete-data` killed (-9) at any moment leaves a data
/// directory that loads and checks clean, with everyone else's files
/// intact; run again, it finishes the job.
#[test]
fn kill_9_during_delete_data_leaves_a_store_that_loads_and_finishes_on_a_rerun() {
    let mut server = Server::start(&[]);
    add_user(&server, "carol", "carol's password 1");
    let r = api_login(server.port, "carol", "carol's password 1", "laptop");
    let carol = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    for i in 0..200u64 {
        let data = noise(2000, 1000 + i);
        let r = request(
            server.port,
            "PUT",
            &format!("/api/v1/files/laptop/f{i}.bin"),
            &[
                ("Authorization", &carol),
                ("X-Nimbus-Hash", &hex(&data)),
                ("X-Nimbus-Mtime", "1700000000"),
            ],
            &data,
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let mine = noise(5000, 7);
    assert_eq!(put_file(server.port, "pc", "mine.bin", &mine).status, 201);
    server.terminate();

    let mut rng = 0x9E3779B97F4A7C15u64;
    for round in 0..6 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = Command::new(server_bin())
            .arg("--data")
            .arg(&server.data)
            .args(["user", "remove", "carol", "--delete-data"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Somewhere in loading, forgetting, deleting blobs, the snapshot, or after.
        std::thread::sleep(Duration::from_micros(rng % 150_000));
        let _ = child.kill();
        let _ = child.wait();
        let out = server.command(&["check"], "");
        assert!(out.status.success(), "round {round}: {:?}", text(&out));
    }
    // Run to the end, it finishes: the account may be gone already (the
    // name is then reserved, and --delete-data still applies), or a killed
    // run may have completed, and then there is nothing left to remove.
    let out = server.command(&["user", "remove", "carol", "--delete-data"], "");
    assert!(
        out.status.success() || text(&out).1.contains("no user \"carol\""),
        "{:?}",
        text(&out)
    );
    assert!(server
        .command(&["check", "--read-data"], "")
        .status
        .success());
    server.restart();
    let r = server.get("/download/pc/mine.bin");
    assert_eq!(r.body, mine);
    add_user(&server, "carol", "the new carol pw");
    let r = api_login(server.port, "carol", "the new carol pw", "laptop");
    let auth = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let r = request(
        server.port,
        "GET",
        "/api/v1/files",
        &[("Authorization", auth.as_str())],
        b"",
    );
    assert_eq!(r.json(), serde_json::json!([]));
}
