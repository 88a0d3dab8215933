//! Times as the protocol and its users write them: unix seconds, shown and
//! parsed as RFC 3339 in UTC, through `jiff`.

use jiff::civil::{Date, DateTime};
use jiff::Timestamp;

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    Timestamp::now().as_second()
}

/// `secs` as a timestamp, clamped to what one can show (years -9999 to
/// 9999).
fn timestamp(secs: i64) -> Timestamp {
    let secs = secs.clamp(
        Timestamp::MIN.as_second() + 1,
        Timestamp::MAX.as_second() - 1,
    );
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Formats unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn format_utc(secs: i64) -> String {
    timestamp(secs).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses a point in time given by a user: unix seconds (`1795305600`),
/// RFC 3339 (`2026-11-22T10:30:00Z`, `2026-11-22T11:30:00+01:00`, also
/// with a space for `T` and fractional seconds, which are dropped), or a
/// date alone (`2026-11-22`), which means the end of that day in UTC, so
/// "as it was on the 22nd" includes the whole day. A time without a zone
/// (`2026-11-22T10:30`, as a browser's datetime field sends it) is UTC.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "{text:?} is not a time: give unix seconds, RFC 3339 (2026-11-22T10:30:00Z) or a date (2026-11-22)"
        )
    };
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| bad());
    }
    // jiff's grammar is ISO 8601's, wider than what we promise: the clock
    // must have minutes, and a zone, if any, hours and minutes.
    if !plausible(t) {
        return Err(bad());
    }
    if t.len() == 10 {
        let date: Date = t.parse().map_err(|_| bad())?;
        let end = date.at(23, 59, 59, 0);
        return utc_seconds(end).ok_or_else(bad);
    }
    if has_zone(t) {
        return t
            .parse::<Timestamp>()
            .map(|ts| ts.as_second())
            .map_err(|_| bad());
    }
    let civil: DateTime = t.parse().map_err(|_| bad())?;
    utc_seconds(civil).ok_or_else(bad)
}

fn utc_seconds(dt: DateTime) -> Option<i64> {
    jiff::tz::Offset::UTC
        .to_timestamp(dt)
        .ok()
        .map(|ts| ts.as_second())
}

/// After the clock (`HH:MM` or `HH:MM:SS[.frac]`) comes a zone.
fn has_zone(t: &str) -> bool {
    t.get(10..).is_some_and(|rest| {
        let clock = rest.trim_start_matches(['T', 't', ' ']);
        clock.contains(['Z', 'z', '+', '-'])
    })
}

/// The shapes we accept: `YYYY-MM-DD`, then optionally `T`/`t`/space,
/// `HH:MM[:SS[.fraction]]`, then optionally `Z` or `±HH:MM`.
fn plausible(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if b.len() < 10
        || !(digits(&b[..4]) && b[4] == b'-' && digits(&b[5..7]) && b[7] == b'-')
        || !digits(&b[8..10])
    {
        return false;
    }
    let mut rest = &b[10..];
    if rest.is_empty() {
        return true;
    }
    if !matches!(rest[0], b'T' | b't' | b' ') {
        return false;
    }
    rest = &rest[1..];
    if rest.len() < 5 || !(digits(&rest[..2]) && rest[2] == b':' && digits(&rest[3..5])) {
        return false;
    }
    rest = &rest[5..];
    if let [b':', s1, s2, tail @ ..] = rest {
        if !digits(&[*s1, *s2]) {
            return false;
        }
        rest = tail;
        if let [b'.', tail @ ..] = rest {
            let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return false;
            }
            rest = &tail[n..];
        }
    } else if !rest.is_empty() {
        // A zone needs the seconds before it.
        return false;
    }
    match rest {
        [] | [b'Z'] | [b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => digits(&[*h1, *h2, *m1, *m2]),
        _ => false,
    }
}

/// (year, month, day, hour, minute, second) in UTC of unix seconds.
pub fn utc_parts(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let dt = jiff::tz::Offset::UTC.to_datetime(timestamp(secs));
    (
        dt.year().into(),
        dt.month() as u32,
        dt.day() as u32,
        dt.hour() as u32,
        dt.minute() as u32,
        dt.second() as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::{format_utc, parse_time, utc_parts};

    #[test]
    fn parses_what_users_type() {
        for (text, want) in [
            ("1795305600", 1_795_305_600),
            ("2026-11-22T00:00:00Z", 1_795_305_600),
            ("2026-11-22t00:00:00z", 1_795_305_600),
            ("2026-11-22 01:00:00+01:00", 1_795_305_600),
            ("2026-11-21T19:00:00-05:00", 1_795_305_600),
            ("2026-11-22T00:00:00.999Z", 1_795_305_600),
            ("2026-11-22", 1_795_305_600 + 86_399),
            ("2026-11-22T00:00", 1_795_305_600),
            ("2026-11-22T00:00:00", 1_795_305_600),
            ("2000-02-29T12:34:56Z", 951_827_696),
            ("1970-01-01T00:00:00Z", 0),
        ] {
            assert_eq!(parse_time(text), Ok(want), "{text}");
        }
        for t in 0..3000 {
            let secs = 1_700_000_000 + t * 123_457;
            assert_eq!(parse_time(&format_utc(secs)), Ok(secs));
        }
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-11-22T25:00:00Z",
            "2026-11-22T10",
            "2026-11-22T10:00Z",
            "2026-11-22T10:00:00+1",
            "-5",
            "2026-11-22T10:00:00.Z",
            "２０２６-11-22",
        ] {
            let err = parse_time(bad).unwrap_err();
            assert!(err.contains("RFC 3339"), "{bad}: {err}");
        }
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_827_696), "2000-02-29T12:34:56Z");
        assert_eq!(format_utc(1_795_305_600), "2026-11-22T00:00:00Z");
        assert_eq!(format_utc(-1), "1969-12-31T23:59:59Z");
        // Out of range: clamped, never a panic.
        assert!(format_utc(i64::MAX).starts_with("9999-12-"));
        assert!(format_utc(i64::MIN).contains("9999-01-"));
        assert_eq!(utc_parts(951_827_696), (2000, 2, 29, 12, 34, 56));
    }
}
