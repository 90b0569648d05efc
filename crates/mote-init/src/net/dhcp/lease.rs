//! A DHCPv4 lease and its clock: when to renew (T1), rebind (T2) and when it
//! runs out; and the retransmission delays. Pure functions of durations, so
//! the timing is tested without waiting.

use std::net::Ipv4Addr;
use std::time::Duration;

/// Leases shorter than this are taken as this long, so a server cannot make
/// the client spin.
pub(crate) const MIN_LEASE_SECS: u32 = 4;
/// The lease time when an ACK lacks one (RFC 2131 says it must have one).
pub(crate) const DEFAULT_LEASE_SECS: u32 = 3600;
/// Option 51's value for a lease that never ends.
pub(crate) const INFINITE: u32 = u32::MAX;

/// First retransmission delay while looking for a server, doubled after
/// each attempt up to [`MAX_RETRANSMIT`]. RFC 2131 §4.1 starts at 4 s; we
/// start lower because a node boots onto a quiet link and a first DISCOVER
/// lost while the link comes up would otherwise cost 4 s of boot.
pub(crate) const FIRST_RETRANSMIT: Duration = Duration::from_secs(1);
/// Cap on the retransmission delay (RFC 2131: 64 s).
pub(crate) const MAX_RETRANSMIT: Duration = Duration::from_secs(32);
/// While renewing or rebinding, retransmit after half the time left, but not
/// more often than this (RFC 2131 §4.4.5).
pub(crate) const MIN_RENEW_RETRY: Duration = Duration::from_secs(60);

/// What a server granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Our address.
    pub address: Ipv4Addr,
    /// Its prefix length, from the subnet mask option.
    pub prefix_len: u8,
    /// The first router, for the default route.
    pub router: Option<Ipv4Addr>,
    /// Resolvers.
    pub dns: Vec<Ipv4Addr>,
    /// The server that granted it (where renewals go).
    pub server: Ipv4Addr,
    /// Lease length in seconds; [`u32::MAX`] for a lease that never ends.
    pub lease_secs: u32,
    /// Renewal and rebinding times, `None` for a lease that never ends.
    pub timing: Option<Timing>,
}

/// When to act, counted from the moment the lease was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// T1: start renewing with the granting server.
    pub renew: Duration,
    /// T2: start rebinding with any server.
    pub rebind: Duration,
    /// The address must go.
    pub expiry: Duration,
}

/// Where a lease stands at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Bound,
    Renewing,
    Rebinding,
    Expired,
}

impl Timing {
    /// From options 51 (lease), 58 (T1) and 59 (T2). The defaults are those of
    /// RFC 2131 §4.4.5: T1 = lease / 2, T2 = lease × 7/8; a T1 or T2 out of
    /// order (T1 < T2 < lease) is replaced by its default. `None` when the
    /// lease never ends.
    pub(crate) fn from_options(
        lease: Option<u32>,
        t1: Option<u32>,
        t2: Option<u32>,
    ) -> Option<Self> {
        let lease = lease.unwrap_or(DEFAULT_LEASE_SECS);
        if lease == INFINITE {
            return None;
        }
        let lease = u64::from(lease.max(MIN_LEASE_SECS)) * 1000;
        let t2 = t2
            .map(|t| u64::from(t) * 1000)
            .filter(|t| *t > 0 && *t < lease)
            .unwrap_or(lease * 7 / 8);
        let t1 = t1
            .map(|t| u64::from(t) * 1000)
            .filter(|t| *t > 0 && *t < t2)
            .unwrap_or((lease / 2).min(t2));
        Some(Self {
            renew: Duration::from_millis(t1),
            rebind: Duration::from_millis(t2),
            expiry: Duration::from_millis(lease),
        })
    }

    /// The phase `elapsed` after the request that got the lease.
    pub(crate) fn phase(&self, elapsed: Duration) -> Phase {
        if elapsed >= self.expiry {
            Phase::Expired
        } else if elapsed >= self.rebind {
            Phase::Rebinding
        } else if elapsed >= self.renew {
            Phase::Renewing
        } else {
            Phase::Bound
        }
    }
}

/// How long to wait for an answer after the `attempt`-th transmission
/// (0-based) while selecting or requesting: 1, 2, 4, … 32 s, each moved by
/// up to ±1/8 at random (`random` is any `u32`) so that nodes booted
/// together do not keep transmitting together.
pub(crate) fn retransmit_delay(attempt: u32, random: u32) -> Duration {
    let base = FIRST_RETRANSMIT
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_RETRANSMIT);
    let spread = base / 4; // ±1/8
    let offset = spread.mul_f64(f64::from(random) / f64::from(u32::MAX));
    base - base / 8 + offset
}

/// How long to wait for an answer to a renewal or rebinding request when
/// `remaining` is left until the next phase: half of it, or
/// [`MIN_RENEW_RETRY`] when that is longer, but never past the phase's end.
pub(crate) fn renew_retry(remaining: Duration) -> Duration {
    (remaining / 2).max(MIN_RENEW_RETRY).min(remaining)
}

/// The prefix length of a subnet mask; `None` unless its ones are contiguous.
pub(crate) fn prefix_len(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// The classful prefix length, for a server that sends no subnet mask.
pub(crate) fn classful_prefix_len(address: Ipv4Addr) -> u8 {
    match address.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn defaults_are_half_and_seven_eighths() {
        let timing = Timing::from_options(Some(3600), None, None).unwrap();
        assert_eq!(
            (timing.renew, timing.rebind, timing.expiry),
            (S(1800), S(3150), S(3600))
        );
    }

    #[test]
    fn server_times_are_used_when_in_order_and_replaced_when_not() {
        let given = Timing::from_options(Some(100), Some(30), Some(60)).unwrap();
        assert_eq!((given.renew, given.rebind), (S(30), S(60)));
        let t2_past_lease = Timing::from_options(Some(100), Some(30), Some(200)).unwrap();
        assert_eq!(t2_past_lease.rebind, Duration::from_millis(87_500));
        let t1_past_t2 = Timing::from_options(Some(100), Some(90), Some(80)).unwrap();
        assert_eq!((t1_past_t2.renew, t1_past_t2.rebind), (S(50), S(80)));
        let t2_before_default_t1 = Timing::from_options(Some(100), None, Some(40)).unwrap();
        assert_eq!(
            (t2_before_default_t1.renew, t2_before_default_t1.rebind),
            (S(40), S(40))
        );
    }

    #[test]
    fn infinite_missing_and_tiny_leases() {
        assert_eq!(Timing::from_options(Some(INFINITE), None, None), None);
        assert_eq!(
            Timing::from_options(None, None, None).unwrap().expiry,
            S(3600)
        );
        assert_eq!(
            Timing::from_options(Some(0), None, None).unwrap().expiry,
            S(4)
        );
    }

    /// The lease's life on a fake clock: the phase at each second of a
    /// 10-second lease (udhcpd's `option lease 10`).
    #[test]
    fn phases_follow_the_clock() {
        let timing = Timing::from_options(Some(10), None, None).unwrap();
        let at = |ms: u64| timing.phase(Duration::from_millis(ms));
        assert_eq!(at(0), Phase::Bound);
        assert_eq!(at(4_999), Phase::Bound);
        assert_eq!(at(5_000), Phase::Renewing);
        assert_eq!(at(8_749), Phase::Renewing);
        assert_eq!(at(8_750), Phase::Rebinding);
        assert_eq!(at(9_999), Phase::Rebinding);
        assert_eq!(at(10_000), Phase::Expired);
        assert_eq!(at(u64::MAX / 2), Phase::Expired);
    }

    #[test]
    fn retransmissions_back_off_to_a_bound_with_jitter() {
        let low: Vec<_> = (0..8).map(|a| retransmit_delay(a, 0)).collect();
        let high: Vec<_> = (0..8).map(|a| retransmit_delay(a, u32::MAX)).collect();
        assert_eq!(low[0], Duration::from_millis(875));
        assert_eq!(high[0], Duration::from_millis(1125));
        let middle = retransmit_delay(1, u32::MAX / 2);
        assert!(
            middle > Duration::from_millis(1999) && middle <= S(2),
            "{middle:?}"
        );
        assert!(low.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(high[7], S(36));
        assert_eq!(retransmit_delay(u32::MAX, u32::MAX), S(36), "no overflow");
    }

    #[test]
    fn renewal_retries_halve_down_to_a_minute_within_the_phase() {
        assert_eq!(renew_retry(S(1000)), S(500));
        assert_eq!(renew_retry(S(100)), S(60));
        assert_eq!(renew_retry(S(3)), S(3));
        assert_eq!(renew_retry(S(0)), S(0));
    }

    #[test]
    fn masks_to_prefix_lengths() {
        assert_eq!(prefix_len(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(prefix_len(Ipv4Addr::new(255, 255, 240, 0)), Some(20));
        assert_eq!(prefix_len(Ipv4Addr::BROADCAST), Some(32));
        assert_eq!(prefix_len(Ipv4Addr::UNSPECIFIED), Some(0));
        assert_eq!(prefix_len(Ipv4Addr::new(255, 0, 255, 0)), None);
        assert_eq!(classful_prefix_len(Ipv4Addr::new(10, 1, 1, 1)), 8);
        assert_eq!(classful_prefix_len(Ipv4Addr::new(172, 16, 1, 1)), 16);
        assert_eq!(classful_prefix_len(Ipv4Addr::new(192, 168, 1, 1)), 24);
    }
}
