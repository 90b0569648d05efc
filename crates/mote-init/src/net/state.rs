//! [`NetState`]: what `configure` set up and the DHCP clients keep current —
//! leases, resolvers, `/etc/resolv.conf` — shared between them and main.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::AbortHandle;

use super::dhcp::Lease;
use super::resolv::{self, Resolver};
use super::{addr, rtnl::Rtnl};
use crate::events::Events;

struct Shared {
    resolv_conf: PathBuf,
    static_dns: Vec<Resolver>,
    leases: BTreeMap<String, Lease>,
    written: Option<String>,
    tasks: Vec<(String, AbortHandle)>,
}

/// The node's network as configured; cheap to clone (a shared handle).
#[derive(Clone)]
pub struct NetState {
    shared: Arc<Mutex<Shared>>,
}

impl std::fmt::Debug for NetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = self.lock();
        f.debug_struct("NetState")
            .field("resolv_conf", &shared.resolv_conf)
            .field("leases", &shared.leases)
            .finish_non_exhaustive()
    }
}

impl NetState {
    pub(crate) fn new(resolv_conf: PathBuf) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared {
                resolv_conf,
                static_dns: Vec::new(),
                leases: BTreeMap::new(),
                written: None,
                tasks: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A poisoned lock only means a panic elsewhere; the data is still usable.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node's addresses now, as the kernel has them: every interface's
    /// except loopback and link-local ones (static, leased and SLAAC alike).
    /// Empty when the kernel cannot be asked.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let Ok(mut rtnl) = Rtnl::open() else {
            return Vec::new();
        };
        let mut ips: Vec<IpAddr> = addr::list(&mut rtnl)
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.ip)
            .filter(addr::is_reportable)
            .collect();
        ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
        ips.dedup();
        ips
    }

    /// The resolvers in `/etc/resolv.conf` order: from the settings, then from leases.
    pub fn dns_servers(&self) -> Vec<IpAddr> {
        let mut servers = Vec::new();
        for resolver in resolvers(&self.lock()) {
            if !servers.contains(&resolver.ip) {
                servers.push(resolver.ip);
            }
        }
        servers
    }

    /// The current DHCP leases, by interface.
    pub fn leases(&self) -> Vec<(String, Lease)> {
        self.lock()
            .leases
            .iter()
            .map(|(name, lease)| (name.clone(), lease.clone()))
            .collect()
    }

    /// Stop the background DHCP clients (at shutdown). Addresses stay.
    pub fn stop(&self) {
        for (_, task) in self.lock().tasks.drain(..) {
            task.abort();
        }
    }

    /// Stop the DHCP client of one interface; its addresses stay.
    pub(crate) fn stop_interface(&self, interface: &str) {
        self.lock().tasks.retain(|(name, task)| {
            if name == interface {
                task.abort();
            }
            name != interface
        });
    }

    pub(crate) fn add_task(&self, interface: &str, task: AbortHandle) {
        self.lock().tasks.push((interface.to_owned(), task));
    }

    pub(crate) fn set_static_dns(&self, resolvers: Vec<Resolver>) {
        self.lock().static_dns = resolvers;
    }

    /// Record (or, with `None`, forget) an interface's lease and rewrite
    /// resolv.conf if its resolvers changed.
    pub(crate) fn set_lease(&self, interface: &str, lease: Option<Lease>, events: &Events) {
        {
            let mut shared = self.lock();
            match lease {
                Some(lease) => shared.leases.insert(interface.to_owned(), lease),
                None => shared.leases.remove(interface),
            };
        }
        self.write_resolv_conf(events);
    }

    /// Write resolv.conf when its text would change. Not written at all
    /// while no resolver is known, so an image's own file stays.
    pub(crate) fn write_resolv_conf(&self, events: &Events) {
        let mut shared = self.lock();
        let list = resolvers(&shared);
        if list.is_empty() && shared.written.is_none() {
            return;
        }
        let text = resolv::render(&list);
        if shared.written.as_deref() == Some(text.as_str()) {
            return;
        }
        match resolv::write(&shared.resolv_conf, &text) {
            Ok(()) => {
                let servers: Vec<String> = list.iter().map(|r| r.ip.to_string()).collect();
                events.info(
                    "net",
                    format!(
                        "{}: nameservers {}",
                        shared.resolv_conf.display(),
                        servers.join(" ")
                    ),
                );
                shared.written = Some(text);
            }
            Err(e) => events.error(
                "net",
                format!("cannot write {}: {e}", shared.resolv_conf.display()),
            ),
        }
    }
}

fn resolvers(shared: &Shared) -> Vec<Resolver> {
    let mut list = shared.static_dns.clone();
    for (interface, lease) in &shared.leases {
        list.extend(lease.dns.iter().map(|ip| Resolver {
            ip: IpAddr::V4(*ip),
            interface: interface.clone(),
        }));
    }
    list
}
