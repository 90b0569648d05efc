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
//!
//! A successful login also gives the client a device id (OWASP's "device
//! cookie"): a later login that sends it skips the throttle's address and
//! user locks, so a guesser behind the same address cannot lock out a
//! client that proved the password before. An id lives 30 days, is bound
//! to the credential, and ends after three wrong passwords; only digests
//! of ids are kept, at most [`MAX_DEVICES`].

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

/// Device ids kept at most; past it, the least recently used goes.
pub const MAX_DEVICES: usize = 64;

/// How long a device id lives without a login.
pub const DEVICE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Wrong passwords with one device id before it is forgotten.
pub const DEVICE_FAILURES: u32 = 3;

/// A client that logged in once (OWASP's "device cookie"): known by a
/// digest of its id, bound to the credential it proved.
#[derive(Debug, Clone)]
struct Device {
    credential: u64,
    failures: u32,
    last: Instant,
}

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
    devices: HashMap<String, Device>,
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

/// How a device id is kept: its SHA-256, so the map holds no usable id.
fn device_key(device: &str) -> String {
    hex::encode(digest(&SHA256, device.as_bytes()).as_ref())
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
            devices: HashMap::new(),
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

    /// Whether `device` is a live device id under `credential`.
    pub fn device_known(&mut self, device: &str, credential: u64) -> bool {
        let now = Instant::now();
        self.devices
            .retain(|_, d| now.duration_since(d.last) < DEVICE_TTL && d.credential == credential);
        self.devices.contains_key(&device_key(device))
    }

    /// Counts a wrong password given with `device`; the third ends it.
    pub fn device_failed(&mut self, device: &str) {
        let key = device_key(device);
        if let Some(d) = self.devices.get_mut(&key) {
            d.failures += 1;
            if d.failures >= DEVICE_FAILURES {
                self.devices.remove(&key);
            }
        }
    }

    /// After a right password: `device` again if it is live (its failures
    /// forgiven), else a new device id under `credential`.
    pub fn remember_device(&mut self, device: Option<&str>, credential: u64) -> Option<String> {
        let now = Instant::now();
        if let Some(id) = device.filter(|d| self.device_known(d, credential)) {
            if let Some(d) = self.devices.get_mut(&device_key(id)) {
                d.failures = 0;
                d.last = now;
            }
            return Some(id.to_string());
        }
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).ok()?;
        let id = hex::encode(bytes);
        while self.devices.len() >= MAX_DEVICES {
            let oldest = self
                .devices
                .iter()
                .min_by_key(|(_, d)| d.last)
                .map(|(k, _)| k.clone())?;
            self.devices.remove(&oldest);
        }
        self.devices.insert(
            device_key(&id),
            Device {
                credential,
                failures: 0,
                last: now,
            },
        );
        Some(id)
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
    fn device_ids_live_under_their_credential_and_die_of_three_failures() {
        let mut a = Auth::new(
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
        );
        let d = a.remember_device(None, 7).unwrap();
        assert!(a.device_known(&d, 7));
        assert!(!a.device_known("other", 7));
        assert_eq!(a.remember_device(Some(&d), 7).as_deref(), Some(d.as_str()));
        a.device_failed(&d);
        a.device_failed(&d);
        assert!(a.device_known(&d, 7));
        a.device_failed(&d);
        assert!(!a.device_known(&d, 7));
        let e = a.remember_device(None, 7).unwrap();
        assert!(!a.device_known(&e, 8));
        assert!(!a.device_known(&e, 7), "a new credential ended it");
        for _ in 0..MAX_DEVICES + 5 {
            a.remember_device(None, 9).unwrap();
        }
        assert_eq!(a.devices.len(), MAX_DEVICES);
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
