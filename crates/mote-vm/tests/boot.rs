//! Boots real guests: Debian's cloud kernel with a tiny static init
//! (`tests/guest/init.rs`, compiled here with rustc) in an initramfs written
//! here. Needs qemu-system-x86_64, rustc, and the kernel: `$MOTE_TEST_KERNEL`
//! (a vmlinuz; `$MOTE_TEST_MODULES` a directory holding its `button.ko` and
//! `evdev.ko`), else the kernel `mote build` uses, from mote's kernel cache
//! (fetched once with apt-get). A missing prerequisite fails
//! the test; `MOTE_SKIP_VM=1` skips the tests instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mote_vm::{registry, start, Machine, RunConfig, RunningNode, StopOutcome, VmError};

const READY_TIMEOUT: Duration = Duration::from_secs(90);

struct Kit {
    kernel: PathBuf,
    modules: Option<(PathBuf, PathBuf)>,
    init: PathBuf,
    root: PathBuf,
}

/// Everything the tests share, made once; `None` when MOTE_SKIP_VM=1.
fn kit() -> Option<&'static Kit> {
    static KIT: OnceLock<Option<Kit>> = OnceLock::new();
    KIT.get_or_init(|| {
        if std::env::var_os("MOTE_SKIP_VM").is_some_and(|v| v == "1") {
            return None;
        }
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mote-vm");
        std::fs::create_dir_all(&root).expect("create the test directory");
        sweep(&root);
        let state = root.join(format!("state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        // Set once, before any node starts; every test goes through here first.
        std::env::set_var("MOTE_STATE_DIR", &state);
        let qemu = Command::new("qemu-system-x86_64").arg("--version").output();
        if !qemu.is_ok_and(|o| o.status.success()) {
            panic!("qemu-system-x86_64 is needed to boot test guests: apt-get install qemu-system-x86 (MOTE_SKIP_VM=1 skips these tests)");
        }
        let (kernel, modules) = kernel(&root);
        let init = build_init(&root);
        Some(Kit {
            kernel,
            modules,
            init,
            root,
        })
    })
    .as_ref()
}

/// Remove what earlier test runs left (images, state directories, logs,
/// all named after their process id), unless that process still runs.
fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stem = name.trim_end_matches(".log");
        let Some(pid) = stem.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

fn kernel(root: &Path) -> (PathBuf, Option<(PathBuf, PathBuf)>) {
    if let Some(kernel) = std::env::var_os("MOTE_TEST_KERNEL").map(PathBuf::from) {
        assert!(
            kernel.is_file(),
            "MOTE_TEST_KERNEL={} is not a file",
            kernel.display()
        );
        let modules = std::env::var_os("MOTE_TEST_MODULES").map(PathBuf::from);
        return (kernel, modules.and_then(|dir| find_modules(&dir)));
    }
    // The kernel `mote build` uses: Debian's current cloud kernel, fetched
    // once into mote's cache (a pinned version disappears from the mirror).
    let _ = root;
    let cache = mote_kernel::KernelCache::default_location().expect("mote's kernel cache");
    let kernel = mote_kernel::obtain(
        &mote_config::Kernel::default(),
        Path::new("."),
        &cache,
        &mut |m| eprintln!("{m}"),
    )
    .unwrap_or_else(|e| {
        panic!("{e}: set MOTE_TEST_KERNEL to a vmlinuz (and MOTE_TEST_MODULES to its modules), or MOTE_SKIP_VM=1")
    });
    let modules = find_modules(&kernel.modules_dir);
    assert!(
        modules.is_some(),
        "button.ko and evdev.ko not found under {}",
        kernel.modules_dir.display()
    );
    (kernel.vmlinuz, modules)
}

fn find_modules(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    fn walk(dir: &Path, name: &str) -> Option<PathBuf> {
        for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                if let Some(found) = walk(&path, name) {
                    return Some(found);
                }
            } else if entry.file_name() == name {
                return Some(path);
            }
        }
        None
    }
    Some((walk(dir, "button.ko")?, walk(dir, "evdev.ko")?))
}

fn build_init(root: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guest/init.rs");
    let out = root.join("init");
    let status = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "strip=symbols",
        ])
        .arg("-o")
        .arg(&out)
        .arg(&source)
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "rustc could not build the test init from {}",
        source.display()
    );
    out
}

/// A minimal cpio "newc" archive writer: each entry is a 110-byte ASCII
/// header (magic 070701 and 13 eight-digit hex fields), the NUL-terminated
/// name padded to 4 bytes, then the data padded to 4 bytes; `TRAILER!!!`
/// ends it.
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn new() -> Self {
        Self {
            out: Vec::new(),
            ino: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.ino += 1;
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.out
    }
}

/// An image directory as `mote build` makes it; `with_init: false` leaves
/// PID 1 out so the kernel panics.
fn image(kit: &Kit, name: &str, with_init: bool) -> PathBuf {
    let dir = kit
        .root
        .join(format!("image-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the image directory");
    let mut cpio = Cpio::new();
    cpio.entry("dev", 0o040755, &[], (0, 0));
    cpio.entry("dev/console", 0o020600, &[], (5, 1));
    cpio.entry("sys", 0o040755, &[], (0, 0));
    if with_init {
        let init = std::fs::read(&kit.init).expect("read the test init");
        cpio.entry("init", 0o100755, &init, (0, 0));
    }
    if let Some((button, evdev)) = &kit.modules {
        for (name, path) in [("button.ko", button), ("evdev.ko", evdev)] {
            let data = std::fs::read(path).expect("read a kernel module");
            cpio.entry(name, 0o100644, &data, (0, 0));
        }
    }
    std::fs::write(dir.join("initrd.img"), cpio.finish()).expect("write initrd.img");
    std::os::unix::fs::symlink(&kit.kernel, dir.join("vmlinuz")).expect("link vmlinuz");
    std::fs::write(dir.join("cmdline"), "console=ttyS0 quiet panic=-1\n").expect("write cmdline");
    std::fs::write(dir.join("build.json"), "{}\n").expect("write build.json");
    dir
}

fn config(kit: &Kit, name: &str, machine: Machine, mode: &str) -> RunConfig {
    let mut cfg = RunConfig::new(name, image(kit, name, true));
    cfg.machine = machine;
    cfg.accel = mote_vm::AccelChoice::Tcg;
    cfg.extra_cmdline = format!("motetest={mode}");
    cfg
}

/// Kills a test's QEMU if the test fails before it ends (a node outlives
/// the process that started it, by design).
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("kill")
                .arg("-9")
                .arg(self.0.to_string())
                .status();
        }
    }
}

fn ready(node: &mut RunningNode) -> mote_vm::ReadyReport {
    match node.wait_ready(READY_TIMEOUT) {
        Ok(report) => report,
        Err(e) => panic!("{} did not get ready: {e}", node.name()),
    }
}

#[test]
fn boots_to_ready_and_powers_itself_off() {
    let Some(kit) = kit() else { return };
    let mut cfg = config(kit, "selfoff", Machine::Microvm, "selfoff");
    cfg.forwards = vec!["0:80".parse().unwrap(), "0:53/udp".parse().unwrap()];
    let mut node = start(&cfg).unwrap_or_else(|e| panic!("start: {e}"));
    let _guard = KillOnPanic(node.pid());
    assert!(
        node.forwards().iter().all(|f| f.host != 0),
        "{:?}",
        node.forwards()
    );

    let listed = registry::list();
    let me = listed
        .iter()
        .find(|n| n.name == "selfoff")
        .expect("the node is registered");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", node.pid())).unwrap_or_default();
    assert!(me.alive, "{me:?} {}", String::from_utf8_lossy(&cmdline));
    assert_eq!(me.pid, node.pid());
    assert_eq!(me.forwards, node.forwards());
    match start(&cfg) {
        Err(VmError::AlreadyRunning { .. }) => {}
        other => panic!("a second start of a running name: {other:?}"),
    }

    let report = ready(&mut node);
    assert_eq!(report.hostname, "t");
    assert!(report.addresses.is_empty());
    assert_eq!(
        report.fields.get("mode").map(String::as_str),
        Some("selfoff")
    );
    let s = report.split;
    assert_eq!(
        s.qemu_to_kernel_ms + s.kernel_to_init_ms + s.init_to_ready_ms,
        s.total_ms
    );
    assert!(s.kernel_to_init_ms > 0, "{s:?}");

    let disk = std::fs::read(&me.state_disk).expect("the state disk was made");
    assert_eq!(&disk[1080..1082], &[0x53, 0xef], "ext4 magic");

    let log = node.serial_log().to_path_buf();
    let status = node
        .wait_exit(Duration::from_secs(60))
        .expect("the guest powers off");
    assert!(status.success(), "{status}");
    assert!(
        registry::list().iter().all(|n| n.name != "selfoff"),
        "unregistered"
    );
    let console = std::fs::read_to_string(log).unwrap_or_default();
    assert!(console.contains("reboot: Power down"), "{console}");
}

#[test]
fn the_power_button_stops_microvm_and_pc() {
    let Some(kit) = kit() else { return };
    assert!(
        kit.modules.is_some(),
        "set MOTE_TEST_MODULES to the directory with button.ko and evdev.ko"
    );
    for machine in [Machine::Microvm, Machine::Pc] {
        let name = format!("button-{machine}");
        let mut node =
            start(&config(kit, &name, machine, "button")).unwrap_or_else(|e| panic!("start: {e}"));
        let _guard = KillOnPanic(node.pid());
        ready(&mut node);
        node.powerdown()
            .unwrap_or_else(|e| panic!("powerdown on {machine}: {e}"));
        let log = node.serial_log().to_path_buf();
        let status = node
            .wait_exit(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{machine}: {e}"));
        assert!(status.success(), "{machine}: {status}");
        let console = std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            console.contains("test: power button pressed"),
            "{machine}: {console}"
        );
    }
}

#[test]
fn registry_stop_powers_a_node_off() {
    let Some(kit) = kit() else { return };
    let mut node = start(&config(kit, "stopme", Machine::Microvm, "button"))
        .unwrap_or_else(|e| panic!("start: {e}"));
    let _guard = KillOnPanic(node.pid());
    ready(&mut node);
    match registry::stop("stopme", Duration::from_secs(60)) {
        Ok(StopOutcome::PoweredOff { .. }) => {}
        other => panic!("stop: {other:?}"),
    }
    let status = node
        .wait_exit(Duration::from_secs(5))
        .expect("QEMU has exited");
    assert!(status.success(), "{status}");
    assert!(matches!(
        registry::stop("stopme", Duration::from_secs(1)),
        Err(VmError::NotFound { .. })
    ));
}

#[test]
fn a_guest_reboot_boots_again() {
    let Some(kit) = kit() else { return };
    for machine in [Machine::Microvm, Machine::Pc] {
        let name = format!("reboot-{machine}");
        let mut cfg = config(kit, &name, machine, "reboot");
        cfg.console = true;
        let log = kit
            .root
            .join(format!("{name}-console-{}.log", std::process::id()));
        cfg.log = Some(log.clone());
        let mut node = start(&cfg).unwrap_or_else(|e| panic!("start: {e}"));
        let _guard = KillOnPanic(node.pid());
        assert_eq!(node.serial_log(), log);
        let link = registry::state_dir()
            .join("nodes")
            .join(&name)
            .join("serial.log");
        assert_eq!(std::fs::read_link(&link).ok(), Some(log.clone()));
        ready(&mut node);
        let second = ready(&mut node);
        assert!(second.split.total_ms > 0);
        let console = std::fs::read_to_string(node.serial_log()).unwrap_or_default();
        assert!(
            console.matches("mote: init").count() >= 2,
            "{machine}: {console}"
        );
        node.kill().expect("kill");
    }
}

#[test]
fn a_kernel_panic_is_reported_with_the_console() {
    let Some(kit) = kit() else { return };
    let mut cfg = RunConfig::new("panic", image(kit, "panic", false));
    cfg.accel = mote_vm::AccelChoice::Tcg;
    let mut node = start(&cfg).unwrap_or_else(|e| panic!("start: {e}"));
    let _guard = KillOnPanic(node.pid());
    match node.wait_ready(READY_TIMEOUT) {
        Err(VmError::KernelPanic { console }) => {
            assert!(console.contains("Kernel panic"), "{console}")
        }
        other => panic!("expected a panic: {other:?}"),
    }
    node.kill().expect("kill");
}

#[test]
fn qemu_exiting_early_is_reported_with_its_message() {
    let Some(kit) = kit() else { return };
    let mut cfg = RunConfig::new("badmem", image(kit, "badmem", true));
    cfg.accel = mote_vm::AccelChoice::Tcg;
    // QEMU refuses a state disk that is a directory, and exits at once.
    let bogus = kit.root.join(format!("not-a-disk-{}", std::process::id()));
    std::fs::create_dir_all(&bogus).expect("create a directory");
    cfg.state_disk = Some(bogus);
    let mut node = start(&cfg).unwrap_or_else(|e| panic!("start: {e}"));
    let _guard = KillOnPanic(node.pid());
    let started = Instant::now();
    match node.wait_ready(READY_TIMEOUT) {
        Err(VmError::QemuExited { console, .. }) => {
            assert!(console.contains("QEMU said"), "{console}")
        }
        other => panic!("expected QEMU to exit: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Not a pass/fail test: prints spawn → ready wall times for microvm and pc
/// under TCG with the trivial init. `cargo test -p mote-vm --test boot --
/// --ignored --nocapture boot_times`.
#[test]
#[ignore]
fn boot_times_microvm_vs_pc() {
    let Some(kit) = kit() else { return };
    for machine in [Machine::Microvm, Machine::Pc] {
        let mut totals = Vec::new();
        for i in 0..5 {
            let name = format!("time-{machine}-{i}");
            let mut node = start(&config(kit, &name, machine, "selfoff"))
                .unwrap_or_else(|e| panic!("start: {e}"));
            let _guard = KillOnPanic(node.pid());
            let r = ready(&mut node);
            println!("{machine}: {:?}", r.split);
            totals.push(r.split.total_ms);
            let _ = node.wait_exit(Duration::from_secs(60));
        }
        totals.sort_unstable();
        println!(
            "{machine}: spawn → ready median {} ms, min {} ms, max {} ms",
            totals[2], totals[0], totals[4]
        );
    }
}
