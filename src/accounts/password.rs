//! Password hashes: argon2id (RFC 9106) in PHC string form.
//!
//! Parameters: m = 19 MiB, t = 2, p = 1 — OWASP's Password Storage Cheat Sheet
//! recommendation for argon2id, and the `argon2` crate's defaults. RFC 9106 §4's
//! "second recommended option" (64 MiB, t = 3, p = 4) costs more than three times the
//! memory per login; with `accounts.max_parallel_verifications` logins at once the OWASP
//! setting keeps a burst of AUTH commands within a small server's memory while still
//! costing an attacker 19 MiB per guess. Verification reads the parameters from each stored
//! hash, so hashes made with other (stronger) parameters keep working.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Why a password cannot be hashed or a hash not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("{0}")]
    Argon2(String),
}

fn hasher() -> Argon2<'static> {
    // The OWASP parameters above; `Params::DEFAULT` is exactly m=19456 KiB, t=2, p=1.
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

/// A new PHC string for `password`, with a random salt.
pub fn hash(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

/// Checks a stored PHC string: Ok(true) when `password` matches. Err when the stored string
/// is not a hash homing can check (then nothing was computed).
pub fn verify(phc: &str, password: &str) -> Result<bool, HashError> {
    let parsed = PasswordHash::new(phc).map_err(|e| HashError::Argon2(e.to_string()))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(HashError::Argon2(format!("algorithm {} is not argon2id", parsed.algorithm)));
    }
    Ok(hasher().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Checks `password` against a hash of a random password with the current parameters: the
/// same work as a real check, for logins that do not exist, so the time an AUTH takes does
/// not tell which users exist. Always false.
pub fn verify_decoy(password: &str) -> bool {
    let _ = verify(decoy(), password);
    false
}

/// The decoy hash, made once with the current parameters.
pub fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash(SaltString::generate(&mut OsRng).as_str()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_the_documented_parameters() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert_eq!(verify(&h, "correct horse"), Ok(true));
        assert_eq!(verify(&h, "Correct horse"), Ok(false));
        assert_ne!(hash("correct horse").unwrap(), h, "salted");
        assert!(verify("plain text", "x").is_err());
        let argon2i = "$argon2i$v=19$m=16,t=2,p=1$c29tZXNhbHQ$2pAWXjH4ZgaEs4P2Sfw2kQ";
        assert!(verify(argon2i, "x").is_err());
        assert!(!verify_decoy("correct horse"));
    }
}
