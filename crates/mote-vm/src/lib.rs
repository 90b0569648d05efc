//! mote-vm launches mote images under QEMU: it checks that KVM really runs a
//! guest and falls back to TCG, forwards ports from 127.0.0.1, gives the node
//! its state disk, captures the serial console, waits for PID 1's ready line,
//! keeps a registry of running nodes, and powers them off in order.
//!
//! # Design
//! - **Boot**: direct kernel boot of the image directory `mote build` made
//!   (`vmlinuz`, `initrd.img`, `cmdline`), with `-nodefaults -no-user-config
//!   -display none`, so QEMU adds no device we did not ask for.
//! - **Machine**: `-machine microvm` by default, the fastest measured here:
//!   spawn → ready line under TCG with a trivial init, median of 5, was
//!   1.76 s on microvm (0.77 s before the kernel's clock, 0.99 s kernel →
//!   PID 1) against 2.00 s on `pc` (0.43 s + 1.56 s). It has virtio-mmio devices
//!   (`virtio-net-device`, `virtio-blk-device`), so the image needs the
//!   `virtio_mmio` module; `Machine::Pc` uses virtio-pci. Checked here, both
//!   with the Debian cloud kernel 6.1 and QEMU 7.2:
//!   - QMP `system_powerdown` reaches the guest on both: microvm's ACPI (on by
//!     default since QEMU 6.1) has a GED power button, `pc` the fixed ACPI
//!     one; either way the guest sees KEY_POWER once `button.ko` and `evdev.ko`
//!     are loaded, and QEMU exits 0 when the guest powers off.
//!   - A guest reboot reboots on both: there is no `-no-reboot`, QEMU resets
//!     the machine and boots the same kernel, initramfs and command line again;
//!     the pid, sockets, forwards and state disk stay, the serial log goes on.
//!     A kernel panic with `panic=-1` therefore reboots too; [`RunningNode::wait_ready`]
//!     reports the panic instead of waiting out the reboot loop.
//!   - Under TCG on a loaded host, microvm boots hung (1 in ~10 alone, 5 in 16
//!     with two boots at once):
//!     Linux calibrates the TSC against the PIT, that fails when the host is
//!     loaded, and a microvm has no HPET or PM timer to fall back to. mote
//!     therefore measures the host's TSC rate (TCG's guest TSC is the host's)
//!     and adds `tsc_early_khz=` to the command line for microvm under TCG;
//!     with it, no hang in our runs. `pc` has HPET and does not need it.
//! - **Accelerator**: [`probe_accel`] runs a tiny guest that enters long mode
//!   under KVM with a 2 s limit (nested KVM here runs real mode and then
//!   hangs); when it does not finish, nodes run under TCG and
//!   [`RunningNode::notice`] says why, for the caller to print. The library
//!   prints nothing itself except the echoed console.
//! - **Serial console**: a socket chardev (`serial.sock`, for attaching later)
//!   with QEMU's `logfile=` writing everything to `serial.log` (or
//!   [`RunConfig::log`]). [`RunningNode::wait_ready`] tails that log; with
//!   [`RunConfig::console`] a thread echoes it to our stdout.
//! - **Network** ([`NetMode`]): user-mode networking with `hostfwd` rules
//!   bound to 127.0.0.1 only (host port 0 picks a free port), or a real
//!   segment: the caller's tap (`tap=NAME`), a tap mote makes (`tap`), or one
//!   it makes on a bridge (`bridge=NAME`, else QEMU's bridge helper). A tap
//!   mote makes is handed to QEMU as an open fd and vanishes when QEMU exits.
//!   The MAC is [`mac_address`] of the node's name, the same on every boot.
//! - **State disk**: a raw file made with `mkfs.ext4` on first use (ext4 is
//!   journaled and built into the Debian cloud kernel; making it on the host
//!   keeps mkfs out of the node), attached as virtio-blk with
//!   `cache=writeback`: the node sees `/dev/vda` and mounts it at `/state`.
//! - **Registry**: one directory per node under [`registry::state_dir`], with
//!   `run.json` (see [`registry`]); QEMU runs in its own process group and
//!   outlives the `mote run` that started it.
//! - **Stopping**: QMP `system_powerdown` presses the ACPI power button (the
//!   `qmp` module explains the protocol); [`registry::stop`] waits and then
//!   kills.
//!
//! # Limits
//! - x86_64 guests only. One network interface per node.
//! - Making a tap needs `CAP_NET_ADMIN`; without it `tap` fails with advice
//!   and `bridge=NAME` relies on QEMU's setuid bridge helper.
//! - Forwarded host ports are checked free and then handed to QEMU, so another
//!   program can take one in between; `wait_ready` then reports QEMU's error.
//! - The serial console is echoed, not interactive: input would go through
//!   `serial.sock`, which nothing attaches to yet.
//! - Readiness is seen by polling the log every 20 ms.
//! - [`AccelChoice::Auto`] probes KVM on every start: ~0.1 s where KVM works,
//!   the full 2 s where it hangs (as here); pass [`AccelChoice::Tcg`] to skip.
//! - QEMU runs in its own process group, so a terminal's Ctrl-C reaches only
//!   the caller: a foreground `mote run` should answer it with
//!   [`RunningNode::powerdown`].
//! - A client attached to `serial.sock` that stops reading stalls the guest's
//!   console output (QEMU's socket chardev applies backpressure).
//! - On microvm the time before the kernel's clock starts (0.77 s) is longer
//!   than on `pc` (0.43 s); where it goes (firmware, loading, decompression)
//!   is not yet measured.
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use mote_vm::{start, RunConfig};
//!
//! let mut cfg = RunConfig::new("web01", "out/web01");
//! cfg.forwards.push("8080:80".parse()?);
//! let mut node = start(&cfg)?;
//! if let Some(notice) = node.notice() {
//!     eprintln!("{notice}");
//! }
//! let ready = node.wait_ready(Duration::from_secs(60))?;
//! println!("{} is up at {:?} in {} ms", ready.hostname, ready.addresses, ready.split.total_ms);
//! node.powerdown()?;
//! node.wait_exit(Duration::from_secs(20))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod accel;
mod config;
mod doctor;
mod error;
mod net;
mod node;
mod qemu;
mod qmp;
mod ready;
pub mod registry;
mod tap;
mod tools;

pub use accel::{probe_accel, Accel};
pub use config::{AccelChoice, Forward, ForwardError, Machine, Protocol, RunConfig};
pub use doctor::{doctor, doctor_with_cache, Check};
pub use error::VmError;
pub use net::{mac_address, tap_name, NetMode, NetModeError};
pub use node::{start, RunningNode};
pub use qmp::QmpError;
pub use ready::{BootSplit, ReadyReport};
pub use registry::{NodeRecord, StopOutcome};
