//! Local file paths on each platform, and the protocol's relative paths.
//!
//! The server always receives `/`-separated paths relative to the watched
//! folder. This module turns a local path (as the operating system spells
//! it) into one, and back, by each platform's rules, as plain strings: so
//! the Windows rules (drive letters, `\` and `/` separators, UNC shares,
//! `\\?\` long-path prefixes, case-insensitive names, names Windows cannot
//! hold) are tested on any host, and the client uses the same code on
//! Windows.

use crate::paths::validate_rel_path;

/// Whose naming rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Unix,
    Windows,
}

impl Style {
    /// The rules of the platform this program runs on.
    pub const HOST: Style = if cfg!(windows) {
        Style::Windows
    } else {
        Style::Unix
    };

    pub fn separator(self) -> char {
        match self {
            Style::Unix => '/',
            Style::Windows => '\\',
        }
    }
}

/// The protocol path of `path` below `root` (both local paths, spelt as
/// the platform does). On Windows, `\` and `/` both separate, a `\\?\`
/// prefix on either side is ignored, and the root matches regardless of
/// case, as the file system does.
pub fn to_protocol(style: Style, root: &str, path: &str) -> Result<String, String> {
    let rest = match style {
        Style::Unix => {
            let root = root.trim_end_matches('/');
            path.strip_prefix(root)
                .filter(|r| r.is_empty() || r.starts_with('/') || root.is_empty())
                .ok_or_else(|| "outside the backed-up folder".to_string())?
                .to_string()
        }
        Style::Windows => {
            let (root, path) = (windows_plain(root), windows_plain(path));
            let root = root.trim_end_matches('\\');
            let inside = path.len() >= root.len()
                && path.is_char_boundary(root.len())
                && path[..root.len()].eq_ignore_ascii_case(root)
                && (path.len() == root.len() || path[root.len()..].starts_with('\\'));
            if !inside {
                return Err("outside the backed-up folder".into());
            }
            path[root.len()..].to_string()
        }
    };
    let parts: Vec<&str> = rest
        .split(style.separator())
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Err("this is the backed-up folder itself, not a file in it".into());
    }
    if let Some(p) = parts.iter().find(|p| **p == "." || **p == "..") {
        return Err(format!("unexpected path component {p:?}"));
    }
    if style == Style::Windows {
        if let Some(p) = parts.iter().find(|p| p.contains(':')) {
            // An alternate data stream (`file:stream`), never a file name.
            return Err(format!("{p:?} names an alternate data stream"));
        }
    }
    let joined = parts.join("/");
    validate_rel_path(&joined)
        .map(str::to_string)
        .map_err(|e| format!("cannot be backed up: {e}"))
}

/// A Windows path with `/` turned into `\` and a `\\?\` (or `\\?\UNC\`)
/// prefix removed: `\\?\C:\x` is `C:\x`, `\\?\UNC\srv\share` is
/// `\\srv\share`.
fn windows_plain(path: &str) -> String {
    let p = path.replace('/', "\\");
    if let Some(unc) = p.strip_prefix("\\\\?\\UNC\\") {
        format!("\\\\{unc}")
    } else if let Some(rest) = p.strip_prefix("\\\\?\\") {
        rest.to_string()
    } else {
        p
    }
}

/// The local path of protocol path `rel` below `root`, laid out for
/// `style`'s platform. Names that platform cannot hold, or that Windows
/// cannot hold when `windows_names` is set (a share Windows machines use),
/// are refused with the reason, or, with `rename`, replaced by a safe name.
pub fn to_local(
    style: Style,
    windows_names: bool,
    root: &str,
    rel: &str,
    rename: bool,
) -> Result<String, String> {
    validate_rel_path(rel).map_err(|e| format!("unsafe path from the server: {e}"))?;
    let names = if windows_names { Style::Windows } else { style };
    let sep = style.separator();
    let mut out = root.trim_end_matches(sep).to_string();
    for part in rel.split('/') {
        let name = match invalid_name(names, part) {
            None => part.to_string(),
            Some(_) if rename => safe_name(names, part),
            Some(why) => {
                return Err(format!(
                    "{why}, which this system cannot hold; --rename-invalid restores it under a safe name"
                ))
            }
        };
        out.push(sep);
        out.push_str(&name);
    }
    Ok(match style {
        Style::Windows => long_path(&out),
        Style::Unix => out,
    })
}

/// Windows paths longer than the classic 260-character limit need the
/// `\\?\` form; shorter or relative ones are left as they are.
pub fn long_path(path: &str) -> String {
    if path.len() < 248 || path.starts_with("\\\\?\\") {
        return path.to_string();
    }
    if let Some(unc) = path.strip_prefix("\\\\") {
        format!("\\\\?\\UNC\\{unc}")
    } else if path.as_bytes().get(1) == Some(&b':') {
        format!("\\\\?\\{path}")
    } else {
        path.to_string()
    }
}

/// What makes two protocol paths the same file on this platform: on
/// Windows names differ only by case at most, so `A.txt` and `a.txt`
/// cannot both be restored into one folder.
pub fn same_file_key(style: Style, rel: &str) -> String {
    match style {
        Style::Unix => rel.to_string(),
        Style::Windows => rel.to_lowercase(),
    }
}

/// Why `style`'s platform cannot hold this name, if it cannot.
pub fn invalid_name(style: Style, name: &str) -> Option<String> {
    if style == Style::Unix {
        return None;
    }
    const RESERVED: [&str; 22] = [
        "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
        "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    ];
    if let Some(c) = name.chars().find(|c| forbidden_on_windows(*c)) {
        return Some(format!("the name {name:?} holds the character {c:?}"));
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Some(format!("the name {name:?} ends with a dot or a space"));
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem)) {
        return Some(format!("the name {name:?} is reserved (a device name)"));
    }
    None
}

fn forbidden_on_windows(c: char) -> bool {
    matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*' | '\\') || (c as u32) < 32
}

/// A name `style`'s platform can hold, as close to `name` as possible.
pub fn safe_name(style: Style, name: &str) -> String {
    if invalid_name(style, name).is_none() {
        return name.to_string();
    }
    let mut out: String = name
        .chars()
        .map(|c| if forbidden_on_windows(c) { '_' } else { c })
        .collect();
    let kept = out.trim_end_matches(['.', ' ']).len();
    let trailing = out.len() - kept;
    out.truncate(kept);
    out.push_str(&"_".repeat(trailing));
    if invalid_name(style, &out).is_some() {
        // A reserved device name: keep it recognisable.
        let (stem, ext) = match out.split_once('.') {
            Some((s, e)) => (s.to_string(), format!(".{e}")),
            None => (out.clone(), String::new()),
        };
        out = format!("{stem}_{ext}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Style::{Unix, Windows};

    #[test]
    fn windows_paths_become_protocol_paths() {
        let ok = |root: &str, path: &str, want: &str| {
            assert_eq!(
                to_protocol(Windows, root, path).as_deref(),
                Ok(want),
                "{root} + {path}"
            );
        };
        ok(
            r"C:\Users\ann\Documents",
            r"C:\Users\ann\Documents\a.txt",
            "a.txt",
        );
        ok(
            r"C:\Users\ann\Documents\",
            r"C:\Users\ann\Documents\x\y z\é.txt",
            "x/y z/é.txt",
        );
        // Either separator, any case of the root, a drive root.
        ok(
            r"c:/users/ANN/documents",
            r"C:\Users\ann\Documents\a\b",
            "a/b",
        );
        ok(r"D:\", r"D:\photos\2026\cat.jpg", "photos/2026/cat.jpg");
        // UNC shares, and the \\?\ long-path forms of both.
        ok(r"\\nas\share\backup", r"\\nas\share\backup\f.txt", "f.txt");
        ok(r"\\?\C:\data", r"C:\data\deep\f", "deep/f");
        ok(r"C:\data", r"\\?\C:\data\deep\f", "deep/f");
        ok(r"\\?\UNC\nas\share", r"\\nas\share\a\b.txt", "a/b.txt");
        let long = format!(r"\\?\C:\d\{}\f.txt", "x".repeat(300));
        assert_eq!(
            to_protocol(Windows, r"C:\d", &long).unwrap(),
            format!("{}/f.txt", "x".repeat(300))
        );
        for (root, path) in [
            (r"C:\data", r"C:\database\f"),
            (r"C:\data", r"D:\data\f"),
            (r"C:\data", r"C:\data"),
            (r"C:\data", r"C:\data\f:stream"),
            (r"\\nas\share", r"\\other\share\f"),
        ] {
            assert!(to_protocol(Windows, root, path).is_err(), "{root} + {path}");
        }
    }

    #[test]
    fn unix_paths_become_protocol_paths() {
        assert_eq!(
            to_protocol(Unix, "/home/ann/docs", "/home/ann/docs/a/b c.txt").as_deref(),
            Ok("a/b c.txt")
        );
        assert_eq!(
            to_protocol(Unix, "/home/ann/docs/", "/home/ann/docs/x").as_deref(),
            Ok("x")
        );
        // A backslash is an ordinary character on Unix, and refused by the
        // protocol (it would mean a folder on Windows).
        assert!(to_protocol(Unix, "/d", "/d/a\\b").is_err());
        assert!(to_protocol(Unix, "/d", "/dx/a").is_err());
        assert!(
            to_protocol(Unix, "/D", "/d/a").is_err(),
            "case matters on Unix"
        );
    }

    #[test]
    fn protocol_paths_become_local_paths() {
        assert_eq!(
            to_local(Windows, false, r"C:\restore\", "docs/a b.txt", false).as_deref(),
            Ok(r"C:\restore\docs\a b.txt")
        );
        assert_eq!(
            to_local(Unix, false, "/tmp/r", "docs/a b.txt", false).as_deref(),
            Ok("/tmp/r/docs/a b.txt")
        );
        // Names Windows cannot hold: refused, or renamed on request.
        assert!(to_local(Windows, false, r"C:\r", "x/CON", false).is_err());
        assert_eq!(
            to_local(Windows, false, r"C:\r", "x/a:b/aux.txt", true).as_deref(),
            Ok(r"C:\r\x\a_b\aux_.txt")
        );
        assert_eq!(
            to_local(Unix, false, "/r", "x/a:b/aux.txt", false).as_deref(),
            Ok("/r/x/a:b/aux.txt")
        );
        // Windows' rules on a Unix layout (a share for Windows machines).
        assert!(to_local(Unix, true, "/r", "x/aux.txt", false).is_err());
        assert_eq!(
            to_local(Unix, true, "/r", "x/a:b/aux.txt", true).as_deref(),
            Ok("/r/x/a_b/aux_.txt")
        );
        // Long Windows paths get the \\?\ form.
        let deep = format!("{}/f.txt", "d".repeat(250));
        let local = to_local(Windows, false, r"C:\r", &deep, false).unwrap();
        assert!(local.starts_with(r"\\?\C:\r\ddd"), "{local}");
        let unc = to_local(Windows, false, r"\\nas\s", &deep, false).unwrap();
        assert!(unc.starts_with(r"\\?\UNC\nas\s\ddd"), "{unc}");
        // Never outside the target.
        assert!(to_local(Windows, false, r"C:\r", "../x", false).is_err());
        assert!(to_local(Windows, false, r"C:\r", "C:/x", false).is_err());
    }

    #[test]
    fn names_windows_cannot_hold() {
        for bad in [
            "CON",
            "con.txt",
            "aux.tar.gz",
            "a:b",
            "x?",
            "trail.",
            "trail ",
            "LPT9",
            "tab\t",
        ] {
            assert!(invalid_name(Windows, bad).is_some(), "{bad}");
            assert!(invalid_name(Unix, bad).is_none(), "{bad}");
            let safe = safe_name(Windows, bad);
            assert!(invalid_name(Windows, &safe).is_none(), "{bad} -> {safe}");
        }
        for good in ["CONSOLE", "report.pdf", "a b", ".hidden", "COM10", "résumé"] {
            assert!(invalid_name(Windows, good).is_none(), "{good}");
            assert_eq!(safe_name(Windows, good), good);
        }
        assert_eq!(safe_name(Windows, "a:b"), "a_b");
        assert_eq!(safe_name(Windows, "aux.txt"), "aux_.txt");
        assert_eq!(safe_name(Windows, "CON"), "CON_");
    }

    #[test]
    fn names_that_differ_in_case_are_one_file_on_windows() {
        assert_eq!(
            same_file_key(Windows, "Docs/A.txt"),
            same_file_key(Windows, "docs/a.TXT")
        );
        assert_ne!(
            same_file_key(Unix, "Docs/A.txt"),
            same_file_key(Unix, "docs/a.TXT")
        );
    }
}
