//! A network segment of the test's own: a network namespace `mote-t-PID-N`
//! holding bridge `br0` at 10.77.0.1/24, and dnsmasq in it as the segment's
//! DHCP server. Nodes join it with `mote run --net bridge=br0` run inside the
//! namespace (`ip netns exec`); probes such as nmap run there too. Nothing
//! touches the host's own network. Dropping the segment kills dnsmasq and
//! deletes the namespace, also when the test fails; drop the nodes first
//! (declare the segment before them).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::wait_for;

pub const BRIDGE: &str = "br0";
/// The host's side of the segment (the bridge's address).
pub const GATEWAY: &str = "10.77.0.1";
/// The first address dnsmasq hands out; reservations use it too.
pub const FIRST_LEASE: &str = "10.77.0.10";

/// Network namespaces and raw sockets need root.
pub fn net_prerequisites() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test makes a network namespace and needs root: run it as root, \
         or set MOTE_SKIP_VM=1 to skip VM tests"
    );
    for (program, package) in [
        ("ip", "iproute2"),
        ("dnsmasq", "dnsmasq-base"),
        ("nmap", "nmap"),
    ] {
        let found = ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"]
            .iter()
            .any(|d| std::path::Path::new(&format!("{d}{program}")).exists());
        assert!(
            found,
            "{program} is missing: run `cargo xtask test` (installs it) or apt-get install {package}; \
             set MOTE_SKIP_VM=1 to skip VM tests"
        );
    }
}

pub struct Segment {
    pub ns: String,
    dir: tempfile::TempDir,
    dnsmasq: Option<Child>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Segment {
    /// A fresh namespace with `lo` and the bridge up.
    pub fn new() -> Segment {
        static N: AtomicU32 = AtomicU32::new(0);
        let ns = format!(
            "mote-t-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        // A namespace of the same name is a leftover of a killed run.
        let _ = Command::new("ip")
            .args(["netns", "del", &ns])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &ns]);
        let segment = Segment {
            ns,
            dir: tempfile::tempdir().expect("temp dir"),
            dnsmasq: None,
        };
        let ns = segment.ns.as_str();
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        ip(&["-n", ns, "link", "add", BRIDGE, "type", "bridge"]);
        // No STP delay: a port forwards at once.
        ip(&[
            "-n",
            ns,
            "link",
            "set",
            BRIDGE,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{GATEWAY}/24"),
            "dev",
            BRIDGE,
        ]);
        ip(&["-n", ns, "link", "set", BRIDGE, "up"]);
        segment
    }

    /// A tap named `name` on the bridge, up, as a caller of
    /// `mote run --net tap=NAME` makes it.
    pub fn tap(&self, name: &str) {
        let ns = self.ns.as_str();
        ip(&["-n", ns, "tuntap", "add", "dev", name, "mode", "tap"]);
        ip(&["-n", ns, "link", "set", "dev", name, "master", BRIDGE, "up"]);
    }

    /// `PROGRAM` run inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]).arg(program);
        cmd
    }

    /// `mote` with the kit's environment, run inside the namespace.
    pub fn mote(&self, state: &std::path::Path) -> Command {
        let mut cmd = self.command(env!("CARGO_BIN_EXE_mote"));
        super::with_mote_env(&mut cmd, state);
        cmd
    }

    /// Start dnsmasq on the bridge as the segment's DHCP server (no DNS),
    /// reserving an address per MAC.
    pub fn dhcp(&mut self, reservations: &[(&str, &str)]) {
        let log = self.dir.path().join("dnsmasq.log");
        let mut cmd = self.command("dnsmasq");
        cmd.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            "--user=root",
            "--bind-interfaces",
            "--log-dhcp",
            &format!("--interface={BRIDGE}"),
            &format!("--dhcp-range={FIRST_LEASE},10.77.0.50,1h"),
        ])
        .arg(format!(
            "--dhcp-leasefile={}",
            self.dir.path().join("leases").display()
        ))
        .arg(format!(
            "--pid-file={}",
            self.dir.path().join("dnsmasq.pid").display()
        ));
        for (mac, addr) in reservations {
            cmd.arg(format!("--dhcp-host={mac},{addr}"));
        }
        let out = std::fs::File::create(&log).expect("dnsmasq log");
        let err = out.try_clone().expect("dnsmasq log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("dnsmasq starts");
        self.dnsmasq = Some(child);
        wait_for("dnsmasq to listen", Duration::from_secs(10), || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains("DHCP, sockets bound") || l.contains("dnsmasq: failed"))
        });
        let said = self.dhcp_log();
        assert!(!said.contains("failed"), "dnsmasq did not start:\n{said}");
    }

    /// The address dnsmasq leased to `mac`, once it has. PID 1 waits only
    /// 3 s for a lease before its ready line, so under load the ready line
    /// can come first: ask here rather than there.
    pub fn lease(&self, mac: &str, patience: Duration) -> String {
        let leases = self.dir.path().join("leases");
        let what = format!("a DHCP lease for {mac}");
        wait_for(&what, patience, || {
            // "EXPIRY MAC ADDRESS HOSTNAME CLIENT-ID" per line.
            std::fs::read_to_string(&leases)
                .ok()?
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.get(1) == Some(&mac)).then(|| f.get(2).map(|a| a.to_string()))?
                })
        })
    }

    /// What dnsmasq said, for a failing test's message.
    pub fn dhcp_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default()
    }

    /// A directory that lives as long as the segment.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Whether the namespace has an interface of this name.
    pub fn has_link(&self, name: &str) -> bool {
        Command::new("ip")
            .args(["-n", &self.ns, "link", "show", "dev", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// GET `http://ADDR:PORT/PATH` from inside the namespace.
    pub fn get(&self, addr: &str, port: u16, path: &str) -> Result<String, String> {
        let out = self
            .command("curl")
            .args(["-sS", "-f", "--max-time", "3"])
            .arg(format!("http://{addr}:{port}{path}"))
            .output()
            .expect("curl runs");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Some(mut child) = self.dnsmasq.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ns])
            .stderr(Stdio::null())
            .status();
    }
}
