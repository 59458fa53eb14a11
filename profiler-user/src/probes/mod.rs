//! The BPF side as seen from user space. `programs` loads the embedded object, `links`
//! attaches its uprobes at a binary's probe points, `sampler` starts the CPU sampler, and
//! `maps` registers targets and reads what the programs counted. `Probes` holds them together.
pub mod error;
pub mod kernel_btf;
pub mod kernel_features;
pub mod links;
pub mod map_sizes;
pub mod maps;
pub mod plan;
pub mod privileges;
pub mod programs;
mod registration_warm_up;
mod release;
pub mod sampler;
pub mod uprobe_multi;

use std::{
    io,
    num::NonZeroU32,
    os::fd::{FromRawFd as _, OwnedFd},
    path::Path,
};

use aya::Ebpf;
pub use error::ProbeError;
pub use maps::{MapSnapshot, ProbeMaps};
pub use plan::{AttachPlan, InvokeProgram, ProbeScope};
use profiler_common::{LogKey, TargetLayout};
pub use programs::StoppedTarget;

use crate::{
    binary::ProbePoint,
    unwind::{NativeStackCollector, NewAddresses},
};

pub struct Probes {
    /// What is attached to every target: only its programs are loaded.
    plan: AttachPlan,
    ebpf: Ebpf,
    maps: ProbeMaps,
    links: links::UprobeLinks,
    sampler: sampler::Sampler,
    /// Unwinds the sampled threads' native stacks, when the plan copies them.
    native_stacks: Option<NativeStackCollector>,
    /// The uprobe that lets a stopped target's registration skip its grace period, held as
    /// long as the probes, never waited for (`registration_warm_up`).
    _registration_warm_up: Option<registration_warm_up::RegistrationWarmUp>,
}

/// The descriptor a system call that makes one returned (`-1`: the error in `errno`).
fn new_descriptor(returned: libc::c_long) -> io::Result<OwnedFd> {
    if returned < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just made by the kernel for this call, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(returned as i32) })
}

impl Probes {
    /// Loads the programs `plan` uses into the kernel; nothing is attached yet.
    pub fn load(plan: AttachPlan) -> Result<Self, ProbeError> {
        Self::load_with(plan, None)
    }

    /// As `load`, for a process stopped at exec (`record`): its uprobes are attached while
    /// the sampler's programs are verified (`programs::StoppedTarget`); its `attach` then
    /// registers it and starts the sampler.
    pub fn load_for_stopped(plan: AttachPlan, target: StoppedTarget) -> Result<Self, ProbeError> {
        Self::load_with(plan, Some(target))
    }

    fn load_with(plan: AttachPlan, stopped: Option<StoppedTarget>) -> Result<Self, ProbeError> {
        // Only a stopped target waits for its uprobes: a running one's are attached after the
        // sampler's verification, long after the grace period of the first.
        let warm_up = stopped.as_ref().map(|_| registration_warm_up::RegistrationWarmUp::start());
        let link_kind = uprobe_multi::UprobeLinkKind::for_this_kernel()?;
        let (mut ebpf, attached) = programs::load(plan, link_kind, stopped)?;
        let maps = ProbeMaps::take(&mut ebpf)?;
        let native_stacks = match plan.native_stack_bytes {
            0 => None,
            _ => Some(maps::native_stack_collector(&mut ebpf)?),
        };
        let mut links = links::UprobeLinks::new(link_kind);
        if let Some((pid, attached)) = attached {
            links.adopt(pid, attached);
        }
        Ok(Self { plan, ebpf, maps, links, sampler: Default::default(), native_stacks, _registration_warm_up: warm_up })
    }

    /// Fails as `load` would for want of a privilege, without loading anything.
    pub fn check_privileges() -> Result<(), ProbeError> {
        programs::check_privileges()
    }

    pub fn plan(&self) -> AttachPlan {
        self.plan
    }

    /// How the uprobes are attached (as their programs were loaded for).
    pub fn uprobe_links(&self) -> uprobe_multi::UprobeLinkKind {
        self.links.kind()
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
    ) -> Result<(), ProbeError> {
        let plan = self.plan;
        let pid_nz = NonZeroU32::new(pid).ok_or(ProbeError::NoTarget)?;
        // One sampler serves every target.
        if let Some(hz) = plan.sample {
            self.sampler.start(&mut self.ebpf, hz)?;
        }
        self.maps.register(pid, layout)?;
        let attached = self.links.attach(&mut self.ebpf, pid_nz, exe, scope, points, plan);
        if attached.is_err() {
            self.detach(pid);
        }
        attached
    }

    /// Detaches what serves only `pid` (probes shared by a binary stay while another process
    /// of it is a target); its counts stay in the maps.
    pub fn detach(&mut self, pid: u32) {
        self.links.detach(&mut self.ebpf, pid);
        self.maps.unregister(pid);
    }

    /// Deletes a detached process's counts from the maps (names, shared by all, stay).
    pub fn forget(&mut self, pid: u32) {
        self.maps.forget(pid);
        if let Some(native) = &self.native_stacks {
            native.forget(pid);
        }
    }

    /// Copies the maps, and the native stacks unwound so far. Counters are cumulative:
    /// nothing is reset. The native stacks are taken first: each follows its sample's count,
    /// so every one has its sample in the copy.
    pub fn snapshot(&self) -> MapSnapshot {
        let native_stacks = self.native_stacks.as_ref().map(NativeStackCollector::snapshot).unwrap_or_default();
        MapSnapshot { native_stacks, ..self.maps.snapshot() }
    }

    /// Lets the probes go once every target has exited, without waiting for the kernel to
    /// release them: that happens after zeek-probe has ended (`release`). Where that cannot be
    /// arranged (no process can be started), they are released here, as dropping them does.
    pub fn release_after_exit(self) {
        let _ = release::hand_over();
        drop(self);
    }

    /// The native addresses of the stacks unwound from now on, as they are first seen; `None`
    /// when native stacks are not copied.
    pub fn new_native_addresses(&self) -> Option<NewAddresses> {
        self.native_stacks.as_ref().map(NativeStackCollector::new_addresses)
    }

    /// The log streams written so far, read without copying the rest.
    pub fn log_write_keys(&self) -> Vec<LogKey> {
        self.maps.log_write_keys()
    }
}
