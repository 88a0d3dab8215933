//! `GET`/`HEAD /download/...`: Range, suffix ranges, 416, If-Range, ETag,
//! and the headers a browser needs to save and resume a file.

use crate::fixtures::*;

fn setup() -> (Server, Vec<u8>) {
    let server = Server::start(&[]);
    let data = noise(100_000, 9);
    assert_eq!(
        put_file(
            server.port,
            "pc",
            "docs/r%C3%A9sum%C3%A9%20final.pdf",
            &data
        )
        .status,
        201
    );
    (server, data)
}

const URL: &str = "/download/pc/docs/r%C3%A9sum%C3%A9%20final.pdf";

fn get(server: &Server, headers: &[(&str, &str)]) -> Resp {
    request(server.port, "GET", URL, headers, b"")
}

#[test]
fn whole_file_with_download_headers() {
    let (server, data) = setup();
    let r = get(&server, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    assert_eq!(r.header("content-length"), Some("100000"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("etag").unwrap(), format!("\"{}\"", hex(&data)));
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    // Last-Modified: when the server recorded the version (the file's own
    // mtime, 2023-11-14, is in the versions API), so it only grows.
    let versions = request(
        server.port,
        "GET",
        "/api/v1/versions/pc/docs/r%C3%A9sum%C3%A9%20final.pdf",
        &[],
        b"",
    )
    .json();
    let at = versions[0]["backed_up_at"].as_u64().unwrap();
    assert_eq!(versions[0]["mtime"], 1_700_000_000);
    assert_eq!(
        r.header("last-modified").unwrap(),
        httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(at))
    );
    let cd = r.header("content-disposition").unwrap();
    assert!(
        cd.starts_with("attachment; filename=\"r_sum_ final.pdf\""),
        "{cd}"
    );
    assert!(
        cd.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%20final.pdf"),
        "{cd}"
    );
}

#[test]
fn byte_ranges() {
    let (server, data) = setup();
    let r = get(&server, &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[100..200]);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/100000"));
    assert_eq!(r.header("content-length"), Some("100"));

    let r = get(&server, &[("Range", "bytes=99990-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[99_990..]);

    let r = get(&server, &[("Range", "bytes=-500")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[99_500..]);
    assert_eq!(r.header("content-range"), Some("bytes 99500-99999/100000"));

    let r = get(&server, &[("Range", "bytes=99999-200000")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &data[99_999..]));
}

#[test]
fn unsatisfiable_and_malformed_ranges() {
    let (server, data) = setup();
    let r = get(&server, &[("Range", "bytes=100000-")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */100000"));
    for bad in ["bytes=abc", "bytes=5-1", "pages=1-2", "bytes=0-1,5-6"] {
        let r = get(&server, &[("Range", bad)]);
        assert_eq!(r.status, 200, "{bad}");
        assert_eq!(r.body, data);
    }
}

#[test]
fn if_range_resumes_only_the_same_content() {
    let (server, data) = setup();
    let etag = format!("\"{}\"", hex(&data));
    let r = get(&server, &[("Range", "bytes=50000-"), ("If-Range", &etag)]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[50_000..]);
    let r = get(
        &server,
        &[("Range", "bytes=50000-"), ("If-Range", "\"stale\"")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    let r = get(
        &server,
        &[
            ("Range", "bytes=50000-"),
            ("If-Range", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ],
    );
    assert_eq!(r.status, 200);
    let r = get(&server, &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
}

#[test]
fn head_gives_headers_without_body() {
    let (server, data) = setup();
    let r = request(server.port, "HEAD", URL, &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("100000"));
    assert_eq!(r.header("etag").unwrap(), format!("\"{}\"", hex(&data)));
    let r = request(server.port, "HEAD", URL, &[("Range", "bytes=0-9")], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-length"), Some("10"));
}

#[test]
fn latest_version_is_served_and_unknown_files_are_404() {
    let (server, _) = setup();
    assert_eq!(put_file(server.port, "pc", "v.txt", b"one").status, 201);
    assert_eq!(put_file(server.port, "pc", "v.txt", b"two").status, 201);
    assert_eq!(put_file(server.port, "pc", "v.txt", b"two").status, 200);
    assert_eq!(server.get("/download/pc/v.txt").body, b"two");
    assert_eq!(server.file("pc", "v.txt").unwrap()["versions"], 2);
    assert_eq!(server.get("/download/pc/missing.txt").status, 404);
    assert_eq!(server.get("/download/other/v.txt").status, 404);
    let r = server.get("/download/pc/missing.txt");
    assert_eq!(r.json()["error"], "not_found");
}

#[test]
fn empty_file_downloads_and_has_no_satisfiable_range() {
    let server = Server::start(&[]);
    assert_eq!(put_file(server.port, "pc", "empty", b"").status, 201);
    let r = server.get("/download/pc/empty");
    assert_eq!((r.status, r.body.len()), (200, 0));
    let r = request(
        server.port,
        "GET",
        "/download/pc/empty",
        &[("Range", "bytes=0-0")],
        b"",
    );
    assert_eq!(r.status, 416);
}

#[test]
fn listing_reports_the_fields_tools_rely_on() {
    let (server, data) = setup();
    let f = server.file("pc", "docs/résumé final.pdf").unwrap();
    assert_eq!(f["size"], 100_000);
    assert_eq!(f["mtime"], 1_700_000_000);
    assert_eq!(f["hash"], hex(&data));
    assert_eq!(f["packed"], false);
    assert_eq!(f["versions"], 1);
    assert!(f["backed_up_at"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(server.get("/healthz").status, 200);
}
