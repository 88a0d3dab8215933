//! The hotspot: files nobody touched for `--hot-time` are packed with bzip2
//! on disk, still listed and downloadable (Range included), and a download
//! makes them hot again. Incompressible content stays hot.

use crate::fixtures::*;
use std::io::Read;
use std::time::Duration;

fn blob_path(server: &Server, data: &[u8], packed: bool) -> std::path::PathBuf {
    let h = hex(data);
    let name = if packed {
        format!("{h}.bz2")
    } else {
        h.clone()
    };
    server.data.join("blobs").join(&h[..2]).join(name)
}

#[test]
fn cold_files_are_packed_and_served_transparently() {
    let server = Server::start(&["--hot-time", "2", "--hotspot-interval", "1"]);
    // Under 2 MiB: one blob of its own (larger files are kept as chunks,
    // packed chunk by chunk: tests/it/chunks.rs).
    let text_data = text((2 << 20) - 1);
    let noise_data = noise(400_000, 5);
    assert_eq!(
        put_file(server.port, "pc", "notes/log.txt", &text_data).status,
        201
    );
    assert_eq!(
        put_file(server.port, "pc", "photo.jpg", &noise_data).status,
        201
    );

    wait_for(60, "the text file to be packed", || {
        server.file("pc", "notes/log.txt").unwrap()["packed"] == true
    });
    // On disk: bzip2 magic, much smaller, no hot copy.
    let packed = blob_path(&server, &text_data, true);
    let mut magic = [0u8; 3];
    std::fs::File::open(&packed)
        .unwrap()
        .read_exact(&mut magic)
        .unwrap();
    assert_eq!(&magic, b"BZh");
    assert!(std::fs::metadata(&packed).unwrap().len() < text_data.len() as u64 / 5);
    assert!(!blob_path(&server, &text_data, false).exists());
    // In frames, with their index beside it.
    let mut index = packed.into_os_string();
    index.push(".idx");
    assert!(std::path::Path::new(&index).exists());
    // The HTML page says so.
    assert!(server.get("/files").text().contains(">packed<"));

    // Random bytes do not shrink: they stay hot, however long we wait.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(server.file("pc", "photo.jpg").unwrap()["packed"], false);
    assert!(blob_path(&server, &noise_data, false).exists());
    assert!(!blob_path(&server, &noise_data, true).exists());

    // Ranges of the packed file, then the whole file.
    let url = "/download/pc/notes/log.txt";
    let r = request(
        server.port,
        "GET",
        url,
        &[("Range", "bytes=2000000-2000099")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &text_data[2_000_000..2_000_100]);
    let r = request(server.port, "GET", url, &[("Range", "bytes=-10")], b"");
    assert_eq!(r.body, &text_data[text_data.len() - 10..]);
    // Across the boundary of two frames (1 MiB of original bytes each).
    let r = request(
        server.port,
        "GET",
        url,
        &[("Range", "bytes=1048000-1049999")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &text_data[1_048_000..1_050_000]);
    let r = server.get(url);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length").unwrap(),
        text_data.len().to_string()
    );
    assert_eq!(r.body, text_data);

    // The download made it hot again.
    wait_for(30, "the downloaded file to be unpacked", || {
        server.log().contains("unpacked")
    });
    assert!(server.get(url).body == text_data);
}

#[test]
fn downloads_racing_with_packing_and_unpacking_never_fail() {
    let server = Server::start(&[
        "--hot-time",
        "1",
        "--hotspot-interval",
        "1",
        "--pack-threads",
        "2",
    ]);
    let data = text(1 << 20);
    assert_eq!(put_file(server.port, "pc", "busy.txt", &data).status, 201);
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let mut n = 0;
    while std::time::Instant::now() < deadline {
        let r = server.get("/download/pc/busy.txt");
        assert_eq!(r.status, 200, "download {n} failed: {}", r.text());
        assert!(r.body == data, "download {n} returned wrong bytes");
        let r = request(
            server.port,
            "GET",
            "/download/pc/busy.txt",
            &[("Range", "bytes=500000-500999")],
            b"",
        );
        assert_eq!(r.body, &data[500_000..501_000]);
        n += 1;
        // Let it go cold now and then, so packing and unpacking both happen.
        if n % 5 == 0 {
            std::thread::sleep(Duration::from_millis(2500));
        }
    }
    let log = server.log();
    assert!(
        log.contains("packed "),
        "never packed during the race: {log}"
    );
    assert!(
        log.contains("unpacked "),
        "never unpacked during the race: {log}"
    );
}

#[test]
fn packed_files_survive_a_restart() {
    let mut server = Server::start(&["--hot-time", "1", "--hotspot-interval", "1"]);
    let data = text(500_000);
    assert_eq!(put_file(server.port, "pc", "a.txt", &data).status, 201);
    wait_for(60, "packing", || {
        server.file("pc", "a.txt").unwrap()["packed"] == true
    });
    server.restart();
    assert_eq!(server.file("pc", "a.txt").unwrap()["packed"], true);
    assert_eq!(server.get("/download/pc/a.txt").body, data);
}
