//! Bearer tokens and login throttling.
//!
//! A token is 256 random bits in hex, good until its expiry. Failed logins are
//! counted per source address; after the n-th failure the address is locked
//! for `base × 2^(n-1)`, capped at `max`, and a login while locked gets 429
//! with `Retry-After`. A successful login clears the count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};

/// Tokens and failure counts.
pub struct Auth {
    ttl: Duration,
    base: Duration,
    max: Duration,
    tokens: HashMap<String, (String, Instant)>,
    failures: HashMap<IpAddr, (u32, Instant)>,
    rng: SystemRandom,
}

/// The delay after `failures` failed logins.
pub fn delay(failures: u32, base: Duration, max: Duration) -> Duration {
    let shift = failures.saturating_sub(1).min(20);
    base.saturating_mul(1 << shift).min(max)
}

impl Auth {
    /// Tokens live `ttl`; failures lock for `base` doubling up to `max`.
    pub fn new(ttl: Duration, base: Duration, max: Duration) -> Self {
        Self {
            ttl,
            base,
            max,
            tokens: HashMap::new(),
            failures: HashMap::new(),
            rng: SystemRandom::new(),
        }
    }

    /// How long `ip` must still wait, if it is locked.
    pub fn locked(&self, ip: IpAddr) -> Option<Duration> {
        let (_, until) = self.failures.get(&ip)?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a failure; returns the lock it earned.
    pub fn failed(&mut self, ip: IpAddr) -> Duration {
        let n = self.failures.get(&ip).map_or(0, |f| f.0) + 1;
        let d = delay(n, self.base, self.max);
        self.failures.insert(ip, (n, Instant::now() + d));
        d
    }

    /// Issues a token for `user`; returns it and its lifetime.
    pub fn issue(&mut self, ip: IpAddr, user: &str) -> Option<(String, Duration)> {
        self.failures.remove(&ip);
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).ok()?;
        let token = hex::encode(bytes);
        let now = Instant::now();
        self.tokens.retain(|_, (_, exp)| *exp > now);
        self.tokens
            .insert(token.clone(), (user.to_string(), now + self.ttl));
        Some((token, self.ttl))
    }

    /// The user a live token belongs to.
    pub fn check(&self, token: &str) -> Option<String> {
        let (user, exp) = self.tokens.get(token)?;
        (*exp > Instant::now()).then(|| user.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_cap() {
        let b = Duration::from_millis(250);
        let m = Duration::from_secs(30);
        assert_eq!(delay(1, b, m), b);
        assert_eq!(delay(2, b, m), b * 2);
        assert_eq!(delay(3, b, m), b * 4);
        assert_eq!(delay(30, b, m), m);
    }

    #[test]
    fn tokens_expire() {
        let mut a = Auth::new(Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let ip = IpAddr::from([127, 0, 0, 1]);
        let (t, _) = a.issue(ip, "admin").unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(a.check(&t), None);
    }
}
