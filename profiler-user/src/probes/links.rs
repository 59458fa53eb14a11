//! The uprobes attached at a binary's probe points: per process, or shared by every process
//! of one executable file, released when their last user goes.
use std::{
    collections::{HashMap, HashSet},
    num::NonZeroU32,
    path::Path,
};

use aya::{
    Ebpf,
    programs::{
        Program, UProbe,
        uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope},
    },
};
use profiler_common::names;

use super::{AttachPlan, ProbeError, ProbeScope};
use crate::binary::{FileId, ProbePoint, ProbePointKind};

/// An attached uprobe: the program and its link.
pub type Link = (&'static str, UProbeLinkId);

/// A process's uprobes attached before it started (`programs::StoppedTarget`): its PID, links.
pub type StoppedLinks = (u32, Vec<Link>);

/// The loaded uprobe programs, by name.
pub struct UprobePrograms<'a>(HashMap<&'static str, &'a mut UProbe>);

impl<'a> UprobePrograms<'a> {
    /// The uprobe programs among `programs` (by the names `names::UPROBES` gives them).
    pub fn of<N: AsRef<str>>(programs: impl IntoIterator<Item = (N, &'a mut Program)>) -> Self {
        Self(
            programs
                .into_iter()
                .filter_map(|(name, program)| {
                    let name = names::UPROBES.into_iter().find(|n| *n == name.as_ref())?;
                    match program {
                        Program::UProbe(uprobe) => Some((name, uprobe)),
                        _ => None,
                    }
                })
                .collect(),
        )
    }

    fn get(&mut self, name: &'static str) -> Result<&mut UProbe, ProbeError> {
        self.0.get_mut(name).map(|p| &mut **p).ok_or(ProbeError::Missing { what: "uprobe program", name })
    }
}

struct SharedLinks {
    links: Vec<Link>,
    users: HashSet<u32>,
}

#[derive(Default)]
pub struct UprobeLinks {
    /// Uprobes of one process (`ProbeScope::OneProcess`).
    own: HashMap<u32, Vec<Link>>,
    /// Uprobes shared by every process of a binary (`ProbeScope::SharedBy`).
    shared: HashMap<FileId, SharedLinks>,
    /// Processes whose uprobes were attached before they started (`adopt`).
    adopted: HashSet<u32>,
}

impl UprobeLinks {
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
        let mut programs = UprobePrograms::of(ebpf.programs_mut());
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
        let mut programs = UprobePrograms::of(ebpf.programs_mut());
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

/// Attaches the plan's programs at `points`; all or nothing.
pub fn attach_points(
    programs: &mut UprobePrograms,
    pid: u32,
    exe: &Path,
    points: &[ProbePoint],
    plan: AttachPlan,
    scope: UProbeScope,
) -> Result<Vec<Link>, ProbeError> {
    let mut links = Vec::new();
    for point in points {
        let Some(program) = program_at(point.kind, plan) else { continue };
        let attached = programs.get(program).and_then(|p| {
            p.attach(UProbeAttachLocation::AbsoluteOffset(point.file_offset), exe, scope).map_err(|source| {
                ProbeError::Attach { point: point.kind.display(), path: exe.display().to_string(), pid, source }
            })
        });
        match attached {
            Ok(link) => links.push((program, link)),
            Err(err) => {
                release(programs, links);
                return Err(err);
            }
        }
    }
    Ok(links)
}

fn release(programs: &mut UprobePrograms, links: Vec<Link>) {
    for (program, link) in links {
        if let Ok(p) = programs.get(program) {
            // A link whose process is gone may already be released; nothing to do then.
            let _ = p.detach(link);
        }
    }
}
