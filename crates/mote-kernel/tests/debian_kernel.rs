//! Against Debian's real cloud kernel, fetched with apt into a cache kept in
//! the target directory (so only the first run downloads it, ~27 MB).

use std::path::Path;
use std::process::Command;

use mote_kernel::{
    expand_drivers, obtain, resolve_modules, KernelCache, KernelError, ResolvedKernel,
};

fn kernel() -> (KernelCache, ResolvedKernel, ResolvedKernel, Vec<String>) {
    let apt = Command::new("apt-get").arg("--version").output();
    assert!(
        apt.is_ok_and(|o| o.status.success()),
        "this test fetches Debian's linux-image-cloud-amd64 with apt-get, which is missing here: \
         run it on a Debian or Ubuntu host (`cargo xtask test` sets one up)"
    );
    let cache = KernelCache::new(Path::new(env!("CARGO_TARGET_TMPDIR")).join("mote-kernel-cache"));
    let manifest_kernel = mote_config::Kernel::default();
    let mut said = Vec::new();
    let first = obtain(&manifest_kernel, Path::new("."), &cache, &mut |m| {
        said.push(m.to_string())
    })
    .unwrap_or_else(|e| panic!("fetching the Debian kernel failed: {e}"));
    let second = obtain(&manifest_kernel, Path::new("."), &cache, &mut |m| {
        said.push(m.to_string())
    })
    .unwrap();
    (cache, first, second, said)
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn debian_cloud_kernel() {
    let (cache, first, second, said) = kernel();

    // Fetched (or found) once, then served from the cache.
    assert!(second.from_cache, "{said:?}");
    assert_eq!(first.vmlinuz, second.vmlinuz);
    assert_eq!(
        said.last().unwrap(),
        &format!("kernel {} (cached)", second.version)
    );
    assert!(
        second.version.ends_with("-cloud-amd64"),
        "{}",
        second.version
    );
    let package = second.package.as_deref().unwrap();
    assert!(
        package.starts_with(&format!("linux-image-{} ", second.version)),
        "{package}"
    );
    assert!(second.vmlinuz.is_file());
    assert!(second
        .modules_dir
        .ends_with(Path::new("lib/modules").join(&second.version)));
    assert!(cache.cached().iter().any(|k| k.vmlinuz == second.vmlinuz));

    // The node's modules with the virtio bundle: dependencies first, once each.
    let mut names = expand_drivers(&strings(&["virtio"]));
    names.extend(strings(&[
        "nf_tables",
        "nft_ct",
        "button",
        "evdev",
        "ext4",
        "af_packet",
        "unix",
    ]));
    let modules = resolve_modules(&second.modules_dir, &names).unwrap();
    let order: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    let at = |name: &str| {
        order
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("{name} not in {order:?}"))
    };
    for (dependency, dependent) in [
        ("virtio", "virtio_pci"),
        ("virtio_ring", "virtio_net"),
        ("net_failover", "virtio_net"),
        ("failover", "net_failover"),
        ("nfnetlink", "nf_tables"),
        ("libcrc32c", "nf_tables"),
        ("nf_tables", "nft_ct"),
        ("nf_conntrack", "nft_ct"),
        ("nf_defrag_ipv6", "nf_conntrack"),
    ] {
        assert!(
            at(dependency) < at(dependent),
            "{dependency} after {dependent}: {order:?}"
        );
    }
    for name in [
        "virtio_mmio",
        "virtio_blk",
        "virtio_console",
        "virtio_rng",
        "button",
        "evdev",
    ] {
        at(name);
    }
    let mut unique = order.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), order.len(), "{order:?}");
    for built_in in ["ext4", "af_packet", "unix"] {
        assert!(
            !order.contains(&built_in),
            "{built_in} is built in: {order:?}"
        );
    }
    assert!(modules
        .iter()
        .all(|m| m.path.is_file() && m.path.starts_with(&second.modules_dir)));
    let virtio_rng = &modules[at("virtio_rng")];
    assert_eq!(
        virtio_rng.relative,
        Path::new("kernel/drivers/char/hw_random/virtio-rng.ko")
    );

    // A typo names the real module.
    let err = resolve_modules(&second.modules_dir, &strings(&["virtio_nett"])).unwrap_err();
    let KernelError::UnknownModule { suggestions, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(suggestions[0], "virtio_net", "{err}");

    // The cloud kernel has no e1000: the bundle says so.
    let err =
        resolve_modules(&second.modules_dir, &expand_drivers(&strings(&["e1000"]))).unwrap_err();
    assert!(err.to_string().contains("`e1000` bundle"), "{err}");
}
