//! Alerts: the server watches every machine and itself, and tells the
//! admin and each machine's owner when something needs them: a machine
//! with no successful backup for a while, errors pass after pass, damage
//! found by `check`, a nearly full disk. Mail goes out through SMTP, other
//! notices as webhooks (see [`send`]).
//!
//! A condition is told once when it starts, again after `repeat` while it
//! lasts, and once more when it clears. Each notice to each target is a
//! delivery in an outbox that is retried with growing delays until it is
//! sent or given up, and shown on the alerts page either way.
//!
//! Kept in `DATA/alerts.json` (the settings, written by the page and the
//! API) and `DATA/alerts-state.json` (the conditions that hold and the
//! outbox, written by the watcher after each round and by a test alert),
//! both atomically and through the vault. A crash between a delivery and
//! the write that records it sends that notice again after the restart:
//! once too often, never not at all.

pub mod send;
pub mod settings;
pub mod watch;

use crate::vault::{Obj, Vault};
use serde::{Deserialize, Serialize};
pub use settings::{AlertSettings, Span, Target};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};

const SETTINGS: &str = "alerts.json";
const STATE: &str = "alerts-state.json";
/// Finished deliveries kept for the page.
const KEEP_FINISHED: usize = 100;
/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: u32 = 10;
/// The longest wait between two attempts.
const MAX_RETRY_SECS: i64 = 3600;

/// What can be wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// No successful backup for longer than `stale_after`.
    Stale,
    /// Errors in `failing_passes` reported passes in a row.
    Failing,
    /// The last `check` found damage.
    Damage,
    /// The data directory's disk is nearly full.
    Disk,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Stale => "stale",
            Condition::Failing => "failing",
            Condition::Damage => "damage",
            Condition::Disk => "disk",
        }
    }
}

/// A condition that holds now, for a machine or (none) the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub condition: Condition,
    pub machine: Option<String>,
    /// One line for people: what is wrong.
    pub detail: String,
}

impl Finding {
    fn key(&self) -> String {
        format!(
            "{}:{}",
            self.condition.as_str(),
            self.machine.as_deref().unwrap_or("")
        )
    }
}

/// What kind of notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Alert,
    Reminder,
    Recovered,
    Test,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Alert => "alert",
            Event::Reminder => "reminder",
            Event::Recovered => "recovered",
            Event::Test => "test",
        }
    }
}

/// A condition being told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Active {
    pub condition: Condition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    pub detail: String,
    pub since: i64,
    pub told_at: i64,
}

/// One notice to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: u64,
    pub target: String,
    pub event: Event,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    pub title: String,
    pub message: String,
    pub created: i64,
    pub attempts: u32,
    pub next_try: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default)]
    pub gave_up: bool,
}

impl Delivery {
    pub fn pending(&self) -> bool {
        self.sent_at.is_none() && !self.gave_up
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// By condition and machine.
    #[serde(default)]
    pub active: BTreeMap<String, Active>,
    #[serde(default)]
    pub outbox: Vec<Delivery>,
    #[serde(default)]
    pub next_id: u64,
}

fn title(f: &Finding) -> String {
    match &f.machine {
        Some(m) => format!("{m}: {}", f.detail),
        None => format!("server: {}", f.detail),
    }
}

impl State {
    fn queue(
        &mut self,
        settings: &AlertSettings,
        now: i64,
        (event, condition, machine): (Event, Option<Condition>, Option<&str>),
        title: &str,
        message: &str,
        only: Option<&str>,
    ) -> usize {
        let mut n = 0;
        for t in &settings.targets {
            let chosen = match only {
                Some(user) => {
                    t.user.as_deref() == Some(user) || (user.is_empty() && t.user.is_none())
                }
                None => t.covers(machine),
            };
            if !chosen {
                continue;
            }
            self.next_id += 1;
            self.outbox.push(Delivery {
                id: self.next_id,
                target: t.id.clone(),
                event,
                condition,
                machine: machine.map(str::to_string),
                title: title.to_string(),
                message: message.to_string(),
                created: now,
                attempts: 0,
                next_try: now,
                sent_at: None,
                last_error: None,
                gave_up: false,
            });
            n += 1;
        }
        n
    }

    /// Compares what holds now with what was told; queues what changed.
    /// Returns how many deliveries it queued.
    pub fn evaluate(&mut self, settings: &AlertSettings, now: i64, findings: &[Finding]) -> usize {
        let mut queued = 0;
        let now_keys: BTreeMap<String, &Finding> = findings.iter().map(|f| (f.key(), f)).collect();
        let cleared: Vec<String> = self
            .active
            .keys()
            .filter(|k| !now_keys.contains_key(*k))
            .cloned()
            .collect();
        for k in cleared {
            let a = self.active.remove(&k).expect("listed above");
            let f = Finding {
                condition: a.condition,
                machine: a.machine.clone(),
                detail: a.detail.clone(),
            };
            let t = format!("Recovered: {}", title(&f));
            let m = format!(
                "{}\n\nThis no longer holds (it did since {}).",
                title(&f),
                nimbus_common::time::format_utc(a.since)
            );
            queued += self.queue(
                settings,
                now,
                (Event::Recovered, Some(a.condition), a.machine.as_deref()),
                &t,
                &m,
                None,
            );
        }
        let repeat = settings.repeat().0 as i64;
        for (k, f) in now_keys {
            let event = match self.active.get_mut(&k) {
                None => {
                    self.active.insert(
                        k,
                        Active {
                            condition: f.condition,
                            machine: f.machine.clone(),
                            detail: f.detail.clone(),
                            since: now,
                            told_at: now,
                        },
                    );
                    Event::Alert
                }
                Some(a) if repeat > 0 && now - a.told_at >= repeat => {
                    a.told_at = now;
                    a.detail = f.detail.clone();
                    Event::Reminder
                }
                Some(a) => {
                    a.detail = f.detail.clone();
                    continue;
                }
            };
            let t = match event {
                Event::Reminder => format!("Still: {}", title(f)),
                _ => title(f),
            };
            let m = format!(
                "{}\n\n{}",
                title(f),
                match f.condition {
                    Condition::Stale => "The machine's client has not finished a backup pass without errors in that time. Check that the machine is on, that the client runs, and that it reaches the server.",
                    Condition::Failing => "Some files could not be backed up in pass after pass. The admin page lists them; an error that is expected can be ignored on the policy page.",
                    Condition::Damage => "nimbus-server check found stored contents missing or damaged. Run it again with --read-data to see every affected version; the next backup of a file that still exists stores it again.",
                    Condition::Disk => "The disk that holds the data directory is nearly full: new backups will fail when it is. Free space, or set a retention policy.",
                }
            );
            queued += self.queue(
                settings,
                now,
                (event, Some(f.condition), f.machine.as_deref()),
                &t,
                &m,
                None,
            );
        }
        self.trim();
        queued
    }

    /// Keeps every pending delivery and the newest finished ones.
    fn trim(&mut self) {
        let finished = self.outbox.iter().filter(|d| !d.pending()).count();
        let mut drop = finished.saturating_sub(KEEP_FINISHED);
        self.outbox.retain(|d| {
            if drop > 0 && !d.pending() {
                drop -= 1;
                false
            } else {
                true
            }
        });
    }

    /// Records an attempt's outcome.
    pub fn attempted(&mut self, id: u64, now: i64, base_secs: i64, outcome: Result<(), String>) {
        if let Some(d) = self.outbox.iter_mut().find(|d| d.id == id) {
            d.attempts += 1;
            match outcome {
                Ok(()) => {
                    d.sent_at = Some(now);
                    d.last_error = None;
                }
                Err(e) => {
                    d.last_error = Some(e);
                    if d.attempts >= MAX_ATTEMPTS {
                        d.gave_up = true;
                    } else {
                        let wait = base_secs
                            .max(1)
                            .saturating_mul(1 << (d.attempts - 1).min(20));
                        d.next_try = now + wait.min(MAX_RETRY_SECS);
                    }
                }
            }
        }
        self.trim();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotYours(String),
    #[error("cannot read or write the alert settings: {0}")]
    Io(#[from] io::Error),
}

/// The settings and state of a data directory's alerts.
pub struct Alerts {
    dir: PathBuf,
    vault: Vault,
    settings: RwLock<Arc<AlertSettings>>,
    state: Mutex<State>,
    /// Set (and notified) to make the watcher look now.
    wake: (Mutex<bool>, Condvar),
}

impl Alerts {
    /// Opens the alerts of a data directory. Unreadable settings are an
    /// error (starting without them would silence every alert); an
    /// unreadable state starts empty (conditions are found again).
    pub fn open(data: &Path, vault: Vault) -> Result<Alerts, AlertError> {
        let settings = match vault.read_object(&data.join(SETTINGS), Obj::Alerts) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                AlertError::Invalid(format!("{SETTINGS} is not valid alert settings: {e}"))
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => AlertSettings::default(),
            Err(e) => return Err(AlertError::Io(e)),
        };
        let state = match vault.read_object(&data.join(STATE), Obj::AlertState) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                log::warn!("{STATE} cannot be read ({e}); conditions are looked at afresh");
                State::default()
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
            Err(e) => {
                log::warn!("{STATE} cannot be read ({e}); conditions are looked at afresh");
                State::default()
            }
        };
        Ok(Alerts {
            dir: data.to_path_buf(),
            vault,
            settings: RwLock::new(Arc::new(settings)),
            state: Mutex::new(state),
            wake: (Mutex::new(false), Condvar::new()),
        })
    }

    pub fn settings(&self) -> Arc<AlertSettings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the settings: written durably before they take effect;
    /// nothing changes when `change` fails or the result is invalid.
    pub fn update(
        &self,
        change: impl FnOnce(&mut AlertSettings) -> Result<(), AlertError>,
    ) -> Result<Arc<AlertSettings>, AlertError> {
        let mut guard = self.settings.write().unwrap_or_else(|e| e.into_inner());
        let mut next = (**guard).clone();
        change(&mut next)?;
        next.validate().map_err(AlertError::Invalid)?;
        self.vault
            .write_atomic(&self.dir.join(SETTINGS), Obj::Alerts, true, |w| {
                serde_json::to_writer_pretty(&mut *w, &next).map_err(io::Error::other)
            })?;
        let next = Arc::new(next);
        *guard = next.clone();
        drop(guard);
        self.poke();
        Ok(next)
    }

    pub fn state(&self) -> State {
        self.lock_state().clone()
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state and writes it (when it changed).
    pub fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> io::Result<T> {
        let mut s = self.lock_state();
        let before = s.clone();
        let out = f(&mut s);
        if *s == before {
            return Ok(out);
        }
        let snapshot = s.clone();
        self.vault
            .write_atomic(&self.dir.join(STATE), Obj::AlertState, true, |w| {
                serde_json::to_writer(&mut *w, &snapshot).map_err(io::Error::other)
            })?;
        Ok(out)
    }

    /// Queues a test notice to the targets of `editor` (the admin's: those
    /// without a user; a user's: their own), and wakes the watcher.
    /// Returns how many were queued.
    pub fn test(&self, editor: Editor, now: i64) -> io::Result<usize> {
        let user = match editor {
            Editor::Admin => "",
            Editor::User(me) => me,
        };
        let settings = self.settings();
        let n = self.with_state(|s| {
            s.queue(
                &settings,
                now,
                (Event::Test, None, None),
                "Test alert from Nimbus",
                "This is a test. Alerts about your machines reach you here.",
                Some(user),
            )
        })?;
        self.poke();
        Ok(n)
    }

    /// Makes the watcher look now.
    pub fn poke(&self) {
        let (m, c) = &self.wake;
        *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
        c.notify_all();
    }

    /// Waits until poked or `timeout` passes.
    pub fn wait(&self, timeout: std::time::Duration) {
        let (m, c) = &self.wake;
        let mut woken = m.lock().unwrap_or_else(|e| e.into_inner());
        if !*woken {
            woken = c
                .wait_timeout(woken, timeout)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *woken = false;
    }
}

/// Shown instead of a stored password or token; sent back, it keeps the
/// stored one.
pub const REDACTED: &str = "********";

/// Who changes alert settings: the admin all of them; a user only their
/// own targets and their own machines' thresholds.
pub use crate::policies::Editor;

fn own_machine(editor: Editor, machine: &str) -> bool {
    match editor {
        Editor::Admin => true,
        Editor::User(me) => {
            crate::space::MachineKey::parse(machine).is_some_and(|k| k.user() == me)
        }
    }
}

impl Alerts {
    /// The settings `editor` may see, passwords and tokens hidden.
    pub fn view(&self, editor: Editor) -> AlertSettings {
        let mut s = (*self.settings()).clone();
        if let Some(smtp) = &mut s.smtp {
            if smtp.password.is_some() {
                smtp.password = Some(REDACTED.into());
            }
        }
        for t in &mut s.targets {
            if t.token.is_some() {
                t.token = Some(REDACTED.into());
            }
        }
        if let Editor::User(me) = editor {
            s.smtp = None;
            s.targets.retain(|t| t.user.as_deref() == Some(me));
            s.machines.retain(|m, _| own_machine(editor, m));
        }
        s
    }

    /// Replaces every setting (the admin's `PUT /api/v1/alerts`); a
    /// password or token given as [`REDACTED`] keeps the stored one.
    pub fn replace(&self, mut next: AlertSettings) -> Result<Arc<AlertSettings>, AlertError> {
        self.update(|s| {
            if let (Some(n), Some(old)) = (&mut next.smtp, &s.smtp) {
                if n.password.as_deref() == Some(REDACTED) {
                    n.password = old.password.clone();
                }
            }
            for t in &mut next.targets {
                if t.token.as_deref() == Some(REDACTED) {
                    t.token = s
                        .targets
                        .iter()
                        .find(|o| o.id == t.id)
                        .and_then(|o| o.token.clone());
                }
            }
            *s = next;
            Ok(())
        })
    }

    /// Adds a target with a new id; a user's is always their own.
    pub fn add_target(&self, editor: Editor, mut t: Target) -> Result<Target, AlertError> {
        t.id = crate::accounts::random_hex(4);
        if let Editor::User(me) = editor {
            t.user = Some(me.to_string());
        }
        settings::validate_target(&t).map_err(AlertError::Invalid)?;
        let added = t.clone();
        self.update(|s| {
            s.targets.push(t);
            Ok(())
        })?;
        Ok(added)
    }

    /// Removes a target `editor` owns; false when there is none.
    pub fn remove_target(&self, editor: Editor, id: &str) -> Result<bool, AlertError> {
        let mut found = false;
        self.update(|s| {
            let before = s.targets.len();
            s.targets.retain(|t| {
                let mine = match editor {
                    Editor::Admin => true,
                    Editor::User(me) => t.user.as_deref() == Some(me),
                };
                !(mine && t.id == id)
            });
            found = s.targets.len() < before;
            Ok(())
        })?;
        Ok(found)
    }

    /// Sets (or, with none, clears) a machine's stale threshold.
    pub fn set_stale_after(
        &self,
        editor: Editor,
        machine: &str,
        stale_after: Option<Span>,
    ) -> Result<(), AlertError> {
        if !own_machine(editor, machine) {
            return Err(AlertError::NotYours(
                "only the admin sets alerts for another user's machines".into(),
            ));
        }
        self.update(|s| {
            match stale_after {
                Some(v) => {
                    s.machines
                        .entry(machine.to_string())
                        .or_default()
                        .stale_after = Some(v);
                }
                None => {
                    s.machines.remove(machine);
                }
            }
            Ok(())
        })?;
        Ok(())
    }
}

impl Alerts {
    /// The conditions and deliveries `editor` may see: the admin all; a
    /// user those of their machines and their own targets.
    pub fn state_for(&self, editor: Editor) -> State {
        let settings = self.settings();
        let mut st = self.state();
        st.active
            .retain(|_, a| concerns(editor, a.machine.as_deref()));
        st.outbox.retain(|d| match editor {
            Editor::Admin => true,
            Editor::User(me) => settings
                .targets
                .iter()
                .any(|t| t.id == d.target && t.user.as_deref() == Some(me)),
        });
        st
    }
}

/// Whether `editor` hears of `machine` (none: the server), for what the
/// page shows them.
pub fn concerns(editor: Editor, machine: Option<&str>) -> bool {
    match (editor, machine) {
        (Editor::Admin, _) => true,
        (Editor::User(_), None) => false,
        (_, Some(m)) => own_machine(editor, m),
    }
}

/// What `nimbus-server check` found, kept for the alerts
/// (`DATA/check.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub at: i64,
    pub read_data: bool,
    pub problems: usize,
    /// Damaged versions by `user/machine`.
    pub machines: BTreeMap<String, usize>,
}

const CHECK: &str = "check.json";

impl CheckResult {
    pub fn save(&self, data: &Path, vault: &Vault) -> io::Result<()> {
        vault.write_atomic(&data.join(CHECK), Obj::Check, true, |w| {
            serde_json::to_writer(&mut *w, self).map_err(io::Error::other)
        })
    }

    pub fn load(data: &Path, vault: &Vault) -> Option<CheckResult> {
        let b = vault.read_object(&data.join(CHECK), Obj::Check).ok()?;
        serde_json::from_slice(&b).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::settings::Shape;
    use super::*;

    fn settings() -> AlertSettings {
        let target = |id: &str, user: Option<&str>| Target {
            id: id.into(),
            user: user.map(str::to_string),
            email: Some(format!("{id}@example.org")),
            webhook: None,
            shape: Shape::Generic,
            token: None,
        };
        AlertSettings {
            repeat: Some(Span(100)),
            targets: vec![target("admin", None), target("alice", Some("alice"))],
            ..AlertSettings::default()
        }
    }

    fn stale(machine: &str) -> Finding {
        Finding {
            condition: Condition::Stale,
            machine: Some(machine.into()),
            detail: "no successful backup for 3d".into(),
        }
    }

    #[test]
    fn a_condition_is_told_once_reminded_after_repeat_and_recovered_once() {
        let s = settings();
        let mut st = State::default();
        assert_eq!(st.evaluate(&s, 1000, &[stale("alice/laptop")]), 2);
        assert_eq!(st.evaluate(&s, 1050, &[stale("alice/laptop")]), 0);
        assert_eq!(st.evaluate(&s, 1100, &[stale("alice/laptop")]), 2);
        assert_eq!(st.outbox[2].event, Event::Reminder);
        assert_eq!(st.evaluate(&s, 1101, &[]), 2);
        assert_eq!(st.outbox[4].event, Event::Recovered);
        assert_eq!(st.evaluate(&s, 1200, &[]), 0);
        // Bob's machine and the server reach the admin only.
        let disk = Finding {
            condition: Condition::Disk,
            machine: None,
            detail: "3% free".into(),
        };
        assert_eq!(st.evaluate(&s, 1300, &[stale("bob/pc"), disk]), 2);
        assert!(st.outbox[6..].iter().all(|d| d.target == "admin"));
    }

    #[test]
    fn failed_deliveries_wait_longer_each_time_then_give_up() {
        let s = settings();
        let mut st = State::default();
        st.evaluate(&s, 0, &[stale("bob/pc")]);
        let id = st.outbox[0].id;
        st.attempted(id, 10, 5, Err("refused".into()));
        assert_eq!(st.outbox[0].next_try, 15);
        st.attempted(id, 15, 5, Err("refused".into()));
        assert_eq!(st.outbox[0].next_try, 25);
        for _ in 2..MAX_ATTEMPTS {
            st.attempted(id, 100, 5, Err("refused".into()));
        }
        assert!(st.outbox[0].gave_up && !st.outbox[0].pending());
        assert_eq!(st.outbox[0].attempts, MAX_ATTEMPTS);
    }

    #[test]
    fn test_notices_go_to_the_asking_users_targets() {
        let dir = tempfile::tempdir().unwrap();
        let a = Alerts::open(dir.path(), Vault::plain()).unwrap();
        a.update(|s| {
            *s = settings();
            Ok(())
        })
        .unwrap();
        assert_eq!(a.test(Editor::User("alice"), 5).unwrap(), 1);
        assert_eq!(a.test(Editor::Admin, 5).unwrap(), 1);
        let back = Alerts::open(dir.path(), Vault::plain()).unwrap();
        let st = back.state();
        assert_eq!(st.outbox.len(), 2);
        assert_eq!(st.outbox[0].target, "alice");
        assert_eq!(st.outbox[1].target, "admin");
        assert_eq!(back.settings().targets.len(), 2);
        // An invalid change writes nothing.
        assert!(a
            .update(|s| {
                s.failing_passes = Some(0);
                Ok(())
            })
            .is_err());
        let back = Alerts::open(dir.path(), Vault::plain()).unwrap();
        assert_eq!(back.settings().failing_passes, None);
    }
}
