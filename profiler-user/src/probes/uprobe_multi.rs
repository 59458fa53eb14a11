//! Multi-uprobe links (kernel 6.6+): one BPF link puts a program on all its probe points in a
//! binary. The kernel makes and releases them without its perf-event mutex, which a uprobe
//! attached through a perf event holds while its release waits for an RCU grace period
//! (~0.1 s each): a `record` started while the last one's probes were being released waited
//! up to that long for each of its own (one `record` after another: half of them started
//! ~0.1 s late). A link is also released in one grace period for all its points.
//!
//! aya 0.14 makes no such link: its program is loaded for them
//! (`UProbe::load_for_uprobe_multi`, third_party/README.md) and the link made here. Before
//! 6.6 (`KernelFeatures::uprobe_multi`) each point gets a perf-event uprobe, as aya attaches.
//!
//! A link's PID filter let only the process's main thread through before 6.10 (fixed then, and
//! in the stable kernels), and any process sharing its memory before 6.12: Zeek runs its
//! scripts and `Log::write` on its main thread, and the programs count a process only if it is
//! a registered target (`current_target`), as with perf events.
use std::{
    ffi::{CString, OsStr},
    io,
    num::NonZeroU32,
    os::{
        fd::{AsFd as _, AsRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::Path,
};

use aya::programs::ProgramFd;
use aya_obj::generated::{bpf_attach_type::BPF_TRACE_UPROBE_MULTI, bpf_attr, bpf_cmd::BPF_LINK_CREATE};

use super::{ProbeError, kernel_features};

/// How uprobes are attached on this kernel (`summary.json`'s `target.uprobe_links`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UprobeLinkKind {
    /// One multi-uprobe link per program and binary (6.6+).
    Multi,
    /// A perf event and its link per probe point.
    PerfEvent,
}

impl UprobeLinkKind {
    /// Multi-uprobe links where the kernel has them. `ZEEK_PROBE_UPROBE_LINKS=perf-event`
    /// asks for the older kind (what kernels before 6.6 get; tests run it on newer ones),
    /// `multi` for the newer (an error before 6.6).
    pub fn for_this_kernel() -> Result<Self, ProbeError> {
        Self::asked(std::env::var_os(LINKS_VAR).as_deref(), kernel_features::uprobe_multi())
    }

    /// The kind `asked` for (the variable's value, if set) on a kernel that has multi-uprobe
    /// links or not (`multi_here`).
    fn asked(asked: Option<&OsStr>, multi_here: bool) -> Result<Self, ProbeError> {
        let unusable = |value: &OsStr| ProbeError::UprobeLinks { value: value.to_string_lossy().into_owned() };
        match asked {
            None if multi_here => Ok(Self::Multi),
            None => Ok(Self::PerfEvent),
            Some(value) if value == "multi" && multi_here => Ok(Self::Multi),
            Some(value) if value == "perf-event" => Ok(Self::PerfEvent),
            Some(value) => Err(unusable(value)),
        }
    }
}

/// The variable that chooses the links (`UprobeLinkKind::for_this_kernel`).
const LINKS_VAR: &str = "ZEEK_PROBE_UPROBE_LINKS";

/// Attaches `program` (loaded for multi-uprobe links) at the file `offsets` of `binary`, for
/// `pid`'s threads alone or (`None`) every process's. Closing the link detaches it.
pub fn attach(program: &ProgramFd, binary: &Path, offsets: &[u64], pid: Option<NonZeroU32>) -> io::Result<OwnedFd> {
    let path = CString::new(binary.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let cnt = u32::try_from(offsets.len()).map_err(io::Error::other)?;
    // Zeroed first: the kernel rejects an attribute with anything set past the fields its
    // command reads, padding included.
    // SAFETY: `bpf_attr` is plain integers, for which zero is a value.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writes to integers of the union's `link_create` member, in zeroed memory.
    unsafe {
        attr.link_create.__bindgen_anon_1.prog_fd = program.as_fd().as_raw_fd() as u32;
        attr.link_create.attach_type = BPF_TRACE_UPROBE_MULTI as u32;
        let multi = &mut attr.link_create.__bindgen_anon_3.uprobe_multi;
        multi.path = path.as_ptr() as u64;
        multi.offsets = offsets.as_ptr() as u64;
        multi.cnt = cnt;
        multi.pid = pid.map_or(0, NonZeroU32::get);
    }
    // SAFETY: `attr` is a whole `bpf_attr` whose pointers (the path, the offsets) outlive the
    // call; the kernel returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_LINK_CREATE as libc::c_long, &raw const attr, size_of::<bpf_attr>())
    };
    super::new_descriptor(fd)
}

#[cfg(test)]
mod tests {
    use aya::{EbpfLoader, programs::UProbe};
    use profiler_common::names;

    use super::*;
    use crate::target::mappings;

    /// The variable asks for a kind this kernel has, or fails with what it may be.
    #[test]
    fn the_variable_chooses_a_kind_the_kernel_has() {
        use UprobeLinkKind::{Multi, PerfEvent};
        let asked = |value: Option<&str>, multi_here| UprobeLinkKind::asked(value.map(OsStr::new), multi_here).ok();
        assert_eq!(asked(None, true), Some(Multi));
        assert_eq!(asked(None, false), Some(PerfEvent));
        assert_eq!(asked(Some("multi"), true), Some(Multi));
        assert_eq!(asked(Some("perf-event"), true), Some(PerfEvent));
        assert_eq!(asked(Some("perf-event"), false), Some(PerfEvent));
        assert_eq!(asked(Some("multi"), false), None, "no multi-uprobe links before 6.6");
        assert_eq!(asked(Some("perf_event"), true), None, "a misspelling");
    }

    /// Two functions of this test's own that nothing calls (their bodies differ, so that no
    /// optimisation folds them into one).
    #[inline(never)]
    extern "C" fn never_called_one() {
        std::hint::black_box(1);
    }

    #[inline(never)]
    extern "C" fn never_called_two() {
        std::hint::black_box(2);
    }

    fn first_byte(function: extern "C" fn()) -> u8 {
        // SAFETY: the function's first byte, in this process's mapped code.
        unsafe { (function as *const u8).read_volatile() }
    }

    /// One link puts the kernel's breakpoint (int3) at each of its offsets, in this process;
    /// closing it takes them out.
    #[test]
    fn a_link_puts_a_breakpoint_at_each_offset_until_it_is_closed() {
        let privileged = unsafe { libc::geteuid() } == 0;
        if !privileged && std::env::var("CI").as_deref() != Ok("true") {
            return;
        }
        assert!(kernel_features::uprobe_multi(), "this machine's kernel makes multi-uprobe links");
        let mut ebpf =
            EbpfLoader::new().load(super::super::programs::BPF_OBJECT).expect("the BPF object loads as root");
        let program: &mut UProbe = ebpf.program_mut(names::EMPTY_PROBE).unwrap().try_into().unwrap();
        program.load_for_uprobe_multi().expect("loaded for multi-uprobe links");
        let functions = [never_called_one as extern "C" fn(), never_called_two];
        let offsets: Vec<u64> =
            functions.iter().map(|f| mappings::own_file_offset(*f as *const () as u64).unwrap()).collect();
        let pid = NonZeroU32::new(std::process::id());
        let link = attach(program.fd().unwrap(), Path::new("/proc/self/exe"), &offsets, pid).expect("attached");
        for function in functions {
            assert_eq!(first_byte(function), 0xcc, "a breakpoint at {function:p}");
        }
        drop(link);
        for function in functions {
            assert_ne!(first_byte(function), 0xcc, "no breakpoint left at {function:p}");
        }
    }
}
