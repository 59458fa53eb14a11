//! The uprobes attached at a binary's probe points: per process, or shared by every process
//! of one executable file, released when their last user goes.
use std::{
    collections::{HashMap, HashSet},
    num::NonZeroU32,
    path::Path,
};

use aya::{
    Ebpf,
    programs::uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope},
};
use profiler_common::names;

use super::{AttachPlan, ProbeError, ProbeScope, programs::uprobe};
use crate::binary::{FileId, ProbePoint, ProbePointKind};

/// An attached uprobe: the program and its link.
type Link = (&'static str, UProbeLinkId);

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
}

impl UprobeLinks {
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
        match scope {
            ProbeScope::OneProcess => {
                let links = attach_points(ebpf, pid.get(), exe, points, plan, UProbeScope::OneProcess(pid))?;
                self.own.entry(pid.get()).or_default().extend(links);
            }
            ProbeScope::SharedBy(file) => match self.shared.get_mut(&file) {
                Some(shared) => {
                    shared.users.insert(pid.get());
                }
                None => {
                    let links = attach_points(ebpf, pid.get(), exe, points, plan, UProbeScope::AllProcesses)?;
                    self.shared.insert(file, SharedLinks { links, users: HashSet::from([pid.get()]) });
                }
            },
        }
        Ok(())
    }

    /// Detaches what serves only `pid`: a binary's shared uprobes stay while another process
    /// of it uses them.
    pub fn detach(&mut self, ebpf: &mut Ebpf, pid: u32) {
        release(ebpf, self.own.remove(&pid).unwrap_or_default());
        let unused: Vec<FileId> = self
            .shared
            .iter_mut()
            .filter_map(|(file, shared)| (shared.users.remove(&pid) && shared.users.is_empty()).then_some(*file))
            .collect();
        for file in unused {
            if let Some(shared) = self.shared.remove(&file) {
                release(ebpf, shared.links);
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
fn attach_points(
    ebpf: &mut Ebpf,
    pid: u32,
    exe: &Path,
    points: &[ProbePoint],
    plan: AttachPlan,
    scope: UProbeScope,
) -> Result<Vec<Link>, ProbeError> {
    let mut links = Vec::new();
    for point in points {
        let Some(program) = program_at(point.kind, plan) else { continue };
        let attached = uprobe(ebpf, program).and_then(|p| {
            p.attach(UProbeAttachLocation::AbsoluteOffset(point.file_offset), exe, scope).map_err(|source| {
                ProbeError::Attach { point: point.kind.display(), path: exe.display().to_string(), pid, source }
            })
        });
        match attached {
            Ok(link) => links.push((program, link)),
            Err(err) => {
                release(ebpf, links);
                return Err(err);
            }
        }
    }
    Ok(links)
}

fn release(ebpf: &mut Ebpf, links: Vec<Link>) {
    for (program, link) in links {
        if let Ok(p) = uprobe(ebpf, program) {
            // A link whose process is gone may already be released; nothing to do then.
            let _ = p.detach(link);
        }
    }
}
