//! Tools outside the project use the routes as they are: curl uploads with
//! `Expect: 100-continue`, and `curl -C -` resumes a broken download.

use crate::fixtures::*;
use std::process::Command;

fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .expect("curl is installed (.ci/run installs it)")
}

#[test]
fn curl_uploads_with_expect_continue_and_resumes_a_download() {
    let server = Server::start(&[]);
    let auth = format!("Authorization: {}", bearer(server.port, "pc"));
    let tmp = tempfile::tempdir().unwrap();
    let data = noise(3 << 20, 11);
    let src = tmp.path().join("upload.bin");
    std::fs::write(&src, &data).unwrap();
    let url = format!("{}/api/v1/files/pc/from%20curl/upload.bin", server.url());
    let out = curl(&[
        "-T",
        src.to_str().unwrap(),
        "-H",
        &format!("X-Nimbus-Hash: {}", hex(&data)),
        "-H",
        "Expect: 100-continue",
        "-H",
        &auth,
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &url,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "201",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A download broken after 1 MiB, resumed with -C -.
    let part = tmp.path().join("download.bin");
    std::fs::write(&part, &data[..1 << 20]).unwrap();
    let dl = format!("{}/download/pc/from%20curl/upload.bin", server.url());
    let out = curl(&[
        "-H",
        &auth,
        "-C",
        "-",
        "-o",
        part.to_str().unwrap(),
        "-w",
        "%{http_code}",
        &dl,
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "206");
    assert!(
        std::fs::read(&part).unwrap() == data,
        "resumed file differs"
    );

    // curl -J saves under the name from Content-Disposition.
    let saved = tmp.path().join("saved");
    std::fs::create_dir(&saved).unwrap();
    let out = Command::new("curl")
        .current_dir(&saved)
        .args(["-sS", "-H", &auth, "-O", "-J", &dl])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(saved.join("upload.bin")).unwrap() == data);
}
