//! The web interface in a real browser: headless Chromium, driven over
//! WebDriver, against the real server and data backed up by the real
//! client. Logs in, walks machines and folders to a nested file, fetches it
//! through the page's own link and compares bytes, uploads a file and finds
//! it listed, sorts and searches as it types, opens the admin dashboard and
//! finds the silent client marked stale and the failing one's errors, and
//! checks that no page loads anything from another host. A 200 MiB upload
//! through a connection that breaks continues and arrives whole; one whose
//! server is killed mid-file continues after a new login in another tab.
//!
//! With `NIMBUS_SCREENSHOTS=DIR` (`make screenshots`) it also saves the main
//! pages at laptop and phone width, light and dark (`screenshots`).

use crate::fixtures::*;
use crate::webdriver::Browser;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[test]
fn a_user_finds_and_downloads_a_nested_file_and_the_admin_sees_a_stale_client() {
    let mut server = Server::start(&[]);

    // A machine that reported once and then fell silent.
    let r = api_login(server.port, ADMIN, ADMIN_PASSWORD, "old-pc");
    let old = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let report = br#"{"version": "0.1.0", "os": "windows x86_64", "errors": 0}"#;
    let r = request(
        server.port,
        "POST",
        "/api/v1/status",
        &[("Authorization", &old)],
        report,
    );
    assert_eq!(r.status, 204);
    // ... two days ago: the server is stopped and the record aged.
    server.terminate();
    let file = server.data.join("clients.json");
    let mut clients: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let two_days_ago = clients["admin/old-pc"]["last_contact"].as_i64().unwrap() - 2 * 86400;
    clients["admin/old-pc"]["last_contact"] = two_days_ago.into();
    std::fs::write(&file, clients.to_string()).unwrap();
    server.restart();
    let origin = server.url();

    // A machine whose last pass had errors.
    let r = api_login(server.port, ADMIN, ADMIN_PASSWORD, "nas");
    let nas = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let report = br#"{"version": "0.1.0", "os": "linux x86_64", "errors": 2, "last_error": "photos/raw.cr2: permission denied"}"#;
    let r = request(
        server.port,
        "POST",
        "/api/v1/status",
        &[("Authorization", &nas)],
        report,
    );
    assert_eq!(r.status, 204);

    // A machine backed up by the real client just now.
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    let report_bytes = noise(150_000, 11);
    write(&src, "docs/2026/report <1>.txt", &report_bytes);
    write(&src, "docs/2026/notes.txt", b"notes");
    write(&src, "docs/readme.md", &[b'#'; 100]);
    write(&src, "photos/cat.jpg", &noise(400_000, 12));
    assert_ok(&client_once(&server.url(), &src, "laptop", &state, &[]));

    let b = Browser::start(1280, 900);
    let mut visited = Vec::new();
    let mut check_hosts = |b: &Browser| {
        for u in b.loaded_urls() {
            assert!(u.starts_with(&origin), "a request went elsewhere: {u}");
            visited.push(u);
        }
    };

    // Log in with the form.
    b.goto(&format!("{origin}/"));
    check_hosts(&b);
    b.find("input[name=user]").type_text(ADMIN);
    b.find("input[name=password]").type_text(ADMIN_PASSWORD);
    b.find("form.login button").click();
    b.wait_for_text("Logged in as <b>admin</b>");
    check_hosts(&b);

    // Machines, then folders, then the file.
    b.link("laptop").click();
    b.wait_for_text("docs/</a>");
    assert!(b.url().ends_with("/browse/laptop/"), "{}", b.url());
    check_hosts(&b);
    b.link("docs/").click();
    b.wait_for_text("2026/</a>");
    b.link("2026/").click();
    b.wait_for_text("notes.txt</a>");
    // The embedded script shows times in the viewer's zone, UTC on hover.
    let t = b.run(
        "const t = document.querySelector('time'); return [t.textContent, t.title];",
        json!([]),
    );
    let (shown, hover) = (t[0].as_str().unwrap(), t[1].as_str().unwrap());
    assert!(
        !shown.ends_with("UTC") && hover.ends_with("Z UTC"),
        "{shown:?} / {hover:?}"
    );
    assert!(b
        .source()
        .contains("<a href=\"/browse/laptop/docs/\">docs</a>"));
    check_hosts(&b);
    let link = b.link("report <1>.txt");
    let href = link.attr("href").unwrap();
    assert!(
        href.ends_with("/download/laptop/docs/2026/report%20%3C1%3E.txt"),
        "{href}"
    );
    // A real download: click the link, find the file, compare bytes.
    let downloads = tmp.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    b.allow_downloads(&downloads);
    link.click();
    // Chromium names it from Content-Disposition (it swaps < and > for _).
    let finished = || {
        list_files(&downloads)
            .into_iter()
            .find(|p| !p.to_string_lossy().ends_with(".crdownload"))
    };
    wait_for(30, "the download", || {
        finished().is_some_and(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.len() == report_bytes.len() as u64)
        })
    });
    let saved = finished().unwrap();
    assert!(
        saved
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("report"),
        "{saved:?}"
    );
    assert!(
        std::fs::read(&saved).unwrap() == report_bytes,
        "downloaded bytes differ"
    );

    // Its versions page.
    b.find("a[href='/versions/laptop/docs/2026/report%20%3C1%3E.txt']")
        .click();
    b.wait_for_text("<h1>docs/2026/report &lt;1&gt;.txt</h1>");
    check_hosts(&b);

    // A folder as it is now, as one zip, from the folder page's form.
    b.goto(&format!("{origin}/browse/laptop/docs/2026/"));
    b.find("form[action='/archive'] button[type=submit]")
        .click();
    let zip = || {
        list_files(&downloads)
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "zip"))
    };
    wait_for(30, "the folder's zip", || zip().is_some());
    let listing = std::process::Command::new("unzip")
        .arg("-l")
        .arg(zip().unwrap())
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("notes.txt") && listing.contains("report <1>.txt"),
        "{listing}"
    );
    check_hosts(&b);

    // Upload from the browser into a folder; the page then lists it.
    b.goto(&format!("{origin}/browse/laptop/docs/"));
    b.wait_for_text("section class=\"upload\"");
    let mine = tmp.path().join("from the browser.txt");
    std::fs::write(&mine, b"typed on a tablet").unwrap();
    b.find("section.upload input[type=file]")
        .type_text(mine.to_str().unwrap());
    b.wait_for_text("from%20the%20browser.txt\"><svg class=\"icon i-text\"");
    check_hosts(&b);
    let r = server.get("/download/laptop/docs/from%20the%20browser.txt");
    assert_eq!((r.status, &r.body[..]), (200, &b"typed on a tablet"[..]));

    // Sorting in place: the script reorders without loading a page.
    let order = |b: &Browser| {
        b.run(
            "return [...document.querySelectorAll('table.browse tbody tr')].map(r => r.cells[0].textContent);",
            json!([]),
        )
    };
    b.run("window.stayed = true; return 0;", json!([]));
    b.find("th[data-key=size]").click();
    assert_eq!(
        order(&b),
        json!(["2026/", "readme.md", "from the browser.txt"])
    );
    b.find("th[data-key=name]").click();
    assert_eq!(
        order(&b),
        json!(["2026/", "from the browser.txt", "readme.md"])
    );
    assert_eq!(
        b.run("return window.stayed === true;", json!([])),
        json!(true)
    );

    // Search as you type: results appear without pressing the button.
    b.find("form.search input[name=q]").type_text("notes");
    b.wait_for_text("1 found");
    assert!(b.url().ends_with("/search?q=notes"), "{}", b.url());
    assert!(b.source().contains("docs/2026/notes.txt"));

    // Search from the box at the top.
    b.goto(&format!("{origin}/"));
    b.find("form.search input[name=q]").type_text("README");
    b.find("form.search button").click();
    b.wait_for_text("found");
    let page = b.source();
    assert!(
        page.contains("1 found") && page.contains("docs/readme.md"),
        "{page}"
    );
    check_hosts(&b);

    // The admin dashboard: the silent machine is stale, the other ok.
    b.goto(&format!("{origin}/admin"));
    b.wait_for_text("table class=\"clients\"");
    check_hosts(&b);
    let rows = b.run(
        "return [...document.querySelectorAll('table.clients tbody tr')].map(tr => tr.className + ' ' + tr.cells[2].textContent);",
        json!([]),
    );
    let rows: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(rows.contains(&"stale old-pc"), "{rows:?}");
    assert!(rows.contains(&"errors nas"), "{rows:?}");
    // The server's health below the clients.
    let page = b.source();
    for label in [
        "<th>Disk</th>",
        "<th>Saved</th>",
        "<th>Contents</th>",
        "<th>Requests</th>",
        "<th>Up</th>",
    ] {
        assert!(page.contains(label), "{label} missing");
    }
    assert!(page.contains(" free of "), "no disk figures");
    let shown = b.run(
        "return [...document.querySelectorAll('table.clients td.error')].map(td => td.textContent).join('|');",
        json!([]),
    );
    assert!(
        shown
            .as_str()
            .unwrap()
            .contains("2 errors: photos/raw.cr2: permission denied"),
        "{shown}"
    );
    assert!(rows.contains(&"ok laptop"), "{rows:?}");
    // A client's tree with sizes, metadata only.
    b.find("table.clients a[href^='/admin/tree/admin/laptop/']")
        .click();
    b.wait_for_text("Metadata only");
    let tree = b.source();
    assert!(
        tree.contains("docs/") && tree.contains("photos/") && !tree.contains("/download/"),
        "{tree}"
    );
    check_hosts(&b);
    assert!(!visited.is_empty());

    screenshots(
        &b,
        &origin,
        &[
            ("home", "/"),
            ("folder", "/browse/laptop/docs/2026/"),
            (
                "versions",
                "/versions/laptop/docs/2026/report%20%3C1%3E.txt",
            ),
            ("search", "/search?q=docs"),
        ],
        800,
    );
}

/// With `NIMBUS_SCREENSHOTS=DIR` (`make screenshots`): each page at laptop
/// and phone width, light and dark, as `NAME-laptop.png`,
/// `NAME-phone-dark.png` and so on (an empty path: the page as it is).
fn screenshots(b: &Browser, origin: &str, pages: &[(&str, &str)], laptop_height: u32) {
    let Some(dir) = std::env::var_os("NIMBUS_SCREENSHOTS") else {
        return;
    };
    let dir = PathBuf::from(dir);
    for (scheme, suffix) in [("light", ""), ("dark", "-dark")] {
        b.color_scheme(scheme);
        for (width, height, kind) in [(1280, laptop_height, "laptop"), (390, 844, "phone")] {
            b.resize(width, height);
            for (name, path) in pages {
                if !path.is_empty() {
                    b.goto(&format!("{origin}{path}"));
                }
                b.screenshot(&dir.join(format!("{name}-{kind}{suffix}.png")));
            }
        }
    }
    b.color_scheme("light");
    b.resize(1280, 900);
}

/// A TCP proxy between the browser and the server that breaks the one
/// connection carrying the `cut_at`-th byte towards the server, as a
/// dropped Wi-Fi would, and counts every byte sent to the server.
struct CuttingProxy {
    port: u16,
    upstream: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
}

impl CuttingProxy {
    fn start(server_port: u16, cut_at: u64) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = Arc::new(AtomicU64::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let (up, cut2) = (upstream.clone(), cut.clone());
        std::thread::spawn(move || {
            for browser in listener.incoming().flatten() {
                let server = TcpStream::connect(("127.0.0.1", server_port)).unwrap();
                let (b2, s2) = (browser.try_clone().unwrap(), server.try_clone().unwrap());
                // Server to browser: plain copy.
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut &s2, &mut &b2);
                    let _ = b2.shutdown(Shutdown::Write);
                });
                let (up, cut) = (up.clone(), cut2.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match (&browser).read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let before = up.fetch_add(n as u64, Ordering::SeqCst);
                        if before + n as u64 >= cut_at && !cut.swap(true, Ordering::SeqCst) {
                            let _ = browser.shutdown(Shutdown::Both);
                            let _ = server.shutdown(Shutdown::Both);
                            return;
                        }
                        if (&server).write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server.shutdown(Shutdown::Write);
                });
            }
        });
        CuttingProxy {
            port,
            upstream,
            cut,
        }
    }
}

#[test]
fn a_200_mib_browser_upload_continues_after_a_dropped_connection() {
    const SIZE: usize = 200 << 20;
    let server = Server::start(&[]);
    // The connection breaks when 90 MiB have gone towards the server.
    let proxy = CuttingProxy::start(server.port, 90 << 20);
    let origin = format!("http://127.0.0.1:{}", proxy.port);
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("video.bin");
    let data = noise(SIZE, 77);
    std::fs::write(&big, &data).unwrap();

    let b = Browser::start(1280, 900);
    log_in(&b, &origin);
    b.wait_for_text("Upload files");
    // The home page's box: machine "uploads" (the default), folder "films".
    b.find("section.upload input[name=folder]")
        .type_text("films");
    b.find("section.upload input[type=file]")
        .type_text(big.to_str().unwrap());
    wait_for(300, "the upload to finish", || {
        server.file("uploads", "films/video.bin").is_some()
    });
    // The page continued from where the server stood: after the broken
    // piece failed, or when Chromium sent it again by itself and the server
    // answered with its offset.
    let resumes = b.run(
        "return Number(sessionStorage.getItem('nimbus-upload-resumes') || 0);",
        json!([]),
    );
    for u in b.loaded_urls() {
        assert!(u.starts_with(&origin), "a request went elsewhere: {u}");
    }

    assert!(
        proxy.cut.load(Ordering::SeqCst),
        "the connection was never cut"
    );
    // It continued from what the server had: a restart from zero sends at
    // least 290 MiB. The page either saw the broken piece fail and asked the
    // server where it stands (counted in `resumes`), or Chromium sent the
    // piece again by itself on a new connection, which the server refused
    // by its offset (counted too) or, when none of that piece had reached
    // it, took at its offset (not counted: nothing needed resuming). Which
    // of these happens depends on timing; the bytes sent tell them all
    // from a restart.
    let sent = proxy.upstream.load(Ordering::SeqCst);
    eprintln!(
        "{sent} bytes went up for {SIZE}; the page resumed {} time(s)",
        resumes.as_u64().unwrap_or(0)
    );
    assert!(
        sent < SIZE as u64 + (45 << 20),
        "{sent} bytes went up for a {SIZE}-byte file"
    );
    let entry = server.file("uploads", "films/video.bin").unwrap();
    assert_eq!(entry["size"], SIZE);
    assert_eq!(entry["hash"], hex(&data));
    let r = server.get("/download/uploads/films/video.bin");
    assert_eq!(r.status, 200);
    assert!(r.body == data, "the stored file differs");
    // Nothing of the upload is left behind but its short answer.
    let parts = server.upload_parts();
    assert!(parts.is_empty(), "{parts:?}");
}

/// Logs in with the form on the page at `origin`.
fn log_in(b: &Browser, origin: &str) {
    b.goto(&format!("{origin}/"));
    b.find("input[name=user]").type_text(ADMIN);
    b.find("input[name=password]").type_text(ADMIN_PASSWORD);
    b.find("form.login button").click();
    b.wait_for_text("Logged in as <b>admin</b>");
}

#[test]
fn a_browser_upload_survives_a_server_killed_mid_file_and_a_new_login() {
    const SIZE: usize = 160 << 20;
    let mut server = Server::start(&[]);
    let origin = server.url();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("backup.tar");
    let data = noise(SIZE, 91);
    std::fs::write(&file, &data).unwrap();

    let b = Browser::start(1280, 900);
    log_in(&b, &origin);
    let upload_tab = b.tab();
    b.find("section.upload input[type=file]")
        .type_text(file.to_str().unwrap());
    // Once a third of it is stored, the server dies (kill -9) and comes
    // back: sessions live in memory, so the page is logged out.
    let uploads = server.data.join("uploads");
    wait_for(120, "a third of the upload", || {
        server.largest_part() >= (SIZE / 3) as u64
    });
    server.kill();
    server.restart();
    let msg = || {
        b.run(
            "const m = document.querySelector('ul.uploads .msg'); return m ? m.textContent : '';",
            json!([]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    };
    wait_for(60, "the page to ask for a new login", || {
        msg().contains("log in again")
    });
    // What was acknowledged before the kill is still there.
    let states: Vec<serde_json::Value> = list_files(&uploads)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    assert_eq!(states.len(), 1);
    assert!(states[0]["offset"].as_u64().unwrap() > 0, "{states:?}");

    // Log in again in another tab; the first tab's upload continues.
    b.new_tab();
    log_in(&b, &origin);
    b.switch_to(&upload_tab);
    wait_for(120, "the upload to finish", || {
        server.file("uploads", "backup.tar").is_some()
    });
    // The same upload finished (not a second one from the start).
    let jsons: Vec<_> = list_files(&uploads)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(jsons.len(), 1, "{jsons:?}");
    let r = server.get("/download/uploads/backup.tar");
    assert!(r.body == data, "the stored file differs");
    assert!(server.log().contains("version 1"), "{}", server.log());
}

#[test]
fn with_javascript_off_pages_still_list_sort_search_and_download() {
    let server = Server::start(&[]);
    let origin = server.url();
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    let big = noise(300_000, 21);
    write(&src, "music/big song.mp3", &big);
    write(&src, "music/short.txt", b"la");
    assert_ok(&client_once(&server.url(), &src, "desk", &state, &[]));

    let b = Browser::start_with(1280, 900, false);
    assert_eq!(
        b.run("return 1;", json!([])),
        json!(1),
        "WebDriver scripts still run"
    );
    log_in(&b, &origin);
    b.link("desk").click();
    b.wait_for_text("music/</a>");
    b.link("music/").click();
    b.wait_for_text("short.txt</a>");
    // The upload box says it needs JavaScript; nothing else does.
    let shown = |css: &str| {
        b.run(
            &format!("const e = document.querySelector('{css}'); return e.offsetParent !== null;"),
            json!([]),
        )
    };
    assert_eq!(shown("section.upload .nojs"), json!(true));
    assert_eq!(shown("section.upload .drop"), json!(false));
    // Sorting by a header link loads the sorted page.
    b.link("Size").click();
    b.wait_for_text("aria-sort=\"descending\">Size");
    assert!(b.url().ends_with("?sort=size"), "{}", b.url());
    let first = b.run(
        "return document.querySelector('table.browse tbody tr').cells[0].textContent;",
        json!([]),
    );
    assert_eq!(first, json!("big song.mp3"));
    // Search with the form's button.
    b.find("form.search input[name=q]").type_text("short");
    b.find("form.search button").click();
    b.wait_for_text("1 found");
    // A plain download link.
    let downloads = tmp.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    b.allow_downloads(&downloads);
    b.goto(&format!("{origin}/browse/desk/music/"));
    b.link("big song.mp3").click();
    wait_for(30, "the download", || {
        list_files(&downloads).iter().any(|p| {
            !p.to_string_lossy().ends_with(".crdownload")
                && std::fs::read(p).is_ok_and(|d| d == big)
        })
    });
}

/// A new user on a new machine, from the server's page to a running
/// backup: logs in, opens "Add a machine", gets the client for the
/// detected system (Chromium here says Linux x86_64), downloads it and
/// checks its bytes and SHA-256 against the clients folder, makes an
/// enrollment code, and then runs the three lines the page shows, as shown,
/// in a shell whose home is a new temporary one: the download, `enroll`,
/// and `install-service`, whose systemd user unit is then started as
/// systemd would start it (`systemctl` itself is a stand-in that records
/// its calls: this machine has no user session manager). The files put in
/// ~/Documents arrive on the server under the user's new machine.
#[test]
fn a_new_user_goes_from_the_page_to_a_running_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let clients = tmp.path().join("clients");
    std::fs::create_dir(&clients).unwrap();
    let program = std::fs::read(client_bin()).unwrap();
    let build = clients.join("nimbus-client-0.1.0-x86_64-linux");
    std::fs::write(&build, &program).unwrap();
    std::fs::write(
        clients.join("nimbus-client-0.1.0-x86_64-windows.exe"),
        b"MZ",
    )
    .unwrap();
    let server = Server::start(&["--clients-dir", clients.to_str().unwrap()]);
    add_user(&server, "carol", "carol's password");
    let origin = server.url();

    let b = Browser::start(1280, 900);
    b.goto(&format!("{origin}/"));
    b.find("input[name=user]").type_text("carol");
    b.find("input[name=password]").type_text("carol's password");
    b.find("form.login button").click();
    b.wait_for_text("Logged in as <b>carol</b>");
    assert!(b.source().contains("Nothing is backed up yet"));
    b.link("Add a machine").click();
    b.wait_for_text("For this Linux machine (x86_64)");

    // The offered download is the file in the clients folder, byte for byte.
    let link = b.find("#client-download");
    assert_eq!(
        link.attr("href").as_deref(),
        Some("/clients/nimbus-client-0.1.0-x86_64-linux")
    );
    let shown_sum = b.find("#client-sha256").text();
    let downloads = tmp.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    b.allow_downloads(&downloads);
    link.click();
    let saved = downloads.join("nimbus-client-0.1.0-x86_64-linux");
    wait_for(60, "the client download", || {
        std::fs::metadata(&saved).is_ok_and(|m| m.len() == program.len() as u64)
    });
    assert_eq!(std::fs::read(&saved).unwrap(), program);
    let sum = sha256_hex(&program);
    assert_eq!(shown_sum, sum);

    // A code, filled into the commands.
    b.find("form[action='/add-machine/codes'] button").click();
    b.wait_for_text("it is not shown again");
    let code = b.find("#enroll-code").attr("value").unwrap();
    assert_eq!(code.len(), 19, "{code}");
    let commands = b.find("#commands").text();
    let lines: Vec<&str> = commands.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "{commands}");
    assert!(lines[1].contains(&code), "{commands}");
    screenshots(&b, &origin, &[("add-machine", "")], 800);

    // The machine: a new home, a Documents folder, and the three lines.
    let home = tmp.path().join("home");
    write(&home, "Documents/letters/first.txt", b"dear nimbus");
    write(&home, "Documents/photo.jpg", &noise(300_000, 5));
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = tmp.path().join("systemctl.calls");
    let fake = bin.join("systemctl");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", calls.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let shell = |line: &str| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(line)
            .env_clear()
            .env("HOME", &home)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for line in &lines {
        shell(line);
    }
    let installed = home.join(".local/bin/nimbus-client");
    assert_eq!(std::fs::read(&installed).unwrap(), program);
    let called = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        called,
        "--user daemon-reload\n--user enable --now nimbus-client.service\n"
    );

    // systemd starts the unit: its ExecStart, split as systemd splits it.
    let unit =
        std::fs::read_to_string(home.join(".config/systemd/user/nimbus-client.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let words: Vec<String> = exec
        .split("\" \"")
        .map(|w| w.trim_matches('"').to_string())
        .collect();
    assert_eq!(words[0], installed.to_str().unwrap());
    let mut service = std::process::Command::new(&words[0])
        .args(&words[1..])
        .env_clear()
        .env("HOME", &home)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let machine = gethostname();
    let carol = browser_login(&server, "carol", "carol's password");
    let folder = format!("/browse/{}/", form_encode(&machine));
    wait_for(60, "the backup of ~/Documents", || {
        let page = get_with_cookie(&server, &folder, &carol).text();
        page.contains("photo.jpg") && page.contains("letters/")
    });
    let page = get_with_cookie(&server, &format!("{folder}letters/"), &carol).text();
    assert!(page.contains("first.txt"), "{page}");
    service.kill().unwrap();
    service.wait().unwrap();
    b.goto(&format!("{origin}/"));
    b.wait_for_text(&format!("{machine}</a>"));
}

fn gethostname() -> String {
    let out = std::process::Command::new("hostname").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_admin_edits_a_policy_on_the_page_and_sees_the_client_apply_it() {
    let server = Server::start(&[]);
    let origin = server.url();
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    write(&src, "a.txt", b"first");
    let mut client = spawn_client(
        &origin,
        &src,
        &state,
        &["--settle", "0", "--interval", "0.3", "--heartbeat", "1"],
    );
    wait_for(30, "a.txt backed up", || {
        server.file("pc", "a.txt").is_some()
    });

    let b = Browser::start(1280, 900);
    log_in(&b, &origin);
    b.link("Backup policy").click();
    b.wait_for_text("All machines");
    b.link("admin/pc").click();
    b.wait_for_text("What admin/pc applies");
    b.find("textarea[name=excludes]")
        .type_text("*.skip\nscratch/");
    b.find("input[name=upload_limit]").type_text("5000000");
    b.find("#policy-form button[type=submit]").click();
    b.wait_for_text("Saved. Clients apply it at their next heartbeat.");
    let shown = b.find("pre.effective").text();
    assert!(
        shown.contains("*.skip") && shown.contains("5000000"),
        "{shown}"
    );

    // Within a heartbeat the client applies it, and the dashboard says so.
    b.goto(&format!("{origin}/policy?scope=machine%3Aadmin%2Fpc"));
    wait_for(30, "the page to show the policy applied", || {
        b.goto(&format!("{origin}/policy?scope=machine%3Aadmin%2Fpc"));
        b.find("#applied").text().contains("applies it.")
    });
    b.goto(&format!("{origin}/admin"));
    let cell = b.find("tr.ok td.policy").text();
    assert!(
        !cell.is_empty() && !cell.contains("next heartbeat"),
        "{cell}"
    );
    write(&src, "b.skip", b"left out");
    write(&src, "b.txt", b"sent");
    wait_for(30, "b.txt backed up", || {
        server.file("pc", "b.txt").is_some()
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(server.file("pc", "b.skip").is_none());

    // A window that is not one is refused with the reason, nothing saved.
    b.goto(&format!("{origin}/policy?scope=machine%3Aadmin%2Fpc"));
    b.find("textarea[name=windows]").type_text("mon 9-5");
    b.find("#policy-form button[type=submit]").click();
    b.wait_for_text("is not a window");
    screenshots(
        &b,
        &origin,
        &[("policy", "/policy?scope=machine%3Aadmin%2Fpc")],
        1400,
    );
    let _ = client.kill();
    let _ = client.wait();
}

#[test]
fn the_admin_adds_a_webhook_on_the_alerts_page_and_its_test_alert_arrives() {
    let hooks = HookReceiver::start();
    let server = Server::start(&["--alert-interval", "1"]);
    let origin = server.url();
    let b = Browser::start(1280, 900);
    log_in(&b, &origin);
    b.link("Alerts").click();
    b.wait_for_text("Where alerts go");
    b.wait_for_text("Nowhere yet");
    let url = format!("http://127.0.0.1:{}/ops", hooks.port);
    b.find("#target-form input[name=webhook]").type_text(&url);
    b.find("#target-form button[type=submit]").click();
    b.wait_for_text(&format!("generic webhook {url}"));
    b.find("#test-form button[type=submit]").click();
    wait_for(30, "the test alert at the receiver", || {
        hooks.hooks().iter().any(|h| h.body["event"] == "test")
    });
    assert_eq!(hooks.hooks()[0].target, "/ops");
    wait_for(30, "the page to show it sent", || {
        b.goto(&format!("{origin}/alerts"));
        b.find("table.deliveries tr.sent")
            .text()
            .contains("Test alert from Nimbus")
    });
    // A mail server with a sender that is not an address: refused, saying why.
    b.find("#smtp-form input[name=host]")
        .type_text("smtp.example.org");
    b.find("#smtp-form input[name=from]").type_text("nobody");
    b.find("#smtp-form button[type=submit]").click();
    b.wait_for_text("smtp.from is not a mail address");
    screenshots(&b, &origin, &[("alerts", "/alerts")], 1400);
}

#[test]
fn previews_show_text_and_images_and_never_run_html_or_an_svg_script() {
    use base64::Engine;
    let server = Server::start(&[]);
    let origin = server.url();
    let png = base64::engine::general_purpose::STANDARD
        .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
        .unwrap();
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><text id="t" x="0" y="15">safe</text><script>document.getElementById('t').textContent = 'RAN';</script></svg>"#;
    let html = b"<html><body><p id=p>page</p><script>document.getElementById('p').textContent='RAN'</script></body></html>";
    for (path, data) in [
        (
            "notes.txt",
            &b"first line\n<script>alert('not run')</script>\n"[..],
        ),
        ("photo.png", &png[..]),
        ("evil.svg", &svg[..]),
        ("page.html", &html[..]),
    ] {
        assert_eq!(
            put_file(server.port, "pc", path, data).status,
            201,
            "{path}"
        );
    }
    let b = Browser::start(1280, 900);
    log_in(&b, &origin);

    // Text: shown on the file's page, escaped.
    b.goto(&format!("{origin}/versions/pc/notes.txt"));
    let shown = b.find("pre.text-preview").text();
    assert!(
        shown.contains("<script>alert('not run')</script>"),
        "{shown}"
    );
    // An image: loaded from the preview route and decoded.
    b.goto(&format!("{origin}/versions/pc/photo.png"));
    b.find("img.image-preview");
    wait_for(10, "the image to load", || {
        b.run(
            "return document.querySelector('img.image-preview').naturalWidth;",
            json!([]),
        ) == json!(1)
    });
    // HTML: no preview on its page, and the route refuses it.
    b.goto(&format!("{origin}/versions/pc/page.html"));
    assert!(b.try_find("section.preview").is_none());
    let r = request(server.port, "GET", "/preview/pc/page.html", &[], b"");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("no_preview"));
    // An SVG with a script, opened on its own: shown, its script not run.
    b.goto(&format!("{origin}/preview/pc/evil.svg"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let src = b.source();
    // The live document (WebDriver serialises the DOM): the text the
    // script would have changed is still "safe".
    assert!(
        src.contains(">safe</text>") && !src.contains(">RAN</text>"),
        "{src}"
    );
    let r = request(server.port, "GET", "/preview/pc/evil.svg", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("image/svg+xml"));
    assert!(r
        .header("Content-Security-Policy")
        .unwrap()
        .contains("sandbox"));
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    assert!(r
        .header("Content-Disposition")
        .unwrap()
        .starts_with("inline"));
    // Text is always text/plain, and downloads stay attachments.
    let r = request(server.port, "GET", "/preview/pc/notes.txt", &[], b"");
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    let r = request(server.port, "GET", "/download/pc/evil.svg", &[], b"");
    assert!(r
        .header("Content-Disposition")
        .unwrap()
        .starts_with("attachment"));
    // Another user's file is not previewed for them.
    add_user(&server, "eve", "eve password 1");
    let eve = format!(
        "Bearer {}",
        api_login(server.port, "eve", "eve password 1", "x").json()["token"]
            .as_str()
            .unwrap()
    );
    let r = request(
        server.port,
        "GET",
        "/preview/pc/photo.png",
        &[("Authorization", &eve)],
        b"",
    );
    assert_eq!(r.status, 404);
}

#[test]
fn machines_show_as_cards_with_their_state_and_the_dark_theme_follows_the_system() {
    let server = Server::start(&["--stale-after", "10"]);
    let origin = server.url();
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    write(&src, "a.txt", b"hello");
    assert_ok(&client_once(&origin, &src, "pc", &state, &[]));
    let b = Browser::start(1280, 900);
    log_in(&b, &origin);
    let card = b.find("article.card.ok").text();
    assert!(card.contains("pc") && card.contains("backed up"), "{card}");
    assert!(card.contains("Last backup just now"), "{card}");
    assert!(card.contains("1 file,") && card.contains("idle"), "{card}");
    // The exact time is on hover, in the viewer's time zone.
    let ago = b.find("article.card time.ago");
    let (title, utc) = (
        ago.attr("title").unwrap_or_default(),
        ago.attr("datetime").unwrap_or_default(),
    );
    assert!(
        !title.is_empty() && title != utc && ago.text() == "just now",
        "{title} {utc}"
    );
    // Light by default, dark when the system asks for it.
    let bg = || {
        b.run(
            "return getComputedStyle(document.body).backgroundColor;",
            json!([]),
        )
    };
    assert_eq!(bg(), json!("rgb(255, 255, 255)"));
    b.color_scheme("dark");
    b.goto(&format!("{origin}/"));
    assert_eq!(bg(), json!("rgb(15, 18, 23)"));
    b.color_scheme("light");
    // Silent past --stale-after: the card says so, and the admin's summary
    // puts it first.
    std::thread::sleep(std::time::Duration::from_secs(11));
    b.goto(&format!("{origin}/"));
    let card = b.find("article.card.stale").text();
    assert!(card.contains("stale"), "{card}");
    b.goto(&format!("{origin}/admin"));
    let summary = b.find("p.summary").text();
    assert!(
        summary.starts_with("1 machine: 0 backed up, 1 stale (the longest for "),
        "{summary}"
    );
}

#[test]
fn a_machine_page_charts_its_backups_per_day_and_a_day_browses_as_it_was() {
    let mut server = Server::start(&[]);
    let origin = server.url();
    for (path, data) in [
        ("a.txt", &b"one"[..]),
        ("a.txt", &b"one two"[..]),
        ("docs/b.txt", &b"three"[..]),
    ] {
        assert_eq!(put_file(server.port, "pc", path, data).status, 201);
    }
    let b = Browser::start(1280, 900);
    log_in(&b, &origin);
    b.goto(&format!("{origin}/browse/pc/"));
    let title = chart_title(&b, "#timeline");
    assert!(
        title.contains("Versions backed up per day on pc") && title.contains("3 in all"),
        "{title}"
    );
    // The figures beside it: today, 3 versions, 15 bytes.
    let today = &nimbus_common::time::format_utc(nimbus_common::time::unix_now())[..10];
    let cells = b.run(
        "return [...document.querySelectorAll('#timeline table.chart-data td')].map(t => t.textContent);",
        json!([]),
    );
    assert_eq!(cells, json!([today, "3", "15"]));
    // Today's bar leads to the files as they were at the end of the day.
    let href = b.run(
        "return document.querySelector('figure.timeline a.day').getAttribute('href');",
        json!([]),
    );
    let href = href.as_str().unwrap();
    assert!(href.starts_with("/browse/pc/?at="), "{href}");
    b.goto(&format!("{origin}{href}"));
    b.wait_for_text("as they were at");
    assert!(b.source().contains("docs/</a>"));
    // No request left the server.
    assert!(b.loaded_urls().iter().all(|u| u.starts_with(&origin)));
    // The figures come from the catalog itself: the same after a restart
    // (rebuilt from the snapshot and journal, no file of their own).
    server.kill();
    server.restart();
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let page = get_with_cookie(&server, "/browse/pc/", &session).text();
    assert!(page.contains(": 3 in all</title>"), "{page}");
}

/// The rows of a chart's figures table, each a list of cell texts.
fn chart_rows(b: &Browser, chart: &str) -> serde_json::Value {
    b.run(
        "return [...document.querySelectorAll(arguments[0] + ' table.chart-data tbody tr')]
            .map(r => [...r.children].map(c => c.textContent));",
        json!([chart]),
    )
}

/// A chart's SVG title (its accessible name).
fn chart_title(b: &Browser, chart: &str) -> String {
    b.run(
        "return document.querySelector(arguments[0] + ' svg title').textContent;",
        json!([chart]),
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

#[test]
fn charts_match_the_api_and_a_past_day_on_the_timeline_shows_the_old_size() {
    // Two days ago (the server's clock moved back): the first versions;
    // c.txt holds b.txt's bytes, stored once.
    let mut server = Server::start_at_clock("-2d", &["--history-interval", "1"]);
    for (path, data) in [
        ("a.txt", noise(1000, 2)),
        ("docs/b.txt", noise(500, 8)),
        ("docs/c.txt", noise(500, 8)),
    ] {
        assert_eq!(put_file(server.port, "pc", path, &data).status, 201);
    }
    // A clean stop notes that day's figures.
    assert!(server.terminate().success());
    // Today: a.txt and b.txt change.
    server.set_clock(None);
    server.restart();
    assert_eq!(
        put_file(server.port, "pc", "a.txt", &noise(3000, 4)).status,
        201
    );
    assert_eq!(
        put_file(server.port, "pc", "docs/b.txt", &noise(800, 16)).status,
        201
    );
    let today = nimbus_common::time::unix_now() / 86_400;
    let day = |d: i64| nimbus_common::time::format_utc(d * 86_400)[..10].to_string();
    let (then, now) = (day(today - 2), day(today));
    let api = |path: &str| request(server.port, "GET", path, &[], b"").json();
    let mut history = json!(null);
    wait_for(20, "today's figures in the history", || {
        history = api("/api/v1/history");
        let pc = history["machines"]["pc"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        pc.len() == 2 && pc[1]["bytes"] == 4300
    });
    let pc = history["machines"]["pc"].as_array().unwrap();
    // What they take on disk: at least each distinct content once.
    assert!(pc[1]["stored"].as_u64().unwrap() >= 4300, "{history}");
    assert_eq!(
        (pc[0]["day"].as_str().unwrap(), &pc[0]["bytes"]),
        (then.as_str(), &json!(2000))
    );
    let b = Browser::start(1280, 900);
    let origin = server.url();
    log_in(&b, &origin);

    // The machine's timeline: its figures are the activity API's.
    b.goto(&format!("{origin}/browse/pc/"));
    let activity = api("/api/v1/activity/pc");
    let rows_of = |days: &serde_json::Value| -> serde_json::Value {
        days["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| json!([d["day"], d["versions"].to_string(), d["bytes"].to_string()]))
            .collect()
    };
    assert_eq!(
        chart_rows(&b, "#timeline"),
        json!([[then, "3", "2000"], [now, "2", "3800"]])
    );
    assert_eq!(chart_rows(&b, "#timeline"), rows_of(&activity));
    assert!(chart_title(&b, "#timeline").contains("5 in all"));
    // Its storage over time: the history API's figures.
    let expected: serde_json::Value = pc
        .iter()
        .map(|d| json!([d["day"], d["bytes"].to_string(), d["stored"].to_string()]))
        .collect();
    assert_eq!(chart_rows(&b, "#machine-storage"), expected);
    assert!(chart_title(&b, "#machine-storage").contains("Storage of pc over time"));
    // Clicking the day two days ago shows the files as they were then:
    // a.txt at its old size.
    b.find("#timeline a.day rect").click();
    b.wait_for_text("as they were at");
    assert!(b.url().contains("?at="), "{}", b.url());
    let size = b.run(
        "return [...document.querySelectorAll('table.browse tr.file')]
            .find(r => r.textContent.startsWith('a.txt')).children[1].getAttribute('title');",
        json!([]),
    );
    assert_eq!(size, json!("1000 bytes"));
    // The day is marked on the timeline, and the download form takes it.
    assert!(b.source().contains("class=\"chosen\""));
    let at = b
        .find("form[action='/archive'] input[name=at]")
        .attr("value")
        .unwrap_or_default();
    assert!(at.starts_with(&then), "{at}");

    // A folder's timeline counts its own files only.
    b.goto(&format!("{origin}/browse/pc/docs/"));
    assert_eq!(
        chart_rows(&b, "#timeline"),
        rows_of(&api("/api/v1/activity/pc/docs"))
    );
    assert_eq!(
        chart_rows(&b, "#timeline"),
        json!([[then, "2", "1000"], [now, "1", "800"]])
    );
    // A file's versions on the same kind of timeline, with their sizes.
    b.goto(&format!("{origin}/versions/pc/a.txt"));
    assert_eq!(
        chart_rows(&b, "#timeline"),
        json!([[then, "1", "1000"], [now, "1", "3000"]])
    );

    // The admin's charts: the server's storage, the history API's figures.
    b.goto(&format!("{origin}/admin"));
    let h = api("/api/v1/admin/history");
    let expected: serde_json::Value = h["server"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            json!([
                d["day"],
                d["stored"].to_string(),
                d["saved_by_packing"].to_string(),
                d["saved_by_dedup"].to_string()
            ])
        })
        .collect();
    assert_eq!(chart_rows(&b, "#server-storage"), expected);
    let server_days = h["server"].as_array().unwrap();
    assert_eq!(server_days.len(), 2);
    // Two days ago c.txt was b.txt's twin: 500 bytes saved by dedup; today
    // they differ.
    assert_eq!(server_days[0]["saved_by_dedup"], 500);
    assert_eq!(server_days[1]["saved_by_dedup"], 0);
    assert!(chart_title(&b, "#server-storage").contains("storage over time"));
    // The disk: its total as the health API has it.
    let health = api("/api/v1/admin/health");
    let disk = chart_rows(&b, "#disk-chart");
    assert_eq!(
        disk[0],
        json!(["Total (bytes)", health["disk_total_bytes"].to_string()])
    );
    assert!(chart_title(&b, "#disk-chart").contains("free of"));
    // Every machine as a card too.
    let card = b.find("section.cards article.card").text();
    assert!(card.contains("/pc") && card.contains("backed up"), "{card}");
    screenshots(
        &b,
        &origin,
        &[("machine", "/browse/pc/"), ("admin", "/admin")],
        1000,
    );
    assert!(b.loaded_urls().iter().all(|u| u.starts_with(&origin)));
    // Charts read without scripts: the same figures in the page's HTML.
    let session = browser_login(&server, ADMIN, ADMIN_PASSWORD);
    let page = get_with_cookie(&server, "/admin", &session).text();
    assert!(
        page.contains("id=\"server-storage\"") && page.contains("<title"),
        "{page}"
    );
}

#[test]
fn keys_reach_the_search_and_walk_its_results_and_empty_pages_say_what_to_do() {
    let server = Server::start(&[]);
    let origin = server.url();
    for (path, data) in [
        ("photos/cat.jpg", &b"not really a jpeg"[..]),
        ("photos/catalogue.pdf", &b"%PDF-1.4"[..]),
        ("notes.md", &b"# notes"[..]),
    ] {
        assert_eq!(put_file(server.port, "pc", path, data).status, 201);
    }
    let b = Browser::start(1280, 900);
    log_in(&b, &origin);
    b.goto(&format!("{origin}/browse/pc/"));
    // Each row has its kind's icon, drawn from the page's own symbols.
    let icons = b.run(
        "return [...document.querySelectorAll('table.browse tbody svg.icon')].map(s => s.getAttribute('class'));",
        json!([]),
    );
    assert_eq!(icons, json!(["icon i-folder", "icon i-text"]));
    assert!(b.source().contains("<symbol id=\"i-folder\""));
    // "/" reaches the search box; typing searches as you type.
    b.press("/");
    assert_eq!(b.focused()[1], json!("q"));
    b.press("cat");
    b.wait_for_text("Files matching");
    // Down goes to the first result, down again to the next, up back.
    b.press("\u{E015}");
    assert_eq!(b.focused(), json!(["A", "", "photos/cat.jpg"]));
    b.press("\u{E015}");
    assert_eq!(b.focused()[2], json!("photos/catalogue.pdf"));
    b.press("\u{E013}\u{E013}");
    assert_eq!(b.focused()[1], json!("q"));
    // Enter on a result opens it.
    b.press("\u{E015}\u{E007}");
    b.wait_for_text("<h1>photos/cat.jpg</h1>");
    // A user with nothing yet is told what to do next.
    add_user(&server, "eve", "eve password 1");
    let eve = Browser::start(1280, 900);
    screenshots(&eve, &origin, &[("login", "/")], 800);
    eve.goto(&format!("{origin}/login"));
    eve.find("input[name=user]").type_text("eve");
    eve.find("input[name=password]").type_text("eve password 1");
    eve.find("form.login button").click();
    eve.wait_for_text("Your machines");
    screenshots(&eve, &origin, &[("home-empty", "/")], 800);
    let empty = eve.find("p.empty").text();
    assert!(
        empty.starts_with("Nothing is backed up yet. Add a machine"),
        "{empty}"
    );
    eve.find("p.empty a").click();
    eve.wait_for_text("Add a machine");
    assert!(eve.url().ends_with("/add-machine"), "{}", eve.url());
}
