//! Passwords (argon2id) and session tokens (random, stored only as a hash).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use beckon_protocol::SessionToken;
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

/// Cost of argon2id. The defaults are OWASP's (19 MiB, 2 passes): about
/// 20–40 ms per login on a laptop core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
        }
    }
}

impl PasswordCost {
    fn hasher(self) -> Argon2<'static> {
        let params = Params::new(self.memory_kib, self.iterations, 1, None)
            .unwrap_or_else(|_| Params::default());
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

/// Hashes a password into a PHC string (algorithm, cost and salt included).
pub(crate) fn hash_password(password: &str, cost: PasswordCost) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    cost.hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against a stored PHC string. With no stored hash (an
/// unknown user) it still does the work, so timing does not tell who exists.
pub(crate) fn verify_password(password: &str, stored: Option<&str>, cost: PasswordCost) -> bool {
    match stored.and_then(|s| PasswordHash::new(s).ok()) {
        Some(hash) => cost
            .hasher()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        None => {
            let _ = hash_password(password, cost);
            false
        }
    }
}

/// A fresh session token: 256 random bits, base64url.
pub(crate) fn new_token() -> SessionToken {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    SessionToken::try_from(URL_SAFE_NO_PAD.encode(bytes))
        .expect("base64url of 32 bytes is a valid token")
}

/// What the store keeps of a token.
pub(crate) fn token_hash(token: &SessionToken) -> Vec<u8> {
    Sha256::digest(token.expose().as_bytes()).to_vec()
}

/// A fresh call id: 128 random bits as 32 hex digits.
pub(crate) fn new_call_id() -> beckon_protocol::CallId {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    beckon_protocol::CallId::try_from(hex).expect("32 hex digits are a valid call id")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: PasswordCost = PasswordCost {
        memory_kib: 64,
        iterations: 1,
    };

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let h = hash_password("correct horse", CHEAP).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", Some(&h), CHEAP));
        assert!(!verify_password("wrong horse", Some(&h), CHEAP));
        assert!(!verify_password("correct horse", None, CHEAP));
        assert!(!verify_password("correct horse", Some("garbage"), CHEAP));
    }

    #[test]
    fn tokens_and_call_ids_are_unique_and_well_formed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_ne!(new_call_id(), new_call_id());
    }
}
