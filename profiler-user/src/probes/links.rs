//! The uprobes attached at a binary's probe points: per process, or shared by every process
//! of one executable file, released when their last user goes.
use std::{
    collections::{HashMap, HashSet},
    num::NonZeroU32,
    os::fd::OwnedFd,
    path::Path,
};

use aya::{
    Ebpf,
    programs::{
        Program, ProgramError, UProbe,
        uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope},
    },
};
use profiler_common::names;

use super::{
    AttachPlan, ProbeError, ProbeScope,
    uprobe_multi::{self, UprobeLinkKind},
};
use crate::binary::{FileId, ProbePoint, ProbePointKind};

/// Attached uprobes.
pub enum Link {
    /// A program at one probe point, through a perf event (`UprobeLinkKind::PerfEvent`).
    PerfEvent(&'static str, UProbeLinkId),
    /// A program at all its probe points in a binary (`UprobeLinkKind::Multi`): closed to
    /// detach it.
    Multi(OwnedFd),
}

/// A process's uprobes attached before it started (`programs::StoppedTarget`): its PID, links.
pub type StoppedLinks = (u32, Vec<Link>);

/// The loaded uprobe programs, by name, and the links they were loaded for.
pub struct UprobePrograms<'a> {
    programs: HashMap<&'static str, &'a mut UProbe>,
    kind: UprobeLinkKind,
}

impl<'a> UprobePrograms<'a> {
    /// The uprobe programs among `programs` (by the names `names::UPROBES` gives them),
    /// loaded for `kind` links.
    pub fn of<N: AsRef<str>>(programs: impl IntoIterator<Item = (N, &'a mut Program)>, kind: UprobeLinkKind) -> Self {
        let programs = programs
            .into_iter()
            .filter_map(|(name, program)| {
                let name = names::UPROBES.into_iter().find(|n| *n == name.as_ref())?;
                match program {
                    Program::UProbe(uprobe) => Some((name, uprobe)),
                    _ => None,
                }
            })
            .collect();
        Self { programs, kind }
    }

    fn get(&mut self, name: &'static str) -> Result<&mut UProbe, ProbeError> {
        self.programs.get_mut(name).map(|p| &mut **p).ok_or(ProbeError::Missing { what: "uprobe program", name })
    }
}

struct SharedLinks {
    links: Vec<Link>,
    users: HashSet<u32>,
}

pub struct UprobeLinks {
    /// How they are attached (and their programs loaded).
    kind: UprobeLinkKind,
    /// Uprobes of one process (`ProbeScope::OneProcess`).
    own: HashMap<u32, Vec<Link>>,
    /// Uprobes shared by every process of a binary (`ProbeScope::SharedBy`).
    shared: HashMap<FileId, SharedLinks>,
    /// Processes whose uprobes were attached before they started (`adopt`).
    adopted: HashSet<u32>,
}

impl UprobeLinks {
    /// None yet; `kind` links to be attached, as the programs were loaded for.
    pub fn new(kind: UprobeLinkKind) -> Self {
        Self { kind, own: HashMap::new(), shared: HashMap::new(), adopted: HashSet::new() }
    }

    pub fn kind(&self) -> UprobeLinkKind {
        self.kind
    }

    /// Keeps the uprobes attached to `pid` before it started running (stopped at exec, see
    /// `programs::load`): its `attach` then has nothing left to do.
    pub fn adopt(&mut self, pid: u32, links: Vec<Link>) {
        self.own.entry(pid).or_default().extend(links);
        self.adopted.insert(pid);
    }

    /// Attaches `plan`'s programs at `points` for `pid` as `scope` says: all or nothing.
    /// A binary's shared uprobes are attached by its first process and reused by the rest.
    pub fn attach(
        &mut self,
        ebpf: &mut Ebpf,
        pid: NonZeroU32,
        exe: &Path,
        scope: ProbeScope,
        points: &[ProbePoint],
        plan: AttachPlan,
    ) -> Result<(), ProbeError> {
        let mut programs = UprobePrograms::of(ebpf.programs_mut(), self.kind);
        match scope {
            ProbeScope::OneProcess if self.adopted.remove(&pid.get()) => {}
            ProbeScope::OneProcess => {
                let links = attach_points(&mut programs, pid.get(), exe, points, plan, UProbeScope::OneProcess(pid))?;
                self.own.entry(pid.get()).or_default().extend(links);
            }
            ProbeScope::SharedBy(file) => match self.shared.get_mut(&file) {
                Some(shared) => {
                    shared.users.insert(pid.get());
                }
                None => {
                    let links = attach_points(&mut programs, pid.get(), exe, points, plan, UProbeScope::AllProcesses)?;
                    self.shared.insert(file, SharedLinks { links, users: HashSet::from([pid.get()]) });
                }
            },
        }
        Ok(())
    }

    /// Detaches what serves only `pid`: a binary's shared uprobes stay while another process
    /// of it uses them.
    pub fn detach(&mut self, ebpf: &mut Ebpf, pid: u32) {
        self.adopted.remove(&pid);
        let mut programs = UprobePrograms::of(ebpf.programs_mut(), self.kind);
        release(&mut programs, self.own.remove(&pid).unwrap_or_default());
        let unused: Vec<FileId> = self
            .shared
            .iter_mut()
            .filter_map(|(file, shared)| (shared.users.remove(&pid) && shared.users.is_empty()).then_some(*file))
            .collect();
        for file in unused {
            if let Some(shared) = self.shared.remove(&file) {
                release(&mut programs, shared.links);
            }
        }
    }
}

/// The program `plan` puts on a probe point, if any (one of `plan.uprobes()`).
fn program_at(kind: ProbePointKind, plan: AttachPlan) -> Option<&'static str> {
    match kind {
        ProbePointKind::ScriptFuncInvoke | ProbePointKind::BuiltinFuncInvoke => plan.invoke.map(|p| p.program()),
        ProbePointKind::LogManagerWrite => plan.log_writes.then_some(names::LOG_WRITE),
    }
}

/// Attaches the plan's programs at `points`; all or nothing. Each program's points get one
/// multi-uprobe link, or a perf event each (`UprobeLinkKind`).
pub fn attach_points(
    programs: &mut UprobePrograms,
    pid: u32,
    exe: &Path,
    points: &[ProbePoint],
    plan: AttachPlan,
    scope: UProbeScope,
) -> Result<Vec<Link>, ProbeError> {
    let failed = |point: &ProbePoint, source: ProgramError| ProbeError::Attach {
        point: point.kind.display(),
        path: exe.display().to_string(),
        pid,
        source,
    };
    let only = match scope {
        UProbeScope::OneProcess(pid) => Some(pid),
        UProbeScope::AllProcesses | UProbeScope::CallingProcess => None,
    };
    let kind = programs.kind;
    let mut links = Vec::new();
    let mut attach_all = || -> Result<(), ProbeError> {
        for program in plan.uprobes() {
            let at: Vec<&ProbePoint> = points.iter().filter(|p| program_at(p.kind, plan) == Some(program)).collect();
            let Some(first) = at.first() else { continue };
            let uprobe = programs.get(program)?;
            match kind {
                UprobeLinkKind::Multi => {
                    let offsets: Vec<u64> = at.iter().map(|p| p.file_offset).collect();
                    let fd = uprobe.fd().map_err(|source| failed(first, source))?;
                    let link = uprobe_multi::attach(fd, exe, &offsets, only).map_err(|e| failed(first, e.into()))?;
                    links.push(Link::Multi(link));
                }
                UprobeLinkKind::PerfEvent => {
                    for point in at {
                        let location = UProbeAttachLocation::AbsoluteOffset(point.file_offset);
                        let link = uprobe.attach(location, exe, scope).map_err(|source| failed(point, source))?;
                        links.push(Link::PerfEvent(program, link));
                    }
                }
            }
        }
        Ok(())
    };
    match attach_all() {
        Ok(()) => Ok(links),
        Err(err) => {
            release(programs, links);
            Err(err)
        }
    }
}

fn release(programs: &mut UprobePrograms, links: Vec<Link>) {
    for link in links {
        match link {
            Link::PerfEvent(program, link) => {
                if let Ok(p) = programs.get(program) {
                    // A link whose process is gone may already be released; nothing to do then.
                    let _ = p.detach(link);
                }
            }
            Link::Multi(link) => drop(link),
        }
    }
}
