//! The storage history behind the charts: noted by the server itself,
//! kept across restarts and kill -9 at any point, each user's own, and its
//! API's bad input refused.

use crate::fixtures::*;
use serde_json::json;
use std::time::Duration;

fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> Resp {
    request(server.port, "GET", path, headers, b"")
}

#[test]
fn killed_at_any_point_the_history_loads_and_keeps_what_was_noted() {
    let mut server = Server::start(&["--history-interval", "1"]);
    let mut uploaded = 0u64;
    for i in 0..10u64 {
        let port = server.port;
        let body = noise(1000 + i as usize * 10, 2 * i + 40);
        uploaded = 1000 + i * 10;
        let put = std::thread::spawn(move || put_file(port, "pc", "a.bin", &body).status);
        // Each round kills the server at a growing delay: during the
        // upload, the history's note and write, or after.
        std::thread::sleep(Duration::from_millis(200 + i * 130));
        server.kill();
        let status = put.join().unwrap_or(0);
        server.restart();
        assert!(!server.log().contains("cannot be read"), "{}", server.log());
        assert!(!server.data.join("history.json.bad").exists());
        let h = get(&server, "/api/v1/admin/history", &[]).json();
        let days = h["server"].as_array().unwrap();
        assert!(days.len() <= 1, "{h}");
        if status == 201 {
            // Acknowledged: the next note has it.
            wait_for(10, "the upload in the history", || {
                let h = get(&server, "/api/v1/history", &[]).json();
                h["machines"]["pc"][0]["bytes"] == uploaded
            });
        }
    }
    // A clean stop notes the figures once more; they load again after.
    assert!(server.terminate().success());
    server.restart();
    let h = get(&server, "/api/v1/admin/history", &[]).json();
    assert_eq!(h["server"].as_array().unwrap().len(), 1, "{h}");
    assert_eq!(h["server"][0]["current"], uploaded);
    assert_eq!(h["machines"]["admin/pc"][0]["files"], 1, "{h}");
}

#[test]
fn each_user_sees_only_their_machines_and_bad_requests_are_refused() {
    let server = Server::start(&["--history-interval", "1"]);
    add_user(&server, "eve", "eve password 1");
    let eve = format!(
        "Bearer {}",
        api_login(server.port, "eve", "eve password 1", "laptop").json()["token"]
            .as_str()
            .unwrap()
    );
    assert_eq!(
        put_file(server.port, "pc", "docs/a.txt", b"hello").status,
        201
    );
    wait_for(10, "the admin's machine in the history", || {
        get(&server, "/api/v1/history", &[]).json()["machines"]["pc"]
            .as_array()
            .is_some_and(|d| d.len() == 1)
    });
    // Eve has no machine with files: she sees none of the admin's.
    let h = get(&server, "/api/v1/history", &[("Authorization", &eve)]);
    assert_eq!(h.status, 200);
    assert_eq!(h.json(), json!({"machines": {}}));
    assert_eq!(
        get(&server, "/api/v1/admin/history", &[("Authorization", &eve)]).status,
        403
    );
    assert_eq!(
        get(&server, "/api/v1/activity/pc", &[("Authorization", &eve)]).status,
        404
    );
    // The admin's own: activity of the machine and of a folder.
    let a = get(&server, "/api/v1/activity/pc/docs", &[]).json();
    assert_eq!(a["days"][0]["versions"], 1, "{a}");
    assert_eq!(a["days"][0]["bytes"], 5, "{a}");
    assert_eq!(
        get(&server, "/api/v1/activity/pc/nowhere", &[]).json(),
        json!({"days": []})
    );
    // Bad input: a clear 400, never a 500.
    for path in [
        "/api/v1/history?days=0",
        "/api/v1/history?days=abc",
        "/api/v1/history?days=99999",
        "/api/v1/activity/pc?days=367",
        "/api/v1/activity/pc/..%2f..%2fetc",
    ] {
        let r = get(&server, path, &[]);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(!r.text().contains(server.data.to_str().unwrap()));
    }
    assert_eq!(get(&server, "/api/v1/activity/no%20such", &[]).status, 404);
    assert_eq!(
        request(server.port, "POST", "/api/v1/history", &[], b"").status,
        405
    );
    // Without credentials: 401.
    let r = request(
        server.port,
        "GET",
        "/api/v1/history",
        &[("Authorization", "")],
        b"",
    );
    assert_eq!(r.status, 401);
}
