//! Admins see every client's metadata (user, machine, last contact, last
//! file and time, count, size) but cannot download other users' contents.

mod fixtures;
use fixtures::*;

fn put(server: &Server, auth: &str, machine_enc: &str, path: &str, data: &[u8]) {
    let r = request(
        server.port,
        "PUT",
        &format!("/api/v1/files/{machine_enc}/{path}"),
        &[("X-Nimbus-Hash", &hex(data)), ("Authorization", auth)],
        data,
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn admins_see_every_clients_metadata_but_no_contents() {
    let server = Server::start(&[]);
    let out = server.command(
        &["user", "add", "alice", "--password-stdin"],
        "alice's password\n",
    );
    assert!(out.status.success());
    let r = api_login(server.port, "alice", "alice's password", "<b>laptop<i>");
    assert_eq!(r.status, 200, "{}", r.text());
    let alice = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    put(
        &server,
        &alice,
        "%3Cb%3Elaptop%3Ci%3E",
        "one.txt",
        b"first file",
    );
    put(
        &server,
        &alice,
        "%3Cb%3Elaptop%3Ci%3E",
        "dir/two.txt",
        b"second file!",
    );

    let admin = bearer(server.port, "pc");
    let r = request(
        server.port,
        "GET",
        "/api/v1/admin/clients",
        &[("Authorization", &admin)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let clients = r.json();
    let c = clients
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["user"] == "alice")
        .expect("alice's machine listed");
    assert_eq!(c["machine"], "<b>laptop<i>");
    assert_eq!(c["files"], 2);
    assert_eq!(c["bytes"], 22);
    assert_eq!(c["last_file"], "dir/two.txt");
    let last_backup = c["last_backup_at"].as_i64().unwrap();
    assert!(c["last_contact"].as_i64().unwrap() >= last_backup);

    // The page, escaped.
    let page = request(
        server.port,
        "GET",
        "/admin",
        &[("Authorization", &admin)],
        b"",
    );
    assert_eq!(page.status, 200);
    assert!(page.text().contains("&lt;b&gt;laptop&lt;i&gt;") && !page.text().contains("<b>laptop"));

    // No contents: the admin's downloads stay in the admin's own space.
    let r = request(
        server.port,
        "GET",
        "/download/%3Cb%3Elaptop%3Ci%3E/one.txt",
        &[("Authorization", &admin)],
        b"",
    );
    assert_eq!(r.status, 404);

    // Users do not see other clients.
    for target in ["/api/v1/admin/clients", "/admin"] {
        let r = request(
            server.port,
            "GET",
            target,
            &[("Authorization", &alice)],
            b"",
        );
        assert_eq!(r.status, 403, "{target}");
    }
}
