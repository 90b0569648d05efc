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
    /// `packages = ["web", "./app.mpkg"]`, or the `[packages]` table with
    /// the keys that sign them.
    #[serde(default)]
    pub packages: Packages,
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
            packages: self.packages.install.clone(),
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
    /// Output formats: `initrd` (kernel + initramfs, always), `uki`, and the
    /// disks `raw`, `qcow2`, `vhdx`, `vhd`.
    #[serde(default = "default_outputs")]
    pub outputs: Vec<Output>,
    /// Sign the UKI for UEFI Secure Boot with this key and certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<SecureBoot>,
}

/// `[image] secure_boot`: the key and certificate that sign the UKI
/// (Authenticode, as firmware checks it). Paths are relative to the
/// manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SecureBoot {
    /// The private key, PEM (RSA, as UEFI requires), not encrypted.
    pub key: std::path::PathBuf,
    /// Its X.509 certificate, PEM; the firmware's `db` must hold it or
    /// its issuer.
    pub cert: std::path::PathBuf,
}

fn default_outputs() -> Vec<Output> {
    vec![Output::Initrd]
}

/// An output format of `mote build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Output {
    /// `vmlinuz` + `initrd.img` for direct kernel boot (always written: the
    /// other outputs are made from it).
    Initrd,
    /// `NAME.efi`: a Unified Kernel Image (kernel, initramfs, command line,
    /// os-release in one EFI program).
    Uki,
    /// `NAME.raw`: a GPT disk (ESP with the UKI, state partition).
    Raw,
    /// `NAME.qcow2`: the disk as QEMU's qcow2 (libvirt, Proxmox, OpenStack).
    Qcow2,
    /// `NAME.vhdx`: the disk as a dynamic VHDX (Hyper-V generation 2).
    Vhdx,
    /// `NAME.vhd`: the disk as a fixed VHD (Azure); UEFI only.
    Vhd,
}

impl Output {
    /// The file extension of this output (`None` for `initrd`, whose files
    /// are `vmlinuz` and `initrd.img`).
    pub fn extension(self) -> Option<&'static str> {
        match self {
            Output::Initrd => None,
            Output::Uki => Some("efi"),
            Output::Raw => Some("raw"),
            Output::Qcow2 => Some("qcow2"),
            Output::Vhdx => Some("vhdx"),
            Output::Vhd => Some("vhd"),
        }
    }

    /// Whether this output is a disk (needs the GPT layout).
    pub fn is_disk(self) -> bool {
        matches!(
            self,
            Output::Raw | Output::Qcow2 | Output::Vhdx | Output::Vhd
        )
    }
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

/// `packages`: what `mote build` installs and whose signatures it trusts.
/// Written either as a list (`packages = ["web"]`, the same as
/// `[packages] install = ["web"]`) or as the table.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Packages {
    /// Each a package name (a role of this mote, or one from a repository)
    /// or the path of a package file (`./my-app.mpkg`, relative to the
    /// manifest).
    pub install: Vec<String>,
    /// Public keys (minisign `.pub` files, relative to the manifest) whose
    /// signatures are trusted, besides the workspace key that signs the
    /// roles built with mote.
    pub trusted_keys: Vec<PathBuf>,
    /// Install and run unsigned packages (development only; the node says
    /// so in `mote -n NODE system`).
    pub allow_unsigned: bool,
    /// Package repositories: local directories (relative to the manifest)
    /// or `http(s)://` URLs, each with a signed `index.json`.
    pub repositories: Vec<String>,
}

/// The table form of [`Packages`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackagesTable {
    #[serde(default)]
    install: Vec<String>,
    #[serde(default)]
    trusted_keys: Vec<PathBuf>,
    #[serde(default)]
    allow_unsigned: bool,
    #[serde(default)]
    repositories: Vec<String>,
}

impl<'de> Deserialize<'de> for Packages {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Packages;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of packages or a [packages] table")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Packages, A::Error> {
                let install =
                    Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Packages {
                    install,
                    ..Packages::default()
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Packages, A::Error> {
                let t =
                    PackagesTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Packages {
                    install: t.install,
                    trusted_keys: t.trusted_keys,
                    allow_unsigned: t.allow_unsigned,
                    repositories: t.repositories,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Packages {
    /// Whether `entry` of `install` names a package file rather than a
    /// package by name.
    pub fn is_file(entry: &str) -> bool {
        entry.contains('/') || entry.ends_with(".mpkg")
    }
}
