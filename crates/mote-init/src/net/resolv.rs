//! `/etc/resolv.conf`: the resolvers from the settings first, then those
//! DHCP leases brought, without duplicates. Written whole to a temporary file
//! beside it and renamed over it, so a reader never sees half a file.

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;

/// One resolver and the interface it came with (for link-local IPv6 ones,
/// which need a `%scope`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolver {
    pub(crate) ip: IpAddr,
    pub(crate) interface: String,
}

/// The file's text for these resolvers, in order, each once.
pub(crate) fn render(resolvers: &[Resolver]) -> String {
    let mut text =
        String::from("# Written by mote-init from the node's settings and DHCP leases.\n");
    let mut seen = Vec::new();
    for resolver in resolvers {
        if seen.contains(&resolver.ip) {
            continue;
        }
        seen.push(resolver.ip);
        match resolver.ip {
            IpAddr::V6(v6) if v6.is_unicast_link_local() => {
                text.push_str(&format!("nameserver {v6}%{}\n", resolver.interface));
            }
            ip => text.push_str(&format!("nameserver {ip}\n")),
        }
    }
    text
}

/// Replace `path` with `text` atomically.
pub(crate) fn write(path: &Path, text: &str) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut temporary = path.to_path_buf();
    temporary.set_file_name(format!(".{}.mote-tmp", name.to_string_lossy()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(ip: &str, interface: &str) -> Resolver {
        Resolver {
            ip: ip.parse().unwrap(),
            interface: interface.into(),
        }
    }

    #[test]
    fn resolvers_are_listed_once_in_order_with_scopes_for_link_local() {
        let text = render(&[
            resolver("192.0.2.53", "eth0"),
            resolver("fe80::1", "eth1"),
            resolver("192.0.2.53", "eth1"),
            resolver("2001:db8::53", "eth0"),
        ]);
        let lines: Vec<_> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "nameserver 192.0.2.53",
                "nameserver fe80::1%eth1",
                "nameserver 2001:db8::53"
            ]
        );
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "old").unwrap();
        write(&path, "nameserver 192.0.2.1\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "nameserver 192.0.2.1\n"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
        assert!(write(&dir.path().join("missing/resolv.conf"), "x").is_err());
    }
}
