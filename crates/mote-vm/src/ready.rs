//! Readiness: what PID 1 prints on the serial console, and the boot split
//! computed from it.
//!
//! PID 1 prints `mote: init uptime_ms=N` when it starts and
//! `mote: ready hostname=NAME addresses=A,B boot_ms=N [key=value…]` when the
//! node is ready. Both are found anywhere in a console line (kernel messages
//! may be interleaved); fields are `key=value` words in any order, unknown
//! keys are kept, words without `=` are ignored.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// What the ready line said, with the boot split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadyReport {
    /// The node's hostname.
    pub hostname: String,
    /// Its addresses (`addresses=` split on commas; may be empty).
    pub addresses: Vec<String>,
    /// Every `key=value` field of the ready line, the three above included.
    pub fields: BTreeMap<String, String>,
    /// Where the boot time went.
    pub split: BootSplit,
}

/// Where the time from spawning QEMU to the ready line went, in ms.
///
/// The host knows the wall clock at spawn and when it saw the ready line;
/// the guest knows its uptime at PID 1's start (`uptime_ms`) and at readiness
/// (`boot_ms`). The kernel started at about `wall(ready) − boot_ms`, so:
/// - `qemu_to_kernel_ms` = total − boot_ms (QEMU start, firmware, loading,
///   and the kernel decompressing itself: its clock starts after that);
/// - `kernel_to_init_ms` = uptime_ms (the kernel's own boot);
/// - `init_to_ready_ms` = boot_ms − uptime_ms (PID 1 until ready).
///
/// Missing guest numbers count as zero on the guest side (no `boot_ms`: all
/// of it is `qemu_to_kernel_ms`; no init line: PID 1's share is counted in
/// `kernel_to_init_ms`). The host sees the ready line within one poll (20 ms)
/// of its printing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BootSplit {
    /// From spawning QEMU to the start of the kernel's clock.
    pub qemu_to_kernel_ms: u64,
    /// From the kernel's start to PID 1's start.
    pub kernel_to_init_ms: u64,
    /// From PID 1's start to the ready line.
    pub init_to_ready_ms: u64,
    /// From spawning QEMU to seeing the ready line.
    pub total_ms: u64,
}

impl BootSplit {
    /// Split `total_ms` (host wall clock) using the guest's uptimes.
    pub fn compute(total_ms: u64, init_uptime_ms: Option<u64>, boot_ms: Option<u64>) -> Self {
        let Some(boot_ms) = boot_ms else {
            return Self {
                qemu_to_kernel_ms: total_ms,
                total_ms,
                ..Self::default()
            };
        };
        // The guest's clock and ours disagree a little; never claim more
        // guest time than the host saw.
        let boot_ms = boot_ms.min(total_ms);
        let init = init_uptime_ms.unwrap_or(boot_ms).min(boot_ms);
        Self {
            qemu_to_kernel_ms: total_ms - boot_ms,
            kernel_to_init_ms: init,
            init_to_ready_ms: boot_ms - init,
            total_ms,
        }
    }
}

/// One console line, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConsoleEvent {
    /// `mote: init uptime_ms=N`.
    Init { uptime_ms: Option<u64> },
    /// `mote: ready …`, its fields.
    Ready(BTreeMap<String, String>),
    /// The kernel panicked.
    Panic,
    /// UEFI firmware found nothing it would boot: no boot loader on the
    /// disk, or one Secure Boot refused.
    NoBoot,
    /// Anything else.
    Other,
}

const INIT_MARK: &str = "mote: init";
const READY_MARK: &str = "mote: ready";

pub(crate) fn classify(line: &str) -> ConsoleEvent {
    if let Some(at) = line.find(READY_MARK) {
        return ConsoleEvent::Ready(fields(&line[at + READY_MARK.len()..]));
    }
    if let Some(at) = line.find(INIT_MARK) {
        let f = fields(&line[at + INIT_MARK.len()..]);
        return ConsoleEvent::Init {
            uptime_ms: f.get("uptime_ms").and_then(|v| v.parse().ok()),
        };
    }
    if line.contains("Kernel panic - not syncing") {
        return ConsoleEvent::Panic;
    }
    // OVMF's boot manager, after every boot option failed.
    if line.contains("BdsDxe: No bootable option or device was found") {
        return ConsoleEvent::NoBoot;
    }
    ConsoleEvent::Other
}

fn fields(rest: &str) -> BTreeMap<String, String> {
    rest.split_whitespace()
        .filter_map(|word| word.split_once('='))
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// Build the report from a ready line's fields and the times.
pub(crate) fn report(
    fields: BTreeMap<String, String>,
    total_ms: u64,
    init_uptime_ms: Option<u64>,
) -> ReadyReport {
    let hostname = fields.get("hostname").cloned().unwrap_or_default();
    let addresses = fields
        .get("addresses")
        .map(|a| {
            a.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let boot_ms = fields.get("boot_ms").and_then(|v| v.parse().ok());
    // The ready line repeats PID 1's start as `init_ms`: trust it over the
    // init line, which kernel messages may have split on the console.
    let init_uptime_ms = fields
        .get("init_ms")
        .and_then(|v| v.parse().ok())
        .or(init_uptime_ms);
    ReadyReport {
        hostname,
        addresses,
        split: BootSplit::compute(total_ms, init_uptime_ms, boot_ms),
        fields,
    }
}

/// Follows a growing log file, handing out complete lines and keeping the
/// last few for error messages.
#[derive(Debug)]
pub(crate) struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    recent: VecDeque<String>,
}

/// How many console lines an error message shows.
pub(crate) const RECENT_LINES: usize = 20;

/// How often the log is polled.
pub(crate) const POLL: Duration = Duration::from_millis(20);

impl LogTail {
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
            recent: VecDeque::with_capacity(RECENT_LINES),
        }
    }

    /// The complete lines written since the last call. A missing file (QEMU
    /// has not created it yet) reads as empty.
    pub(crate) fn read_lines(&mut self) -> std::io::Result<Vec<String>> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw)
                .trim_end_matches(['\n', '\r'])
                .to_string();
            if self.recent.len() == RECENT_LINES {
                self.recent.pop_front();
            }
            self.recent.push_back(line.clone());
            lines.push(line);
        }
        Ok(lines)
    }

    /// The last lines seen, and the unfinished one, for an error message.
    pub(crate) fn recent(&self) -> String {
        let mut out: Vec<String> = self.recent.iter().cloned().collect();
        if !self.partial.is_empty() {
            out.push(
                String::from_utf8_lossy(&self.partial)
                    .trim_end()
                    .to_string(),
            );
        }
        out.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn ready_lines_parse_tolerantly() {
        let line = "[    1.2] x mote: ready hostname=web01 addresses=10.0.2.15,fec0::5 boot_ms=1234 api=5986 junk\r";
        let ConsoleEvent::Ready(f) = classify(line) else {
            panic!("not a ready line");
        };
        let r = report(f, 3000, Some(1100));
        assert_eq!(r.hostname, "web01");
        assert_eq!(r.addresses, vec!["10.0.2.15", "fec0::5"]);
        assert_eq!(r.fields.get("api").map(String::as_str), Some("5986"));
        assert_eq!(r.fields.get("boot_ms").map(String::as_str), Some("1234"));
        assert!(!r.fields.contains_key("junk"));

        let ConsoleEvent::Ready(f) = classify("mote: ready hostname=t addresses= boot_ms=2") else {
            panic!("not a ready line");
        };
        let r = report(f, 10, None);
        assert!(r.addresses.is_empty());
        let ConsoleEvent::Ready(f) = classify("mote: ready") else {
            panic!("not a ready line");
        };
        assert_eq!(report(f, 10, None).hostname, "");
    }

    #[test]
    fn init_and_panic_lines_are_recognised() {
        assert_eq!(
            classify("mote: init uptime_ms=1132"),
            ConsoleEvent::Init {
                uptime_ms: Some(1132)
            }
        );
        assert_eq!(
            classify("mote: init uptime_ms=x"),
            ConsoleEvent::Init { uptime_ms: None }
        );
        assert_eq!(
            classify("[    0.9] Kernel panic - not syncing: No working init found."),
            ConsoleEvent::Panic
        );
        assert_eq!(classify("[    0.1] Linux version 6.1"), ConsoleEvent::Other);
    }

    #[test]
    fn boot_split_arithmetic() {
        assert_eq!(
            BootSplit::compute(2600, Some(1130), Some(1180)),
            BootSplit {
                qemu_to_kernel_ms: 1420,
                kernel_to_init_ms: 1130,
                init_to_ready_ms: 50,
                total_ms: 2600
            }
        );
        // No init line: PID 1's share is in the kernel's.
        assert_eq!(
            BootSplit::compute(2000, None, Some(1500)),
            BootSplit {
                qemu_to_kernel_ms: 500,
                kernel_to_init_ms: 1500,
                init_to_ready_ms: 0,
                total_ms: 2000
            }
        );
        // No boot_ms: all of it before the kernel.
        assert_eq!(
            BootSplit::compute(900, Some(10), None).qemu_to_kernel_ms,
            900
        );
        // Guest clock ahead of ours: clamp, never underflow.
        let s = BootSplit::compute(1000, Some(1200), Some(1100));
        assert_eq!(
            (s.qemu_to_kernel_ms, s.kernel_to_init_ms, s.init_to_ready_ms),
            (0, 1000, 0)
        );
        let s = BootSplit::compute(5000, Some(1200), Some(1100));
        assert_eq!((s.kernel_to_init_ms, s.init_to_ready_ms), (1100, 0));
    }

    #[test]
    fn log_tail_hands_out_complete_lines_and_keeps_the_last_twenty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        let mut tail = LogTail::new(&path);
        assert!(tail.read_lines().unwrap().is_empty());
        let mut file = File::create(&path).unwrap();
        write!(file, "one\r\ntw").unwrap();
        assert_eq!(tail.read_lines().unwrap(), vec!["one"]);
        writeln!(file, "o").unwrap();
        assert_eq!(tail.read_lines().unwrap(), vec!["two"]);
        for i in 0..30 {
            writeln!(file, "line {i}").unwrap();
        }
        write!(file, "half").unwrap();
        assert_eq!(tail.read_lines().unwrap().len(), 30);
        let recent = tail.recent();
        assert_eq!(recent.lines().count(), RECENT_LINES + 1);
        assert!(recent.starts_with("line 10\n"), "{recent}");
        assert!(recent.ends_with("line 29\nhalf"), "{recent}");
    }
}

#[cfg(test)]
mod init_ms_tests {
    use super::*;

    #[test]
    fn regression_the_ready_lines_init_ms_wins_over_a_missed_init_line() {
        let fields: BTreeMap<String, String> = [
            ("hostname", "h"),
            ("addresses", ""),
            ("boot_ms", "2000"),
            ("init_ms", "1400"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let split = report(fields, 3000, None).split;
        assert_eq!(split.kernel_to_init_ms, 1400);
        assert_eq!(split.init_to_ready_ms, 600);
        assert_eq!(split.qemu_to_kernel_ms, 1000);
    }

    #[test]
    fn firmware_with_nothing_to_boot_is_told_apart() {
        assert!(matches!(
            classify("\x1b[2JBdsDxe: No bootable option or device was found."),
            ConsoleEvent::NoBoot
        ));
        assert!(matches!(
            classify("BdsDxe: loading Boot0001 \"UEFI Misc Device\""),
            ConsoleEvent::Other
        ));
    }
}
