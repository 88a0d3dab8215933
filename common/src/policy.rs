//! Backup policy: the settings a server gives its clients (folders'
//! exclusions, pass interval, settle time, largest file, backup windows and
//! upload limits), how a window is spelled, and the effective policy a
//! client receives and applies.
//!
//! A window is `DAYS HH:MM-HH:MM` in the machine's local time: DAYS is
//! `daily`, `weekdays`, `weekends`, a day (`mon`) or a list and ranges of
//! them (`mon-fri`, `sat,sun`, `mon,wed-fri`). An end before the start runs
//! past midnight into the next day (`daily 22:00-06:00`); `00:00-24:00` is
//! the whole day.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The settings' names, as the command line, the page and locks spell them.
pub const FIELDS: [&str; 9] = [
    "folders",
    "interval",
    "settle",
    "max_file_size",
    "excludes",
    "os_excludes",
    "windows",
    "upload_limit",
    "limits",
];

/// The operating systems `os_excludes` knows, as Rust names them.
pub const OSES: [&str; 3] = ["windows", "macos", "linux"];

/// One layer of settings (the fleet's, a user's, a machine's): each unset
/// field is taken from the layer below.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Folders backed up besides the client's `--dir`, each under its name
    /// at the top of the machine's files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folders: Option<Vec<Folder>>,
    /// Seconds between passes over the folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<f64>,
    /// Seconds a file must stay unmodified before it is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<f64>,
    /// Larger files are not backed up (bytes; 0 is no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_size: Option<u64>,
    /// Patterns in gitignore syntax, relative to the backed-up folder.
    /// Every layer's add up (unless the fleet's are locked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excludes: Option<Vec<String>>,
    /// More patterns for each operating system (see [`OSES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_excludes: Option<BTreeMap<String, Vec<String>>>,
    /// Uploads happen only inside these windows (none: at any time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<Vec<Window>>,
    /// Upload limit in bytes per second outside every `limits` window
    /// (0: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_limit: Option<u64>,
    /// Upload limits inside windows (the first that contains now applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Vec<RateWindow>>,
}

/// A folder to back up: where it is on the machine, its name on the
/// server (the first level of the machine's files) and exclusions for it
/// alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Folder {
    /// An absolute path on the machine, or `~` for the home folder
    /// (`~/Documents`, `~\Documents`).
    pub path: String,
    /// Default: the path's last part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Patterns for this folder only, added to the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
}

/// Folders in one policy at most.
pub const MAX_FOLDERS: usize = 50;

impl Folder {
    /// Its name on the server.
    pub fn name(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => self
                .path
                .trim_end_matches(['/', '\\'])
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or("")
                .trim_start_matches('~')
                .to_string(),
        }
    }

    /// Parses the page's line: `[NAME =] PATH [| PATTERN, PATTERN...]`.
    pub fn parse_line(line: &str) -> Result<Folder, String> {
        let (main, excludes) = match line.split_once('|') {
            Some((m, e)) => (
                m,
                e.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            None => (line, Vec::new()),
        };
        let (name, path) = match main.split_once('=') {
            Some((n, p)) => (Some(n.trim().to_string()), p.trim()),
            None => (None, main.trim()),
        };
        let f = Folder {
            path: path.to_string(),
            name,
            excludes,
        };
        f.validate()?;
        Ok(f)
    }

    /// The page's line for it.
    pub fn to_line(&self) -> String {
        let mut out = match &self.name {
            Some(n) => format!("{n} = {}", self.path),
            None => self.path.clone(),
        };
        if !self.excludes.is_empty() {
            out.push_str(" | ");
            out.push_str(&self.excludes.join(", "));
        }
        out
    }

    fn validate(&self) -> Result<(), String> {
        let p = &self.path;
        let absolute = p.starts_with('/')
            || p.starts_with('~')
            || p.starts_with("\\\\")
            || (p.len() >= 3
                && p.as_bytes()[0].is_ascii_alphabetic()
                && p.as_bytes()[1] == b':'
                && matches!(p.as_bytes()[2], b'\\' | b'/'));
        if !absolute || p.len() > 4096 || p.chars().any(char::is_control) {
            return Err(format!(
                "folders: {p:?} is not an absolute path (or one starting with ~)"
            ));
        }
        let name = self.name();
        if name.is_empty()
            || name.len() > 255
            || name == "."
            || name == ".."
            || name.contains(['/', '\\', '|', '='])
            || name.chars().any(char::is_control)
        {
            return Err(format!(
                "folders: {name:?} cannot name a folder (give one with NAME = PATH)"
            ));
        }
        for e in &self.excludes {
            if e.trim().is_empty() || e.len() > 1000 || e.contains(['\n', '\r', '\0']) {
                return Err(format!("folders: {e:?} is not a pattern"));
            }
        }
        Ok(())
    }
}

/// An upload limit inside a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateWindow {
    pub when: Window,
    /// Bytes per second; 0 is unlimited.
    pub rate: u64,
}

impl Settings {
    /// Whether `field` (one of [`FIELDS`]) is set here.
    pub fn has(&self, field: &str) -> bool {
        match field {
            "folders" => self.folders.is_some(),
            "interval" => self.interval.is_some(),
            "settle" => self.settle.is_some(),
            "max_file_size" => self.max_file_size.is_some(),
            "excludes" => self.excludes.is_some(),
            "os_excludes" => self.os_excludes.is_some(),
            "windows" => self.windows.is_some(),
            "upload_limit" => self.upload_limit.is_some(),
            "limits" => self.limits.is_some(),
            _ => false,
        }
    }

    /// Clears `field`.
    pub fn clear(&mut self, field: &str) {
        match field {
            "folders" => self.folders = None,
            "interval" => self.interval = None,
            "settle" => self.settle = None,
            "max_file_size" => self.max_file_size = None,
            "excludes" => self.excludes = None,
            "os_excludes" => self.os_excludes = None,
            "windows" => self.windows = None,
            "upload_limit" => self.upload_limit = None,
            "limits" => self.limits = None,
            _ => {}
        }
    }

    /// Takes `field` from `other` (set or not).
    pub fn take_field(&mut self, other: &Settings, field: &str) {
        match field {
            "folders" => self.folders.clone_from(&other.folders),
            "interval" => self.interval = other.interval,
            "settle" => self.settle = other.settle,
            "max_file_size" => self.max_file_size = other.max_file_size,
            "excludes" => self.excludes.clone_from(&other.excludes),
            "os_excludes" => self.os_excludes.clone_from(&other.os_excludes),
            "windows" => self.windows.clone_from(&other.windows),
            "upload_limit" => self.upload_limit = other.upload_limit,
            "limits" => self.limits.clone_from(&other.limits),
            _ => {}
        }
    }

    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let seconds = |name: &str, v: Option<f64>, min: f64| match v {
            Some(s) if !(s.is_finite() && s >= min && s <= 86_400.0) => Err(format!(
                "{name} must be between {min} and 86400 seconds, not {s}"
            )),
            _ => Ok(()),
        };
        seconds("interval", self.interval, 0.1)?;
        seconds("settle", self.settle, 0.0)?;
        let patterns = |name: &str, list: &[String]| -> Result<(), String> {
            if list.len() > 1000 {
                return Err(format!("{name}: at most 1000 patterns"));
            }
            for p in list {
                if p.trim().is_empty() || p.len() > 1000 || p.contains(['\n', '\r', '\0']) {
                    return Err(format!(
                        "{name}: {p:?} is not a pattern (one line, not empty)"
                    ));
                }
            }
            Ok(())
        };
        if let Some(list) = &self.excludes {
            patterns("excludes", list)?;
        }
        if let Some(map) = &self.os_excludes {
            for (os, list) in map {
                if !OSES.contains(&os.as_str()) {
                    return Err(format!(
                        "os_excludes: {os:?} is not one of {}",
                        OSES.join(", ")
                    ));
                }
                patterns("os_excludes", list)?;
            }
        }
        if let Some(folders) = &self.folders {
            if folders.len() > MAX_FOLDERS {
                return Err(format!("folders: at most {MAX_FOLDERS}"));
            }
            let mut names = std::collections::BTreeSet::new();
            for f in folders {
                f.validate()?;
                if !names.insert(f.name().to_lowercase()) {
                    return Err(format!(
                        "folders: two are named {:?} (give one another name with NAME = PATH)",
                        f.name()
                    ));
                }
            }
        }
        if self.windows.as_ref().is_some_and(|w| w.len() > 100)
            || self.limits.as_ref().is_some_and(|w| w.len() > 100)
        {
            return Err("at most 100 windows".into());
        }
        Ok(())
    }
}

/// The default exclusions for every system, used while the fleet sets none.
pub fn default_excludes() -> Vec<String> {
    ["node_modules/", "__pycache__/", "*.pyc", ".~lock.*#"]
        .map(String::from)
        .to_vec()
}

/// The default exclusions per system (caches, temporary files, recycle
/// bins), used while the fleet sets none.
pub fn default_os_excludes() -> BTreeMap<String, Vec<String>> {
    let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    BTreeMap::from([
        (
            "windows".to_string(),
            list(&[
                "$RECYCLE.BIN/",
                "System Volume Information/",
                "AppData/Local/Temp/",
                "Thumbs.db",
                "~$*",
                "*.tmp",
            ]),
        ),
        (
            "macos".to_string(),
            list(&[
                ".DS_Store",
                ".Trash/",
                ".Spotlight-V100/",
                ".fseventsd/",
                "Library/Caches/",
            ]),
        ),
        (
            "linux".to_string(),
            list(&[".cache/", ".local/share/Trash/", ".Trash-*/"]),
        ),
    ])
}

/// What a client applies: every layer resolved, with the fields the
/// admin locked (a client's own flags may not change those).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Effective {
    /// Names this policy: it changes with any setting.
    #[serde(default)]
    pub version: String,
    /// Folders besides `--dir` (older clients ignore the field).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folders: Vec<Folder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<f64>,
    /// 0 or none: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_size: Option<u64>,
    #[serde(default)]
    pub excludes: Vec<String>,
    #[serde(default)]
    pub os_excludes: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub windows: Vec<Window>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_limit: Option<u64>,
    #[serde(default)]
    pub limits: Vec<RateWindow>,
    #[serde(default)]
    pub locked: Vec<String>,
}

impl Effective {
    /// The patterns that apply on `os` (Rust's name for it).
    pub fn excludes_for(&self, os: &str) -> Vec<String> {
        let mut all = self.excludes.clone();
        all.extend(self.os_excludes.get(os).cloned().unwrap_or_default());
        all
    }

    /// Whether uploads may happen at `at` (local time).
    pub fn may_upload(&self, at: LocalTime) -> bool {
        self.windows.is_empty() || self.windows.iter().any(|w| w.contains(at))
    }

    /// The upload limit at `at` in bytes per second, none for unlimited.
    pub fn rate_at(&self, at: LocalTime) -> Option<u64> {
        let rate = match self.limits.iter().find(|l| l.when.contains(at)) {
            Some(l) => l.rate,
            None => self.upload_limit.unwrap_or(0),
        };
        (rate > 0).then_some(rate)
    }

    pub fn is_locked(&self, field: &str) -> bool {
        self.locked.iter().any(|f| f == field)
    }

    /// Sets `version` from the content.
    pub fn stamp(mut self) -> Effective {
        self.version = String::new();
        let bytes = serde_json::to_vec(&self).expect("serialisable");
        self.version = crate::hash::ContentHash::of_bytes(&bytes).to_hex()[..16].to_string();
        self
    }
}

/// A moment in the machine's local time: day of the week (0 is Monday)
/// and minute of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub weekday: u8,
    pub minute: u16,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Days of the week and a span of the day (see the module's notes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Bit `d` set: the window starts on day `d` (0 is Monday).
    days: u8,
    /// Minutes since midnight; `end` may be 1440, or before `start` (the
    /// window runs into the next day).
    start: u16,
    end: u16,
    text: String,
}

impl Window {
    pub fn parse(text: &str) -> Result<Window, String> {
        let bad = |why: &str| {
            format!("{text:?} is not a window ({why}); write e.g. \"mon-fri 08:00-18:00\"")
        };
        let (days_text, span) = text.trim().split_once(' ').ok_or_else(|| bad("no hours"))?;
        let days = parse_days(days_text.trim()).ok_or_else(|| bad("unknown days"))?;
        let (a, b) = span
            .trim()
            .split_once('-')
            .ok_or_else(|| bad("no '-' in the hours"))?;
        let start = parse_clock(a).ok_or_else(|| bad("a time is not HH:MM"))?;
        let end = parse_clock(b).ok_or_else(|| bad("a time is not HH:MM"))?;
        if start == 1440 {
            return Err(bad("a window cannot start at 24:00"));
        }
        Ok(Window {
            days,
            start,
            end,
            text: text.trim().to_string(),
        })
    }

    pub fn contains(&self, at: LocalTime) -> bool {
        let on = |d: u8| self.days & (1 << (d % 7)) != 0;
        let m = at.minute;
        if self.start < self.end {
            on(at.weekday) && (self.start..self.end).contains(&m)
        } else if self.start == self.end {
            on(at.weekday)
        } else {
            (on(at.weekday) && m >= self.start) || (on(at.weekday + 6) && m < self.end)
        }
    }
}

fn parse_days(text: &str) -> Option<u8> {
    match text {
        "daily" => return Some(0x7f),
        "weekdays" => return Some(0x1f),
        "weekends" => return Some(0x60),
        _ => {}
    }
    let day = |t: &str| DAY_NAMES.iter().position(|d| *d == t);
    let mut bits = 0u8;
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    bits |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => bits |= 1 << day(part)?,
        }
    }
    Some(bits)
}

fn parse_clock(text: &str) -> Option<u16> {
    let (h, m) = text.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    ((h < 24 && m < 60) || (h == 24 && m == 0)).then_some(h * 60 + m)
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Window, D::Error> {
        let text = String::deserialize(d)?;
        Window::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(weekday: u8, h: u16, m: u16) -> LocalTime {
        LocalTime {
            weekday,
            minute: h * 60 + m,
        }
    }

    #[test]
    fn windows_cover_their_days_and_hours() {
        let office = Window::parse("mon-fri 08:00-18:00").unwrap();
        assert!(office.contains(at(0, 8, 0)));
        assert!(office.contains(at(4, 17, 59)));
        assert!(!office.contains(at(4, 18, 0)));
        assert!(!office.contains(at(5, 12, 0)));
        let night = Window::parse("fri 22:00-06:00").unwrap();
        assert!(night.contains(at(4, 23, 0)));
        assert!(night.contains(at(5, 5, 59)), "runs into Saturday morning");
        assert!(!night.contains(at(4, 5, 0)), "not Friday morning");
        let sunday_night = Window::parse("sun 23:00-01:00").unwrap();
        assert!(sunday_night.contains(at(0, 0, 30)), "into Monday");
        assert!(Window::parse("weekends 00:00-24:00")
            .unwrap()
            .contains(at(6, 23, 59)));
        assert!(Window::parse("sat-mon 10:00-11:00")
            .unwrap()
            .contains(at(0, 10, 30)));
        for bad in [
            "mon",
            "someday 08:00-09:00",
            "mon 8-9",
            "mon 25:00-26:00",
            "mon 24:00-01:00",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_effective_policy_says_when_and_how_fast() {
        let p = Effective {
            windows: vec![Window::parse("daily 20:00-07:00").unwrap()],
            upload_limit: Some(0),
            limits: vec![RateWindow {
                when: Window::parse("mon-fri 08:00-18:00").unwrap(),
                rate: 1_000_000,
            }],
            ..Effective::default()
        };
        assert!(p.may_upload(at(2, 21, 0)));
        assert!(!p.may_upload(at(2, 12, 0)));
        assert_eq!(p.rate_at(at(2, 12, 0)), Some(1_000_000));
        assert_eq!(p.rate_at(at(6, 12, 0)), None);
        let a = p.clone().stamp();
        let b = Effective {
            upload_limit: Some(5),
            ..p
        }
        .stamp();
        assert_ne!(a.version, b.version);
        let back: Effective = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn folders_read_from_a_line_and_are_checked() {
        let f = Folder::parse_line(r"Photos = D:\Pictures | *.raw, cache/").unwrap();
        assert_eq!(f.name(), "Photos");
        assert_eq!(f.path, r"D:\Pictures");
        assert_eq!(f.excludes, vec!["*.raw", "cache/"]);
        assert_eq!(Folder::parse_line(&f.to_line()).unwrap(), f);
        let f = Folder::parse_line("~/Documents/").unwrap();
        assert_eq!(f.name(), "Documents");
        assert_eq!(
            Folder::parse_line(r"\\nas\share\Music").unwrap().name(),
            "Music"
        );
        assert!(Folder::parse_line("relative/path").is_err());
        assert!(
            Folder::parse_line("~").is_err(),
            "the home folder needs a name"
        );
        assert!(Folder::parse_line("Home = ~").is_ok());
        assert!(Folder::parse_line("../x = /srv").is_err());
        let two = Settings {
            folders: Some(vec![
                Folder::parse_line("/a/docs").unwrap(),
                Folder::parse_line("/b/Docs").unwrap(),
            ]),
            ..Settings::default()
        };
        assert!(two.validate().unwrap_err().contains("two are named"));
    }

    #[test]
    fn settings_are_checked() {
        let s: Result<Settings, _> = serde_json::from_str(r#"{"windows": ["mon 9-5"]}"#);
        assert!(s.is_err());
        let s: Result<Settings, _> = serde_json::from_str(r#"{"colour": 1}"#);
        assert!(s.is_err());
        let s: Settings = serde_json::from_str(r#"{"interval": -1}"#).unwrap();
        assert!(s.validate().unwrap_err().contains("interval"));
        let s: Settings = serde_json::from_str(r#"{"os_excludes": {"beos": ["x"]}}"#).unwrap();
        assert!(s.validate().is_err());
        let s: Settings = serde_json::from_str(r#"{"excludes": ["*.ost", "cache/"]}"#).unwrap();
        assert!(s.validate().is_ok());
    }
}
