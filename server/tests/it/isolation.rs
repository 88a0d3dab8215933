//! Every byte belongs to a user: two users with two machines each back up
//! the same relative paths through the real client, and each sees and
//! downloads only their own. Another user's file is 404, exactly like a
//! missing one, and content is offered by hash only within one's own space.

use crate::fixtures::*;

/// Logs `machine` in as `user` with the real client; returns its bearer.
fn login(
    server: &Server,
    user: &str,
    password: &str,
    machine: &str,
    config: &std::path::Path,
) -> String {
    let out = client_login(&server.url(), user, password, machine, config, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    format!(
        "Bearer {}",
        v["servers"][server.url()]["token"].as_str().unwrap()
    )
}

fn get(server: &Server, auth: &str, target: &str) -> Resp {
    request(server.port, "GET", target, &[("Authorization", auth)], b"")
}

#[test]
fn two_users_with_two_machines_each_see_only_their_own() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let mut auth = std::collections::HashMap::new();
    for user in ["alice", "bob"] {
        add_user(&server, user, &format!("{user}'s password"));
        for machine in ["laptop", "desktop"] {
            let dir = tmp.path().join(format!("{user}-{machine}"));
            let src = dir.join("src");
            write(
                &src,
                "docs/report.txt",
                format!("{user}'s report from the {machine}").as_bytes(),
            );
            write(&src, "shared.bin", b"the same bytes for everyone");
            let state = dir.join("state.json");
            let config = state.with_extension("client.json");
            let bearer = login(
                &server,
                user,
                &format!("{user}'s password"),
                machine,
                &config,
            );
            let out = client_once(&server.url(), &src, machine, &state, &[]);
            assert_ok(&out);
            auth.insert((user, machine), bearer);
        }
    }
    for user in ["alice", "bob"] {
        let a = &auth[&(user, "laptop")];
        let r = get(&server, a, "/api/v1/files");
        let mut seen: Vec<String> = r
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                format!(
                    "{}:{}",
                    f["client"].as_str().unwrap(),
                    f["path"].as_str().unwrap()
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                "desktop:docs/report.txt",
                "desktop:shared.bin",
                "laptop:docs/report.txt",
                "laptop:shared.bin"
            ]
        );
        for machine in ["laptop", "desktop"] {
            let r = get(&server, a, &format!("/download/{machine}/docs/report.txt"));
            assert_eq!(r.text(), format!("{user}'s report from the {machine}"));
        }
        let page = get(&server, a, "/").text();
        assert!(
            page.contains(&format!("Logged in as <b>{user}</b>")),
            "{page}"
        );
        let all = get(&server, a, "/files").text();
        assert!(all.contains("href=\"/download/desktop/docs/report.txt\""));
    }
    // Identical content from four machines of two users is stored once.
    let shared = hex(b"the same bytes for everyone");
    let copies = server
        .blob_files()
        .iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy() == shared)
        .count();
    assert_eq!(copies, 1);

    // A file only alice has: bob gets the very answer of a missing file.
    let alice = &auth[&("alice", "laptop")];
    let bob = &auth[&("bob", "laptop")];
    let r = request(
        server.port,
        "PUT",
        "/api/v1/files/laptop/secret/plans.txt",
        &[
            ("X-Nimbus-Hash", &hex(b"alice only")),
            ("Authorization", alice),
        ],
        b"alice only",
    );
    assert_eq!(r.status, 201);
    let theirs = get(&server, bob, "/download/laptop/secret/plans.txt");
    let missing = get(&server, bob, "/download/laptop/secret/nothing.txt");
    assert_eq!(
        (theirs.status, theirs.body.clone()),
        (404, missing.body.clone())
    );
    assert_eq!(
        get(&server, bob, "/download/laptop/docs/report.txt").text(),
        "bob's report from the laptop"
    );

    // Offering alice's content by hash does not tell bob it exists...
    let offer = format!(r#"{{"hash":"{}","size":10,"mtime":1}}"#, hex(b"alice only"));
    let r = request(
        server.port,
        "POST",
        "/api/v1/files/laptop/copy.txt",
        &[("Authorization", bob)],
        offer.as_bytes(),
    );
    assert_eq!(r.status, 409);
    // ...but alice may, and bob sending the bytes is still stored once.
    let r = request(
        server.port,
        "POST",
        "/api/v1/files/laptop/copy.txt",
        &[("Authorization", alice)],
        offer.as_bytes(),
    );
    assert_eq!(r.status, 201);
    let before = server.blob_files().len();
    let r = request(
        server.port,
        "PUT",
        "/api/v1/files/laptop/mine.txt",
        &[
            ("X-Nimbus-Hash", &hex(b"alice only")),
            ("Authorization", bob),
        ],
        b"alice only",
    );
    assert_eq!(r.status, 201);
    assert_eq!(server.blob_files().len(), before);

    // A device writes only to its own machine.
    let r = request(
        server.port,
        "PUT",
        "/api/v1/files/desktop/x.txt",
        &[("X-Nimbus-Hash", &hex(b"x")), ("Authorization", alice)],
        b"x",
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "forbidden");

    // No identity, no data.
    for target in [
        "/api/v1/files",
        "/download/laptop/docs/report.txt",
        "/api/v1/devices",
    ] {
        let r = request(server.port, "GET", target, &[("Authorization", "")], b"");
        assert_eq!(r.status, 401, "{target}");
    }
    let r = request(
        server.port,
        "PUT",
        "/api/v1/files/laptop/anon.txt",
        &[("Authorization", ""), ("X-Nimbus-Hash", &hex(b"a"))],
        b"a",
    );
    assert_eq!(r.status, 401);
}

#[test]
fn backups_from_before_accounts_go_to_the_first_admin() {
    // A data directory written by the server before accounts existed.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    {
        let dm = nimbus_server::store::DataManager::open_with(&data, vault_of(&data)).unwrap();
        let content = b"written before accounts".to_vec();
        let h = nimbus_common::hash::ContentHash::of_bytes(&content);
        let staged = dm
            .stage_upload(&mut &content[..], &h, None, u64::MAX)
            .unwrap();
        dm.commit_upload("old-pc", "notes.txt", 1, staged).unwrap();
    }
    let mut server = Server::start_on_fresh(&data);
    let password = admin_password(&server);
    // The password is on stdout, the hand-over in the log on stderr, a
    // moment later: wait for it rather than race the two streams.
    wait_for(10, "the hand-over of older backups in the log", || {
        server.log().contains("now belong to \"admin\"")
    });
    let body =
        serde_json::json!({"user": "admin", "password": password, "machine": "m"}).to_string();
    let r = request(
        server.port,
        "POST",
        "/api/v1/login",
        &[("Authorization", "")],
        body.as_bytes(),
    );
    let auth = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    assert_eq!(
        get(&server, &auth, "/download/old-pc/notes.txt").text(),
        "written before accounts"
    );
    // And it stays so after a restart.
    server.restart();
    assert_eq!(
        get(&server, &auth, "/download/old-pc/notes.txt").text(),
        "written before accounts"
    );
}
