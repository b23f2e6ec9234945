//! Passwords (argon2id) and session tokens (random, stored only as a hash).

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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
    fn params(self) -> Params {
        Params::new(self.memory_kib, self.iterations, 1, None).unwrap_or_else(|_| Params::default())
    }
}

/// argon2's working memory (`memory_kib` of it), kept and reused: a fresh
/// allocation per hash is kept by the C allocator after it is freed (its
/// mmap threshold grows to the hash's size), so memory grew by megabytes
/// with every sign-in.
pub(crate) type Memory = Vec<Block>;

/// Runs argon2 into `memory`, growing it if needed.
fn argon2_into(
    argon: Argon2<'_>,
    password: &[u8],
    salt: Salt<'_>,
    out_len: usize,
    memory: &mut Memory,
) -> argon2::password_hash::Result<Output> {
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf)?;
    let blocks = argon.params().block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    Output::init_with(out_len, |out| {
        Ok(argon.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])?)
    })
}

/// Hashes a password into a PHC string (algorithm, cost and salt included).
pub(crate) fn hash_password(
    password: &str,
    cost: PasswordCost,
    memory: &mut Memory,
) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    let params = cost.params();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let out = argon2_into(
        argon,
        password.as_bytes(),
        salt.as_salt(),
        Params::DEFAULT_OUTPUT_LEN,
        memory,
    )
    .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(salt.as_salt()),
        hash: Some(out),
    };
    Ok(phc.to_string())
}

/// Checks a password against a stored PHC string, at the cost stored with
/// it. With no stored hash (an unknown user) it still does the work, so
/// timing does not tell who exists.
pub(crate) fn verify_password(
    password: &str,
    stored: Option<&str>,
    cost: PasswordCost,
    memory: &mut Memory,
) -> bool {
    match stored.and_then(|s| PasswordHash::new(s).ok()) {
        Some(hash) => matches(password, &hash, memory).unwrap_or(false),
        None => {
            let _ = hash_password(password, cost, memory);
            false
        }
    }
}

fn matches(
    password: &str,
    hash: &PasswordHash<'_>,
    memory: &mut Memory,
) -> argon2::password_hash::Result<bool> {
    let (Some(salt), Some(expected)) = (hash.salt, &hash.hash) else {
        return Ok(false);
    };
    let algorithm = Algorithm::try_from(hash.algorithm)?;
    let version = hash
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let argon = Argon2::new(algorithm, version, Params::try_from(hash)?);
    let out = argon2_into(argon, password.as_bytes(), salt, expected.len(), memory)?;
    // `Output`'s equality is constant-time.
    Ok(&out == expected)
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
    /// argon2 memory of the hashes not running: at most one per permit.
    memory: std::sync::Mutex<Vec<Memory>>,
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
            memory: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// argon2 memory for a turn (empty the first times; it grows once).
    pub(crate) fn take_memory(&self) -> Memory {
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default()
    }

    /// Returns argon2 memory after a turn, for the next one.
    pub(crate) fn put_memory(&self, memory: Memory) {
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(memory);
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
        let m = &mut Memory::new();
        let h = hash_password("correct horse", CHEAP, m).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(verify_password("correct horse", Some(&h), CHEAP, m));
        assert!(!verify_password("wrong horse", Some(&h), CHEAP, m));
        assert!(!verify_password("correct horse", None, CHEAP, m));
        assert!(!verify_password("correct horse", Some("garbage"), CHEAP, m));
        // A hash made at another cost verifies at its own cost, in the
        // same (regrown) memory.
        let big = PasswordCost {
            memory_kib: 256,
            iterations: 2,
        };
        let h2 = hash_password("correct horse", big, &mut Memory::new()).unwrap();
        assert!(verify_password("correct horse", Some(&h2), CHEAP, m));
        assert_eq!(m.len(), 256);
    }

    #[test]
    fn hashes_match_the_argon2_crates_own() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, CHEAP.params());
        let theirs = argon
            .hash_password(b"correct horse", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify_password(
            "correct horse",
            Some(&theirs),
            CHEAP,
            &mut Memory::new()
        ));
        let ours = hash_password("correct horse", CHEAP, &mut Memory::new()).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon.verify_password(b"correct horse", &parsed).is_ok());
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
