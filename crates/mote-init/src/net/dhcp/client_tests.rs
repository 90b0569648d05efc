//! The client against a scripted server, on tokio's paused clock: hours of
//! lease life run in milliseconds, and every timer fires at its exact time.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::Duration;

use dhcproto::v4::{Message, MessageType, OptionCode};
use dhcproto::Decodable;
use tokio::time::Instant;

use super::*;
use crate::net::dhcp::packet::tests::{reply, MAC};

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

/// How the fake server treats each kind of request.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Ack,
    Nak,
    Silent,
}

struct Server {
    lease_secs: u32,
    discover: Answer,
    select: Answer,
    renew: Answer,
    rebind: Answer,
}

/// What went over the wire and what the host was told, with times.
#[derive(Default)]
struct Record {
    sent: Vec<(Duration, &'static str, Ipv4Addr)>,
    host: Vec<(Duration, &'static str)>,
}

struct Fake {
    start: Instant,
    server: Server,
    inbox: RefCell<VecDeque<Vec<u8>>>,
    record: Rc<RefCell<Record>>,
}

impl Transport for Fake {
    async fn send(&self, payload: &[u8], to: Ipv4Addr) -> io::Result<()> {
        let message = Message::from_bytes(payload).map_err(io::Error::other)?;
        let kind = match message.opts().msg_type() {
            Some(MessageType::Discover) => "discover",
            Some(MessageType::Request)
                if message.opts().get(OptionCode::ServerIdentifier).is_some() =>
            {
                "select"
            }
            Some(MessageType::Request) if to == Ipv4Addr::BROADCAST => "rebind",
            Some(MessageType::Request) => "renew",
            _ => "other",
        };
        self.record
            .borrow_mut()
            .sent
            .push((self.start.elapsed(), kind, to));
        let answer = match kind {
            "discover" => self.server.discover,
            "select" => self.server.select,
            "renew" => self.server.renew,
            "rebind" => self.server.rebind,
            _ => Answer::Silent,
        };
        let reply_kind = match (kind, answer) {
            (_, Answer::Silent) => return Ok(()),
            ("discover", _) => MessageType::Offer,
            (_, Answer::Ack) => MessageType::Ack,
            (_, Answer::Nak) => MessageType::Nak,
        };
        self.inbox.borrow_mut().push_back(reply(
            message.xid(),
            reply_kind,
            ADDRESS,
            self.server.lease_secs,
        ));
        Ok(())
    }

    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(next) = self.inbox.borrow_mut().pop_front() else {
            return std::future::pending().await;
        };
        buf[..next.len()].copy_from_slice(&next);
        Ok(next.len())
    }
}

struct Host {
    start: Instant,
    record: Rc<RefCell<Record>>,
}

impl LeaseHost for Host {
    fn bound(&mut self, lease: &Lease, previous: Option<&Lease>) {
        assert_eq!(lease.address, ADDRESS);
        let what = if previous.is_some() {
            "renewed"
        } else {
            "bound"
        };
        self.record
            .borrow_mut()
            .host
            .push((self.start.elapsed(), what));
    }

    fn lost(&mut self, _: &Lease) {
        self.record
            .borrow_mut()
            .host
            .push((self.start.elapsed(), "lost"));
    }
}

/// Run a client against `server` for `run_for` of (virtual) time.
async fn run(server: Server, run_for: Duration) -> (Record, Events) {
    let start = Instant::now();
    let record = Rc::new(RefCell::new(Record::default()));
    let events = Events::new(false);
    let client = Client {
        interface: "eth0".into(),
        mac: MAC,
        transport: Fake {
            start,
            server,
            inbox: RefCell::new(VecDeque::new()),
            record: record.clone(),
        },
        host: Host {
            start,
            record: record.clone(),
        },
        events: events.clone(),
        random: Random::new(&MAC),
    };
    let _ = tokio::time::timeout(run_for, client.run()).await;
    let record = record.take();
    (record, events)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn server(lease_secs: u32, renew: Answer, rebind: Answer) -> Server {
    Server {
        lease_secs,
        discover: Answer::Ack,
        select: Answer::Ack,
        renew,
        rebind,
    }
}

#[tokio::test(start_paused = true)]
async fn a_lease_is_renewed_at_t1_with_the_granting_server() {
    let (record, events) = run(server(10, Answer::Ack, Answer::Ack), secs(21.0)).await;
    let host: Vec<_> = record
        .host
        .iter()
        .map(|(t, w)| (t.as_secs_f64(), *w))
        .collect();
    assert_eq!(
        host,
        [
            (0.0, "bound"),
            (5.0, "renewed"),
            (10.0, "renewed"),
            (15.0, "renewed"),
            (20.0, "renewed")
        ]
    );
    let renewals: Vec<_> = record
        .sent
        .iter()
        .filter(|(_, k, _)| *k == "renew")
        .collect();
    assert_eq!(renewals.len(), 4);
    assert!(
        renewals.iter().all(|(_, _, to)| *to == SERVER),
        "renewals are unicast to the server"
    );
    let messages: Vec<String> = events.recent().into_iter().map(|e| e.message).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("T1 reached: renewing 192.0.2.10 with 192.0.2.1")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("eth0: renewed: 192.0.2.10/24")),
        "{messages:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_means_rebinding_at_t2_then_expiry_then_starting_over() {
    let (record, _) = run(server(10, Answer::Silent, Answer::Silent), secs(10.5)).await;
    let sent: Vec<_> = record
        .sent
        .iter()
        .map(|(t, k, _)| (t.as_secs_f64(), *k))
        .collect();
    assert_eq!(
        sent,
        [
            (0.0, "discover"),
            (0.0, "select"),
            (5.0, "renew"),
            (8.75, "rebind"),
            (10.0, "discover"),
            (10.0, "select")
        ]
    );
    let host: Vec<_> = record
        .host
        .iter()
        .map(|(t, w)| (t.as_secs_f64(), *w))
        .collect();
    assert_eq!(host, [(0.0, "bound"), (10.0, "lost"), (10.0, "bound")]);
}

#[tokio::test(start_paused = true)]
async fn rebinding_with_any_server_keeps_the_lease() {
    let (record, _) = run(server(10, Answer::Silent, Answer::Ack), secs(9.0)).await;
    let host: Vec<_> = record
        .host
        .iter()
        .map(|(t, w)| (t.as_secs_f64(), *w))
        .collect();
    assert_eq!(host, [(0.0, "bound"), (8.75, "renewed")]);
    assert!(record
        .sent
        .iter()
        .any(|(_, k, to)| *k == "rebind" && *to == Ipv4Addr::BROADCAST));
}

#[tokio::test(start_paused = true)]
async fn a_nak_on_renewal_drops_the_lease_at_once() {
    let (record, _) = run(server(10, Answer::Nak, Answer::Silent), secs(5.5)).await;
    let host: Vec<_> = record
        .host
        .iter()
        .map(|(t, w)| (t.as_secs_f64(), *w))
        .collect();
    assert_eq!(host, [(0.0, "bound"), (5.0, "lost"), (5.0, "bound")]);
}

#[tokio::test(start_paused = true)]
async fn a_nak_when_requesting_starts_over_after_a_pause() {
    let mut nak = server(10, Answer::Ack, Answer::Ack);
    nak.select = Answer::Nak;
    let (record, _) = run(nak, secs(5.0)).await;
    assert!(record.host.is_empty());
    let discovers: Vec<f64> = record
        .sent
        .iter()
        .filter(|(_, k, _)| *k == "discover")
        .map(|(t, _, _)| t.as_secs_f64())
        .collect();
    assert_eq!(discovers, [0.0, 2.0, 4.0]);
}

#[tokio::test(start_paused = true)]
async fn with_no_server_discover_backs_off_to_a_bound_and_never_stops() {
    let mut nobody = server(10, Answer::Ack, Answer::Ack);
    nobody.discover = Answer::Silent;
    let (record, events) = run(nobody, secs(300.0)).await;
    let times: Vec<f64> = record
        .sent
        .iter()
        .map(|(t, _, _)| t.as_secs_f64())
        .collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, gap) in gaps.iter().enumerate() {
        let base = 2f64.powi(i as i32).min(32.0);
        assert!(
            (base * 0.875..=base * 1.125).contains(gap),
            "gap {i} is {gap} s: {gaps:?}"
        );
    }
    assert!(
        times.len() >= 10,
        "still sending after 5 minutes: {times:?}"
    );
    let info = events
        .recent()
        .into_iter()
        .filter(|e| e.level == crate::events::Level::Info)
        .count();
    assert_eq!(info, 1, "retransmissions are logged at debug level only");
}

#[tokio::test(start_paused = true)]
async fn an_infinite_lease_is_never_renewed() {
    let (record, _) = run(server(u32::MAX, Answer::Ack, Answer::Ack), secs(100_000.0)).await;
    assert_eq!(record.host.len(), 1);
    assert_eq!(record.sent.len(), 2);
}
