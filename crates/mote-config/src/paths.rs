//! Paths on the node that more than one binary knows: the image builder
//! writes them, PID 1 and `moted` read them, a package's `argv` names them.
//! One module, so that no copy has to be kept equal to another (the model
//! is Bottlerocket's `constants` crate).

/// The management agent, put in the image when `[management]` is enabled.
pub const MOTED: &str = "/usr/bin/moted";

/// The `package.toml` of every package installed in the image, as
/// `NAME.toml`, written by the image builder.
pub const IMAGE_PACKAGES: &str = "/usr/lib/mote/packages";

/// Packages installed online: `NAME.mpkg` (the verified archive) and
/// `NAME.mpkg.minisig`, unpacked again at every boot before services start.
pub const STATE_PACKAGES: &str = "/state/mote/packages";

/// The kernel's built-in module names, one per line: a package installed
/// online may need one of them (or a loaded module) and nothing more.
pub const MODULES_BUILTIN: &str = "/etc/mote/modules.builtin";

/// The public keys a node trusts for packages (`KEYID.pub`, minisign
/// format), and `allow-unsigned` when the manifest allowed unsigned ones.
pub const TRUST: &str = "/etc/mote/trust";

/// The file in [`TRUST`] whose presence allows unsigned packages.
pub const ALLOW_UNSIGNED: &str = "/etc/mote/trust/allow-unsigned";

/// Where PID 1 writes each package's settings section, as `NAME.json`,
/// before its services start and whenever it changes.
pub const ROLE_SETTINGS: &str = "/run/mote/roles";

/// The file PID 1 writes a package's `[roles.NAME]` section to.
pub fn role_settings(name: &str) -> String {
    format!("{ROLE_SETTINGS}/{name}.json")
}
