//! The web interface in a real browser: headless Chromium, driven over
//! WebDriver, against the real server and data backed up by the real
//! client. Logs in, walks machines and folders to a nested file, fetches it
//! through the page's own link and compares bytes, searches, opens the
//! admin dashboard and finds the silent client marked stale, and checks
//! that no page loads anything from another host.
//!
//! With `NIMBUS_SCREENSHOTS=DIR` (`make screenshots`) it also saves the main
//! pages at laptop and phone width.

mod fixtures;
mod webdriver;
use fixtures::*;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use webdriver::Browser;

#[test]
fn a_user_finds_and_downloads_a_nested_file_and_the_admin_sees_a_stale_client() {
    let server = Server::start(&["--stale-after", "4"]);
    let origin = server.url();

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
    std::thread::sleep(Duration::from_secs(5));

    // A machine backed up by the real client just now.
    let tmp = tempfile::tempdir().unwrap();
    let (src, state) = (tmp.path().join("src"), tmp.path().join("state.json"));
    let report_bytes = noise(150_000, 11);
    write(&src, "docs/2026/report <1>.txt", &report_bytes);
    write(&src, "docs/2026/notes.txt", b"notes");
    write(&src, "docs/readme.md", b"# read me");
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

    // Search from the box at the top.
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
    assert!(rows.contains(&"ok laptop"), "{rows:?}");
    assert!(!visited.is_empty());

    if let Some(dir) = std::env::var_os("NIMBUS_SCREENSHOTS") {
        let dir = PathBuf::from(dir);
        let pages = [
            ("home", "/".to_string()),
            ("folder", "/browse/laptop/docs/2026/".to_string()),
            (
                "versions",
                "/versions/laptop/docs/2026/report%20%3C1%3E.txt".to_string(),
            ),
            ("search", "/search?q=docs".to_string()),
            ("admin", "/admin".to_string()),
        ];
        for (width, height, kind) in [(1280, 800, "laptop"), (390, 844, "phone")] {
            b.resize(width, height);
            for (name, path) in &pages {
                b.goto(&format!("{origin}{path}"));
                b.screenshot(&dir.join(format!("{name}-{kind}.png")));
            }
        }
    }
}
