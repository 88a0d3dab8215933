//! Names that cross the wire: client names and backed-up relative paths.
//!
//! A relative path is `/`-separated, names a file below the backed-up folder
//! and can never point anywhere else: no empty, `.` or `..` segment, no
//! leading `/`, no backslash, no NUL, no drive prefix (`C:`). The server
//! never uses these paths to touch its own disk (blobs are named by hash),
//! but refusing them keeps catalogs portable and restores safe.
//!
//! In URLs each segment is percent-encoded on its own ([`encode_path`]), so a
//! `/` inside a segment can never be smuggled in as `%2F`.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Longest relative path accepted, in bytes of UTF-8.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest single path segment accepted, in bytes of UTF-8.
pub const MAX_SEGMENT_BYTES: usize = 1024;
/// Longest client name accepted, in bytes of UTF-8.
pub const MAX_CLIENT_BYTES: usize = 128;

/// Why a name was refused. The message is safe to show to the sender.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("a path segment is longer than {MAX_SEGMENT_BYTES} bytes")]
    SegmentTooLong,
    #[error("path must be relative (no leading '/')")]
    Absolute,
    #[error("path has an empty segment ('//' or a trailing '/')")]
    EmptySegment,
    #[error("path has a '.' or '..' segment")]
    DotSegment,
    #[error("path contains a backslash")]
    Backslash,
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path starts with a drive prefix like 'C:'")]
    DrivePrefix,
    #[error("a path segment contains an encoded '/'")]
    EncodedSlash,
    #[error("percent-encoding does not decode to UTF-8")]
    BadEncoding,
    #[error("client name must be 1 to {MAX_CLIENT_BYTES} bytes without '/', '\\', control characters, or being '.' or '..'")]
    BadClientName,
}

/// Checks a `/`-separated relative path. Returns it unchanged when valid.
pub fn validate_rel_path(path: &str) -> Result<&str, PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if path.starts_with('/') {
        return Err(PathError::Absolute);
    }
    if path.contains('\\') {
        return Err(PathError::Backslash);
    }
    if path.contains('\0') {
        return Err(PathError::Nul);
    }
    if has_drive_prefix(path) {
        return Err(PathError::DrivePrefix);
    }
    for seg in path.split('/') {
        validate_segment(seg)?;
    }
    Ok(path)
}

fn validate_segment(seg: &str) -> Result<(), PathError> {
    match seg {
        "" => Err(PathError::EmptySegment),
        "." | ".." => Err(PathError::DotSegment),
        s if s.len() > MAX_SEGMENT_BYTES => Err(PathError::SegmentTooLong),
        _ => Ok(()),
    }
}

fn has_drive_prefix(path: &str) -> bool {
    let b = path.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// Checks a client (machine) name.
pub fn validate_client_name(name: &str) -> Result<&str, PathError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CLIENT_BYTES
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if ok {
        Ok(name)
    } else {
        Err(PathError::BadClientName)
    }
}

/// Everything but unreserved characters is escaped in a segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment (or a client name) for a URL.
pub fn encode_segment(seg: &str) -> String {
    utf8_percent_encode(seg, SEGMENT).to_string()
}

/// Percent-encodes each segment of a relative path, keeping the `/`s.
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// Decodes one percent-encoded URL segment. A decoded `/` is refused by the
/// callers' validation, since segments are joined only after decoding.
pub fn decode_segment(seg: &str) -> Result<String, PathError> {
    percent_decode_str(seg)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| PathError::BadEncoding)
}

/// Decodes URL segments (already split on `/`) into a validated relative path.
/// A segment that decodes to something containing `/` is refused, so the
/// result has exactly as many segments as the URL.
pub fn decode_rel_path<'a, I>(segments: I) -> Result<String, PathError>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut out = String::new();
    for (i, raw) in segments.into_iter().enumerate() {
        let seg = decode_segment(raw)?;
        if seg.contains('/') {
            return Err(PathError::EncodedSlash);
        }
        validate_segment(&seg)?;
        if i > 0 {
            out.push('/');
        }
        out.push_str(&seg);
    }
    validate_rel_path(&out)?;
    Ok(out)
}

/// Whether the relative path `path` is `folder` or inside it (`""` is the
/// whole backed-up folder): `docs/a.txt` is within `docs`, `docs2/a` is not.
pub fn is_within(path: &str, folder: &str) -> bool {
    folder.is_empty()
        || path == folder
        || path
            .strip_prefix(folder)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for p in [
            "a",
            "a/b/c.txt",
            "名前/ファイル.txt",
            "with space/#hash?q%.txt",
            "..hidden",
            "a..b",
            ".config/x",
            "notes:2024",
            "line\nbreak",
        ] {
            assert_eq!(validate_rel_path(p), Ok(p), "{p:?}");
        }
    }

    #[test]
    fn refuses_escapes() {
        let cases = [
            ("", PathError::Empty),
            ("/etc/passwd", PathError::Absolute),
            ("a/../b", PathError::DotSegment),
            ("..", PathError::DotSegment),
            ("./a", PathError::DotSegment),
            ("a//b", PathError::EmptySegment),
            ("a/", PathError::EmptySegment),
            ("a\\b", PathError::Backslash),
            ("..\\..\\x", PathError::Backslash),
            ("a\0b", PathError::Nul),
            ("C:/Windows", PathError::DrivePrefix),
            ("c:x", PathError::DrivePrefix),
        ];
        for (p, e) in cases {
            assert_eq!(validate_rel_path(p), Err(e), "{p:?}");
        }
        assert_eq!(
            validate_rel_path(&"a".repeat(MAX_PATH_BYTES + 1)),
            Err(PathError::TooLong)
        );
        assert_eq!(
            validate_rel_path(&"a".repeat(MAX_SEGMENT_BYTES + 1)),
            Err(PathError::SegmentTooLong)
        );
    }

    #[test]
    fn url_round_trip() {
        let p = "dir with space/50% #1?/ü.txt";
        let enc = encode_path(p);
        assert!(!enc.contains(' ') && !enc.contains('#') && !enc.contains('?'));
        assert_eq!(decode_rel_path(enc.split('/')).unwrap(), p);
    }

    #[test]
    fn decoding_refuses_encoded_traversal() {
        for url in [
            "%2e%2e/etc",
            "a/%2E%2E/b",
            "a%2Fb",
            "a%2f..%2fb",
            "%2Fetc",
            "a%5Cb",
            "a%00b",
            "C%3A/x",
            "%ff",
        ] {
            assert!(decode_rel_path(url.split('/')).is_err(), "{url}");
        }
    }

    #[test]
    fn client_names() {
        assert!(validate_client_name("laptop-01").is_ok());
        assert!(validate_client_name("Büro PC").is_ok());
        for bad in ["", ".", "..", "a/b", "a\\b", "a\nb", &"x".repeat(129)] {
            assert!(validate_client_name(bad).is_err(), "{bad:?}");
        }
    }
}
