//! Self-update end to end on this system: the server offers a newer client
//! build; a running client installs it only when its release signature
//! verifies, restarts into it and reports the new version; a new version
//! that cannot reach the server is rolled back; the admin's pins and
//! staged rollouts decide who is offered what.
//!
//! Run by `make update-test` (part of `make test`), which builds the two
//! clients these tests need, both trusting the test release key
//! (`server/tests/keys`): `NIMBUS_UPDATE_OLD` (this version) and
//! `NIMBUS_UPDATE_NEW` (the same code built as version 9.9.9). Ignored
//! otherwise.

use crate::fixtures::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const NEW_VERSION: &str = "9.9.9";

fn build(var: &str) -> PathBuf {
    let p = PathBuf::from(
        std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run make update-test")),
    );
    assert!(p.exists(), "{var}={} does not exist", p.display());
    p
}

pub fn test_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys/update-test.key")
}

/// How the build offered is signed.
#[derive(Clone, Copy, PartialEq)]
pub enum Signed {
    ByTheReleaseKey,
    ByAnotherKey,
    Not,
}

/// Puts `program` in `clients` as the build of `version` for this system,
/// signed as asked; returns its file name.
pub fn publish(clients: &Path, program: &Path, version: &str, os: &str, signed: Signed) -> String {
    std::fs::create_dir_all(clients).unwrap();
    let name = nimbus_common::update::build_file_name(version, std::env::consts::ARCH, os);
    std::fs::copy(program, clients.join(&name)).unwrap();
    let key = match signed {
        Signed::Not => return name,
        Signed::ByTheReleaseKey => test_key(),
        Signed::ByAnotherKey => {
            let k = clients.join("../another.key");
            let out = Command::new(server_bin())
                .arg("release-key")
                .arg(&k)
                .output()
                .unwrap();
            assert!(out.status.success());
            k
        }
    };
    let out = Command::new(server_bin())
        .arg("release-sign")
        .arg("--key")
        .arg(key)
        .arg(clients.join(&name))
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(clients.join(format!("{name}.sig")).exists());
    name
}

/// The two builds under test, and a server offering the new one.
struct Release {
    new: PathBuf,
    old: String,
    old_bytes: Vec<u8>,
}

impl Release {
    fn new() -> Release {
        Release {
            new: build("NIMBUS_UPDATE_NEW"),
            old: old_version(),
            old_bytes: std::fs::read(build("NIMBUS_UPDATE_OLD")).unwrap(),
        }
    }

    /// Puts the new build in `tmp/clients`, signed as asked.
    fn offer_new(&self, tmp: &Path, signed: Signed) -> String {
        publish(
            &tmp.join("clients"),
            &self.new,
            NEW_VERSION,
            "linux",
            signed,
        )
    }

    /// A server offering `tmp/clients`.
    fn server(&self, tmp: &Path) -> Server {
        let clients = tmp.join("clients");
        Server::start(&["--clients-dir", clients.to_str().unwrap()])
    }
}

/// A machine of the test: its own copy of the old client program.
struct Machine {
    exe: PathBuf,
    src: PathBuf,
    state: PathBuf,
    name: String,
}

impl Machine {
    fn new(tmp: &Path, name: &str) -> Machine {
        let bin = tmp.join(format!("{name}-bin"));
        std::fs::create_dir_all(&bin).unwrap();
        let exe = bin.join("nimbus-client");
        std::fs::copy(build("NIMBUS_UPDATE_OLD"), &exe).unwrap();
        let src = tmp.join(format!("{name}-src"));
        write(&src, "a.txt", name.as_bytes());
        Machine {
            exe,
            src,
            state: tmp.join(format!("{name}-state.json")),
            name: name.to_string(),
        }
    }

    fn command(&self, server: &Server, extra: &[&str]) -> Command {
        let base = client_command(&server.url(), &self.src, &self.name, &self.state, extra);
        let mut c = Command::new(&self.exe);
        c.args(base.get_args());
        c
    }

    fn spawn(&self, server: &Server, extra: &[&str]) -> Child {
        let mut args = vec!["--settle", "0", "--heartbeat", "1", "--interval", "0.5"];
        args.extend_from_slice(extra);
        self.command(server, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn status(&self) -> String {
        let out = Command::new(&self.exe)
            .args(["status", "--state"])
            .arg(&self.state)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn version_on_disk(&self) -> String {
        let out = Command::new(&self.exe).arg("--version").output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// The version the server last heard from `admin/NAME`.
pub fn reported_version(server: &Server, name: &str) -> Option<String> {
    let r = request(server.port, "GET", "/api/v1/admin/clients", &[], b"");
    assert_eq!(r.status, 200);
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["machine"] == name)
        .and_then(|c| c["version"].as_str().map(str::to_string))
}

fn old_version() -> String {
    let out = Command::new(build("NIMBUS_UPDATE_OLD"))
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("self-update on"),
        "the old build must trust the test key: {text}"
    );
    text.split_whitespace().nth(1).unwrap().to_string()
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether the process still runs (it is ours, so not yet reaped).
fn alive(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

#[test]
#[ignore = "needs the client builds of make update-test"]
fn a_running_client_replaces_itself_with_a_signed_newer_build_and_reports_it() {
    let (tmp, r) = (tempfile::tempdir().unwrap(), Release::new());
    let new = &r.new;
    r.offer_new(tmp.path(), Signed::ByTheReleaseKey);
    let server = r.server(tmp.path());
    let m = Machine::new(tmp.path(), "pc");
    let old = &r.old;
    let mut child = m.spawn(&server, &[]);
    wait_for(60, "the new version reported", || {
        reported_version(&server, "pc").as_deref() == Some(NEW_VERSION)
    });
    // The same process (exec), now the new program; the old one kept.
    assert!(
        alive(&mut child),
        "the client stopped instead of restarting"
    );
    assert_eq!(std::fs::read(&m.exe).unwrap(), std::fs::read(new).unwrap());
    assert!(m
        .version_on_disk()
        .starts_with(&format!("nimbus-client {NEW_VERSION} ")));
    let previous = m.exe.with_file_name("nimbus-client.previous");
    assert_eq!(
        std::fs::read(&previous).unwrap(),
        std::fs::read(build("NIMBUS_UPDATE_OLD")).unwrap()
    );
    // It proved itself: no marker left, status says so, backups go on.
    wait_for(30, "the update confirmed", || {
        !m.exe.with_file_name("nimbus-client.update.json").exists()
    });
    let text = m.status();
    assert!(
        text.contains(&format!("running {NEW_VERSION}, the update is complete")),
        "{text}"
    );
    assert!(text.contains(&format!("{NEW_VERSION} (commit")), "{text}");
    write(&m.src, "after.txt", b"sent by the new version");
    wait_for(30, "a file backed up by the new version", || {
        server.file("pc", "after.txt").is_some()
    });
    assert_ne!(old, NEW_VERSION);
    stop(child);
}

#[test]
#[ignore = "needs the client builds of make update-test"]
fn an_unsigned_or_wrongly_signed_or_altered_offer_is_refused_and_the_old_client_keeps_running() {
    let (tmp, r) = (tempfile::tempdir().unwrap(), Release::new());
    let clients = tmp.path().join("clients");
    let (old, old_bytes) = (&r.old, r.old_bytes.clone());
    for (i, (case, signed)) in [
        ("unsigned", Signed::Not),
        ("signed by another key", Signed::ByAnotherKey),
        ("altered after signing", Signed::ByTheReleaseKey),
    ]
    .into_iter()
    .enumerate()
    {
        let _ = std::fs::remove_dir_all(&clients);
        let name = r.offer_new(tmp.path(), signed);
        if case == "altered after signing" {
            // A compromised server swaps the bytes (and their sum) under a
            // valid signature.
            let mut bytes = std::fs::read(clients.join(&name)).unwrap();
            bytes.extend_from_slice(b"appended by an attacker");
            std::fs::write(clients.join(&name), bytes).unwrap();
        }
        let server = r.server(tmp.path());
        let m = Machine::new(tmp.path(), &format!("m{i}"));
        let mut child = m.spawn(&server, &[]);
        wait_for(30, "the refusal in status", || {
            m.status()
                .contains(&format!("version {NEW_VERSION} refused"))
        });
        let text = m.status();
        let why = match signed {
            Signed::Not => "the build is not signed",
            _ => "the signature does not verify against this client's release key",
        };
        assert!(text.contains(why), "{case}: {text}");
        // Refused (the signature is checked before the download), nothing
        // replaced, nothing left beside the program.
        assert!(
            !m.exe.with_file_name(".new-nimbus-client").exists(),
            "{case}"
        );
        assert!(
            !m.exe.with_file_name("nimbus-client.update.json").exists(),
            "{case}"
        );
        assert_eq!(std::fs::read(&m.exe).unwrap(), old_bytes, "{case}");
        assert!(alive(&mut child), "{case}");
        write(&m.src, "still.txt", b"backed up by the old client");
        wait_for(30, "a file backed up by the old client", || {
            server.file(&m.name, "still.txt").is_some()
        });
        assert_eq!(
            reported_version(&server, &m.name).as_deref(),
            Some(old.as_str())
        );
        stop(child);
    }
}

#[test]
#[ignore = "needs the client builds of make update-test"]
fn a_new_version_that_cannot_reach_the_server_is_rolled_back() {
    let (tmp, r) = (tempfile::tempdir().unwrap(), Release::new());
    let (new, old, old_bytes) = (&r.new, &r.old, r.old_bytes.clone());
    r.offer_new(tmp.path(), Signed::ByTheReleaseKey);
    let mut server = r.server(tmp.path());
    let m = Machine::new(tmp.path(), "pc");
    // A run with --once installs the update and ends; the next run is the
    // new version.
    let out = m
        .command(
            &server,
            &["--settle", "0", "--once", "--update-probation", "3"],
        )
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(std::fs::read(&m.exe).unwrap(), std::fs::read(new).unwrap());
    // The server goes away; the new version cannot reach it in time.
    server.kill();
    let mut child = m.spawn(&server, &["--update-probation", "3"]);
    wait_for(60, "the previous program put back", || {
        std::fs::read(&m.exe).unwrap() == old_bytes
    });
    wait_for(30, "the rollback in status", || {
        m.status()
            .contains(&format!("version {NEW_VERSION} was rolled back"))
    });
    // The same process runs the old program again and, once the server is
    // back, reports the old version and is not offered the new one again.
    assert!(alive(&mut child));
    server.restart();
    wait_for(60, "the old version reported", || {
        reported_version(&server, "pc").as_deref() == Some(old.as_str())
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(std::fs::read(&m.exe).unwrap(), old_bytes);
    assert_eq!(
        reported_version(&server, "pc").as_deref(),
        Some(old.as_str())
    );
    assert!(m.status().contains("it is not tried again before"));
    stop(child);
}

#[test]
#[ignore = "needs the client builds of make update-test"]
fn a_pinned_machine_stays_and_a_staged_rollout_updates_only_the_chosen_machines() {
    let (tmp, r) = (tempfile::tempdir().unwrap(), Release::new());
    let old = &r.old;
    // The old version is a build on the server too: the fleet can be
    // pinned to it.
    publish(
        &tmp.path().join("clients"),
        &build("NIMBUS_UPDATE_OLD"),
        old,
        "linux",
        Signed::ByTheReleaseKey,
    );
    r.offer_new(tmp.path(), Signed::ByTheReleaseKey);
    let server = r.server(tmp.path());
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let set = |scope: &str, target: &str| {
        let csrf = csrf_of(&get_with_cookie(&server, "/admin", &session).text());
        let r = post_form(
            &server,
            "/admin/updates",
            &format!("csrf={csrf}&scope={}&target={target}", form_encode(scope)),
            Some(&session),
        );
        assert_eq!(r.status, 303, "{}", r.text());
    };
    // Bad settings change nothing.
    let csrf = csrf_of(&get_with_cookie(&server, "/admin", &session).text());
    for form in [
        format!("csrf={csrf}&scope=machine%3A..%2Fx&target=latest"),
        format!("csrf={csrf}&scope=fleet&target=..%2Fevil"),
        "csrf=wrong&scope=fleet&target=hold".to_string(),
    ] {
        let r = post_form(&server, "/admin/updates", &form, Some(&session));
        assert!([400, 403].contains(&r.status), "{form}: {}", r.status);
    }
    assert!(!server.data.join("updates.json").exists());

    // The fleet stays on the version it runs; "early" is chosen for the
    // new one; "held" is pinned even if the fleet moves on later.
    set("fleet", old);
    set("machine:admin/early", "latest");
    set("machine:admin/held", "hold");
    let early = Machine::new(tmp.path(), "early");
    let rest = Machine::new(tmp.path(), "rest");
    let held = Machine::new(tmp.path(), "held");
    let children: Vec<Child> = [&early, &rest, &held]
        .iter()
        .map(|m| m.spawn(&server, &[]))
        .collect();
    wait_for(60, "the chosen machine updated", || {
        reported_version(&server, "early").as_deref() == Some(NEW_VERSION)
    });
    for m in [&rest, &held] {
        wait_for(30, "a report", || {
            reported_version(&server, &m.name).is_some()
        });
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        reported_version(&server, "rest").as_deref(),
        Some(old.as_str())
    );
    assert_eq!(
        reported_version(&server, "held").as_deref(),
        Some(old.as_str())
    );
    let page = get_with_cookie(&server, "/admin", &session).text();
    assert!(page.contains("id=\"updates\""), "{page}");

    // The rollout goes on to everyone but the pinned machine.
    set("fleet", "latest");
    wait_for(60, "the rest updated", || {
        reported_version(&server, "rest").as_deref() == Some(NEW_VERSION)
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        reported_version(&server, "held").as_deref(),
        Some(old.as_str())
    );
    assert_eq!(
        std::fs::read(&held.exe).unwrap(),
        std::fs::read(build("NIMBUS_UPDATE_OLD")).unwrap()
    );
    // The policy survives a restart of the server.
    let text = std::fs::read_to_string(server.data.join("updates.json")).unwrap();
    assert!(text.contains("\"admin/held\": \"hold\""), "{text}");
    for c in children {
        stop(c);
    }
}

#[test]
#[ignore = "needs the client builds of make update-test"]
fn a_client_killed_at_any_step_of_its_update_always_leaves_a_program_that_runs() {
    let (tmp, r) = (tempfile::tempdir().unwrap(), Release::new());
    let (new, old) = (&r.new, &r.old);
    r.offer_new(tmp.path(), Signed::ByTheReleaseKey);
    let server = r.server(tmp.path());
    let m = Machine::new(tmp.path(), "pc");
    let mut delay = std::time::Duration::from_millis(5);
    let mut kills = 0;
    loop {
        let mut child = m.spawn(&server, &[]);
        std::thread::sleep(delay);
        // kill -9; after an exec it is the same process.
        let _ = child.kill();
        let _ = child.wait();
        kills += 1;
        // Whatever the step, the program at its path runs, as one of the
        // two versions.
        let v = m.version_on_disk();
        assert!(
            v.starts_with(&format!("nimbus-client {old} "))
                || v.starts_with(&format!("nimbus-client {NEW_VERSION} ")),
            "after a kill at {delay:?}: {v:?}"
        );
        let done = reported_version(&server, "pc").as_deref() == Some(NEW_VERSION)
            && !m.exe.with_file_name("nimbus-client.update.json").exists();
        if done {
            break;
        }
        delay *= 2;
        assert!(delay.as_secs() < 60, "the update never completed");
    }
    assert!(
        kills >= 5,
        "only {kills} kill(s) landed before the update completed"
    );
    assert_eq!(std::fs::read(&m.exe).unwrap(), std::fs::read(new).unwrap());
    // The backup went on across all of it.
    write(&m.src, "later.txt", b"after the kills");
    let child = m.spawn(&server, &[]);
    wait_for(30, "a file backed up after the kills", || {
        server.file("pc", "later.txt").is_some()
    });
    stop(child);
}
