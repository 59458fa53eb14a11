//! What to attach, and for which processes: the choices a command makes before attaching.
use profiler_common::names;

use crate::binary::FileId;

/// Which program goes on the `Invoke` probe points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvokeProgram {
    /// Count every call per caller→callee edge.
    CountCalls,
    /// Do nothing: the kernel's floor, for benchmarks.
    Empty,
}

impl InvokeProgram {
    pub const fn program(self) -> &'static str {
        match self {
            Self::CountCalls => names::FUNC_INVOKE,
            Self::Empty => names::EMPTY_PROBE,
        }
    }
}

/// What to attach, the same for every process of one run.
#[derive(Debug, Clone, Copy)]
pub struct AttachPlan {
    pub invoke: Option<InvokeProgram>,
    pub log_writes: bool,
    /// Sample CPU at this many Hz per thread.
    pub sample: Option<u64>,
    /// Kernel memory for the BPF maps, MiB (`map_sizes`).
    pub map_budget_mib: u32,
    /// User stack bytes copied per sample for unwinding (0: none, leaf only).
    pub native_stack_bytes: u32,
    /// Whether native frames get their inlined calls and source lines from DWARF.
    pub source_lines: bool,
}

impl AttachPlan {
    /// The uprobe programs it attaches.
    pub fn uprobes(self) -> impl Iterator<Item = &'static str> {
        let log_write = self.log_writes.then_some(names::LOG_WRITE);
        self.invoke.map(InvokeProgram::program).into_iter().chain(log_write)
    }
}

/// Which processes a target's uprobes fire in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeScope {
    /// Its own uprobes, firing only in that process (`record`, `attach --pid`): other Zeek
    /// processes on the host pay nothing.
    OneProcess,
    /// One set of uprobes per executable file, firing in every process that runs it
    /// (`attach --cluster`); the programs count only registered PIDs. Eight workers cost one
    /// set of attachments, and a restarted node is probed from its first instruction.
    SharedBy(FileId),
}
