//! The `Range` request header (RFC 9110 §14), single ranges only.

/// What a `Range` header asks of a representation of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range (absent, malformed, or several ranges): send it all.
    Full,
    /// Bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// A well-formed range that selects nothing: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header value against a body of `size` bytes.
pub fn parse(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(value) = header else {
        return RangeRequest::Full;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        // Multipart answers are optional; the whole body is a valid answer.
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    if first.is_empty() {
        // Suffix range: the last n bytes.
        let Some(n) = num(last) else {
            return RangeRequest::Full;
        };
        if n == 0 || size == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Partial {
            start: size.saturating_sub(n),
            end: size - 1,
        };
    }
    let Some(start) = num(first) else {
        return RangeRequest::Full;
    };
    let end = if last.is_empty() {
        None
    } else {
        match num(last) {
            Some(e) if e >= start => Some(e),
            _ => return RangeRequest::Full,
        }
    };
    if start >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial {
        start,
        end: end.map_or(size - 1, |e| e.min(size - 1)),
    }
}

/// The part of a representation a request gets: the whole (`200`) or one
/// range (`206`).
#[derive(Debug, PartialEq, Eq)]
pub struct Selected {
    pub status: u16,
    pub start: u64,
    pub len: u64,
}

impl Selected {
    /// The `Content-Range` of a `206`.
    pub fn content_range(&self, size: u64) -> Option<String> {
        (self.status == 206).then(|| {
            format!(
                "bytes {}-{}/{}",
                self.start,
                self.start + self.len - 1,
                size
            )
        })
    }
}

/// What a request with these `Range` and `If-Range` headers gets of a
/// representation of `size` bytes whose strong ETag is `etag`: an
/// `If-Range` naming another version means the whole; `Err(())` is `416`.
pub fn select(
    range: Option<&str>,
    if_range: Option<&str>,
    etag: &str,
    size: u64,
) -> Result<Selected, ()> {
    let wanted = if if_range.is_none_or(|ir| ir.trim() == etag) {
        parse(range, size)
    } else {
        RangeRequest::Full
    };
    match wanted {
        RangeRequest::Full => Ok(Selected {
            status: 200,
            start: 0,
            len: size,
        }),
        RangeRequest::Partial { start, end } => Ok(Selected {
            status: 206,
            start,
            len: end - start + 1,
        }),
        RangeRequest::Unsatisfiable => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeRequest::*;

    #[test]
    fn forms() {
        assert_eq!(parse(None, 10), Full);
        assert_eq!(parse(Some("bytes=0-4"), 10), Partial { start: 0, end: 4 });
        assert_eq!(parse(Some("bytes=5-"), 10), Partial { start: 5, end: 9 });
        assert_eq!(parse(Some("bytes=-3"), 10), Partial { start: 7, end: 9 });
        assert_eq!(parse(Some("bytes=-30"), 10), Partial { start: 0, end: 9 });
        assert_eq!(parse(Some("bytes=8-100"), 10), Partial { start: 8, end: 9 });
        assert_eq!(
            parse(Some("bytes= 2 - 3 "), 10),
            Partial { start: 2, end: 3 }
        );
    }

    #[test]
    fn if_range_of_another_version_gets_the_whole() {
        let part = select(Some("bytes=2-3"), Some("\"a\""), "\"a\"", 10).unwrap();
        assert_eq!((part.status, part.start, part.len), (206, 2, 2));
        assert_eq!(part.content_range(10).as_deref(), Some("bytes 2-3/10"));
        let whole = select(Some("bytes=2-3"), Some("\"b\""), "\"a\"", 10).unwrap();
        assert_eq!((whole.status, whole.start, whole.len), (200, 0, 10));
        assert_eq!(whole.content_range(10), None);
        assert_eq!(select(Some("bytes=20-"), None, "\"a\"", 10), Err(()));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=10-20"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-5"), 0), Unsatisfiable);
    }

    #[test]
    fn malformed_is_ignored() {
        for h in [
            "bytes=abc",
            "bytes=5-2",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=-",
            "bytes=+1-2",
            "bytes=1--2",
            "bytes=99999999999999999999999-",
            "",
        ] {
            assert_eq!(parse(Some(h), 10), Full, "{h}");
        }
    }
}
