//! Power cuts in the middle of settings writes: boot examples/hello.toml,
//! start a settings write (a new `GREETING` for the hello service), kill QEMU
//! with SIGKILL at a random moment of it, boot again on the same state disk,
//! and look at what the node serves. Every boot must run the old or the new
//! settings — the new ones whenever the write was answered — and never a
//! corrupt or fallback one (the ready line's `settings=` has no `!`, and
//! `settings status` is in sync).
//!
//! `MOTE_POWER_CUTS` sets the number of cycles (default 20). Same
//! prerequisites as `e2e_hello.rs`; skipped only when `MOTE_SKIP_VM=1`.

use std::process::Stdio;
use std::time::{Duration, Instant};

mod vm;
use vm::*;

/// xorshift64: a random moment per cycle, from a seed the test prints.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[test]
fn settings_survive_power_cuts_mid_write() {
    if !prerequisites(&["mote-init", "moted", "mote-hello"]) {
        return;
    }
    let cycles: u32 = std::env::var("MOTE_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("power cuts: {cycles} cycles, seed {seed}");
    let mut moments = Moments(seed);
    let state = tempfile::tempdir().expect("temp dir");
    let st = state.path();
    let image = build_image(st, "examples/hello.toml");
    let name = "e2e-power-cut";
    let served = free_port();
    let forwards = [(served, 8080)];
    let mut node = boot(st, &image, name, &forwards);
    let greeting = |want: &dyn Fn(&str) -> bool| {
        wait_for("hello to answer", Duration::from_secs(20), || {
            get(served, "/", "2").ok().filter(|b| want(b))
        })
    };
    greeting(&|b: &str| b.starts_with("hello from"));
    // Log in now, so each cycle's write is the write alone (the status
    // check at the end of every cycle keeps the token fresh after a boot).
    remote(st, name, &["settings", "status"]);
    // How long a write takes here, so the cuts fall inside writes, from
    // before the request leaves to after the answer.
    let timed = Instant::now();
    remote(
        st,
        name,
        &[
            "settings",
            "set",
            "services.hello.environment.GREETING",
            "warm",
        ],
    );
    let write_ms = timed.elapsed().as_millis() as u64;
    let mut running = greeting(&|b: &str| b == "warm from hello");
    eprintln!(
        "power cuts: a write takes {write_ms} ms; cuts fall in 0..{} ms",
        write_ms * 2
    );
    let (mut old_kept, mut new_kept, mut answered_count) = (0, 0, 0);
    let started = Instant::now();
    for cycle in 0..cycles {
        let attempt = format!("c{cycle}");
        let mut write = mote(st)
            .args(["-n", name, "settings", "set"])
            .args(["services.hello.environment.GREETING", &attempt, "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mote runs");
        let moment = moments.next_ms(write_ms * 2 + 1);
        std::thread::sleep(Duration::from_millis(moment));
        power_cut(node);
        let answered = write.wait().is_ok_and(|s| s.success());
        node = boot(st, &image, name, &forwards);
        let word = node.ready["settings"].as_str().unwrap_or("?").to_owned();
        assert!(
            word.starts_with('v') && !word.ends_with('!'),
            "cycle {cycle} (cut at {moment} ms): the node boots settings {word:?}: {}",
            node.ready
        );
        let new = format!("{attempt} from hello");
        let body = greeting(&|b: &str| b == running || b == new);
        if answered {
            answered_count += 1;
            assert_eq!(
                body, new,
                "cycle {cycle}: the write was answered, so it was committed"
            );
        }
        if body == new {
            new_kept += 1;
        } else {
            old_kept += 1;
        }
        let status = remote(st, name, &["settings", "status"]);
        assert_eq!(status["in_sync"], true, "cycle {cycle}: {status}");
        running = body;
    }
    eprintln!(
        "power cuts: {cycles} cycles in {:.0} s: {new_kept} booted the new settings \
         ({answered_count} of them answered before the cut), {old_kept} the old; none lost or corrupt",
        started.elapsed().as_secs_f64()
    );
    stop(st, name, node);
}
