//! Serving threads: one single-threaded tokio runtime per worker, as nginx
//! has one process per worker.
//!
//! Job: run the connections on `--workers` threads, each with its own
//! runtime (scheduler, I/O driver, timers), and keep the number of open
//! connections even across them.
//!
//! Why not tokio's work-stealing pool: measured under wrk on 2 cores, a
//! runtime per thread spent less CPU per request (no cross-thread wakes or
//! stealing; a connection, its request and its backend socket stay on one
//! driver) and served about 10% more requests per second on the static,
//! 404 and proxy cases.
//!
//! Spreading: every worker accepts on its own registration of each
//! listening socket, so whichever is free first takes a new connection.
//! A worker holding more than its share (the least loaded worker's count
//! plus [`slack`]) hands the connection to the least loaded one instead;
//! without that, the worker that wakes first on a burst of connects takes
//! them all (one took all 64 of wrk's, and latency suffered).
//!
//! Limit: the connections open on all workers together are counted; past
//! [`Workers::set_limit`] a new connection is handed to `serve` as not
//! admitted (the server answers it 503 and closes it) and is not counted.
//!
//! Each worker's thread knows its index ([`index`], 1-based; 0 on other
//! threads), so per-worker state such as the proxy's idle backend
//! connections is kept apart without locks shared across threads.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

static COUNT: OnceLock<usize> = OnceLock::new();

/// The worker running on this thread: 1..=count, or 0 off the workers.
pub(crate) fn index() -> usize {
    INDEX.with(Cell::get)
}

/// How many workers the process runs (0 before [`Workers::start`]), so
/// per-worker tables know their size: `count() + 1` slots cover every
/// [`index`].
pub(crate) fn count() -> usize {
    COUNT.get().copied().unwrap_or(0)
}

/// Connections a worker may hold above the least loaded one: 2, plus an
/// eighth of that one's count, so short-lived connections rarely move.
fn slack(least: usize) -> usize {
    2 + least / 8
}

/// Threads each worker may run blocking work on (Argon2 checks of Basic
/// credentials, about 19 MiB each, and compression on the fly); more waits
/// in line. tokio's default is 512, so a flood of wrong passwords could
/// have made hundreds of threads and gigabytes.
const BLOCKING_THREADS: usize = 2;

pub(crate) struct Workers {
    handles: Vec<Handle>,
    /// Open connections per worker (0-based).
    load: Box<[AtomicUsize]>,
    /// Connections open on all workers together (taken before a
    /// connection is placed, so two workers cannot both take the last
    /// place).
    total: AtomicUsize,
    /// Most connections open at once, all workers together.
    limit: AtomicUsize,
}

/// A listening socket as one worker's driver knows it.
pub(crate) struct Acceptor(TcpListener);

impl Workers {
    /// Starts `n` threads, each running its own runtime until the process
    /// ends. Once per process.
    pub(crate) fn start(n: usize) -> std::io::Result<Arc<Self>> {
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(BLOCKING_THREADS)
                .build()?;
            handles.push(rt.handle().clone());
            std::thread::Builder::new()
                .name(format!("mote-web-{}", i + 1))
                .spawn(move || {
                    INDEX.with(|x| x.set(i + 1));
                    rt.block_on(std::future::pending::<()>());
                })?;
        }
        let _ = COUNT.set(n);
        Ok(Arc::new(Self {
            handles,
            load: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            total: AtomicUsize::new(0),
            limit: AtomicUsize::new(usize::MAX),
        }))
    }

    /// Sets the most connections open at once (`limits.max_connections`).
    pub(crate) fn set_limit(&self, n: usize) {
        self.limit.store(n, Ordering::Relaxed);
    }

    /// `l` (non-blocking) registered with each worker's driver, in worker
    /// order.
    pub(crate) fn acceptors(&self, l: &std::net::TcpListener) -> std::io::Result<Vec<Acceptor>> {
        self.handles
            .iter()
            .map(|h| {
                let _in = h.enter();
                TcpListener::from_std(l.try_clone()?).map(Acceptor)
            })
            .collect()
    }

    /// Accepts on `acc`, worker `me`'s registration, until aborted:
    /// each connection is served by `serve` on this worker, or on the
    /// least loaded one when this one holds more than its share. Past the
    /// limit, `serve` gets it with `admitted` false, here and uncounted.
    /// Spawn it on worker `me`.
    pub(crate) fn accept<F, Fut>(
        self: Arc<Self>,
        me: usize,
        acc: Acceptor,
        serve: F,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        F: Fn(TcpStream, SocketAddr, bool) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let serve = Arc::new(serve);
        async move {
            loop {
                let (stream, peer) = match acc.0.accept().await {
                    Ok(x) => x,
                    Err(_) => {
                        // Out of descriptors and the like: back off briefly.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let Some(open) = self.pick(me).and_then(|to| self.open(to)) else {
                    tokio::spawn(serve(stream, peer, false));
                    continue;
                };
                let to = open.i;
                let serve = serve.clone();
                if to == me {
                    tokio::spawn(async move {
                        let _open = open;
                        serve(stream, peer, true).await
                    });
                    continue;
                }
                // Moved to the other worker's driver (a socket is only
                // polled by the driver it is registered with).
                let Ok(stream) = stream.into_std() else {
                    continue;
                };
                self.handles[to].spawn(async move {
                    let _open = open;
                    if let Ok(s) = TcpStream::from_std(stream) {
                        serve(s, peer, true).await
                    }
                });
            }
        }
    }

    pub(crate) fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// The worker (0-based) for a connection accepted on `me`; None when
    /// the limit is reached.
    fn pick(&self, me: usize) -> Option<usize> {
        if self.total.load(Ordering::Relaxed) >= self.limit.load(Ordering::Relaxed) {
            return None;
        }
        let (least, count) = self
            .load
            .iter()
            .map(|l| l.load(Ordering::Relaxed))
            .enumerate()
            .min_by_key(|&(_, n)| n)
            .unwrap_or((me, 0));
        if self.load[me].load(Ordering::Relaxed) <= count + slack(count) {
            Some(me)
        } else {
            Some(least)
        }
    }

    /// Counts a connection on worker `i` (0-based) until the guard drops;
    /// None when that would pass the limit.
    fn open(self: &Arc<Self>, i: usize) -> Option<Open> {
        let limit = self.limit.load(Ordering::Relaxed);
        if self.total.fetch_add(1, Ordering::Relaxed) >= limit {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        self.load[i].fetch_add(1, Ordering::Relaxed);
        Some(Open {
            workers: self.clone(),
            i,
        })
    }
}

/// One open connection of a worker.
struct Open {
    workers: Arc<Workers>,
    i: usize,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.workers.load[self.i].fetch_sub(1, Ordering::Relaxed);
        self.workers.total.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Arc<Workers> {
        Arc::new(Workers {
            handles: Vec::new(),
            load: (0..2).map(|_| AtomicUsize::new(0)).collect(),
            total: AtomicUsize::new(0),
            limit: AtomicUsize::new(usize::MAX),
        })
    }

    #[test]
    fn a_worker_past_its_share_hands_new_connections_to_the_least_loaded() {
        let w = two();
        let mut held: Vec<Open> = (0..3).filter_map(|_| w.open(0)).collect();
        assert_eq!(
            w.pick(0),
            Some(1),
            "three against none is past the slack of 2"
        );
        held.extend(w.open(1));
        assert_eq!(w.pick(0), Some(0), "three against one is within it");
        let many: Vec<Open> = (0..40).filter_map(|_| w.open(1)).collect();
        assert_eq!(w.pick(1), Some(0));
        drop(many);
        held.clear();
        assert_eq!((w.pick(0), w.pick(1)), (Some(0), Some(1)));
        assert_eq!(w.load[0].load(Ordering::Relaxed), 0, "guards give back");
    }

    #[test]
    fn past_the_limit_no_worker_is_picked() {
        let w = two();
        w.set_limit(3);
        let held: Vec<Open> = (0..2).filter_map(|i| w.open(i)).collect();
        assert!(w.pick(0).is_some());
        let third = w.open(0);
        assert!(third.is_some());
        assert_eq!((w.pick(0), w.pick(1)), (None, None));
        assert!(w.open(1).is_none(), "a fourth place is not given");
        drop(third);
        assert!(w.pick(1).is_some());
        drop(held);
        assert_eq!(w.total.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_slack_grows_with_the_load() {
        assert_eq!(slack(0), 2);
        assert_eq!(slack(32), 6);
    }

    #[test]
    fn threads_off_the_workers_have_index_zero() {
        assert_eq!(index(), 0);
    }

    #[test]
    fn connections_are_served_and_spread_across_workers() {
        let w = Workers::start(2).unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let accs = w.acceptors(&l).unwrap();
        for (i, acc) in accs.into_iter().enumerate() {
            let tx = tx.clone();
            w.handles()[i].spawn(w.clone().accept(i, acc, move |mut s, _, _| {
                let tx = tx.clone();
                async move {
                    // Which worker serves it; held open until the peer closes.
                    let _ = tx.send(index());
                    let _ = tokio::io::AsyncReadExt::read(&mut s, &mut [0u8; 1]).await;
                }
            }));
        }
        let clients: Vec<_> = (0..20)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let served: Vec<usize> = (0..20)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        let on_first = served.iter().filter(|&&i| i == 1).count();
        assert!(
            (6..=14).contains(&on_first),
            "20 held connections spread unevenly: {served:?}"
        );
        drop(clients);
    }
}
