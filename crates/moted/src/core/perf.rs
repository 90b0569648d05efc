//! Performance figures from `/proc`, statvfs and cgroup files.

use std::path::Path;

use mote_api::api::{Disk, Memory, NetDev, ServicePerf};
use mote_api::control::ServiceInfo;

/// Cumulative CPU jiffies from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// All jiffies.
    pub total: u64,
    /// Idle plus iowait jiffies.
    pub idle: u64,
}

/// Parses `/proc/stat` text.
pub fn cpu_times(stat: &str) -> CpuTimes {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return CpuTimes::default();
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    CpuTimes {
        total: f.iter().take(8).sum(),
        idle: f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0),
    }
}

/// Busy share between two samples, 0–100.
pub fn busy_percent(a: CpuTimes, b: CpuTimes) -> f64 {
    let total = b.total.saturating_sub(a.total);
    let idle = b.idle.saturating_sub(a.idle);
    if total == 0 {
        return 0.0;
    }
    (total.saturating_sub(idle)) as f64 * 100.0 / total as f64
}

/// Reads the current sample.
pub fn read_cpu() -> CpuTimes {
    cpu_times(&std::fs::read_to_string("/proc/stat").unwrap_or_default())
}

/// Number of CPUs in `/proc/stat`.
pub fn cpus() -> u32 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let n = s
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    u32::try_from(n).unwrap_or(1).max(1)
}

/// The 1/5/15 minute load averages.
pub fn load() -> [f64; 3] {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = s.split_whitespace().map(|x| x.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// Parses `/proc/meminfo` text.
pub fn memory(meminfo: &str) -> Memory {
    let get = |key: &str| -> u64 {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Memory {
        total_bytes: get("MemTotal"),
        available_bytes: get("MemAvailable"),
        free_bytes: get("MemFree"),
    }
}

/// statvfs of `path`.
pub fn disk(path: &Path) -> Option<Disk> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some(Disk {
        path: path.display().to_string(),
        total_bytes: s.f_blocks.saturating_mul(s.f_frsize),
        available_bytes: s.f_bavail.saturating_mul(s.f_frsize),
    })
}

/// Parses `/proc/net/dev` text.
pub fn net_dev(text: &str) -> Vec<NetDev> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some(NetDev {
                name: name.trim().to_string(),
                rx_bytes: *f.first()?,
                rx_packets: *f.get(1)?,
                tx_bytes: *f.get(8)?,
                tx_packets: *f.get(9)?,
            })
        })
        .collect()
}

/// CPU and memory of a service from its cgroup directory.
pub fn service(s: &ServiceInfo) -> ServicePerf {
    let dir = s.cgroup.as_deref().map(Path::new);
    let read = |f: &str| dir.and_then(|d| std::fs::read_to_string(d.join(f)).ok());
    ServicePerf {
        name: s.name.clone(),
        cpu_usec: read("cpu.stat").and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse().ok())
        }),
        memory_bytes: read("memory.current").and_then(|v| v.trim().parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let a = cpu_times("cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 1 2 3 4\n");
        let b = cpu_times("cpu  20 0 20 160 0 0 0 0 0 0\n");
        assert_eq!(a.total, 100);
        assert!((busy_percent(a, b) - 20.0).abs() < 1e-9);
        let m = memory("MemTotal:  100 kB\nMemFree: 10 kB\nMemAvailable: 50 kB\n");
        assert_eq!(m.total_bytes, 102400);
        assert_eq!(m.available_bytes, 51200);
        let n = net_dev("h1\nh2\n  lo: 1 2 0 0 0 0 0 0 3 4 0 0 0 0 0 0\n");
        assert_eq!(n[0].name, "lo");
        assert_eq!(n[0].tx_bytes, 3);
    }

    #[test]
    fn reads_a_cgroup_dir() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("cpu.stat"), "usage_usec 1234\nuser_usec 1\n").unwrap();
        std::fs::write(d.path().join("memory.current"), "4096\n").unwrap();
        let p = service(&ServiceInfo {
            name: "web".into(),
            state: "ready".into(),
            reason: None,
            pid: None,
            restarts: 0,
            since_ms: 0,
            cgroup: Some(d.path().display().to_string()),
        });
        assert_eq!(p.cpu_usec, Some(1234));
        assert_eq!(p.memory_bytes, Some(4096));
    }
}
