//! Minimal timestamped logging to stderr, shared by server and client so both
//! logs read the same. Stdout stays free for what scripts parse (the server's
//! `listening on` line, the client's summaries).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Formats unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
    let num = |s: &str| -> Result<i64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let date = t.get(..10).ok_or_else(bad)?;
    let (y, m, d) = match date.split('-').collect::<Vec<_>>()[..] {
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => (num(y)?, num(m)?, num(d)?),
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m as u32) as i64 {
        return Err(bad());
    }
    let day_start = days_from_civil(y, m as u32, d as u32) * 86_400;
    let rest = &t[10..];
    if rest.is_empty() {
        return Ok(day_start + 86_399);
    }
    let rest = rest.strip_prefix(['T', 't', ' ']).ok_or_else(bad)?;
    // HH:MM:SS, or HH:MM as a browser's datetime-local field sends it.
    let clock_len = if rest.len() == 5 { 5 } else { 8 };
    let clock = rest.get(..clock_len).ok_or_else(bad)?;
    let (h, mi, s) = match clock.split(':').collect::<Vec<_>>()[..] {
        [h, mi, s] if h.len() == 2 && mi.len() == 2 && s.len() == 2 => (num(h)?, num(mi)?, num(s)?),
        [h, mi] if h.len() == 2 && mi.len() == 2 => (num(h)?, num(mi)?, 0),
        _ => return Err(bad()),
    };
    if h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let mut zone = &rest[clock_len..];
    if let Some(frac) = zone.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        zone = &frac[digits..];
    }
    let offset = match zone {
        // A browser's datetime-local field sends no zone: taken as UTC.
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match zone.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return Err(bad()),
            };
            match zone[1..].split(':').collect::<Vec<_>>()[..] {
                [oh, om] if oh.len() == 2 && om.len() == 2 => {
                    let (oh, om) = (num(oh)?, num(om)?);
                    if oh > 23 || om > 59 {
                        return Err(bad());
                    }
                    sign * (oh * 3600 + om * 60)
                }
                _ => return Err(bad()),
            }
        }
    };
    Ok(day_start + h * 3600 + mi * 60 + s.min(59) - offset)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil algorithm (inverse of the one below).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day, hour, minute, second) in UTC of unix seconds.
pub fn utc_parts(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[doc(hidden)]
pub fn emit(level: &str, msg: std::fmt::Arguments<'_>) {
    eprintln!("{} {level} {msg}", format_utc(unix_now()));
}

/// Logs an informational line to stderr.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::emit("INFO", format_args!($($arg)*)) };
}

/// Logs a warning to stderr.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::emit("WARN", format_args!($($arg)*)) };
}

/// Logs an error to stderr.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::emit("ERROR", format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::{format_utc, parse_time};

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
    }
}
