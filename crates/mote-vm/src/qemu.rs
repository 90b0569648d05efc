//! The QEMU command line: a pure function of a [`LaunchPlan`], so a golden
//! test pins it down.

use crate::accel::Accel;
use crate::config::{Forward, Machine};

/// The `-netdev` backend.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Netdev<'a> {
    /// User-mode network with these forwards.
    User(&'a [Forward]),
    /// A tap QEMU finds open at this fd.
    TapFd(i32),
    /// A tap QEMU opens by name.
    Tap(&'a str),
    /// QEMU's bridge helper makes a tap on this bridge.
    Bridge(&'a str),
}

/// How the guest starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Boot<'a> {
    /// QEMU loads the kernel and initramfs itself; the state disk is apart.
    Direct {
        kernel: &'a str,
        initrd: &'a str,
        append: &'a str,
        state_disk: &'a str,
    },
    /// UEFI firmware boots the disk's UKI; the disk holds the state.
    Uefi {
        code: &'a str,
        vars: &'a str,
        disk: &'a str,
        format: &'a str,
        /// Secure Boot firmware: needs q35 with SMM and a secure flash.
        secure_boot: bool,
    },
}

/// Everything resolved that the command line needs. Paths are UTF-8 already.
#[derive(Debug, Clone)]
pub(crate) struct LaunchPlan<'a> {
    pub name: &'a str,
    pub machine: Machine,
    pub accel: &'a Accel,
    pub memory_mib: u32,
    pub cpus: u32,
    pub boot: Boot<'a>,
    pub net: Netdev<'a>,
    pub mac: &'a str,
    pub serial_socket: &'a str,
    pub serial_log: &'a str,
    pub qmp_socket: &'a str,
}

/// A value inside a QEMU `key=value,…` option: commas are doubled.
fn esc(value: &str) -> String {
    value.replace(',', ",,")
}

/// The arguments after the program name.
pub(crate) fn qemu_args(plan: &LaunchPlan<'_>) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    let (net_device, blk_device, rng_device) = match plan.machine {
        Machine::Microvm => (
            "virtio-net-device",
            "virtio-blk-device",
            "virtio-rng-device",
        ),
        Machine::Pc => ("virtio-net-pci", "virtio-blk-pci", "virtio-rng-pci"),
    };
    push(&[
        "-name",
        &format!("{},process=mote-{}", plan.name, plan.name),
    ]);
    let secure = matches!(
        plan.boot,
        Boot::Uefi {
            secure_boot: true,
            ..
        }
    );
    let machine = if secure {
        "q35,smm=on"
    } else {
        plan.machine.as_str()
    };
    push(&["-machine", machine, "-accel", plan.accel.as_str()]);
    if secure {
        push(&["-global", "driver=cfi.pflash01,property=secure,value=on"]);
    }
    if *plan.accel == Accel::Kvm {
        push(&["-cpu", "host"]);
    }
    push(&["-nodefaults", "-no-user-config", "-display", "none"]);
    push(&[
        "-m",
        &plan.memory_mib.to_string(),
        "-smp",
        &plan.cpus.to_string(),
    ]);
    if let Boot::Direct {
        kernel,
        initrd,
        append,
        ..
    } = plan.boot
    {
        push(&["-kernel", kernel, "-initrd", initrd, "-append", append]);
    }
    if let Boot::Uefi { code, vars, .. } = plan.boot {
        let code = format!("if=pflash,format=raw,unit=0,readonly=on,file={}", esc(code));
        let vars = format!("if=pflash,format=raw,unit=1,file={}", esc(vars));
        push(&["-drive", &code, "-drive", &vars]);
    }
    let serial = format!(
        "socket,id=ser0,path={},server=on,wait=off,logfile={}",
        esc(plan.serial_socket),
        esc(plan.serial_log)
    );
    push(&["-chardev", &serial, "-serial", "chardev:ser0"]);
    let qmp = format!(
        "socket,id=qmp,path={},server=on,wait=off",
        esc(plan.qmp_socket)
    );
    push(&["-chardev", &qmp, "-mon", "chardev=qmp,mode=control"]);
    let netdev = match plan.net {
        Netdev::User(forwards) => {
            let mut netdev = String::from("user,id=n0");
            for f in forwards {
                netdev.push_str(&format!(
                    ",hostfwd={}:127.0.0.1:{}-:{}",
                    f.protocol, f.host, f.guest
                ));
            }
            netdev
        }
        Netdev::TapFd(fd) => format!("tap,id=n0,fd={fd}"),
        Netdev::Tap(ifname) => format!("tap,id=n0,ifname={},script=no,downscript=no", esc(ifname)),
        Netdev::Bridge(bridge) => format!("bridge,id=n0,br={}", esc(bridge)),
    };
    push(&[
        "-netdev",
        &netdev,
        "-device",
        &format!("{net_device},netdev=n0,mac={}", plan.mac),
    ]);
    let (file, format, device) = match plan.boot {
        Boot::Direct { state_disk, .. } => (state_disk, "raw", format!("{blk_device},drive=state")),
        Boot::Uefi { disk, format, .. } => (
            disk,
            format,
            format!("{blk_device},drive=state,bootindex=0"),
        ),
    };
    // A fixed VHD's size is its footer's, as Hyper-V and Azure read it;
    // QEMU would otherwise round it down to the CHS geometry.
    let size_calc = if format == "vpc" {
        ",force_size_calc=current_size"
    } else {
        ""
    };
    let drive = format!(
        "file={},if=none,format={format}{size_calc},id=state,cache=writeback",
        esc(file)
    );
    push(&["-drive", &drive, "-device", &device]);
    // Host entropy: without it a fresh guest's pool can stay uninitialised
    // for minutes, and static binaries whose getrandom falls back to polling
    // /dev/random (the getrandom crate does, lacking a dynamic libc symbol)
    // stall PID 1 (seen: the DHCP client waiting forever after DISCOVER).
    push(&["-device", rng_device]);
    args
}

/// The kernel command line: the image's (its lines joined), the caller's
/// extra words, and the TSC hint when there is one and the image did not set
/// its own.
pub(crate) fn kernel_cmdline(image: &str, extra: &str, tsc_khz: Option<u64>) -> String {
    let mut words: Vec<&str> = image.split_whitespace().collect();
    words.extend(extra.split_whitespace());
    let mut line = words.join(" ");
    if let Some(khz) = tsc_khz {
        if !words.iter().any(|w| w.starts_with("tsc_early_khz=")) {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&format!("tsc_early_khz={khz}"));
        }
    }
    line
}

/// The host's TSC rate in kHz, measured over 20 ms, when the host TSC is
/// constant (`constant_tsc` in /proc/cpuinfo).
///
/// Why: under TCG the guest's TSC is the host's, and a microvm has neither
/// HPET nor ACPI PM timer. Linux calibrates the TSC against the PIT, which
/// under TCG on a busy host fails now and then ("tsc: Unable to calibrate
/// against PIT"); with no other reference the boot then hangs before the
/// first console line. Measured here: 5 of 16 microvm boots hung with two
/// boots at once, 0 of 10 with `tsc_early_khz` set. `-machine pc` has HPET
/// and the PM timer and does not need this.
#[cfg(target_arch = "x86_64")]
pub(crate) fn host_tsc_khz() -> Option<u64> {
    use std::time::{Duration, Instant};
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    if !cpuinfo.contains(" constant_tsc") {
        return None;
    }
    let rdtsc = || {
        // SAFETY: rdtsc reads a counter; it has no memory effects and every
        // x86_64 CPU has it.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    };
    let (t0, c0) = (Instant::now(), rdtsc());
    std::thread::sleep(Duration::from_millis(20));
    let (c1, t1) = (rdtsc(), Instant::now());
    let ns = t1.duration_since(t0).as_nanos() as u64;
    let ticks = c1.checked_sub(c0)?;
    (ns > 0).then(|| ticks.saturating_mul(1_000_000) / ns)
}

/// Not an x86_64 host: TCG's guest TSC rate is not the host's counter.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn host_tsc_khz() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Protocol;

    fn plan<'a>(machine: Machine, accel: &'a Accel, forwards: &'a [Forward]) -> LaunchPlan<'a> {
        LaunchPlan {
            name: "web01",
            machine,
            accel,
            memory_mib: 256,
            cpus: 1,
            boot: Boot::Direct {
                kernel: "/img/vmlinuz",
                initrd: "/img/initrd.img",
                append: "console=ttyS0 quiet panic=-1",
                state_disk: "/s/nodes/web01/state.img",
            },
            net: Netdev::User(forwards),
            mac: "52:54:b9:81:fc:0e",
            serial_socket: "/s/nodes/web01/serial.sock",
            serial_log: "/s/nodes/web01/serial.log",
            qmp_socket: "/s/nodes/web01/qmp.sock",
        }
    }

    #[test]
    fn argv_golden_microvm_tcg() {
        let tcg = Accel::Tcg { reason: "x".into() };
        let forwards = [
            Forward {
                host: 8080,
                guest: 80,
                protocol: Protocol::Tcp,
            },
            Forward {
                host: 5353,
                guest: 53,
                protocol: Protocol::Udp,
            },
        ];
        let got = qemu_args(&plan(Machine::Microvm, &tcg, &forwards)).join("\n");
        let want = "\
-name
web01,process=mote-web01
-machine
microvm
-accel
tcg
-nodefaults
-no-user-config
-display
none
-m
256
-smp
1
-kernel
/img/vmlinuz
-initrd
/img/initrd.img
-append
console=ttyS0 quiet panic=-1
-chardev
socket,id=ser0,path=/s/nodes/web01/serial.sock,server=on,wait=off,logfile=/s/nodes/web01/serial.log
-serial
chardev:ser0
-chardev
socket,id=qmp,path=/s/nodes/web01/qmp.sock,server=on,wait=off
-mon
chardev=qmp,mode=control
-netdev
user,id=n0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:127.0.0.1:5353-:53
-device
virtio-net-device,netdev=n0,mac=52:54:b9:81:fc:0e
-drive
file=/s/nodes/web01/state.img,if=none,format=raw,id=state,cache=writeback
-device
virtio-blk-device,drive=state
-device
virtio-rng-device";
        assert_eq!(got, want);
    }

    #[test]
    fn argv_pc_kvm_uses_pci_devices_and_the_host_cpu() {
        let args = qemu_args(&plan(Machine::Pc, &Accel::Kvm, &[])).join(" ");
        assert!(
            args.contains("-machine pc -accel kvm -cpu host -nodefaults"),
            "{args}"
        );
        assert!(
            args.contains("-netdev user,id=n0 -device virtio-net-pci,netdev=n0,mac="),
            "{args}"
        );
        assert!(
            args.contains("-device virtio-blk-pci,drive=state"),
            "{args}"
        );
    }

    #[test]
    fn taps_and_bridges_have_no_forwards() {
        let tcg = Accel::Tcg { reason: "x".into() };
        let mut p = plan(Machine::Microvm, &tcg, &[]);
        let netdev = |p: &LaunchPlan<'_>| {
            let args = qemu_args(p);
            let at = args.iter().position(|a| a == "-netdev").unwrap();
            format!("{} {}", args[at + 1], args[at + 3])
        };
        p.net = Netdev::TapFd(3);
        assert_eq!(
            netdev(&p),
            "tap,id=n0,fd=3 virtio-net-device,netdev=n0,mac=52:54:b9:81:fc:0e"
        );
        p.net = Netdev::Tap("tap0");
        assert!(netdev(&p).starts_with("tap,id=n0,ifname=tap0,script=no,downscript=no "));
        p.net = Netdev::Bridge("br0");
        assert!(netdev(&p).starts_with("bridge,id=n0,br=br0 "));
    }

    #[test]
    fn a_disk_boots_from_firmware_with_no_kernel_and_no_second_disk() {
        let tcg = Accel::Tcg { reason: "x".into() };
        let mut p = plan(Machine::Pc, &tcg, &[]);
        p.boot = Boot::Uefi {
            code: "/usr/share/OVMF/OVMF_CODE_4M.fd",
            vars: "/s/nodes/web01/efivars.fd",
            disk: "/out/web01.qcow2",
            format: "qcow2",
            secure_boot: false,
        };
        let args = qemu_args(&p).join(" ");
        assert!(
            !args.contains("-kernel") && !args.contains("-initrd"),
            "{args}"
        );
        assert!(
            args.contains(
                "-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
                 -drive if=pflash,format=raw,unit=1,file=/s/nodes/web01/efivars.fd"
            ),
            "{args}"
        );
        assert!(
            args.contains(
                "-drive file=/out/web01.qcow2,if=none,format=qcow2,id=state,cache=writeback \
                 -device virtio-blk-pci,drive=state,bootindex=0"
            ),
            "{args}"
        );
        assert_eq!(args.matches("-drive file=").count(), 1, "{args}");
    }

    #[test]
    fn commas_in_paths_are_escaped() {
        let tcg = Accel::Tcg { reason: "x".into() };
        let mut p = plan(Machine::Pc, &tcg, &[]);
        if let Boot::Direct { state_disk, .. } = &mut p.boot {
            *state_disk = "/a,b/state.img";
        }
        let args = qemu_args(&p);
        assert!(
            args.iter()
                .any(|a| a.starts_with("file=/a,,b/state.img,if=none")),
            "{args:?}"
        );
    }

    #[test]
    fn kernel_cmdline_joins_and_adds_the_tsc_hint_once() {
        assert_eq!(
            kernel_cmdline("console=ttyS0 quiet\n", "", None),
            "console=ttyS0 quiet"
        );
        assert_eq!(
            kernel_cmdline("console=ttyS0\n  quiet\n", " mote.debug=1 ", Some(2596145)),
            "console=ttyS0 quiet mote.debug=1 tsc_early_khz=2596145"
        );
        assert_eq!(
            kernel_cmdline("console=ttyS0 tsc_early_khz=1000", "", Some(2)),
            "console=ttyS0 tsc_early_khz=1000"
        );
        assert_eq!(kernel_cmdline("", "", Some(7)), "tsc_early_khz=7");
    }

    #[test]
    fn host_tsc_rate_is_plausible() {
        if let Some(khz) = host_tsc_khz() {
            assert!((100_000..10_000_000).contains(&khz), "{khz} kHz");
        }
    }
}
