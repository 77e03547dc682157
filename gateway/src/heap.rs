//! The allocator and what it reports.
//!
//! The `stratus` binary allocates with jemalloc (`main.rs`): glibc's malloc cost a quarter of
//! a lookup's instructions. jemalloc is told ([`MALLOC_CONF`]) to return pages freed for a
//! second to the system from a background thread, not after ten seconds and only when
//! allocation passes by: the API benchmark's RSS held ~60 MiB of such pages otherwise.
//! C libraries (libvirt's client) still allocate from glibc, whose per-thread arenas keep
//! what they free; [`spawn_trimmer`] gives that back (706 MiB held with 100,000 instances
//! stored before it, when everything was glibc's).
//!
//! What jemalloc holds is exported to Prometheus (`stratus_heap_*_bytes`), so that resident
//! memory can be told apart into live data, the pages around it, freed pages not yet
//! returned, and the rest (the binary, stacks, glibc's heap).
#![allow(unsafe_code)]

use std::time::Duration;

/// jemalloc's options, read when it starts (tikv-jemalloc-sys prefixes its symbols `_rjem_`).
/// The C side reads one `const char *`: a thin pointer to a NUL-terminated string.
/// One arena per CPU instead of four: every arena keeps partly used pages of its own, and with
/// eight of them on two CPUs those were 32-35 MiB around ~95 MiB of live data at 100,000
/// stored; with two, 11-17 MiB (RSS 160 against 174-186 MiB in benchmark runs of the same hour).
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &u8 = &b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,percpu_arena:percpu\0"[0];

/// Warns when jemalloc did not take [`MALLOC_CONF`] (its symbol renamed by a feature of the
/// allocator's crate, say): freed memory would then stay for ten seconds and more.
pub fn check_options() {
    if stats().is_none() {
        return;
    }
    if !tikv_jemalloc_ctl::opt::background_thread::read().unwrap_or(false) {
        tracing::warn!("jemalloc ignored its options (no background thread): freed memory is returned late");
    }
    // jemalloc turns per-CPU arenas off where the CPUs it counts disagree (an affinity mask,
    // offline CPUs): four arenas per CPU then keep more partly used pages.
    if percpu_arena().as_deref() != Some("percpu") {
        tracing::warn!(
            "jemalloc uses four arenas per CPU (per-CPU arenas are off: this machine's CPU count is not \
             deterministic); expect more resident memory"
        );
    }
}

/// jemalloc's `opt.percpu_arena` as it runs.
fn percpu_arena() -> Option<String> {
    // SAFETY: `opt.percpu_arena` is a `const char *` to a static NUL-terminated string.
    let value = unsafe { tikv_jemalloc_ctl::raw::read::<*const std::ffi::c_char>(b"opt.percpu_arena\0") }.ok()?;
    // SAFETY: non-null, it points at one of jemalloc's static option names.
    (!value.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(value) }.to_string_lossy().into_owned())
}

/// Starts a thread that gives glibc's free pages back every `period`.
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

/// jemalloc's view of the heap, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes the program has allocated and not freed: its live data.
    pub allocated: u64,
    /// Bytes in pages holding live data (allocated plus the pages' unused space).
    pub active: u64,
    /// Bytes of the heap resident in memory: active pages, freed pages not yet returned,
    /// and jemalloc's own metadata.
    pub resident: u64,
}

/// The heap now; `None` when jemalloc is not the allocator (tests, a heap-profiling build).
pub fn stats() -> Option<HeapStats> {
    // The statistics are a snapshot taken when the epoch advances.
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    let stats = HeapStats {
        allocated: tikv_jemalloc_ctl::stats::allocated::read().ok()? as u64,
        active: tikv_jemalloc_ctl::stats::active::read().ok()? as u64,
        resident: tikv_jemalloc_ctl::stats::resident::read().ok()? as u64,
    };
    (stats.allocated > 0).then_some(stats)
}
