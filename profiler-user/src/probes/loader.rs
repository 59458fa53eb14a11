//! Loads the embedded BPF object, attaches its programs at a binary's probe points for one
//! process or every process of a binary, and reads the maps they fill.
use std::{
    collections::{HashMap as StdHashMap, HashSet},
    num::NonZeroU32,
    path::Path,
};

use aya::{
    Ebpf, include_bytes_aligned,
    maps::{HashMap, MapData, MapError, ProgramArray},
    programs::{
        PerfEvent, ProgramError, UProbe,
        perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
        uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope},
    },
    util::online_cpus,
};
use profiler_common::{CallKey, FuncInfo, LogKey, SampleKey, StackTrace, StatKey, TargetLayout};

use super::privileges;
use crate::binary::{FileId, ProbePoint, ProbePointKind};

static BPF_OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/zeek-probe-bpf"));

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("zeek-probe lacks {missing} to load its probes: run it as root (sudo) or grant those capabilities")]
    NoPrivilege { missing: String },
    #[error("cannot load the BPF programs into the kernel")]
    Load(#[source] aya::EbpfError),
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
    #[error("PID 0 is not a process")]
    NoTarget,
    #[error("BPF object has no {what} named {name} (build mismatch)")]
    Missing { what: &'static str, name: &'static str },
    #[error("cannot start CPU sampling at {hz} Hz (needs a kernel with perf events and the cpu-clock software event)")]
    Sampling { hz: u64, source: ProgramError },
    #[error("cannot list the online CPUs")]
    Cpus { source: std::io::Error },
}

/// Which program goes on the `Invoke` probe points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvokeProgram {
    /// Count every call per caller→callee edge.
    CountCalls,
    /// Do nothing: the kernel's floor, for benchmarks.
    Empty,
}

impl InvokeProgram {
    const fn name(self) -> &'static str {
        match self {
            Self::CountCalls => "func_invoke",
            Self::Empty => "empty_probe",
        }
    }
}

/// What to attach for one process.
#[derive(Debug, Clone, Copy)]
pub struct AttachPlan {
    pub invoke: Option<InvokeProgram>,
    pub log_writes: bool,
    /// Sample CPU at this many Hz per thread.
    pub sample: Option<u64>,
}

const LOG_WRITE_PROGRAM: &str = "log_write";
const UPROBES: [&str; 3] = ["func_invoke", "empty_probe", LOG_WRITE_PROGRAM];
const SAMPLER: &str = "cpu_sample";
/// Walks the script stack a few frames per run, tail-calling itself (`SAMPLE_STEPS[0]`).
const SAMPLE_STEP: &str = "sample_frames";

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

/// An attached uprobe: the program and its link.
type Link = (&'static str, UProbeLinkId);

struct SharedLinks {
    links: Vec<Link>,
    users: HashSet<u32>,
}

/// Everything the maps hold at one moment.
#[derive(Debug, Default, Clone)]
pub struct MapSnapshot {
    pub calls: Vec<(CallKey, u64)>,
    pub funcs: StdHashMap<u64, FuncInfo>,
    pub log_writes: Vec<(LogKey, u64)>,
    pub stats: Vec<(StatKey, u64)>,
    pub samples: Vec<(SampleKey, u64)>,
    pub stacks: StdHashMap<u64, StackTrace>,
}

pub struct Probes {
    ebpf: Ebpf,
    targets: HashMap<MapData, u32, TargetLayout>,
    calls: HashMap<MapData, CallKey, u64>,
    funcs: HashMap<MapData, u64, FuncInfo>,
    log_writes: HashMap<MapData, LogKey, u64>,
    stats: HashMap<MapData, StatKey, u64>,
    samples: HashMap<MapData, SampleKey, u64>,
    stacks: HashMap<MapData, u64, StackTrace>,
    /// Uprobes of one process (`ProbeScope::OneProcess`).
    own_links: StdHashMap<u32, Vec<Link>>,
    /// Uprobes shared by every process of a binary (`ProbeScope::SharedBy`).
    shared_links: StdHashMap<FileId, SharedLinks>,
    /// The rate the sampler runs at, once started (one sampler serves every target).
    sampling_hz: Option<u64>,
}

fn take_map<K: aya::Pod, V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<HashMap<MapData, K, V>, ProbeError> {
    let map = ebpf.take_map(name).ok_or(ProbeError::Missing { what: "map", name })?;
    HashMap::try_from(map).map_err(|source| ProbeError::Map { map: name, source })
}

/// A load error as one line: the verifier's log can be a million lines long; its last
/// lines say why.
fn load_error(program: &'static str, source: ProgramError) -> ProbeError {
    match source {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().filter(|l| !l.trim().is_empty()).take(2).collect();
            let summary = tail.into_iter().rev().collect::<Vec<_>>().join(" / ");
            ProbeError::Rejected { program, summary: format!("{io_error}: {summary}") }
        }
        source => ProbeError::Program { program, source },
    }
}

fn perf_program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut PerfEvent, ProbeError> {
    let program = ebpf.program_mut(name).ok_or(ProbeError::Missing { what: "program", name })?;
    program.try_into().map_err(|source| ProbeError::Program { program: name, source })
}

fn uprobe<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut UProbe, ProbeError> {
    let program = ebpf.program_mut(name).ok_or(ProbeError::Missing { what: "program", name })?;
    program.try_into().map_err(|source| ProbeError::Program { program: name, source })
}

impl Probes {
    /// Loads the programs into the kernel; nothing is attached yet.
    pub fn load() -> Result<Self, ProbeError> {
        let missing = privileges::missing();
        if !missing.is_empty() {
            return Err(ProbeError::NoPrivilege { missing: missing.join(", ") });
        }
        let mut ebpf = Ebpf::load(BPF_OBJECT).map_err(ProbeError::Load)?;
        for name in UPROBES {
            uprobe(&mut ebpf, name)?.load().map_err(|source| load_error(name, source))?;
        }
        for name in [SAMPLER, SAMPLE_STEP] {
            perf_program(&mut ebpf, name)?.load().map_err(|source| load_error(name, source))?;
        }
        let step = perf_program(&mut ebpf, SAMPLE_STEP)?
            .fd()
            .map_err(|source| ProbeError::Program { program: SAMPLE_STEP, source })?
            .try_clone()
            .map_err(|source| ProbeError::Program { program: SAMPLE_STEP, source: source.into() })?;
        let mut steps = ProgramArray::try_from(
            ebpf.map_mut("SAMPLE_STEPS").ok_or(ProbeError::Missing { what: "map", name: "SAMPLE_STEPS" })?,
        )
        .map_err(|source| ProbeError::Map { map: "SAMPLE_STEPS", source })?;
        steps.set(0, &step, 0).map_err(|source| ProbeError::Map { map: "SAMPLE_STEPS", source })?;
        Ok(Self {
            targets: take_map(&mut ebpf, "TARGETS")?,
            calls: take_map(&mut ebpf, "CALLS")?,
            funcs: take_map(&mut ebpf, "FUNCS")?,
            log_writes: take_map(&mut ebpf, "LOG_WRITES")?,
            stats: take_map(&mut ebpf, "STATS")?,
            samples: take_map(&mut ebpf, "SAMPLES")?,
            stacks: take_map(&mut ebpf, "STACKS")?,
            ebpf,
            own_links: StdHashMap::new(),
            shared_links: StdHashMap::new(),
            sampling_hz: None,
        })
    }

    /// Starts the CPU sampler on every online CPU (once; later calls keep the first rate).
    /// It samples only processes registered with a call stack address.
    pub fn start_sampling(&mut self, hz: u64) -> Result<u64, ProbeError> {
        if let Some(running) = self.sampling_hz {
            return Ok(running);
        }
        let program = perf_program(&mut self.ebpf, SAMPLER)?;
        for cpu in online_cpus().map_err(|(_, source)| ProbeError::Cpus { source })? {
            program
                .attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(hz),
                    false,
                )
                .map_err(|source| ProbeError::Sampling { hz, source })?;
        }
        self.sampling_hz = Some(hz);
        Ok(hz)
    }

    /// Attaches to one process running `exe`. The layout is registered first, so the very
    /// first hit is already understood. Sampling starts (for every target) if the plan asks.
    /// On failure nothing stays registered or attached for `pid`.
    pub fn attach(
        &mut self,
        pid: u32,
        exe: &Path,
        scope: ProbeScope,
        points: &[ProbePoint],
        layout: TargetLayout,
        plan: AttachPlan,
    ) -> Result<(), ProbeError> {
        let pid_nz = NonZeroU32::new(pid).ok_or(ProbeError::NoTarget)?;
        if let Some(hz) = plan.sample {
            self.start_sampling(hz)?;
        }
        self.targets.insert(pid, layout, 0).map_err(|source| ProbeError::Map { map: "TARGETS", source })?;
        let attached = match scope {
            ProbeScope::OneProcess => self
                .attach_points(pid, exe, points, plan, UProbeScope::OneProcess(pid_nz))
                .map(|links| self.own_links.entry(pid).or_default().extend(links)),
            ProbeScope::SharedBy(file) => match self.shared_links.get_mut(&file) {
                Some(shared) => {
                    shared.users.insert(pid);
                    Ok(())
                }
                None => self.attach_points(pid, exe, points, plan, UProbeScope::AllProcesses).map(|links| {
                    self.shared_links.insert(file, SharedLinks { links, users: HashSet::from([pid]) });
                }),
            },
        };
        if attached.is_err() {
            self.detach(pid);
        }
        attached
    }

    /// Attaches the plan's programs at `points`; all or nothing.
    fn attach_points(
        &mut self,
        pid: u32,
        exe: &Path,
        points: &[ProbePoint],
        plan: AttachPlan,
        scope: UProbeScope,
    ) -> Result<Vec<Link>, ProbeError> {
        let mut links = Vec::new();
        for point in points {
            let program = match point.kind {
                ProbePointKind::ScriptFuncInvoke | ProbePointKind::BuiltinFuncInvoke => match plan.invoke {
                    Some(p) => p.name(),
                    None => continue,
                },
                ProbePointKind::LogManagerWrite if plan.log_writes => LOG_WRITE_PROGRAM,
                ProbePointKind::LogManagerWrite => continue,
            };
            let attached = uprobe(&mut self.ebpf, program).and_then(|p| {
                p.attach(UProbeAttachLocation::AbsoluteOffset(point.file_offset), exe, scope).map_err(|source| {
                    ProbeError::Attach { point: point.kind.display(), path: exe.display().to_string(), pid, source }
                })
            });
            match attached {
                Ok(link) => links.push((program, link)),
                Err(err) => {
                    self.release(links);
                    return Err(err);
                }
            }
        }
        Ok(links)
    }

    fn release(&mut self, links: Vec<Link>) {
        for (program, link) in links {
            if let Ok(p) = uprobe(&mut self.ebpf, program) {
                // A link whose process is gone may already be released; nothing to do then.
                let _ = p.detach(link);
            }
        }
    }

    /// Detaches what serves only `pid` (probes shared by a binary stay while another process
    /// of it is a target); its counts stay in the maps.
    pub fn detach(&mut self, pid: u32) {
        let own = self.own_links.remove(&pid).unwrap_or_default();
        self.release(own);
        let unused: Vec<FileId> = self
            .shared_links
            .iter_mut()
            .filter_map(|(file, shared)| (shared.users.remove(&pid) && shared.users.is_empty()).then_some(*file))
            .collect();
        for file in unused {
            if let Some(shared) = self.shared_links.remove(&file) {
                self.release(shared.links);
            }
        }
        let _ = self.targets.remove(&pid);
    }

    /// Deletes a detached process's counts from the maps (names, shared by all, stay).
    pub fn forget(&mut self, pid: u32) {
        fn remove_pid<K: aya::Pod>(map: &mut HashMap<MapData, K, u64>, is_pid: impl Fn(&K) -> bool) {
            let keys: Vec<K> = map.keys().filter_map(Result::ok).filter(|k| is_pid(k)).collect();
            for key in keys {
                let _ = map.remove(&key);
            }
        }
        remove_pid(&mut self.calls, |k| k.pid == pid);
        remove_pid(&mut self.log_writes, |k| k.pid == pid);
        remove_pid(&mut self.stats, |k| k.pid == pid);
        remove_pid(&mut self.samples, |k| k.pid == pid);
    }

    /// Copies the maps. Counters are cumulative: nothing is reset.
    pub fn snapshot(&self) -> MapSnapshot {
        MapSnapshot {
            calls: self.calls.iter().filter_map(Result::ok).collect(),
            funcs: self.funcs.iter().filter_map(Result::ok).collect(),
            log_writes: self.log_writes.iter().filter_map(Result::ok).collect(),
            stats: self.stats.iter().filter_map(Result::ok).collect(),
            samples: self.samples.iter().filter_map(Result::ok).collect(),
            stacks: self.stacks.iter().filter_map(Result::ok).collect(),
        }
    }
}
