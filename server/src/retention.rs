//! Retention: which versions of a file to keep, in the style of
//! `restic forget`. A policy keeps the newest N versions, the newest version
//! in each of the last N hours, days, weeks, months and years that have
//! versions, and every version younger than an age. A version kept by any
//! rule stays. The newest version of a file that exists now is always kept,
//! whatever the policy. An empty policy keeps everything.
//!
//! Deletions (tombstones) are kept while some version of the content they
//! ended is kept, so "deleted at that time" stays true in every past view
//! that remains.

use crate::store::catalog::Version;
use nimbus_common::time::utc_parts;
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Policy {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    /// Keep every version younger than this many seconds (written `90s`,
    /// `45m`, `12h`, `30d` or `8w` in the config file).
    #[serde(default, deserialize_with = "de_duration")]
    pub keep_within: Option<u64>,
}

/// Parses `30d`, `12h`, `45m`, `2w`, `90s` or plain seconds into seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not a duration: use e.g. 90s, 45m, 12h, 30d, 8w");
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// Which period (hour, day, ...) a time falls in.
type Bucket = fn(i64) -> i64;

impl Policy {
    /// True when the policy says nothing: everything is kept.
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    /// A short description for logs and reports.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (name, v) in [
            ("last", self.keep_last),
            ("hourly", self.keep_hourly),
            ("daily", self.keep_daily),
            ("weekly", self.keep_weekly),
            ("monthly", self.keep_monthly),
            ("yearly", self.keep_yearly),
        ] {
            if let Some(n) = v {
                parts.push(format!("{name} {n}"));
            }
        }
        if let Some(w) = self.keep_within {
            parts.push(format!("within {w}s"));
        }
        if parts.is_empty() {
            "keep everything".into()
        } else {
            format!("keep {}", parts.join(", "))
        }
    }

    /// The numbers of the versions to forget, given the file's versions
    /// (oldest first) and the time now.
    pub fn forget(&self, versions: &[Version], now: i64) -> Vec<u64> {
        if self.is_empty() || versions.is_empty() {
            return Vec::new();
        }
        let mut keep = vec![false; versions.len()];
        // Content versions, newest first, with their index.
        let content: Vec<usize> = (0..versions.len())
            .rev()
            .filter(|&i| !versions[i].deleted)
            .collect();
        if let Some(&newest) = content.first() {
            if !versions.last().is_some_and(|v| v.deleted) {
                keep[newest] = true;
            }
        }
        if let Some(n) = self.keep_last {
            for &i in content.iter().take(n as usize) {
                keep[i] = true;
            }
        }
        if let Some(within) = self.keep_within {
            let since = now.saturating_sub(within as i64);
            for &i in &content {
                if versions[i].backed_up_at >= since {
                    keep[i] = true;
                }
            }
        }
        let buckets: [(Option<u32>, Bucket); 5] = [
            (self.keep_hourly, |t| t.div_euclid(3600)),
            (self.keep_daily, |t| t.div_euclid(86_400)),
            // Weeks from Monday: 1970-01-01 was a Thursday.
            (self.keep_weekly, |t| {
                (t.div_euclid(86_400) + 3).div_euclid(7)
            }),
            (self.keep_monthly, |t| {
                let (y, m, ..) = utc_parts(t);
                y * 12 + m as i64
            }),
            (self.keep_yearly, |t| utc_parts(t).0),
        ];
        for (count, bucket) in buckets {
            let Some(n) = count else { continue };
            let mut last = None;
            let mut taken = 0;
            for &i in &content {
                if taken >= n {
                    break;
                }
                let b = bucket(versions[i].backed_up_at);
                if last != Some(b) {
                    keep[i] = true;
                    last = Some(b);
                    taken += 1;
                }
            }
        }
        // A deletion stays when some version of the content it ended does.
        let mut kept_since_deletion = false;
        for (i, v) in versions.iter().enumerate() {
            if v.deleted {
                keep[i] = kept_since_deletion;
                kept_since_deletion = false;
            } else if keep[i] {
                kept_since_deletion = true;
            }
        }
        versions
            .iter()
            .zip(keep)
            .filter(|(_, k)| !k)
            .map(|(v, _)| v.n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_common::hash::ContentHash;

    const H: i64 = 3600;
    const D: i64 = 86_400;
    /// 2026-11-02T00:00:00Z, a Monday.
    const MON: i64 = 1_793_577_600;

    /// Versions at the given times; a negative time is a deletion at -t.
    fn versions(times: &[i64]) -> Vec<Version> {
        times
            .iter()
            .enumerate()
            .map(|(i, &t)| Version {
                n: i as u64 + 1,
                hash: ContentHash::from_bytes([i as u8; 32]),
                size: 1,
                mtime: t.abs(),
                backed_up_at: t.abs(),
                deleted: t < 0,
            })
            .collect()
    }

    fn kept(policy: &Policy, times: &[i64], now: i64) -> Vec<u64> {
        let v = versions(times);
        let forget = policy.forget(&v, now);
        v.iter()
            .map(|v| v.n)
            .filter(|n| !forget.contains(n))
            .collect()
    }

    #[test]
    fn table() {
        let p = |f: fn(&mut Policy)| {
            let mut p = Policy::default();
            f(&mut p);
            p
        };
        let hourly_times = [
            MON,
            MON + 10,
            MON + H,
            MON + H + 5,
            MON + 3 * H,
            MON + 3 * H + 1,
        ];
        let daily_times = [MON, MON + H, MON + D, MON + D + H, MON + 2 * D, MON + 5 * D];
        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, Policy, Vec<i64>, i64, Vec<u64>)> = vec![
            (
                "empty keeps all",
                Policy::default(),
                vec![1, 2, 3],
                10,
                vec![1, 2, 3],
            ),
            (
                "last 2",
                p(|p| p.keep_last = Some(2)),
                vec![1, 2, 3, 4],
                10,
                vec![3, 4],
            ),
            (
                "last 0 keeps the current one",
                p(|p| p.keep_last = Some(0)),
                vec![1, 2, 3],
                10,
                vec![3],
            ),
            (
                "last 10 of 3",
                p(|p| p.keep_last = Some(10)),
                vec![1, 2, 3],
                10,
                vec![1, 2, 3],
            ),
            (
                "hourly 2: newest per hour",
                p(|p| p.keep_hourly = Some(2)),
                hourly_times.to_vec(),
                MON + D,
                vec![4, 6],
            ),
            (
                "hourly 5: all hours",
                p(|p| p.keep_hourly = Some(5)),
                hourly_times.to_vec(),
                MON + D,
                vec![2, 4, 6],
            ),
            (
                "daily 2",
                p(|p| p.keep_daily = Some(2)),
                daily_times.to_vec(),
                MON + 9 * D,
                vec![5, 6],
            ),
            (
                "daily 3",
                p(|p| p.keep_daily = Some(3)),
                daily_times.to_vec(),
                MON + 9 * D,
                vec![4, 5, 6],
            ),
            (
                "weekly 2: weeks start on Monday",
                p(|p| p.keep_weekly = Some(2)),
                vec![MON - D, MON - 1, MON, MON + 6 * D, MON + 7 * D],
                MON + 30 * D,
                vec![4, 5],
            ),
            (
                "monthly 2",
                p(|p| p.keep_monthly = Some(2)),
                // 2026-10-20, 2026-10-31, 2026-11-02, 2026-11-20
                vec![MON - 13 * D, MON - 2 * D, MON, MON + 18 * D],
                MON + 40 * D,
                vec![2, 4],
            ),
            (
                "yearly 1",
                p(|p| p.keep_yearly = Some(1)),
                vec![MON - 400 * D, MON - 10 * D, MON],
                MON,
                vec![3],
            ),
            (
                "within 2 days",
                p(|p| p.keep_within = Some(2 * D as u64)),
                vec![MON - 5 * D, MON - 3 * D, MON - D, MON],
                MON,
                vec![3, 4],
            ),
            (
                "rules add up",
                p(|p| {
                    p.keep_last = Some(1);
                    p.keep_daily = Some(2);
                }),
                vec![MON, MON + H, MON + D, MON + D + H],
                MON + 5 * D,
                vec![2, 4],
            ),
            (
                "a deleted file keeps its deletion with its last content",
                p(|p| p.keep_last = Some(1)),
                vec![1, 2, -3],
                10,
                vec![2, 3],
            ),
            (
                "a deleted file whose versions all age out is forgotten whole",
                p(|p| p.keep_within = Some(100)),
                vec![1, 2, -3],
                1000,
                vec![],
            ),
            (
                "a deletion whose content is forgotten goes with it",
                p(|p| p.keep_last = Some(1)),
                vec![1, -2, 3, 4],
                10,
                vec![4],
            ),
            (
                "deletion kept when the content before it is kept",
                p(|p| p.keep_last = Some(2)),
                vec![1, -2, 3],
                10,
                vec![1, 2, 3],
            ),
        ];
        for (name, policy, times, now, want) in cases {
            assert_eq!(kept(&policy, &times, now), want, "{name}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("45m"), Ok(2700));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("30d"), Ok(2_592_000));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        for bad in ["", "d", "5y", "1.5d", "-3d", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
