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

/// Bounds password hashing: at most `running` hashes at once (each holds
/// `memory_kib` of argon2 memory and a core), and at most `max_waiting`
/// sign-ins queued behind them. Past that a sign-in is refused at once, so a
/// login storm costs the server neither unbounded threads nor memory.
#[derive(Debug)]
pub(crate) struct HashGate {
    permits: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
}

/// Sign-ins are queued too deep: refuse, the client retries later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GateFull;

impl HashGate {
    pub(crate) fn new(running: usize, max_waiting: usize) -> Self {
        Self {
            permits: tokio::sync::Semaphore::new(running.max(1)),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            max_waiting,
        }
    }

    /// Waits for a turn to hash, or refuses when `max_waiting` sign-ins are
    /// already waiting. The turn lasts as long as the permit.
    pub(crate) async fn enter(&self) -> Result<tokio::sync::SemaphorePermit<'_>, GateFull> {
        use std::sync::atomic::Ordering;
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(GateFull);
        }
        // Counted out again even if the connection goes away while waiting.
        struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            }
        }
        let _waiting = Waiting(&self.waiting);
        self.permits.acquire().await.map_err(|_| GateFull)
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

    #[tokio::test]
    async fn the_hash_gate_queues_up_to_its_limit_then_refuses() {
        let gate = std::sync::Arc::new(HashGate::new(1, 2));
        let first = gate.enter().await.unwrap();
        let (a, b) = (gate.clone(), gate.clone());
        let w1 = tokio::spawn(async move { a.enter().await.map(drop) });
        let w2 = tokio::spawn(async move { b.enter().await.map(drop) });
        while gate.waiting.load(std::sync::atomic::Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.enter().await.unwrap_err(), GateFull);
        drop(first);
        assert!(w1.await.unwrap().is_ok());
        assert!(w2.await.unwrap().is_ok());
        assert!(gate.enter().await.is_ok());
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
