//! The Windows client, for real: `nimbus-client.exe` (cross-compiled for
//! x86_64-pc-windows-gnu) runs under Wine against the Linux server. It
//! backs up a folder with nested folders, unicode and spaced names, a path
//! beyond Windows' classic 260 characters, and a file another program holds
//! open without sharing (reported, retried, backed up once released); the
//! listing and downloaded bytes are checked; then the .exe restores
//! everything into an empty folder, which must equal the original, and
//! restores names Windows cannot hold under safe names or skips them.
//! `install-service` registers its Task Scheduler task (and removes it).
//!
//! Needs Wine, mingw and the Windows target: `make windows-test` builds
//! the .exe and the test helpers and runs this (`make test` does when Wine
//! is installed, and `.ci/run` installs it), passing their places in
//! NIMBUS_WINDOWS_EXE and NIMBUS_WINE_DIR. The .exe trusts the test
//! release key, and NIMBUS_WINDOWS_EXE_NEW is the same code built as
//! version 9.9.9: the running .exe replaces itself with it.

use crate::fixtures::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Wine {
    prefix: PathBuf,
    bin: PathBuf,
}

impl Wine {
    fn new(tmp: &Path) -> Wine {
        let exe = PathBuf::from(
            std::env::var_os("NIMBUS_WINDOWS_EXE")
                .expect("NIMBUS_WINDOWS_EXE names nimbus-client.exe (run: make windows-test)"),
        );
        let helpers = PathBuf::from(
            std::env::var_os("NIMBUS_WINE_DIR")
                .expect("NIMBUS_WINE_DIR names the test helpers (run: make windows-test)"),
        );
        let bin = tmp.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(&exe, bin.join("nimbus-client.exe")).unwrap();
        // Test scaffolding beside the .exe: Wine 8 lacks ProcessPrng.
        for f in ["bcryptprimitives.dll", "holdopen.exe"] {
            std::fs::copy(helpers.join(f), bin.join(f)).unwrap();
        }
        Wine {
            prefix: tmp.join("wineprefix"),
            bin,
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("wine");
        c.arg(self.bin.join(program))
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=");
        c
    }

    /// `nimbus-client.exe login` as the first admin, the password on stdin.
    fn login(&self, url: &str, machine: &str) -> Output {
        let args = ["login", "--server", url, "--user", ADMIN, "--name", machine];
        self.client(
            &[&args[..], &["--password-stdin"]].concat(),
            &format!("{ADMIN_PASSWORD}\n"),
        )
    }

    fn client(&self, args: &[&str], stdin: &str) -> Output {
        let mut c = self.command("nimbus-client.exe");
        c.args(args);
        output_with_stdin(c, stdin)
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let _ = Command::new("wineserver")
            .arg("-k")
            .env("WINEPREFIX", &self.prefix)
            .status();
    }
}

/// How Wine spells a Linux path: drive Z: is `/`.
fn win(p: &Path) -> String {
    format!("Z:{}", p.to_str().unwrap().replace('/', "\\"))
}

fn text_of(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
#[ignore = "needs Wine, mingw and the Windows target; run by make windows-test"]
fn the_windows_exe_backs_up_and_restores_against_the_linux_server() {
    let server = Server::start(&[]);
    let url = server.url();
    let tmp = tempfile::tempdir().unwrap();
    let wine = Wine::new(tmp.path());

    let src = tmp.path().join("src");
    let deep = format!("{}/{}/deep file.txt", "a".repeat(120), "b".repeat(120));
    let files: Vec<(String, Vec<u8>)> = vec![
        (
            "Documents/2026/report.txt".into(),
            b"quarterly report".to_vec(),
        ),
        ("Documents/2026/big.bin".into(), noise(3 << 20, 3)),
        ("Photos/été 🌞/plage.jpg".into(), noise(200_000, 4)),
        ("My Music/a b c.mp3".into(), noise(50_000, 5)),
        ("Résumé.docx".into(), b"curriculum".to_vec()),
        (deep.clone(), b"far down".to_vec()),
        ("held.txt".into(), b"open in another program".to_vec()),
    ];
    for (rel, data) in &files {
        write(&src, rel, data);
    }
    assert!(win(&src.join(&deep)).len() > 260);

    // Log in; the token lands in %APPDATA%\Nimbus, the user's profile.
    let out = wine.login(&url, "winpc");
    assert!(out.status.success(), "{}", text_of(&out));
    // The token file is restricted to the user (icacls; Wine's accepts it).
    assert!(
        !text_of(&out).contains("could not restrict"),
        "{}",
        text_of(&out)
    );
    let config: Vec<PathBuf> = list_files(&wine.prefix.join("drive_c/users"))
        .into_iter()
        .filter(|p| p.ends_with("AppData/Roaming/Nimbus/client.json"))
        .collect();
    assert_eq!(config.len(), 1, "config not in %APPDATA%\\Nimbus");

    // Another program holds held.txt open without sharing.
    let release = tmp.path().join("release");
    let mut holder = wine
        .command("holdopen.exe")
        .args([win(&src.join("held.txt")), win(&release)])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "held");

    let backup = [
        "--server",
        &url,
        "--dir",
        &win(&src),
        "--name",
        "winpc",
        "--once",
    ];
    let out = wine.client(&backup, "");
    let said = text_of(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("held.txt"),
        "the held file is not reported: {said}"
    );
    for (rel, data) in &files {
        if rel == "held.txt" {
            assert!(server.file("winpc", rel).is_none());
            continue;
        }
        let f = server
            .file("winpc", rel)
            .unwrap_or_else(|| panic!("{rel} not backed up: {said}"));
        assert_eq!(f["hash"], hex(data), "{rel}");
        let r = server.get(&format!(
            "/download/winpc/{}",
            nimbus_common::paths::encode_path(rel)
        ));
        assert!(r.status == 200 && &r.body == data, "{rel}: {}", r.status);
    }

    // Released, it is backed up by the next pass.
    std::fs::write(&release, b"").unwrap();
    assert!(holder.wait().unwrap().success());
    let out = wine.client(&backup, "");
    assert!(out.status.success(), "{}", text_of(&out));
    assert_eq!(
        server.file("winpc", "held.txt").unwrap()["hash"],
        hex(b"open in another program")
    );

    // Restore everything into an empty folder through the .exe.
    let restored = tmp.path().join("restored");
    let out = wine.client(&["restore", "--server", &url, "--to", &win(&restored)], "");
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(text_of(&out).contains("restored 7"), "{}", text_of(&out));
    for (rel, data) in &files {
        let got = std::fs::read(restored.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(&got == data, "{rel} differs");
        let (a, b) = (
            std::fs::metadata(src.join(rel))
                .unwrap()
                .modified()
                .unwrap(),
            std::fs::metadata(restored.join(rel))
                .unwrap()
                .modified()
                .unwrap(),
        );
        let secs =
            |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs(a), secs(b), "{rel}: mtime");
    }

    // Start at every logon: a Task Scheduler task Wine's schtasks accepts
    // (it parses the definition; broken XML is refused), and removes.
    let out = wine.client(
        &["install-service", "--server", &url, "--dir", &win(&src)],
        "",
    );
    assert!(out.status.success(), "{}", text_of(&out));
    let task = wine
        .prefix
        .join("drive_c/windows/system32/tasks/Nimbus backup");
    let stored: String = String::from_utf8_lossy(&std::fs::read(&task).unwrap())
        .chars()
        .filter(|c| *c != '\0')
        .collect();
    assert!(
        stored.contains("<MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>")
            && stored.contains(&format!("Backs up {} to {url}", win(&src))),
        "{stored}"
    );
    let out = wine.client(&["install-service", "--remove"], "");
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(!task.exists());

    // What the last backup did, from the .exe's own files; it has ended.
    let out = wine.client(&["status"], "");
    let said = text_of(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("not running:") && said.contains("stopped at"),
        "{said}"
    );
    assert!(said.contains("as \"winpc\""), "{said}");

    // Another machine enrolled with a code from the page, no password.
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let (code, _) = make_enrollment_code(&server, &session, "");
    let out = wine.client(&["enroll", "--server", &url, &code, "--name", "winpc2"], "");
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(
        text_of(&out).contains("enrolled machine \"winpc2\""),
        "{}",
        text_of(&out)
    );

    // Files from a Linux machine whose names Windows cannot hold: skipped
    // and reported, or restored under safe names with --rename-invalid.
    for (path, body) in [
        ("CON.txt", &b"device"[..]),
        ("docs/a%3Ab.txt", b"colon"),
        ("Notes.txt", b"upper"),
        ("notes.txt", b"lower"),
    ] {
        let r = put_file(server.port, "linuxpc", path, body);
        assert_eq!(r.status, 201, "{path}: {}", r.text());
    }
    let odd = tmp.path().join("odd");
    let from = [
        "restore",
        "--server",
        &url,
        "--from",
        "linuxpc",
        "--to",
        &win(&odd),
    ];
    let out = wine.client(&from, "");
    let said = text_of(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("skipped 3"), "{said}");
    assert!(
        said.contains("reserved") && said.contains("differs only in case"),
        "{said}"
    );
    assert_eq!(std::fs::read(odd.join("Notes.txt")).unwrap(), b"upper");
    let mut renamed = from.to_vec();
    renamed.push("--rename-invalid");
    let out = wine.client(&renamed, "");
    assert!(out.status.success(), "{}", text_of(&out));
    assert_eq!(std::fs::read(odd.join("CON_.txt")).unwrap(), b"device");
    assert_eq!(std::fs::read(odd.join("docs/a_b.txt")).unwrap(), b"colon");
}

#[test]
#[ignore = "needs Wine, mingw and the Windows target; run by make windows-test"]
fn the_running_windows_exe_replaces_itself_with_a_signed_newer_build() {
    use crate::self_update::{publish, Signed};
    let tmp = tempfile::tempdir().unwrap();
    let new = PathBuf::from(
        std::env::var_os("NIMBUS_WINDOWS_EXE_NEW")
            .expect("NIMBUS_WINDOWS_EXE_NEW names the 9.9.9 build (run: make windows-test)"),
    );
    let clients = tmp.path().join("clients");
    let name = publish(&clients, &new, "9.9.9", "windows", Signed::ByTheReleaseKey);
    assert!(name.ends_with("-windows.exe"), "{name}");
    let server = Server::start(&["--clients-dir", clients.to_str().unwrap()]);
    let url = server.url();
    let wine = Wine::new(tmp.path());
    let exe = wine.bin.join("nimbus-client.exe");
    let old = std::fs::read(&exe).unwrap();
    let out = wine.login(&url, "winup");
    assert!(out.status.success(), "{}", text_of(&out));
    let src = tmp.path().join("src");
    write(&src, "a.txt", b"from windows");
    let mut child = wine
        .command("nimbus-client.exe")
        .args(["--server", &url, "--dir", &win(&src), "--name", "winup"])
        .args(["--settle", "0", "--heartbeat", "1", "--interval", "0.5"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reported = || crate::self_update::reported_version(&server, "winup");
    wait_for(180, "the new version reported from Wine", || {
        reported().as_deref() == Some("9.9.9")
    });
    // The running .exe was renamed aside and the new one put in its place.
    assert_eq!(std::fs::read(&exe).unwrap(), std::fs::read(&new).unwrap());
    assert_eq!(
        std::fs::read(wine.bin.join("nimbus-client.exe.previous")).unwrap(),
        old
    );
    write(&src, "b.txt", b"sent by 9.9.9");
    wait_for(60, "a file backed up by the new version", || {
        server.file("winup", "b.txt").is_some()
    });
    wait_for(30, "the update confirmed", || {
        !wine.bin.join("nimbus-client.exe.update.json").exists()
    });
    let _ = child.kill();
    let _ = child.wait();
}
