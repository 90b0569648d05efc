//! Login throttling by source address and by user name.
//!
//! - **By source** (as sshd's `PerSourcePenalties`): after the n-th failure
//!   from an address, that address is locked for `base × 2^(n−1)`, at most
//!   `max`; a login from it while locked is 429 with no password check.
//! - **By user**: after the n-th failure for a user, from anywhere, the user
//!   is under attack for `base × 2^(n−1)`, at most `max`. Meanwhile a source
//!   with failures on record is refused, and a source with none (the
//!   administrator at another address) still gets through, on a slower
//!   lane of one check per `lane` for that user (as sshd's `MaxStartups` bounds
//!   unauthenticated work): a guesser spread over many addresses gets at
//!   most one guess per `lane`, and the right password from a clean
//!   address waits at most `lane`.
//! - A success clears the source's and the user's record.
//!
//! Checks for one user run one at a time ([`super::Auth`]'s caller holds a
//! per-user turn around admit → check → record), so parallel guesses are
//! counted: the second sees the first's failure before its own check.
//! Records are bounded: stale ones are dropped, and past [`MAX_RECORDS`] the
//! oldest go first.
//!
//! Limit: a guesser behind the same address as the administrator (one NAT)
//! locks them out too, for as long as the source lock lasts, unless their
//! client logged in before and sends its device id ([`super::Auth`]), which
//! skips these locks.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Records kept per map before the oldest are dropped.
pub const MAX_RECORDS: usize = 4096;

/// The source a limit counts for an address: an IPv4 address itself (an
/// IPv4-mapped IPv6 one as IPv4), an IPv6 address by its /64, since one
/// host commonly holds a whole /64 and could rotate through it.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

/// The delay after `failures` failed logins.
pub fn delay(failures: u32, base: Duration, max: Duration) -> Duration {
    let shift = failures.saturating_sub(1).min(20);
    base.saturating_mul(1 << shift).min(max)
}

#[derive(Debug, Clone, Copy)]
struct Penalty {
    failures: u32,
    until: Instant,
    /// For a user under attack: when its lane admits the next clean
    /// source.
    lane_next: Option<Instant>,
}

/// The throttle's state.
#[derive(Debug)]
pub struct Throttle {
    base: Duration,
    max: Duration,
    lane: Duration,
    sources: HashMap<IpAddr, Penalty>,
    users: HashMap<String, Penalty>,
}

/// Forgets records whose lock ended long ago; past `MAX_RECORDS`, the ones
/// that end first.
fn prune<K: Eq + Hash + Clone>(map: &mut HashMap<K, Penalty>, now: Instant, keep: Duration) {
    map.retain(|_, p| p.until + keep > now);
    if map.len() >= MAX_RECORDS {
        let mut ends: Vec<(Instant, K)> = map.iter().map(|(k, p)| (p.until, k.clone())).collect();
        ends.sort_by_key(|(until, _)| *until);
        for (_, k) in ends.into_iter().take(map.len() + 1 - MAX_RECORDS) {
            map.remove(&k);
        }
    }
}

impl Throttle {
    /// Locks of `base` doubling up to `max`; one clean-source check per
    /// `lane` while a user is under attack.
    pub fn new(base: Duration, max: Duration, lane: Duration) -> Self {
        Self {
            base,
            max,
            lane,
            sources: HashMap::new(),
            users: HashMap::new(),
        }
    }

    /// Whether a login from `ip` as `user` may be checked now; else how
    /// long to wait.
    pub fn admit(&mut self, ip: IpAddr, user: &str, now: Instant) -> Result<(), Duration> {
        if let Some(wait) = self
            .sources
            .get(&ip)
            .and_then(|p| p.until.checked_duration_since(now))
        {
            if !wait.is_zero() {
                return Err(wait);
            }
        }
        let source_failed = self.sources.contains_key(&ip);
        let lane = self.lane;
        let Some(u) = self.users.get_mut(user) else {
            return Ok(());
        };
        let Some(user_wait) = u.until.checked_duration_since(now).filter(|w| !w.is_zero()) else {
            return Ok(());
        };
        if source_failed {
            // A source that failed before waits out the user's lock.
            return Err(user_wait);
        }
        // The user's own lane: guesses for another name do not take it.
        match u.lane_next.and_then(|t| t.checked_duration_since(now)) {
            Some(wait) if !wait.is_zero() => Err(wait),
            _ => {
                u.lane_next = Some(now + lane);
                Ok(())
            }
        }
    }

    /// Records a failure of `user` from `ip`; returns the source's lock.
    pub fn failed(&mut self, ip: IpAddr, user: &str, now: Instant) -> Duration {
        let keep = self.max * 4;
        prune(&mut self.sources, now, keep);
        prune(&mut self.users, now, keep);
        let source = self.sources.entry(ip).or_insert(Penalty {
            failures: 0,
            until: now,
            lane_next: None,
        });
        source.failures += 1;
        let lock = delay(source.failures, self.base, self.max);
        source.until = now + lock;
        let u = self.users.entry(user.to_string()).or_insert(Penalty {
            failures: 0,
            until: now,
            lane_next: None,
        });
        u.failures += 1;
        u.until = now + delay(u.failures, self.base, self.max);
        lock
    }

    /// A failure recorded at admission ([`Throttle::failed`]) proved a
    /// failure once its check ended: its locks start again from `now`, so
    /// a check that outlasts the lock does not let the next guess in as it
    /// ends.
    pub fn confirm(&mut self, ip: IpAddr, user: &str, now: Instant) {
        let (base, max) = (self.base, self.max);
        for p in [self.sources.get_mut(&ip), self.users.get_mut(user)]
            .into_iter()
            .flatten()
        {
            p.until = p.until.max(now + delay(p.failures, base, max));
        }
    }

    /// Clears the records of `ip` and `user` after a success.
    pub fn succeeded(&mut self, ip: IpAddr, user: &str) {
        self.sources.remove(&ip);
        self.users.remove(user);
    }

    /// How many sources and users have records (for tests and metrics).
    pub fn records(&self) -> (usize, usize) {
        (self.sources.len(), self.users.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

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
    fn a_guessing_source_is_locked_and_a_clean_one_gets_through_on_the_lane() {
        let mut t = Throttle::new(100 * MS, 10_000 * MS, 1000 * MS);
        let now = Instant::now();
        assert!(t.admit(ip(1), "admin", now).is_ok());
        assert_eq!(t.failed(ip(1), "admin", now), 100 * MS);
        assert!(t.failed(ip(1), "admin", now) >= 200 * MS);
        // The guesser is locked; the user is under attack.
        assert!(t.admit(ip(1), "admin", now + 50 * MS).is_err());
        // A clean source gets the lane, once per lane interval.
        assert!(t.admit(ip(2), "admin", now + 50 * MS).is_ok());
        let wait = t.admit(ip(3), "admin", now + 60 * MS).unwrap_err();
        assert!(wait > 900 * MS && wait <= 1000 * MS, "{wait:?}");
        // The user lock (200 ms after two failures) is over: no lane.
        assert!(t.admit(ip(3), "admin", now + 1100 * MS).is_ok());
        // A source whose own lock is over, while the user is still under
        // attack, waits for the user lock: it failed before.
        let t0 = now + 2000 * MS;
        for _ in 0..4 {
            t.failed(ip(1), "admin", t0);
        }
        t.failed(ip(5), "admin", t0);
        assert!(t.admit(ip(5), "admin", t0 + 150 * MS).is_err());
        // A success clears the user's record: clean sources are free again.
        t.succeeded(ip(2), "admin");
        assert!(t.admit(ip(4), "admin", t0 + 150 * MS).is_ok());
        assert!(t.admit(ip(6), "admin", t0 + 150 * MS).is_ok());
    }

    #[test]
    fn a_confirmed_failure_locks_from_the_end_of_its_check() {
        let mut t = Throttle::new(100 * MS, 10_000 * MS, 1000 * MS);
        let now = Instant::now();
        t.failed(ip(1), "admin", now);
        // The check took longer than the lock.
        let end = now + 300 * MS;
        assert!(t.admit(ip(1), "admin", end).is_ok());
        t.confirm(ip(1), "admin", end);
        assert!(t.admit(ip(1), "admin", end + 50 * MS).is_err());
    }

    #[test]
    fn guesses_for_another_name_do_not_take_the_users_lane() {
        let mut t = Throttle::new(1000 * MS, 10_000 * MS, 1000 * MS);
        let now = Instant::now();
        t.failed(ip(1), "admin", now);
        t.failed(ip(2), "(unknown)", now);
        assert!(t.admit(ip(3), "(unknown)", now).is_ok());
        assert!(t.admit(ip(4), "(unknown)", now).is_err());
        assert!(t.admit(ip(5), "admin", now).is_ok());
    }

    #[test]
    fn ipv6_sources_are_their_64_and_mapped_ones_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_of(a), source_of(b));
        assert_ne!(source_of(a), source_of(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(source_of(mapped), ip(1));
        assert_eq!(source_of(ip(1)), ip(1));
    }

    #[test]
    fn records_are_bounded() {
        let mut t = Throttle::new(MS, 10 * MS, MS);
        let now = Instant::now();
        for i in 0..(MAX_RECORDS as u32 + 100) {
            t.failed(IpAddr::from(i.to_be_bytes()), "admin", now);
        }
        assert!(t.records().0 <= MAX_RECORDS);
        // Long after, they are forgotten.
        t.failed(ip(1), "x", now + Duration::from_secs(60));
        assert_eq!(t.records(), (1, 1));
    }
}
