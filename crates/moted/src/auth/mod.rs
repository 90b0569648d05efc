//! Sessions (bearer tokens), login throttling ([`throttle`]) and the
//! bounded password-check pool ([`password`]).
//!
//! A token is 256 random bits in hex, good until its expiry, until its
//! holder logs out (`POST /v1/logout`), or until the credential it was
//! issued under changes: each session keeps a digest of the
//! `system.admin_password_hash` it was issued under, and a token whose
//! digest is not the current one is refused and forgotten, so changing the
//! password revokes every older token. Sessions are listed
//! (`GET /v1/sessions`) by a short id (a digest of the token), never the
//! token. They live in memory: a restart of moted logs everyone out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mote_api::api::SessionInfo;
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

pub mod password;
pub mod throttle;

pub use throttle::{delay, Throttle};

/// Live sessions kept at most; past it, the oldest is dropped at login.
pub const MAX_SESSIONS: usize = 256;

/// One logged-in session.
#[derive(Debug, Clone)]
struct Session {
    user: String,
    source: IpAddr,
    issued_ms: u64,
    expires_ms: u64,
    expires: Instant,
    credential: u64,
}

/// Tokens and the throttle.
pub struct Auth {
    ttl: Duration,
    tokens: HashMap<String, Session>,
    rng: SystemRandom,
    /// Failed-login records.
    pub throttle: Throttle,
}

/// A short digest of a credential (the PHC string): what a session is
/// bound to, so the secret itself is not kept beside every token.
pub fn credential_of(phc: &str) -> u64 {
    let d = digest(&SHA256, phc.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    u64::from_be_bytes(b)
}

/// The public id of a token: 12 hex digits of its SHA-256.
pub fn session_id(token: &str) -> String {
    hex::encode(&digest(&SHA256, token.as_bytes()).as_ref()[..6])
}

impl Auth {
    /// Tokens live `ttl`; failures lock for `base` doubling up to `max`;
    /// a user under attack admits one clean-source check per `lane`.
    pub fn new(ttl: Duration, base: Duration, max: Duration, lane: Duration) -> Self {
        Self {
            ttl,
            tokens: HashMap::new(),
            rng: SystemRandom::new(),
            throttle: Throttle::new(base, max, lane),
        }
    }

    /// Issues a token for `user` from `ip` under `credential`; returns it
    /// and its lifetime.
    pub fn issue(&mut self, ip: IpAddr, user: &str, credential: u64) -> Option<(String, Duration)> {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).ok()?;
        let token = hex::encode(bytes);
        let now = Instant::now();
        self.tokens.retain(|_, s| s.expires > now);
        while self.tokens.len() >= MAX_SESSIONS {
            let oldest = self
                .tokens
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(t, _)| t.clone())?;
            self.tokens.remove(&oldest);
        }
        let issued_ms = crate::now_ms();
        self.tokens.insert(
            token.clone(),
            Session {
                user: user.to_string(),
                source: ip,
                issued_ms,
                expires_ms: issued_ms + self.ttl.as_millis() as u64,
                expires: now + self.ttl,
                credential,
            },
        );
        Some((token, self.ttl))
    }

    /// The user a live token belongs to, if it was issued under
    /// `credential`; a token of an older credential is forgotten.
    pub fn check(&mut self, token: &str, credential: u64) -> Option<String> {
        let s = self.tokens.get(token)?;
        if s.expires <= Instant::now() || s.credential != credential {
            self.tokens.remove(token);
            return None;
        }
        Some(s.user.clone())
    }

    /// Ends the session of `token`; whether there was one.
    pub fn revoke(&mut self, token: &str) -> bool {
        self.tokens.remove(token).is_some()
    }

    /// Live sessions under `credential`, oldest first; `current` marks the
    /// one of `token`.
    pub fn sessions(&mut self, credential: u64, token: &str) -> Vec<SessionInfo> {
        let now = Instant::now();
        self.tokens
            .retain(|_, s| s.expires > now && s.credential == credential);
        let mut out: Vec<SessionInfo> = self
            .tokens
            .iter()
            .map(|(t, s)| SessionInfo {
                id: session_id(t),
                user: s.user.clone(),
                source: s.source.to_string(),
                issued_ms: s.issued_ms,
                expires_ms: s.expires_ms,
                current: t == token,
            })
            .collect();
        out.sort_by(|a, b| (a.issued_ms, &a.id).cmp(&(b.issued_ms, &b.id)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn tokens_expire() {
        let mut a = Auth::new(
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
        );
        let (t, _) = a.issue(IP, "admin", 1).unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(a.check(&t, 1), None);
    }

    #[test]
    fn a_new_credential_or_a_logout_ends_a_session() {
        let ttl = Duration::from_secs(60);
        let mut a = Auth::new(ttl, Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let (t1, _) = a.issue(IP, "admin", credential_of("old")).unwrap();
        let (t2, _) = a.issue(IP, "admin", credential_of("old")).unwrap();
        assert_eq!(a.check(&t1, credential_of("old")).as_deref(), Some("admin"));
        let listed = a.sessions(credential_of("old"), &t1);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed.iter().filter(|s| s.current).count(), 1);
        assert!(listed
            .iter()
            .all(|s| !s.id.is_empty() && !t1.contains(&s.id)));
        assert!(a.revoke(&t1));
        assert_eq!(a.check(&t1, credential_of("old")), None);
        assert_eq!(a.check(&t2, credential_of("new")), None);
        assert_eq!(a.check(&t2, credential_of("old")), None);
        assert!(a.sessions(credential_of("old"), "").is_empty());
    }

    #[test]
    fn sessions_are_bounded() {
        let ttl = Duration::from_secs(60);
        let mut a = Auth::new(ttl, Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for _ in 0..MAX_SESSIONS + 10 {
            a.issue(IP, "admin", 1).unwrap();
        }
        assert_eq!(a.sessions(1, "").len(), MAX_SESSIONS);
    }
}
