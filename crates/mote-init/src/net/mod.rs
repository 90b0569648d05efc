//! Node networking (being written): links, addresses, routes, DHCPv4, SLAAC, nftables.
