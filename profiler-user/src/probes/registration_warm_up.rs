//! Letting the grace period of a uprobe's registration pass before the target's uprobes are
//! registered. The kernel registers a uprobe under `dup_mmap_sem` taken for writing, which
//! waits for an RCU grace period (10–40 ms) unless a writer took it within the last one or
//! so (its `rcu_sync`). A stopped command's uprobes can be registered only once its binary is
//! inspected and their programs are loaded (~25 ms into `record`): registering one of
//! zeek-probe's own at once, on a thread of its own, lets the grace period pass meanwhile,
//! and theirs then go in without one. Measured on `record` of a trivial real Zeek run: its
//! uprobes were in place 26 ms after its inspection before, 3 ms with this.
//!
//! The uprobe is on a function of zeek-probe's that is never called (`never_called`), for
//! zeek-probe's process alone, with no program: nothing of the target is touched, and nothing
//! ever hits it. It is held as long as the probes are (closing it would cost the closer a
//! grace period, which `release` spares the probes too). Where the kernel cannot register it
//! (no uprobe PMU before 4.17, no privilege), nothing is warmed up and nothing else changes.
//!
//! It is never waited for: its own registration can end well after the command's (a perf
//! event's uprobe takes longer than a link's), and waiting for it held the command's start
//! back by ~10 ms in half the runs (a `record` after anything but another `record`): the
//! command then started at ~31 ms, not ~21.
use std::{
    ffi::CStr,
    fs, io,
    os::fd::OwnedFd,
    thread::{self, JoinHandle},
};

use crate::target::mappings;

/// The registration running on its thread: its uprobe once registered, kept with the thread's
/// result until this is dropped.
pub struct RegistrationWarmUp {
    _registration: JoinHandle<io::Result<OwnedFd>>,
}

impl RegistrationWarmUp {
    /// Registers the uprobe on a thread of its own.
    pub fn start() -> Self {
        Self { _registration: thread::spawn(register) }
    }

    /// The uprobe, once registered (waiting for its grace period if it is not over).
    #[cfg(test)]
    fn finish(self) -> io::Result<OwnedFd> {
        self._registration.join().unwrap_or_else(|_| Err(io::Error::other("the warm-up thread panicked")))
    }
}

/// Where the uprobe goes: a function nothing calls (its address is only taken, by `register`).
#[inline(never)]
extern "C" fn never_called() {}

fn register() -> io::Result<OwnedFd> {
    let offset = mappings::own_file_offset(never_called as *const () as u64)
        .ok_or_else(|| io::Error::other("zeek-probe's own code is not in its mappings"))?;
    // The magic link names this very file, even one replaced on disk since it was started.
    open_uprobe(c"/proc/self/exe", offset)
}

/// `perf_event_open`'s flag: the descriptor is closed on exec (linux/perf_event.h).
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;

/// `perf_event_attr` up to `config2` (`PERF_ATTR_SIZE_VER1`): what a uprobe event needs.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    /// Bit 0: disabled.
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    /// The uprobe's file path.
    config1: u64,
    /// The uprobe's file offset.
    config2: u64,
}

/// Opens a disabled uprobe event at `offset` in `path`, for this process on any CPU.
fn open_uprobe(path: &CStr, offset: u64) -> io::Result<OwnedFd> {
    let pmu = fs::read_to_string("/sys/bus/event_source/devices/uprobe/type")?;
    let kind = pmu.trim().parse().map_err(|_| io::Error::other(format!("uprobe PMU type {pmu:?}")))?;
    let attr = PerfEventAttr {
        kind,
        size: size_of::<PerfEventAttr>() as u32,
        flags: 1,
        config1: path.as_ptr() as u64,
        config2: offset,
        ..Default::default()
    };
    // SAFETY: `attr` and the path it points to outlive the call; the kernel returns a new
    // descriptor or -1. pid 0 and cpu -1: this process, on any CPU.
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, &raw const attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC) };
    super::new_descriptor(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The uprobe is registered where it says: the kernel put its breakpoint (int3) at the
    /// start of `never_called` in this process's code.
    #[test]
    fn the_uprobe_is_registered_on_a_function_never_called() {
        let registered = RegistrationWarmUp::start().finish();
        let privileged = unsafe { libc::geteuid() } == 0;
        if !privileged && std::env::var("CI").as_deref() != Ok("true") {
            return;
        }
        let _uprobe = registered.expect("a uprobe registered as root");
        let code = never_called as *const u8;
        // SAFETY: the function's first byte, in this process's mapped code.
        assert_eq!(unsafe { code.read_volatile() }, 0xcc, "the uprobe's breakpoint at never_called");
    }
}
