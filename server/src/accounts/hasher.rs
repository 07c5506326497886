//! Account password hashing (argon2id) off the actors' threads.
//!
//! Each hash takes ~19 MiB and tens of milliseconds of one core
//! ([`PARAMS`]); the [`Hasher`] pool runs at most [`HASHER_THREADS`] at once,
//! so a wave of logins queues here instead of taking the memory and the
//! cores of everything else.

use actix::prelude::*;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// OWASP's current minimum for argon2id (Password Storage Cheat Sheet):
/// m = 19 MiB, t = 2, p = 1.
pub const M_COST_KIB: u32 = 19 * 1024;
/// Passes over memory.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;

/// Hashes at once, at most (memory: this many times ~19 MiB).
pub const HASHER_THREADS: usize = 2;

fn argon2() -> Result<Argon2<'static>, HashError> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).map_err(|e| HashError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashing failed (never for a valid password and parameters).
#[derive(Debug, Clone, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// A new PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) for
/// `password`, with a fresh random salt.
///
/// # Errors
///
/// [`HashError`] if the hash cannot be computed.
pub fn hash(password: &str) -> Result<String, HashError> {
    let salt = SaltString::encode_b64(&protocol::crypto::random_bytes::<16>()).map_err(|e| HashError(e.to_string()))?;
    Ok(argon2()?.hash_password(password.as_bytes(), &salt).map_err(|e| HashError(e.to_string()))?.to_string())
}

/// Whether `password` matches the PHC string `phc` (any argon2 parameters
/// it names: a hash made under older parameters still verifies). A
/// malformed `phc` matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
}

/// The pool of hashing threads.
#[derive(Debug, Default)]
pub struct Hasher;

impl Actor for Hasher {
    type Context = SyncContext<Self>;
}

impl Hasher {
    /// Starts the pool.
    pub fn start_pool() -> Addr<Hasher> {
        SyncArbiter::start(HASHER_THREADS, || Hasher)
    }
}

/// Hash a new password.
#[derive(Message)]
#[rtype(result = "Result<String, HashError>")]
pub struct Hash(pub String);

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hash(..)")
    }
}

/// Check a password against a PHC string.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Verify {
    /// The password given.
    pub password: String,
    /// The stored PHC string.
    pub phc: String,
}

impl std::fmt::Debug for Verify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verify(..)")
    }
}

impl Handler<Hash> for Hasher {
    type Result = Result<String, HashError>;
    fn handle(&mut self, msg: Hash, _: &mut SyncContext<Self>) -> Self::Result {
        hash(&msg.0)
    }
}

impl Handler<Verify> for Hasher {
    type Result = bool;
    fn handle(&mut self, msg: Verify, _: &mut SyncContext<Self>) -> bool {
        verify(&msg.password, &msg.phc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_at_owasp_parameters_and_verify() {
        let phc = hash("correct horse").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse", &phc));
        assert!(!verify("correct hors", &phc));
        assert!(!verify("correct horse", "not a phc string"));
        // Salted: the same password hashes differently.
        assert_ne!(phc, hash("correct horse").expect("hash"));
    }
}
