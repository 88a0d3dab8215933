//! What the admin (and each user, for their own machines) sets about
//! alerts: the SMTP server mail goes out through, where alerts go
//! (addresses and webhooks), and when a machine counts as in trouble.

use crate::space::MachineKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A length of time as people write it: `3d`, `12h`, `30m`, `45s`, or a
/// number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub u64);

impl Span {
    /// As the retention's `keep_within` reads it (`crate::retention`).
    pub fn parse(text: &str) -> Result<Span, String> {
        crate::retention::parse_duration(text).map(Span)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        match s {
            0 => write!(f, "0s"),
            _ if s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            _ if s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            _ if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the
    /// server does not offer it.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same machine or network.
    None,
}

impl Security {
    pub fn default_port(self) -> u16 {
        match self {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        }
    }
    pub fn parse(text: &str) -> Option<Security> {
        match text {
            "starttls" => Some(Security::Starttls),
            "tls" => Some(Security::Tls),
            "none" => Some(Security::None),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Starttls => "starttls",
            Security::Tls => "tls",
            Security::None => "none",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: Security,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The sender address, e.g. `Nimbus <nimbus@example.org>`.
    pub from: String,
    /// A CA certificate (PEM) trusted for this server besides the public
    /// ones: for a mail relay with a private certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// Nimbus's own JSON (see PROTOCOL.md).
    #[default]
    Generic,
    /// ntfy's JSON publishing: the URL is the topic's, `https://ntfy.sh/TOPIC`.
    Ntfy,
    /// Gotify's `POST /message`: the URL is the server's; the token is the
    /// application's.
    Gotify,
}

impl Shape {
    pub fn parse(text: &str) -> Option<Shape> {
        match text {
            "generic" => Some(Shape::Generic),
            "ntfy" => Some(Shape::Ntfy),
            "gotify" => Some(Shape::Gotify),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Generic => "generic",
            Shape::Ntfy => "ntfy",
            Shape::Gotify => "gotify",
        }
    }
}

/// Where alerts go: an address or a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub id: String,
    /// Whose it is: a user's target hears of that user's machines only;
    /// the admin's (none) of every machine and of the server itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    #[serde(default)]
    pub shape: Shape,
    /// Sent as `Authorization: Bearer` (generic, ntfy) or `X-Gotify-Key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl Target {
    /// What it is, for pages and logs (never the token).
    pub fn describe(&self) -> String {
        match (&self.email, &self.webhook) {
            (Some(e), _) => format!("mail to {e}"),
            (_, Some(u)) => format!("{} webhook {u}", self.shape.as_str()),
            _ => "nothing".into(),
        }
    }

    /// Whether it hears of `machine` (`user/machine`; none: the server).
    pub fn covers(&self, machine: Option<&str>) -> bool {
        match (&self.user, machine) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(u), Some(m)) => MachineKey::parse(m).is_some_and(|k| k.user() == u),
        }
    }
}

/// Per machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineAlerts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<Span>,
}

pub const DEFAULT_STALE_AFTER: Span = Span(3 * 86_400);
pub const DEFAULT_FAILING_PASSES: u32 = 3;
pub const DEFAULT_DISK_MIN_FREE_PERCENT: f64 = 5.0;
pub const DEFAULT_REPEAT: Span = Span(86_400);
pub const MAX_TARGETS: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<Smtp>,
    /// No successful pass for this long. [default: 3d]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<Span>,
    /// Errors in this many reported passes in a row. [default: 3]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_passes: Option<u32>,
    /// The data directory's disk has less than this share free. [default: 5]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_min_free_percent: Option<f64>,
    /// A condition that lasts is told again after this long (0: never).
    /// [default: 1d]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Span>,
    /// By `user/machine`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub machines: BTreeMap<String, MachineAlerts>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
}

impl AlertSettings {
    pub fn stale_after(&self, machine: &str) -> Span {
        self.machines
            .get(machine)
            .and_then(|m| m.stale_after)
            .or(self.stale_after)
            .unwrap_or(DEFAULT_STALE_AFTER)
    }
    pub fn failing_passes(&self) -> u32 {
        self.failing_passes.unwrap_or(DEFAULT_FAILING_PASSES)
    }
    pub fn disk_min_free_percent(&self) -> f64 {
        self.disk_min_free_percent
            .unwrap_or(DEFAULT_DISK_MIN_FREE_PERCENT)
    }
    pub fn repeat(&self) -> Span {
        self.repeat.unwrap_or(DEFAULT_REPEAT)
    }

    /// Refuses settings that could not work; the reason says which field.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(s) = &self.smtp {
            let host_ok = !s.host.is_empty()
                && s.host.len() <= 253
                && s.host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_:[]".contains(c));
            if !host_ok {
                return Err("smtp.host must be a host name or address".into());
            }
            if s.port == Some(0) {
                return Err("smtp.port must be 1-65535".into());
            }
            s.from
                .parse::<lettre::message::Mailbox>()
                .map_err(|e| format!("smtp.from is not a mail address: {e}"))?;
            if let Some(pem) = &s.ca {
                if pem.len() > 64 * 1024 || !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err("smtp.ca must be a PEM certificate".into());
                }
                lettre::transport::smtp::client::Certificate::from_pem(pem.as_bytes())
                    .map_err(|e| format!("smtp.ca is not a certificate: {e}"))?;
            }
            if s.password.is_some() && s.username.is_none() {
                return Err("smtp.password needs smtp.username".into());
            }
        }
        if self.failing_passes == Some(0) {
            return Err("failing_passes must be at least 1".into());
        }
        if let Some(p) = self.disk_min_free_percent {
            if !(0.0..=100.0).contains(&p) {
                return Err("disk_min_free_percent must be between 0 and 100".into());
            }
        }
        if self.stale_after == Some(Span(0)) {
            return Err("stale_after must be longer than 0".into());
        }
        for (m, a) in &self.machines {
            if MachineKey::parse(m).is_none() {
                return Err(format!("{m:?} is not USER/MACHINE"));
            }
            if a.stale_after == Some(Span(0)) {
                return Err(format!("{m}: stale_after must be longer than 0"));
            }
        }
        if self.targets.len() > MAX_TARGETS {
            return Err(format!("at most {MAX_TARGETS} alert targets"));
        }
        let mut ids = std::collections::BTreeSet::new();
        for t in &self.targets {
            if !ids.insert(&t.id) {
                return Err(format!("two targets have the id {}", t.id));
            }
            validate_target(t)?;
        }
        Ok(())
    }
}

pub fn validate_target(t: &Target) -> Result<(), String> {
    match (&t.email, &t.webhook) {
        (Some(e), None) => {
            e.parse::<lettre::message::Mailbox>()
                .map_err(|err| format!("{e:?} is not a mail address: {err}"))?;
        }
        (None, Some(u)) => {
            let ok = (u.starts_with("http://") || u.starts_with("https://"))
                && u.len() <= 2000
                && !u.chars().any(|c| c.is_control() || c.is_whitespace());
            if !ok {
                return Err(format!("{u:?} is not an http:// or https:// address"));
            }
        }
        _ => return Err("a target is either an email address or a webhook".into()),
    }
    if let Some(tok) = &t.token {
        if tok.len() > 500 || tok.chars().any(|c| c.is_control()) {
            return Err("the token must be at most 500 bytes of text".into());
        }
    }
    if t.id.is_empty() || t.id.len() > 40 || !t.id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("a target's id is 1-40 letters and digits".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_write_them() {
        assert_eq!(Span::parse("3d").unwrap(), Span(259_200));
        assert_eq!(Span::parse("12h").unwrap().0, 43_200);
        assert_eq!(Span::parse("90").unwrap().0, 90);
        assert_eq!(Span::parse(" 30m ").unwrap().0, 1800);
        assert!(Span::parse("3 days").is_err());
        assert!(Span::parse("").is_err());
        assert!(Span::parse("99999999999999999999d").is_err());
        assert_eq!(Span(259_200).to_string(), "3d");
        assert_eq!(Span(90).to_string(), "90s");
    }

    #[test]
    fn targets_cover_their_owners_machines() {
        let t = Target {
            id: "a1".into(),
            user: Some("alice".into()),
            email: Some("alice@example.org".into()),
            webhook: None,
            shape: Shape::Generic,
            token: None,
        };
        assert!(t.covers(Some("alice/laptop")));
        assert!(!t.covers(Some("bob/pc")));
        assert!(!t.covers(None));
        let admin = Target { user: None, ..t };
        assert!(admin.covers(Some("bob/pc")) && admin.covers(None));
    }

    #[test]
    fn bad_settings_are_refused_with_the_field() {
        let mut s = AlertSettings {
            failing_passes: Some(0),
            ..AlertSettings::default()
        };
        assert!(s.validate().unwrap_err().contains("failing_passes"));
        s.failing_passes = None;
        s.smtp = Some(Smtp {
            host: "mail.example.org".into(),
            from: "not an address".into(),
            ..Smtp::default()
        });
        assert!(s.validate().unwrap_err().contains("smtp.from"));
        s.smtp = None;
        s.targets.push(Target {
            id: "x".into(),
            user: None,
            email: None,
            webhook: Some("ftp://x".into()),
            shape: Shape::Ntfy,
            token: None,
        });
        assert!(s.validate().is_err());
        let json = r#"{"stale_after":"2d","bogus":1}"#;
        assert!(serde_json::from_str::<AlertSettings>(json).is_err());
        let json = r#"{"stale_after":"2d","machines":{"a/b":{"stale_after":"5m"}}}"#;
        let s: AlertSettings = serde_json::from_str(json).unwrap();
        assert_eq!(s.stale_after("a/b"), Span(300));
        assert_eq!(s.stale_after("a/c"), Span(172_800));
    }
}
