//! Giving freed heap back to the kernel. glibc keeps what a burst of pods allocated (per-thread
//! arenas, fragmented top chunks) mapped after the pods are gone, so an agent that ran 100 pods
//! would stay at its peak RSS while idle. After pods finish, the pod manager calls [`trim`] once.

/// Make glibc malloc use one arena for all threads, unless `MALLOC_ARENA_MAX` says otherwise. Per-thread
/// arenas (glibc's default, up to 8 per core) each keep their own fragmented free pages after a burst: with
/// them an agent idle again after 100 + 60 pods held 10.4 MiB of heap, with one arena 6.0 MiB
/// (bench-density.sh then bench-startup.sh twice); the agent's allocation rate is far too low for the shared
/// arena's lock to matter (bench-startup.sh unchanged). Call before any thread is spawned.
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator tunable; it takes no pointers and is called before any other
        // thread exists.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Return free heap pages of every malloc arena to the kernel (glibc's `malloc_trim(0)`); a no-op
/// where the C library has no such call.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists under its arena locks; it
        // takes no pointers from us and is safe to call from any thread at any time.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trim_releases_a_freed_burst() {
        fn rss_kib() -> u64 {
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                })
                .unwrap_or(0)
        }
        // Many small blocks (below the mmap threshold, so they live in the heap), touched, then
        // freed except the last one, which pins the top of the heap as a long-lived object would.
        let mut blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![(i % 251) as u8; 4000]).collect();
        let keep = blocks.pop();
        let before = rss_kib();
        drop(blocks);
        super::trim();
        let after = rss_kib();
        assert!(keep.is_some());
        assert!(
            after + 40_000 < before,
            "RSS {before} KiB before the trim, {after} KiB after"
        );
    }
}
