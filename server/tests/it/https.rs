//! HTTPS end to end, both ways the server can be deployed:
//! - built in (`--tls-cert`, `--tls-key`) with a self-signed certificate;
//! - behind nginx terminating TLS (docs/deploy/nginx.conf, --trust-proxy)
//!   with a private CA's certificate.
//!
//! In both, the real client logs in and backs up over https:// trusting the
//! certificate with --ca, curl reads the file back, and without --ca the
//! client refuses, saying what to do.

use crate::fixtures::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_bin() -> &'static str {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("nginx is installed (.ci/run installs it)")
}

fn start_nginx(dir: &Path, backend: u16) -> (Nginx, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.display();
    let conf = format!(
        "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log; user root;\n\
         events {{}}\n\
         http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
           server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;\n\
             client_max_body_size 0; proxy_request_buffering off; proxy_buffering off;\n\
             location / {{ proxy_pass http://127.0.0.1:{backend}; proxy_http_version 1.1;\n\
               proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Forwarded-Proto $scheme; }} }} }}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new(nginx_bin())
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let nginx = Nginx(child);
    wait_for(10, "nginx to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (nginx, port)
}

/// A self-signed certificate for 127.0.0.1 (`self.pem`, `self.key`); not a
/// CA certificate, as rustls refuses a CA certificate as the server's own.
fn self_signed(dir: &Path) {
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
            "self.key",
            "-out",
            "self.pem",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(st.success(), "openssl req -x509");
}

/// Logs a machine in at `url` (first without `--ca`: refused with advice),
/// backs a file up with the real client, and reads it back with curl.
fn login_backup_and_fetch(url: &str, ca: &Path, tmp: &Path) {
    let out = client_login(
        url,
        ADMIN,
        ADMIN_PASSWORD,
        "tls-pc",
        &tmp.join("no-ca.json"),
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not trusted") && err.contains("--ca"), "{err}");
    assert!(!tmp.join("no-ca.json").exists());

    let config = tmp.join("client.json");
    let out = client_login(url, ADMIN, ADMIN_PASSWORD, "tls-pc", &config, Some(ca));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let src = tmp.join("src");
    let data = noise(300_000, 21);
    write(&src, "over/tls.bin", &data);
    let out = Command::new(client_bin())
        .args(["--server", url, "--settle", "0", "--once", "--config"])
        .arg(&config)
        .arg("--ca")
        .arg(ca)
        .arg("--dir")
        .arg(&src)
        .arg("--state")
        .arg(tmp.join("state.json"))
        .output()
        .unwrap();
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    let token = v["servers"][url]["token"].as_str().unwrap().to_string();
    let fetched = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(ca)
        .args([
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("{url}/download/tls-pc/over/tls.bin"),
        ])
        .output()
        .unwrap();
    assert!(
        fetched.stdout == data,
        "downloaded bytes differ: {}",
        String::from_utf8_lossy(&fetched.stderr)
    );
}

#[test]
fn backup_over_built_in_https_with_a_self_signed_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    self_signed(tmp.path());
    let (cert, key) = (tmp.path().join("self.pem"), tmp.path().join("self.key"));
    let server = Server::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(server.scheme, "https");
    let url = server.url();
    login_backup_and_fetch(&url, &cert, tmp.path());

    // The browser's session cookie is Secure under TLS.
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", "--cacert"])
        .arg(&cert)
        .args([
            "--data-urlencode",
            &format!("user={ADMIN}"),
            "--data-urlencode",
            &format!("password={ADMIN_PASSWORD}"),
            &format!("{url}/login"),
        ])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie: nimbus_session="))
        .unwrap_or_else(|| panic!("no session cookie in {head}"));
    assert!(cookie.contains("; secure"), "{cookie}");

    // Plain HTTP on the TLS port gets no answer, and the server lives on.
    let plain = Command::new("curl")
        .args([
            "-sS",
            "-m",
            "5",
            &format!("http://127.0.0.1:{}/healthz", server.port),
        ])
        .output()
        .unwrap();
    assert!(!plain.status.success());
    let ok = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert)
        .arg(format!("{url}/healthz"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "ok");
    // No warning about plain HTTP (it is not plain), and none on loopback anyway.
    assert!(!server.log().contains("plain HTTP"), "{}", server.log());
}

#[test]
fn a_bad_certificate_or_key_stops_the_server_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    self_signed(tmp.path());
    let (cert, key) = (tmp.path().join("self.pem"), tmp.path().join("self.key"));
    std::fs::write(tmp.path().join("junk.pem"), "not a certificate\n").unwrap();
    for (c, k, want) in [
        (tmp.path().join("missing.pem"), key.clone(), "cannot read"),
        (
            tmp.path().join("junk.pem"),
            key.clone(),
            "no PEM certificate",
        ),
        (
            cert.clone(),
            tmp.path().join("junk.pem"),
            "no usable private key",
        ),
        (cert.clone(), cert.clone(), "no usable private key"),
    ] {
        let out = Command::new(server_bin())
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(tmp.path().join("data"))
            .arg("--tls-cert")
            .arg(&c)
            .arg("--tls-key")
            .arg(&k)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "want {want:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // One without the other is refused by the command line.
    let out = Command::new(server_bin())
        .arg("--tls-cert")
        .arg(&cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn backup_over_https_with_a_private_ca() {
    let server = Server::start(&["--trust-proxy"]);
    let tmp = tempfile::tempdir().unwrap();
    private_ca(tmp.path());
    let (_nginx, port) = start_nginx(tmp.path(), server.port);
    let url = format!("https://127.0.0.1:{port}");
    login_backup_and_fetch(&url, &tmp.path().join("ca.pem"), tmp.path());
}
