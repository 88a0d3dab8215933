//! HTTPS end to end with a private CA's certificate: nginx terminates TLS in
//! front of the server (docs/deploy/nginx.conf, --trust-proxy), and the real
//! client logs in and backs up over https:// trusting the certificate with
//! --ca; without --ca it refuses, saying what to do.

mod fixtures;
use fixtures::*;
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

/// A private CA (`ca.pem`) and a server certificate it signed for
/// 127.0.0.1 (`cert.pem`, `key.pem`): the recipe of docs/SECURITY.md.
fn private_ca(dir: &Path) {
    let run = |args: &[&str]| {
        let st = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl is installed (.ci/run installs it)");
        assert!(st.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Nimbus test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
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

#[test]
fn backup_over_https_with_a_private_ca() {
    let server = Server::start(&["--trust-proxy"]);
    let tmp = tempfile::tempdir().unwrap();
    private_ca(tmp.path());
    let (_nginx, port) = start_nginx(tmp.path(), server.port);
    let url = format!("https://127.0.0.1:{port}");
    let ca = tmp.path().join("ca.pem");

    // Without --ca: refused, with advice.
    let out = client_login(
        &url,
        ADMIN,
        ADMIN_PASSWORD,
        "tls-pc",
        &tmp.path().join("no-ca.json"),
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not trusted") && err.contains("--ca"), "{err}");

    // With it: log in, back up, and read back over HTTPS.
    let config = tmp.path().join("client.json");
    let out = client_login(&url, ADMIN, ADMIN_PASSWORD, "tls-pc", &config, Some(&ca));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let src = tmp.path().join("src");
    let data = noise(300_000, 21);
    write(&src, "over/tls.bin", &data);
    let out = Command::new(client_bin())
        .args(["--server", &url, "--settle", "0", "--once", "--config"])
        .arg(&config)
        .arg("--ca")
        .arg(&ca)
        .arg("--dir")
        .arg(&src)
        .arg("--state")
        .arg(tmp.path().join("state.json"))
        .output()
        .unwrap();
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    let token = v["servers"][&url]["token"].as_str().unwrap().to_string();
    let fetched = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&ca)
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
