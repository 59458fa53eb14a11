//! Reads what naming a running command's samples needs while it runs, so that `record` does
//! not read it all after the command ended: the kernel's symbols (~0.1 s to list), its
//! executable's functions sorted, its libraries' symbol tables (libbroker's alone ~0.1 s),
//! and the source lines of the native addresses unwound so far (a C++ compile unit's DWARF
//! is megabytes to parse; a report's addresses fall in tens to hundreds). The thread that keeps at it while the command runs
//! does so at a low priority (the command comes first) and is raised back when the command
//! ends, to finish the library or compile unit it is in the middle of beside the report, which
//! does the rest on every core (and waits for it only where it needs that very file).
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::Thread,
    time::Duration,
};

use super::{Effort, KernelSymbols, ProcessCode, lock};
use crate::{target::mappings, thread_nice};

/// The native addresses of the command's samples not handed out before (the ones unwound
/// from its stacks since: `unwind::NewAddresses`).
pub type NewAddressFeed = Box<dyn FnMut() -> Vec<u64> + Send>;

/// How often the command's mappings and unwound addresses are looked at again: ld.so maps
/// the libraries within milliseconds of the start, plugins load later, and the unwinder has
/// new addresses every `unwind::DRAIN_PERIOD` (20 ms). At 50 ms, a short run's last addresses
/// waited for its exit: its report then parsed their compile units (record of a trivial real
/// Zeek run: 255 → 226 ms). A look costs ~0.1 ms (the maps of ~200 mappings).
const RESCAN: Duration = Duration::from_millis(10);

/// The nice value of the prefetch thread while the command runs (the command's is typically 0).
const NICENESS: libc::c_int = 10;

pub struct SymbolPrefetch {
    stop: Arc<AtomicBool>,
    /// The prefetch thread's id while it runs at a lowered priority, and the priority it had.
    /// It clears this before it ends, under the lock: its id is not reused while set.
    lowered: Arc<Mutex<Option<(i32, i32)>>>,
    thread: Option<Thread>,
}

impl SymbolPrefetch {
    /// Starts reading, on threads of their own, the kernel's symbols and what `pid`'s code
    /// needs; with `unwound`, the source lines of its addresses as they come.
    pub fn start(pid: u32, code: ProcessCode, mut unwound: Option<NewAddressFeed>) -> Self {
        // Read once, and by the report for sure: at the usual priority.
        let _ = std::thread::Builder::new().name("kernel-symbols".into()).spawn(KernelSymbols::shared);
        let stop = Arc::new(AtomicBool::new(false));
        let lowered = Arc::new(Mutex::new(None));
        let (stopped, lowering) = (Arc::clone(&stop), Arc::clone(&lowered));
        let thread = std::thread::Builder::new()
            .name("symbol-prefetch".into())
            .spawn(move || {
                *lock(&lowering) = thread_nice::lower_this_thread(NICENESS);
                // However the thread ends: its id may be another's after.
                let _forgotten_at_end = ForgetOnDrop(lowering);
                // Only user-space lines are resolved here: no kernel frame is named.
                let no_kernel = KernelSymbols::default();
                // The executable's functions, sorted now rather than in the inspection before the
                // command started (`LazyNativeSymbols`).
                std::sync::LazyLock::force(&code.natives);
                while !stopped.load(Ordering::Relaxed) {
                    let mappings = mappings::read(pid);
                    code.libraries.read_mapped(&mappings);
                    let fresh = unwound.as_mut().map(|next| next()).unwrap_or_default();
                    if !fresh.is_empty() {
                        let effort = Effort::Background { stop: &stopped };
                        code.native_code(&mappings, &no_kernel).prefetch_lines(fresh, effort);
                    }
                    // Woken early by `finish`.
                    std::thread::park_timeout(RESCAN);
                }
            })
            .ok();
        Self { stop, lowered, thread: thread.map(|t| t.thread().clone()) }
    }

    /// Stops the thread after the library or compile unit it is reading, if any, at the usual
    /// priority again, and returns at once: the report reads what is left beside it (waiting
    /// for it only on the file it is in, whose lock it holds).
    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some((tid, before)) = *lock(&self.lowered) {
            // Raising a priority needs CAP_SYS_NICE (root has it): without, it stays low.
            // SAFETY: setpriority on our own thread's id: it is alive while `lowered` holds it
            // (it clears it under this lock before it ends).
            unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, before) };
        }
        if let Some(thread) = &self.thread {
            thread.unpark();
        }
    }
}

/// Clears the prefetch thread's id (`SymbolPrefetch::lowered`) when dropped.
struct ForgetOnDrop(Arc<Mutex<Option<(i32, i32)>>>);

impl Drop for ForgetOnDrop {
    fn drop(&mut self) {
        *lock(&self.0) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        binary::ElfFile,
        symbolize::{LibrarySymbols, SourceLines},
    };

    /// While nothing names an address: this process's libraries are read (libc), and the
    /// lines of the addresses fed are resolved (a function of this test binary).
    #[test]
    fn reads_libraries_and_resolves_fed_addresses() {
        let pid = std::process::id();
        let maps = mappings::read(pid);
        let libc = maps.iter().find(|m| m.path.contains("/libc.so")).expect("libc is mapped");
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let function = reads_libraries_and_resolves_fed_addresses as *const () as u64;
        let mapping = maps.iter().find(|m| (m.start..m.end).contains(&function)).expect("mapped");
        let segments = ElfFile::open(&exe).unwrap().load_segments();
        let link_time = segments.iter().find_map(|s| s.address_of(function - mapping.start + mapping.offset)).unwrap();
        let code = ProcessCode {
            natives: Arc::new(ElfFile::open(&exe).unwrap().symbols().functions_later()),
            lines: Some(Arc::new(SourceLines::new(&exe))),
            bias: function - link_time,
            libraries: Arc::new(LibrarySymbols::new(pid).skipping(&exe)),
        };
        let (lines, libraries) = (Arc::clone(code.lines.as_ref().unwrap()), Arc::clone(&code.libraries));
        let mut fed = Some(vec![function, function + 1]);
        let prefetch = SymbolPrefetch::start(pid, code, Some(Box::new(move || fed.take().unwrap_or_default())));
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        // It runs below the process's priority (the command's comes first).
        let mut nice = None;
        while nice.is_none() && std::time::Instant::now() < deadline {
            nice = thread_nice("symbol-prefetch");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(nice.is_some_and(|n| n >= NICENESS), "the prefetch thread's nice value: {nice:?}");
        while !(libraries.is_read(&libc.path) && lines.resolved() >= 2) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        prefetch.finish();
        assert!(libraries.is_read(&libc.path), "libc read by the prefetch");
        assert_eq!(lines.resolved(), 2, "the lines of both addresses fed resolved");
    }

    /// The nice value of this process's thread named `name`, once it lowered it.
    fn thread_nice(name: &str) -> Option<i32> {
        std::fs::read_dir("/proc/self/task").ok()?.filter_map(Result::ok).find_map(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // Fields after the command's closing parenthesis: state is the 3rd, nice the 19th.
            let nice = stat.rsplit_once(") ")?.1.split(' ').nth(16)?.parse().ok()?;
            (comm.trim() == name && nice != 0).then_some(nice)
        })
    }
}
