//! What `attach` and `top` both start from: the processes `--pid` or `--cluster` select,
//! attached, and the host scans that follow the cluster's nodes as they come and go.
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{
    cli::TargetArgs,
    own_memory,
    probes::Probes,
    target::discovery::{Discovery, Found},
    target_set::{TargetSet, live::LiveBackend},
};

/// The host's Zeek processes, scanned for (with `--cluster`; nothing to scan with `--pid`).
/// Behind its own lock, so that inspecting a new binary does not hold up the target set.
pub struct HostScan(Option<Mutex<Discovery>>);

impl HostScan {
    /// Every Zeek process running now; `None` when the host is not followed.
    pub fn scan(&self) -> Option<HashMap<u32, Found>> {
        self.0.as_ref().map(|d| d.lock().map(|mut d| d.scan()).unwrap_or_default())
    }
}

/// Attaches `probes` to what `which` selects: the one PID up front (its failure is the
/// command's), or the host's Zeek processes as a first scan finds them.
pub fn open(probes: Probes, which: &TargetArgs) -> anyhow::Result<(TargetSet<LiveBackend>, HostScan)> {
    let mut backend = LiveBackend::new(probes);
    let mut targets = match which.pid {
        Some(pid) => {
            let session = backend.attach_pid(pid)?;
            TargetSet::one(backend, pid, session)
        }
        None => TargetSet::discover(backend, Duration::from_secs(which.retain_exited)),
    };
    let scan = HostScan(which.cluster.then(Mutex::default));
    targets.refresh(scan.scan(), Instant::now());
    // Loading the probes (the kernel's BTF, parsed) and the first attaches peak here.
    own_memory::release_freed();
    Ok((targets, scan))
}

/// `TargetSet::refresh` now, after which memory freed by attaching or dropping nodes goes
/// back to the system.
pub fn refresh(targets: &mut TargetSet<LiveBackend>, found: Option<HashMap<u32, Found>>) {
    let before: Vec<u32> = targets.targets().map(|(pid, _)| pid).collect();
    targets.refresh(found, Instant::now());
    if !targets.targets().map(|(pid, _)| pid).eq(before) {
        own_memory::release_freed();
    }
}
