//! Driver bundles: short names in `[kernel] drivers` for the modules a kind of
//! machine needs.

use crate::normalize;

/// Each bundle and its modules. A member that the kernel has built in is
/// satisfied without a file; one it lacks entirely is an error at resolution.
const BUNDLES: &[(&str, &[&str])] = &[
    (
        "virtio",
        &[
            "virtio_pci",
            "virtio_mmio",
            "virtio_net",
            "virtio_blk",
            "virtio_console",
            "virtio_rng",
        ],
    ),
    ("e1000", &["e1000", "e1000e"]),
    (
        "hyperv",
        &["hv_vmbus", "hv_netvsc", "hv_storvsc", "hv_utils"],
    ),
    ("vmware", &["vmxnet3", "vmw_pvscsi", "vmw_balloon"]),
    (
        "host",
        &[
            // network
            "e1000e",
            "igb",
            "igc",
            "ixgbe",
            "i40e",
            "r8169",
            "tg3",
            "bnxt_en",
            // disks and their buses
            "ahci",
            "nvme",
            "sd_mod",
            "usb_storage",
            "uas",
            "xhci_pci",
            "ehci_pci",
        ],
    ),
];

/// The modules of a bundle, or `None` when `name` is no bundle.
pub fn bundle(name: &str) -> Option<&'static [&'static str]> {
    BUNDLES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, modules)| *modules)
}

/// The names of all bundles.
pub fn bundle_names() -> impl Iterator<Item = &'static str> {
    BUNDLES.iter().map(|(n, _)| *n)
}

/// Bundles that list a module (by normalized name).
pub(crate) fn bundles_containing(module: &str) -> Vec<&'static str> {
    BUNDLES
        .iter()
        .filter(|(_, modules)| modules.iter().any(|m| normalize(m) == module))
        .map(|(n, _)| *n)
        .collect()
}

/// Expands bundle names into module names; other names pass through. The
/// result keeps first-seen order and holds each module once (`-` and `_`
/// count as equal).
///
/// ```
/// let names = mote_kernel::expand_drivers(&["virtio".into(), "nf_tables".into()]);
/// assert_eq!(names[0], "virtio_pci");
/// assert_eq!(names.last().unwrap(), "nf_tables");
/// ```
pub fn expand_drivers(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |name: &str| {
        if !out.iter().any(|seen| normalize(seen) == normalize(name)) {
            out.push(name.to_string());
        }
    };
    for name in names {
        match bundle(name) {
            Some(modules) => modules.iter().for_each(|m| push(m)),
            None => push(name),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_bundles_and_dedupes() {
        let names = expand_drivers(&[
            "virtio".into(),
            "virtio-net".into(),
            "hyperv".into(),
            "evdev".into(),
        ]);
        assert_eq!(
            names,
            [
                "virtio_pci",
                "virtio_mmio",
                "virtio_net",
                "virtio_blk",
                "virtio_console",
                "virtio_rng",
                "hv_vmbus",
                "hv_netvsc",
                "hv_storvsc",
                "hv_utils",
                "evdev"
            ]
        );
    }

    #[test]
    fn every_bundle_is_known() {
        for name in bundle_names() {
            assert!(bundle(name).is_some_and(|m| !m.is_empty()), "{name}");
        }
        assert_eq!(bundles_containing("e1000e"), ["e1000", "host"]);
        assert!(bundles_containing("nf_tables").is_empty());
    }
}
