//! Giving freed memory back to the system.
//!
//! glibc keeps what a thread frees in that thread's arena (up to eight per core) for reuse,
//! and returns little of it on its own. Stratus's bursts (a sweep over every instance, a
//! big DescribeInstances, libvirt calls on many blocking threads) left the process holding
//! several times its live data: 706 MiB with 100,000 instances stored. Fewer arenas fixed the
//! memory but made request threads contend for them; a periodic `malloc_trim` returns the
//! free pages of every arena and leaves the allocator's fast paths alone.
#![allow(unsafe_code)]

use std::time::Duration;

/// Starts a thread that trims the heap every `period`.
pub fn spawn_trimmer(period: Duration) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(move || loop {
            std::thread::sleep(period);
            // SAFETY: malloc_trim takes each arena's lock itself; it frees nothing in use.
            unsafe {
                libc::malloc_trim(0);
            }
        })
        .map(drop)
        .unwrap_or_else(|error| tracing::warn!(%error, "no malloc-trim thread; memory is returned less often"));
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = period;
}
