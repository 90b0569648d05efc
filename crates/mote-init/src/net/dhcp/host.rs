//! Applying a lease to the kernel: the address (with the lease's lifetime),
//! the default route through the router, and the resolvers.

use std::net::IpAddr;

use tokio::sync::mpsc;

use super::client::LeaseHost;
use super::lease::Lease;
use crate::events::Events;
use crate::net::addr::{self, Origin};
use crate::net::rtnl::Rtnl;
use crate::net::state::NetState;

/// Applies one interface's leases.
pub(crate) struct KernelHost {
    pub(crate) interface: String,
    pub(crate) index: u32,
    pub(crate) state: NetState,
    pub(crate) events: Events,
    /// Told once, at the first lease, so `configure` can stop waiting.
    pub(crate) first_bound: Option<mpsc::Sender<()>>,
}

impl KernelHost {
    fn error(&self, what: &str, error: &dyn std::fmt::Display) {
        self.events
            .error("dhcp", format!("{}: {what}: {error}", self.interface));
    }

    fn remove(&self, rtnl: &mut Rtnl, lease: &Lease, address: bool, route: bool) {
        if route {
            if let Some(router) = lease.router {
                if let Err(e) =
                    addr::remove_default_route(rtnl, self.index, IpAddr::V4(router), Origin::Dhcp)
                {
                    self.error(&format!("removing the route via {router}"), &e);
                }
            }
        }
        if address {
            if let Err(e) = addr::remove(
                rtnl,
                self.index,
                IpAddr::V4(lease.address),
                lease.prefix_len,
            ) {
                self.error(
                    &format!("removing {}/{}", lease.address, lease.prefix_len),
                    &e,
                );
            }
        }
    }
}

impl LeaseHost for KernelHost {
    fn bound(&mut self, lease: &Lease, previous: Option<&Lease>) {
        match Rtnl::open() {
            Ok(mut rtnl) => {
                if let Some(old) = previous {
                    let moved = (old.address, old.prefix_len) != (lease.address, lease.prefix_len);
                    self.remove(&mut rtnl, old, moved, moved || old.router != lease.router);
                }
                // The kernel drops the address by itself should the lease run
                // out while this task is not around to do it.
                let lifetime = lease
                    .timing
                    .map(|t| u32::try_from(t.expiry.as_secs()).unwrap_or(u32::MAX - 1));
                let ip = IpAddr::V4(lease.address);
                match addr::add(&mut rtnl, self.index, ip, lease.prefix_len, lifetime) {
                    Ok(()) => {
                        if let Some(router) = lease.router {
                            if let Err(e) = addr::add_default_route(
                                &mut rtnl,
                                self.index,
                                IpAddr::V4(router),
                                Origin::Dhcp,
                            ) {
                                self.error(&format!("default route via {router}"), &e);
                            }
                        }
                    }
                    Err(e) => self.error(
                        &format!("adding {}/{}", lease.address, lease.prefix_len),
                        &e,
                    ),
                }
            }
            Err(e) => self.error("netlink", &e),
        }
        self.state
            .set_lease(&self.interface, Some(lease.clone()), &self.events);
        if let Some(first) = self.first_bound.take() {
            let _ = first.try_send(());
        }
    }

    fn lost(&mut self, lease: &Lease) {
        match Rtnl::open() {
            Ok(mut rtnl) => self.remove(&mut rtnl, lease, true, true),
            Err(e) => self.error("netlink", &e),
        }
        self.state.set_lease(&self.interface, None, &self.events);
    }
}
