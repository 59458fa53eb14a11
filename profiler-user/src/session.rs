//! One Zeek process being profiled: who it is, its binary, the probes attached for it, and
//! the name caches that must be filled while it is alive.
use std::sync::Arc;

use profiler_common::LogKey;

use crate::{
    binary::{BinaryError, ZeekBinary},
    probes::{
        AttachPlan, InvokeProgram, MapSnapshot, ProbeError, ProbeScope, Probes, kernel_btf,
        uprobe_multi::UprobeLinkKind,
    },
    profile::{Profile, SampleContext, TargetSummary},
    symbolize::{KernelSymbols, LibrarySymbols, LogStreamNames, ProcessCode},
    target::{
        MemoryError, ProcessError, ProcessInfo, TargetMemory,
        mappings::{self, Mapping},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("PID {pid}")]
    Binary { pid: u32, source: BinaryError },
    /// Boxed: aya's errors are large and this travels on every attach.
    #[error(transparent)]
    Probe(Box<ProbeError>),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error("PID {pid} exited while zeek-probe was attaching to it")]
    Exited { pid: u32 },
}

/// Whatever step failed (the kernel says "No such process", the maps read empty, ...), a
/// target that went away meanwhile has exited.
fn exited_or(pid: u32, err: SessionError) -> SessionError {
    if ProcessInfo::is_alive(pid) { err } else { SessionError::Exited { pid } }
}

impl From<ProbeError> for SessionError {
    fn from(e: ProbeError) -> Self {
        Self::Probe(Box::new(e))
    }
}

pub struct Session {
    pub process: ProcessInfo,
    /// Shared by every process of the same executable.
    pub binary: Arc<ZeekBinary>,
    /// What names its native code.
    code: ProcessCode,
    plan: AttachPlan,
    uprobe_links: UprobeLinkKind,
    memory: TargetMemory,
    streams: LogStreamNames,
    /// The process's mappings as last read while it ran.
    mappings: Vec<Mapping>,
}

impl Session {
    /// Reads what `pid` is and attaches the probes to it alone.
    pub fn attach(probes: &mut Probes, pid: u32) -> Result<Self, SessionError> {
        let (process, binary) = Self::inspect(pid)?;
        binary.sort_functions_now();
        Self::start(probes, process, Arc::new(binary), ProbeScope::OneProcess)
    }

    /// What `pid` is and runs: the first half of `attach`, which needs no probes (so it can
    /// run while they load).
    pub fn inspect(pid: u32) -> Result<(ProcessInfo, ZeekBinary), SessionError> {
        let process = ProcessInfo::read(pid)?;
        let binary = ZeekBinary::inspect(&process.exe, &process.exe_link)
            .map_err(|source| exited_or(pid, SessionError::Binary { pid, source }))?;
        Ok((process, binary))
    }

    /// Attaches the probes to a process whose binary is already inspected.
    pub fn start(
        probes: &mut Probes,
        process: ProcessInfo,
        binary: Arc<ZeekBinary>,
        scope: ProbeScope,
    ) -> Result<Self, SessionError> {
        let (pid, plan) = (process.pid, probes.plan());
        let mut attached = || -> Result<_, SessionError> {
            let bias =
                if binary.is_pie { process.load_bias(binary.first_load_vaddr, binary.first_load_offset)? } else { 0 };
            let mut layout = binary.layout.target_layout(binary.runtime_addresses(bias, plan.sample.is_some()));
            layout.main_stack_end = mappings::main_stack_end(pid).unwrap_or(0);
            let memory = TargetMemory::open(pid)?;
            probes.attach(pid, &process.exe, scope, &binary.probe_points, layout)?;
            Ok((bias, memory))
        };
        let (bias, memory) = attached().map_err(|err| exited_or(pid, err))?;
        let code = ProcessCode {
            natives: Arc::clone(&binary.native_symbols),
            lines: binary.source_lines.clone().filter(|_| plan.source_lines),
            bias,
            libraries: Arc::new(
                LibrarySymbols::new(pid).skipping(&process.exe_link).with_source_lines(plan.source_lines),
            ),
        };
        Ok(Self {
            process,
            binary,
            code,
            plan,
            uprobe_links: probes.uprobe_links(),
            memory,
            streams: LogStreamNames::default(),
            mappings: Vec::new(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// What names its native code, to symbolise ahead of the profile (`SymbolPrefetch`).
    pub fn code(&self) -> ProcessCode {
        self.code.clone()
    }

    /// Names what only the live process can name (log streams). Call it regularly while the
    /// process runs, and once more when it stops on its way out. Failures are retried next
    /// time; what stays unresolved is shown by ordinal.
    /// `log_writes` are the streams written so far (`Probes::log_write_keys`).
    pub fn learn_names(&mut self, log_writes: &[LogKey]) {
        let pid = self.pid();
        // Libraries loaded later (plugins) appear as the process runs; a gone process reads empty.
        let mappings = mappings::read(pid);
        if !mappings.is_empty() {
            self.mappings = mappings;
        }
        for key in log_writes.iter().filter(|k| k.pid == pid) {
            let _ = self.streams.learn(&self.memory, key.enum_type, self.binary.layout.enum_type_names);
        }
    }

    pub fn summary(&self) -> TargetSummary {
        TargetSummary {
            pid: self.pid(),
            node: self.process.node.clone(),
            zeek_version: self.binary.version.to_string(),
            abi: self.binary.layout.abi.to_owned(),
            layout_source: self.binary.layout.source,
            binary: self.process.exe_link.display().to_string(),
            calls_counted: self.plan.invoke == Some(InvokeProgram::CountCalls),
            uprobe_links: self.uprobe_links,
            sample_hz: self.plan.sample,
            zam: self.process.zam,
            long_dispatches_unavailable: match self.plan.sample {
                Some(_) => self.binary.long_dispatches().err().map(str::to_owned),
                None => Some("not sampling".to_owned()),
            },
            cpu_seconds: None,
        }
    }

    pub fn profile(&self, snapshot: &MapSnapshot) -> Profile {
        let sampling = self.plan.sample.map(|hz| SampleContext {
            hz,
            code: self.code.native_code(&self.mappings, KernelSymbols::shared()),
            native_stacks: self.plan.native_stack_bytes > 0,
            // What the loader set the sampler's TASK_FSBASE_OFFSET from.
            thread_stacks: kernel_btf::task_fsbase_offset().is_some(),
        });
        Profile::build(self.summary(), snapshot, &self.streams, sampling)
    }
}
