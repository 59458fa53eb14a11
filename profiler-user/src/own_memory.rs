//! zeek-probe's own heap, kept small for an exporter that runs for months beside the workers.
//! glibc keeps what a thread frees for that thread's next allocations: the transient peaks of
//! attaching (a binary's inspection, the kernel's BTF parsed while the probes load, the first
//! symbol lookups) and of each scrape's buffers stayed resident, spread over one arena per
//! thread that had allocated, and a steady exporter of 8 real Zeek nodes held 45–60 MiB for
//! 20–28 MiB in use. Measured there (`cargo xtask bench cluster`): one arena pair, large
//! buffers in their own mappings and a trim after attaching bring it to 31–38 MiB.

/// Set before any thread starts: two arenas (the exporter has a handful of threads that
/// rarely allocate at once), and buffers of 128 KiB or more in their own mappings, returned on
/// free (glibc would otherwise raise that threshold as big buffers are freed, and keep them).
pub fn tune() {
    #[cfg(target_env = "gnu")]
    // SAFETY: sets allocator parameters; called first thing in `main`, before any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

/// Hands freed memory back to the system after a peak (attaching or dropping nodes).
pub fn release_freed() {
    #[cfg(target_env = "gnu")]
    // SAFETY: only walks the allocator's own free lists, under its own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
