//! The manifest: node settings plus the build-only parts (image, kernel, files).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::settings::{
    Firewall, FirstBoot, Management, Network, NodeSettings, Roles, Service, System,
};

/// A whole manifest as written in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Manifest {
    /// `[image]`
    pub image: Image,
    /// `[kernel]`
    #[serde(default)]
    pub kernel: Kernel,
    /// `[system]`
    pub system: System,
    /// `[network]`
    #[serde(default)]
    pub network: Network,
    /// `[firewall]`
    #[serde(default)]
    pub firewall: Firewall,
    /// `[[files]]`
    #[serde(default)]
    pub files: Vec<FileCopy>,
    /// `[services.NAME]`
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    /// `[[first_boot]]`
    #[serde(default)]
    pub first_boot: Vec<FirstBoot>,
    /// `[management]`
    #[serde(default)]
    pub management: Management,
    /// `packages = ["web"]`: role packages to install.
    #[serde(default)]
    pub packages: Vec<String>,
    /// `[roles.NAME]`: the packages' settings sections.
    #[serde(default)]
    pub roles: Roles,
}

impl Manifest {
    /// The part of the manifest the node keeps: system, network, firewall,
    /// services, first-boot commands and management.
    pub fn settings(&self) -> NodeSettings {
        NodeSettings {
            system: self.system.clone(),
            network: self.network.clone(),
            firewall: self.firewall.clone(),
            services: self.services.clone(),
            first_boot: self.first_boot.clone(),
            management: self.management,
            packages: self.packages.clone(),
            roles: self.roles.clone(),
        }
    }
}

/// `[image]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Image {
    /// Image name; also the node's name in `mote list`.
    pub name: String,
    /// Output formats; `initrd` (kernel + initramfs) is the only one today.
    #[serde(default = "default_outputs")]
    pub outputs: Vec<Output>,
}

fn default_outputs() -> Vec<Output> {
    vec![Output::Initrd]
}

/// An output format of `mote build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Output {
    /// `vmlinuz` + `initrd.img` for direct kernel boot.
    Initrd,
}

/// `[kernel]`: where the kernel comes from and which drivers go in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Kernel {
    /// Debian package, fetched with `apt-get download` into the cache.
    #[serde(default = "default_kernel_package")]
    pub package: String,
    /// A local kernel image instead of the package (needs `modules`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The `lib/modules/VERSION` directory that goes with `path`.
    #[serde(default)]
    pub modules: Option<PathBuf>,
    /// Module names or bundles (`virtio`, `e1000`, `hyperv`, `vmware`, `host`).
    #[serde(default = "default_drivers")]
    pub drivers: Vec<String>,
    /// Extra kernel command line, after mote's own.
    #[serde(default)]
    pub cmdline: String,
}

impl Default for Kernel {
    fn default() -> Self {
        Self {
            package: default_kernel_package(),
            path: None,
            modules: None,
            drivers: default_drivers(),
            cmdline: String::new(),
        }
    }
}

/// The default kernel package.
pub const DEFAULT_KERNEL_PACKAGE: &str = "linux-image-cloud-amd64";

fn default_kernel_package() -> String {
    DEFAULT_KERNEL_PACKAGE.into()
}
fn default_drivers() -> Vec<String> {
    vec!["virtio".into()]
}

/// `[[files]]`: a host file or directory copied into the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FileCopy {
    /// Host path, relative to the manifest's directory; `bin:NAME` names a
    /// binary built from the mote workspace (found in the build's bin dir).
    pub source: String,
    /// Absolute path in the image.
    pub destination: String,
    /// `uid:gid`, default `0:0`.
    #[serde(default = "default_owner")]
    pub owner: String,
    /// Octal mode as a string (`"0755"`); the source's mode when absent.
    #[serde(default)]
    pub mode: Option<String>,
}

fn default_owner() -> String {
    "0:0".into()
}
