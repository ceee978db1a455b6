//! mysql_native_password against the `[[users]]` of the configuration. A
//! low floor: the configuration checks hashes with it, the front end
//! authenticates clients with it; it imports nothing of lockstep.
//!
//! The client sends `SHA1(password) XOR SHA1(salt + SHA1(SHA1(password)))`.
//! Knowing only the stored `SHA1(SHA1(password))` (what `mysql.user` keeps, and
//! what `password_hash` holds), the server recovers `SHA1(password)` from the
//! response and checks that its SHA1 is the stored hash.

use rand::Rng;
use sha1::{Digest, Sha1};

pub const SALT_LEN: usize = 20;

/// What is kept per user: no password, or SHA1(SHA1(password)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Empty,
    DoubleSha1([u8; 20]),
}

impl Credential {
    /// A user's credential from its configured `password` or
    /// `password_hash` (None when it has neither, or a malformed hash).
    pub fn from_config(password: Option<&str>, password_hash: Option<&str>) -> Option<Credential> {
        match (password, password_hash) {
            (Some(""), _) => Some(Credential::Empty),
            (Some(p), _) => Some(Credential::DoubleSha1(sha1(&sha1(p.as_bytes())))),
            (None, Some(h)) => parse_password_hash(h),
            (None, None) => None,
        }
    }

    /// Checks a mysql_native_password response made with `salt`.
    pub fn verify(&self, salt: &[u8], response: &[u8]) -> bool {
        match self {
            Credential::Empty => response.is_empty(),
            Credential::DoubleSha1(stage2) => {
                if response.len() != 20 {
                    return false;
                }
                let mut hasher = Sha1::new();
                hasher.update(salt);
                hasher.update(stage2);
                let mask = hasher.finalize();
                let stage1: Vec<u8> = response
                    .iter()
                    .zip(mask.iter())
                    .map(|(r, m)| r ^ m)
                    .collect();
                constant_time_eq(&sha1(&stage1), stage2)
            }
        }
    }
}

/// Parses `*` + 40 hex digits (an empty string is an empty password, as in mysql.user).
pub fn parse_password_hash(text: &str) -> Option<Credential> {
    if text.is_empty() {
        return Some(Credential::Empty);
    }
    let hex_part = text.strip_prefix('*')?;
    let bytes = hex::decode(hex_part).ok()?;
    let stage2: [u8; 20] = bytes.try_into().ok()?;
    Some(Credential::DoubleSha1(stage2))
}

/// The `*HEX` form of a password, as `PASSWORD('…')` prints it.
pub fn password_hash(password: &str) -> String {
    format!("*{}", hex::encode_upper(sha1(&sha1(password.as_bytes()))))
}

/// A client's answer to `salt` for `password` (used by tests and tools).
pub fn scramble(password: &[u8], salt: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = sha1(password);
    let stage2 = sha1(&stage1);
    let mut hasher = Sha1::new();
    hasher.update(salt);
    hasher.update(stage2);
    let mask = hasher.finalize();
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

/// A fresh salt: printable ASCII without `$` (some clients cut the salt at
/// `$`) and never `\0` (it ends the salt in the handshake packet).
pub fn new_salt() -> [u8; SALT_LEN] {
    let mut rng = rand::thread_rng();
    let mut salt = [0u8; SALT_LEN];
    for b in salt.iter_mut() {
        *b = loop {
            let c = rng.gen_range(0x21u8..0x7f);
            if c != b'$' {
                break c;
            }
        };
    }
    salt
}

fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_mysql_password_function() {
        // SELECT PASSWORD('secret') on MariaDB.
        assert_eq!(
            password_hash("secret"),
            "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
        );
    }

    #[test]
    fn verifies_right_and_rejects_wrong_password() {
        let salt = new_salt();
        let cred = parse_password_hash(&password_hash("secret")).expect("hash");
        assert!(cred.verify(&salt, &scramble(b"secret", &salt)));
        assert!(!cred.verify(&salt, &scramble(b"Secret", &salt)));
        assert!(!cred.verify(&salt, b""));
        assert!(!cred.verify(&salt, b"short"));
    }

    #[test]
    fn empty_password_needs_empty_response() {
        let salt = new_salt();
        assert!(Credential::Empty.verify(&salt, b""));
        assert!(!Credential::Empty.verify(&salt, &scramble(b"x", &salt)));
    }

    #[test]
    fn salt_avoids_nul_and_dollar() {
        for _ in 0..1000 {
            assert!(new_salt().iter().all(|&b| b != 0 && b != b'$'));
        }
    }
}
