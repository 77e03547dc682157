//! The one allocator tunable Stratus sets.
//!
//! glibc gives each thread that allocates its own arena, up to eight per core, and memory freed
//! in one arena is not reused by another. Libvirt calls run on many blocking threads, so the
//! process held several times its live data; two arenas keep it near what is in use.
#![allow(unsafe_code)]

/// Call before any thread starts. `MALLOC_ARENA_MAX` in the environment still wins.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator tunable, and no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
