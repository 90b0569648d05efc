//! Processes from `/proc/PID/{stat,status}`.

use std::collections::HashMap;

use mote_api::api::ProcessInfo;

fn sysconf(name: libc::c_int, fallback: u64) -> u64 {
    // SAFETY: sysconf reads a constant of the running system; no pointers.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|v| *v > 0).unwrap_or(fallback)
}

/// Parses one `/proc/PID/stat` line: (name, state, ppid, utime+stime ticks, rss pages).
pub fn parse_stat(stat: &str) -> Option<(String, String, u32, u64, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let f: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // f[0] is field 3 (state).
    let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
    Some((
        name,
        f.first()?.to_string(),
        u32::try_from(num(1)?).ok()?,
        num(11)? + num(12)?,
        num(21)?,
    ))
}

fn users() -> HashMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

/// Every process, by pid.
pub fn list() -> Vec<ProcessInfo> {
    let ticks = sysconf(libc::_SC_CLK_TCK, 100);
    let page = sysconf(libc::_SC_PAGESIZE, 4096);
    let users = users();
    let mut out: Vec<ProcessInfo> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (name, state, ppid, cpu, rss) = parse_stat(&stat)?;
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
            Some(ProcessInfo {
                pid,
                ppid,
                name,
                state,
                uid,
                user: users.get(&uid).cloned(),
                rss_bytes: rss * page,
                cpu_ms: cpu * 1000 / ticks,
            })
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_with_parens_and_spaces() {
        let s = "42 (a (b) c) S 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 100 1000 25 0";
        let (name, state, ppid, cpu, rss) = parse_stat(s).unwrap();
        assert_eq!(name, "a (b) c");
        assert_eq!(state, "S");
        assert_eq!(ppid, 1);
        assert_eq!(cpu, 10);
        assert_eq!(rss, 25);
    }

    #[test]
    fn lists_this_process() {
        let me = std::process::id();
        assert!(list().iter().any(|p| p.pid == me));
    }
}
