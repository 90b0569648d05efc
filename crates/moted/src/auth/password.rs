//! Password checks in a bounded pool, with their memory given back after
//! each.
//!
//! An argon2id check with the default parameters (`m=19456`) needs 19 MiB.
//! Checked through `Argon2::verify_password`, that memory comes from the
//! allocator, and glibc's malloc raises its mmap threshold to the size of
//! the first such block freed, so every later one is carved from a heap
//! arena and kept: parallel wrong logins grew moted by ~19 MiB each until
//! the node's OOM killer took it (issue 17). Here:
//!
//! - at most `N` checks run at once ([`Checks::new`]: a semaphore; `N` from
//!   the node's available memory, 1 on a small node, never more than the
//!   CPUs), on the blocking pool, so moted's memory for checks is at most
//!   `N × m` whatever the number of callers;
//! - each check's blocks are an anonymous mapping of their own
//!   ([`Blocks`]), unmapped when the check ends, whatever the allocator.

use std::ptr::NonNull;
use std::sync::Arc;

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

/// At most this many checks at once, whatever the node's size.
pub const MAX_CHECKS: usize = 4;

/// Memory one default check takes (argon2's `m=19456` KiB).
pub const CHECK_BYTES: u64 = 19456 * 1024;

/// The pool.
#[derive(Clone)]
pub struct Checks {
    permits: Arc<Semaphore>,
    size: usize,
}

impl Checks {
    /// A pool of `n` concurrent checks (`0`: chosen by [`pool_size`]).
    pub fn new(n: usize) -> Self {
        let size = if n == 0 { pool_size() } else { n };
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// How many checks may run at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether `password` matches the argon2id PHC string `phc`, checked
    /// when a place in the pool is free. `false` for anything that is not
    /// a match, a malformed hash among them.
    ///
    /// The place is held by the check itself, not by this future: a caller
    /// that goes away (a client hanging up) does not free it before the
    /// check and its memory are done.
    pub async fn verify(&self, phc: String, password: String) -> bool {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || {
            let ok = verify(&phc, &password);
            drop(permit);
            ok
        })
        .await
        .unwrap_or(false)
    }
}

/// The pool size for this node: one check per 8 × its memory in available
/// memory (one on a 256 MiB node), at least 1, at most the CPUs and
/// [`MAX_CHECKS`].
pub fn pool_size() -> usize {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    size_for(available, cpus)
}

fn size_for(available_bytes: u64, cpus: usize) -> usize {
    let by_memory = usize::try_from(available_bytes / (8 * CHECK_BYTES)).unwrap_or(MAX_CHECKS);
    by_memory.min(cpus).clamp(1, MAX_CHECKS)
}

/// Whether `password` matches the argon2id PHC string `phc`: the same
/// answer as `mote_config::password::verify`, with the memory in a mapping
/// of its own, returned before this returns.
pub fn verify(phc: &str, password: &str) -> bool {
    if password.is_empty() {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let Some(mut blocks) = Blocks::map(params.block_count()) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let a = Argon2::new(Algorithm::Argon2id, version, params);
    let hashed = a.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut blocks);
    drop(blocks);
    // `Output`'s equality is constant-time.
    hashed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
}

/// argon2's working memory as an anonymous private mapping: zero-filled
/// pages on first touch, handed back to the kernel on drop.
pub struct Blocks {
    ptr: NonNull<Block>,
    len: usize,
}

impl Blocks {
    /// `len` blocks, or `None` when the kernel gives no memory.
    pub fn map(len: usize) -> Option<Self> {
        let bytes = len.checked_mul(std::mem::size_of::<Block>())?.max(1);
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        Some(Self {
            ptr: NonNull::new(p.cast())?,
            len,
        })
    }
}

impl AsMut<[Block]> for Blocks {
    fn as_mut(&mut self) -> &mut [Block] {
        // SAFETY: the mapping holds `len` blocks, is page-aligned (more than
        // a block's 64-byte alignment), zero-filled (all-zero words are a
        // valid block), and lives, unaliased, as long as `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        let bytes = (self.len * std::mem::size_of::<Block>()).max(1);
        // SAFETY: unmaps exactly the mapping `map` made; nothing refers to it
        // once `self` is dropped.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), bytes);
        }
    }
}

// SAFETY: `Blocks` owns its mapping alone, like a `Box<[Block]>`.
unsafe impl Send for Blocks {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_config_crate() {
        let phc = mote_config::password::hash("correct horse").unwrap();
        assert!(verify(&phc, "correct horse"));
        assert!(!verify(&phc, "correct horsf"));
        assert!(!verify(&phc, ""));
        assert!(!verify("not a hash", "x"));
        let argon2i = phc.replace("$argon2id$", "$argon2i$");
        assert!(!verify(&argon2i, "correct horse"));
        assert!(mote_config::password::verify(&phc, "correct horse"));
    }

    #[test]
    fn pool_size_follows_memory_and_cpus() {
        let mib = 1 << 20;
        assert_eq!(size_for(0, 8), 1);
        assert_eq!(size_for(200 * mib, 8), 1);
        assert_eq!(size_for(400 * mib, 8), 2);
        assert_eq!(size_for(400 * mib, 1), 1);
        assert_eq!(size_for(64 << 30, 64), MAX_CHECKS);
    }
}
