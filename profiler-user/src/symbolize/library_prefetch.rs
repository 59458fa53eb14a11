//! Reads the symbols of a running command's libraries while it runs, so that `record` names
//! its samples without reading them after the command ended: libbroker's symbol tables alone
//! take ~0.1 s, which a short run would otherwise wait for at its end.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use super::LibrarySymbols;
use crate::target::mappings;

/// How often the command's mappings are looked at again: ld.so maps the libraries within
/// milliseconds of the start; plugins load later.
const RESCAN: Duration = Duration::from_millis(50);

pub struct LibraryPrefetch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LibraryPrefetch {
    /// Starts reading, on a thread of its own, the libraries `pid` maps into `libraries`.
    pub fn start(pid: u32, libraries: Arc<LibrarySymbols>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("library-symbols".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    libraries.read_mapped(&mappings::read(pid));
                    // Woken early by `finish`, which the report waits for.
                    std::thread::park_timeout(RESCAN);
                }
            })
            .ok();
        Self { stop, thread }
    }

    /// Stops after the library being read, if any: what is left is read when it is named.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prefetching this process's own libraries reads libc while nothing names an address.
    #[test]
    fn reads_the_libraries_a_process_maps() {
        let maps = mappings::read(std::process::id());
        let libc = maps.iter().find(|m| m.path.contains("/libc.so")).expect("libc is mapped");
        let libraries = Arc::new(LibrarySymbols::new(std::process::id()));
        let prefetch = LibraryPrefetch::start(std::process::id(), Arc::clone(&libraries));
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !libraries.is_read(&libc.path) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        prefetch.finish();
        assert!(libraries.is_read(&libc.path), "libc read by the prefetch");
    }
}
