//! Running a service as an unprivileged user that keeps some capabilities
//! (`capabilities = ["net_bind_service"]`).
//!
//! std switches user before `pre_exec` closures run, and a `setuid` away
//! from root clears every capability, so for such services the switch is
//! done here instead, in the child between fork and exec:
//! `PR_SET_KEEPCAPS`, `setgroups(0)`, `setgid`, `setuid`, then `capset` with
//! only the kept capabilities in permitted, effective and inheritable, and
//! each raised into the ambient set so that it survives `execve` of the
//! (non-setuid, capability-less) program.

use std::io;

/// `CAP_NET_BIND_SERVICE` from `linux/capability.h`.
pub const CAP_NET_BIND_SERVICE: u32 = 10;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// The capability numbers of the names `mote_config` accepts; unknown
/// names are skipped (validation rejects them).
pub fn numbers(names: &[String]) -> Vec<u32> {
    names
        .iter()
        .filter_map(|name| match name.as_str() {
            "net_bind_service" => Some(CAP_NET_BIND_SERVICE),
            _ => None,
        })
        .collect()
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Become `uid:gid` with no supplementary groups, keeping `caps` (numbers
/// below 64). Meant for a `pre_exec` closure: only system calls, no
/// allocation.
pub fn switch_user_keeping(uid: u32, gid: u32, caps: &[u32]) -> io::Result<()> {
    let check = |rc: libc::c_long| {
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    let mut mask = [0u32; 2];
    for &cap in caps.iter().filter(|&&c| c < 64) {
        mask[(cap / 32) as usize] |= 1 << (cap % 32);
    }
    // SAFETY: plain system calls on integers and on the stack structs
    // below, which live across each call; none allocates, so they are
    // async-signal-safe between fork and exec.
    unsafe {
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0).into())?;
        check(libc::setgroups(0, std::ptr::null()).into())?;
        check(libc::setgid(gid).into())?;
        check(libc::setuid(uid).into())?;
        let header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = mask.map(|m| CapData {
            effective: m,
            permitted: m,
            inheritable: m,
        });
        check(libc::syscall(
            libc::SYS_capset,
            &header as *const CapHeader,
            data.as_ptr(),
        ))?;
        for &cap in caps {
            check(
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    libc::c_ulong::from(cap),
                    0,
                    0,
                )
                .into(),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// Perl binding port 80 in a fresh network namespace as uid 65534.
    fn bind_80(caps: &'static [u32]) -> Option<std::process::ExitStatus> {
        let mut command = Command::new("/usr/bin/perl");
        command.args([
            "-MIO::Socket::INET",
            "-e",
            "open my $s, '<', '/proc/self/status'; print grep /^Cap(Eff|Amb)/, <$s>; \
             IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => 80, Listen => 1) \
             or die \"bind: $!\\n\"; print \"bound\\n\";",
        ]);
        // SAFETY: unshare and the user switch are plain system calls, made
        // in the child between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::unshare(libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if caps.is_empty() {
                    // As std's own switch would do: every capability is lost.
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(65534) != 0
                        || libc::setuid(65534) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                } else {
                    switch_user_keeping(65534, 65534, caps)
                }
            });
        }
        let out = command.output().ok()?;
        eprintln!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(out.status)
    }

    #[test]
    fn net_bind_service_lets_an_unprivileged_child_bind_port_80() {
        if !rustix::process::geteuid().is_root() || !std::path::Path::new("/usr/bin/perl").exists()
        {
            eprintln!("skipped: needs root and perl");
            return;
        }
        let Some(with) = bind_80(&[CAP_NET_BIND_SERVICE]) else {
            eprintln!("skipped: cannot make a network namespace");
            return;
        };
        assert!(with.success(), "with the capability: {with}");
        let without = bind_80(&[]).unwrap();
        assert!(!without.success(), "without the capability it must fail");
    }

    #[test]
    fn only_known_names_map_to_numbers() {
        let names = ["net_bind_service".to_owned(), "sys_admin".to_owned()];
        assert_eq!(numbers(&names), [CAP_NET_BIND_SERVICE]);
    }
}
