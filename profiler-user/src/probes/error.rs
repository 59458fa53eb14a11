//! What can go wrong between zeek-probe and the kernel's BPF subsystem.
use aya::{maps::MapError, programs::ProgramError};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("zeek-probe lacks {missing} to load its probes: run it as root (sudo) or grant those capabilities")]
    NoPrivilege { missing: String },
    #[error("cannot load the BPF programs and their {map_mib} MiB of maps (--bpf-memory) into the kernel")]
    Load { map_mib: u32, source: aya::EbpfError },
    #[error("BPF program {program}")]
    Program { program: &'static str, source: ProgramError },
    #[error(
        "the kernel's verifier rejected BPF program {program}: {summary} (a zeek-probe bug: please report it with `uname -r`)"
    )]
    Rejected { program: &'static str, summary: String },
    #[error("BPF map {map}")]
    Map { map: &'static str, source: MapError },
    #[error("cannot attach to {point} in {path} for PID {pid}")]
    Attach { point: &'static str, path: String, pid: u32, source: ProgramError },
    #[error(
        "ZEEK_PROBE_UPROBE_LINKS is {value:?}: set it to perf-event, or to multi on a kernel of 6.6 or newer, or unset it"
    )]
    UprobeLinks { value: String },
    #[error("PID 0 is not a process")]
    NoTarget,
    #[error("BPF object has no {what} named {name} (build mismatch)")]
    Missing { what: &'static str, name: &'static str },
    #[error("cannot start CPU sampling at {hz} Hz (needs a kernel with perf events and the cpu-clock software event)")]
    Sampling { hz: u64, source: ProgramError },
    #[error("cannot start the thread that unwinds native stacks")]
    Thread { source: std::io::Error },
    #[error("cannot list the online CPUs")]
    Cpus { source: std::io::Error },
}
