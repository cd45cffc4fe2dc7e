//! What the loopback benches share: reading how much CPU a thread has used.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// CPU time another thread has run, from `/proc/.../schedstat` (Linux; updated at the
/// scheduler's tick while the thread runs, precise enough over a round); `None` elsewhere.
pub fn cpu_time(task: &Path) -> Option<Duration> {
    let text = std::fs::read_to_string(task.join("schedstat")).ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// The calling thread's `/proc` entry, for [`cpu_time`] from another thread.
pub fn this_thread() -> PathBuf {
    std::fs::read_link("/proc/thread-self")
        .map(|p| PathBuf::from("/proc").join(p))
        .unwrap_or_default()
}
