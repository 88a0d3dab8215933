//! Enrollment codes: "Add a machine" on a user's page makes one, and
//! `nimbus-client enroll --server URL CODE` trades it for a device token,
//! as `login` trades a password. A code is random (80 bits), single use,
//! valid for [`ENROLLMENT_TTL`], bound to one user, shown once and stored
//! only as its hash, and revocable until used. Spending it and registering
//! the device are one atomic write of the accounts file: two machines
//! racing with one code get one device.

use super::{random_hex, token_hash, AccountError, AccountStore, Accounts, Device, Role};
use nimbus_common::time::unix_now;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

/// How long a code stays valid.
pub const ENROLLMENT_TTL: i64 = 24 * 3600;
/// How long spent codes stay listed before they are forgotten.
const ENROLLMENT_MEMORY: i64 = 7 * 24 * 3600;
/// Open codes a user may hold at once.
pub const MAX_OPEN_ENROLLMENTS: usize = 20;

/// Crockford's base32: no I, L, O or U, so a code read aloud or typed from
/// a screen is hard to get wrong.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrollment {
    pub id: String,
    code_hash: String,
    /// The user the machine will belong to.
    pub user: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// The device made with it; a code serves once.
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub revoked: bool,
}

impl Enrollment {
    /// Neither used, revoked nor expired.
    pub fn is_open(&self, now: i64) -> bool {
        self.device.is_none() && !self.revoked && now < self.expires_at
    }
}

/// A new code: 16 symbols of Crockford base32 in groups of four
/// (`7KQ2-M9XD-...`).
fn new_code() -> String {
    let mut bytes = [0u8; 10];
    OsRng.fill_bytes(&mut bytes);
    let mut bits = 0u128;
    for b in bytes {
        bits = bits << 8 | u128::from(b);
    }
    let symbols: Vec<char> = (0..16)
        .map(|i| ALPHABET[((bits >> (75 - 5 * i)) & 31) as usize] as char)
        .collect();
    symbols
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// A code as typed: case, spaces and dashes do not matter, and the letters
/// Crockford reads as digits (O, I, L) are read so. `None` when it cannot
/// be a code at all.
pub fn normalise_code(typed: &str) -> Option<String> {
    let mut out = String::with_capacity(16);
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            ' ' | '-' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if ALPHABET.contains(&(c as u8)) && c.is_ascii() => c,
            _ => return None,
        };
        if out.len() == 16 {
            return None;
        }
        out.push(c);
    }
    (out.len() == 16).then_some(out)
}

fn code_hash(code: &str) -> Option<String> {
    normalise_code(code).map(|c| token_hash(&c))
}

impl AccountStore {
    /// Makes a code for `user`'s next machine, by `by` (the user, or an
    /// admin); returns it and the code (shown once). Spent codes older than
    /// a week are forgotten.
    pub fn create_enrollment(
        &self,
        user: &str,
        by: &str,
    ) -> Result<(Enrollment, String), AccountError> {
        let code = new_code();
        let now = unix_now();
        let e = Enrollment {
            id: random_hex(6),
            code_hash: code_hash(&code).expect("a new code is a code"),
            user: user.to_string(),
            created_by: by.to_string(),
            created_at: now,
            expires_at: now.saturating_add(ENROLLMENT_TTL),
            device: None,
            revoked: false,
        };
        self.update(|a| {
            if !a.users.contains_key(user) {
                return Err(AccountError::NoSuchUser(user.to_string()));
            }
            a.enrollments
                .retain(|e| e.is_open(now) || now - e.created_at < ENROLLMENT_MEMORY);
            let open = a
                .enrollments
                .iter()
                .filter(|e| e.user == user && e.is_open(now))
                .count();
            if open >= MAX_OPEN_ENROLLMENTS {
                return Err(AccountError::TooManyEnrollments);
            }
            a.enrollments.push(e.clone());
            Ok(())
        })?;
        Ok((e, code))
    }

    /// Withdraws an open code. `user` is whose codes the caller may touch
    /// (`None`: an admin, anyone's).
    pub fn revoke_enrollment(&self, id: &str, user: Option<&str>) -> Result<(), AccountError> {
        self.update(|a| {
            let now = unix_now();
            let e = a
                .enrollments
                .iter_mut()
                .find(|e| e.id == id && e.is_open(now) && user.is_none_or(|u| e.user == u))
                .ok_or_else(|| AccountError::NoSuchEnrollment(id.to_string()))?;
            e.revoked = true;
            Ok(())
        })
    }

    /// Spends `code` and registers `machine` under its user, in one write;
    /// returns the device and its token. A code that was used, revoked,
    /// has expired, is unknown, or whose user is gone or disabled is
    /// [`AccountError::EnrollmentInvalid`], and changes nothing.
    pub fn enroll(&self, code: &str, machine: &str) -> Result<(Device, String), AccountError> {
        let wanted = code_hash(code).ok_or(AccountError::EnrollmentInvalid)?;
        self.update(|a| {
            let now = unix_now();
            let i = a
                .enrollments
                .iter()
                .position(|e| e.code_hash == wanted && e.is_open(now))
                .ok_or(AccountError::EnrollmentInvalid)?;
            let user = a.enrollments[i].user.clone();
            if a.users.get(&user).is_none_or(|u| u.disabled) {
                return Err(AccountError::EnrollmentInvalid);
            }
            let (device, token) = super::new_device(a, &user, machine);
            a.enrollments[i].device = Some(device.id.clone());
            Ok((device, token))
        })
    }
}

impl Accounts {
    /// The open codes for `user` (`None`: everyone's), oldest first.
    pub fn open_enrollments(&self, user: Option<&str>) -> Vec<&Enrollment> {
        let now = unix_now();
        self.enrollments
            .iter()
            .filter(|e| e.is_open(now) && user.is_none_or(|u| e.user == u))
            .collect()
    }

    /// Whether `name` may make codes for `user`: for themself, or an admin
    /// for anyone.
    pub fn may_enroll_for(&self, name: &str, user: &str) -> bool {
        name == user || self.users.get(name).is_some_and(|u| u.role == Role::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::Vault;

    #[test]
    fn codes_look_right_and_are_read_forgivingly() {
        let code = new_code();
        assert_eq!(code.len(), 19, "{code}");
        assert_eq!(code.matches('-').count(), 3);
        assert_eq!(normalise_code(&code).unwrap(), code.replace('-', ""));
        assert_eq!(
            normalise_code(" 7kq2-m9xd oi1l-0000 ").unwrap(),
            "7KQ2M9XD01110000"
        );
        assert_eq!(normalise_code("7KQ2-M9XD-0000"), None, "too short");
        assert_eq!(normalise_code("7KQ2-M9XD-0000-0000-0"), None, "too long");
        assert_eq!(
            normalise_code("7KQ2-M9XD-0000-000U"),
            None,
            "not in the alphabet"
        );
        assert_eq!(normalise_code("7KQ2-M9XD-0000-000é"), None);
        assert_ne!(new_code(), new_code());
    }

    #[test]
    fn a_code_enrolls_one_machine_once_and_only_its_hash_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = AccountStore::open(dir.path(), Vault::plain()).unwrap();
        s.add_user("alice", "correct horse", Role::User).unwrap();
        s.add_user("root", "battery staple", Role::Admin).unwrap();
        assert!(matches!(
            s.create_enrollment("nobody", "root"),
            Err(AccountError::NoSuchUser(_))
        ));
        let (e, code) = s.create_enrollment("alice", "alice").unwrap();
        let on_disk = std::fs::read_to_string(dir.path().join(super::super::FILE)).unwrap();
        assert!(!on_disk.contains(&code) && !on_disk.contains(&code.replace('-', "")));

        let (device, token) = s.enroll(&code.to_lowercase(), "laptop").unwrap();
        assert_eq!(
            (device.user.as_str(), device.machine.as_str()),
            ("alice", "laptop")
        );
        let a = s.load().unwrap();
        assert_eq!(a.authenticate(&token).unwrap().user, "alice");
        assert_eq!(a.enrollments[0].device.as_deref(), Some(device.id.as_str()));
        assert!(a.open_enrollments(Some("alice")).is_empty());
        // Spent: a second use changes nothing.
        assert!(matches!(
            s.enroll(&code, "desktop"),
            Err(AccountError::EnrollmentInvalid)
        ));
        assert_eq!(s.load().unwrap().devices.len(), 1);
        // Unknown, malformed.
        assert!(matches!(
            s.enroll("0000-0000-0000-0000", "desktop"),
            Err(AccountError::EnrollmentInvalid)
        ));
        assert!(matches!(
            s.enroll("not a code", "desktop"),
            Err(AccountError::EnrollmentInvalid)
        ));
        // Revoked; a spent code cannot be revoked; others' codes are not
        // the user's to revoke.
        let (e2, code2) = s.create_enrollment("alice", "root").unwrap();
        assert!(matches!(
            s.revoke_enrollment(&e.id, None),
            Err(AccountError::NoSuchEnrollment(_))
        ));
        let (e3, _) = s.create_enrollment("root", "root").unwrap();
        assert!(matches!(
            s.revoke_enrollment(&e3.id, Some("alice")),
            Err(AccountError::NoSuchEnrollment(_))
        ));
        s.revoke_enrollment(&e2.id, Some("alice")).unwrap();
        assert!(matches!(
            s.enroll(&code2, "desktop"),
            Err(AccountError::EnrollmentInvalid)
        ));
        // Expired.
        let (_, code4) = s.create_enrollment("alice", "alice").unwrap();
        s.update(|a| {
            a.enrollments.last_mut().unwrap().expires_at = unix_now() - 1;
            Ok(())
        })
        .unwrap();
        assert!(matches!(
            s.enroll(&code4, "desktop"),
            Err(AccountError::EnrollmentInvalid)
        ));
        // A disabled user's code does not enroll.
        let (_, code5) = s.create_enrollment("alice", "alice").unwrap();
        s.set_disabled("alice", true).unwrap();
        assert!(matches!(
            s.enroll(&code5, "desktop"),
            Err(AccountError::EnrollmentInvalid)
        ));
        assert_eq!(s.load().unwrap().devices.len(), 1);
    }

    #[test]
    fn open_codes_per_user_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let s = AccountStore::open(dir.path(), Vault::plain()).unwrap();
        s.add_user("alice", "correct horse", Role::User).unwrap();
        for _ in 0..MAX_OPEN_ENROLLMENTS {
            s.create_enrollment("alice", "alice").unwrap();
        }
        assert!(matches!(
            s.create_enrollment("alice", "alice"),
            Err(AccountError::TooManyEnrollments)
        ));
    }
}
