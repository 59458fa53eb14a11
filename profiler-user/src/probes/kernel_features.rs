//! What the running kernel offers zeek-probe, probed once from /proc and /sys (no BPF
//! syscalls: `check` must answer without privileges too).
use std::{fs, path::Path};

/// The oldest kernel zeek-probe supports (BPF link-based uprobes, bpf_probe_read_user, BTF
/// for programs, bounded loops).
pub const MIN_KERNEL: (u32, u32) = (5, 15);

#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelFeatures {
    pub release: String,
    /// `CONFIG_BPF_SYSCALL`.
    pub bpf_syscall: bool,
    /// The `uprobe` perf PMU (`CONFIG_UPROBE_EVENTS`), which uprobes attach through.
    pub uprobes: bool,
    /// Perf events, for the CPU-clock sampler.
    pub perf_events: bool,
    /// Kernel BTF (`/sys/kernel/btf/vmlinux`); not required.
    pub btf: bool,
    /// Multi-uprobe links (6.6+); not required, one link per probe point works everywhere.
    pub uprobe_multi: bool,
    /// `task_struct.thread.fsbase` in the kernel's BTF: where the sampler finds the end of a
    /// thread's stack, for the native stacks of threads other than the main one.
    pub thread_stacks: bool,
}

impl KernelFeatures {
    pub fn probe() -> Self {
        let release = running_release();
        Self {
            bpf_syscall: Path::new("/proc/sys/kernel/unprivileged_bpf_disabled").exists(),
            uprobes: Path::new("/sys/bus/event_source/devices/uprobe").exists(),
            perf_events: Path::new("/proc/sys/kernel/perf_event_paranoid").exists(),
            btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
            uprobe_multi: has_uprobe_multi(&release),
            thread_stacks: super::kernel_btf::task_fsbase_offset().is_some(),
            release,
        }
    }

    /// What stops zeek-probe from working on this kernel, one phrase each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match parse_release(&self.release) {
            Some(v) if v < MIN_KERNEL => {
                problems.push(format!("kernel {} is older than {}.{}", self.release, MIN_KERNEL.0, MIN_KERNEL.1))
            }
            _ => {}
        }
        if !self.bpf_syscall {
            problems.push("no BPF system call (CONFIG_BPF_SYSCALL)".into());
        }
        if !self.uprobes {
            problems.push("no uprobes (CONFIG_UPROBE_EVENTS)".into());
        }
        if !self.perf_events {
            problems.push("no perf events (CONFIG_PERF_EVENTS)".into());
        }
        problems
    }
}

/// Whether the running kernel makes multi-uprobe links (`probes::uprobe_multi`).
pub fn uprobe_multi() -> bool {
    has_uprobe_multi(&running_release())
}

/// Multi-uprobe links came with 6.6 (a distribution's backport to an older kernel is not
/// seen, and gets a perf event per probe point, as before).
fn has_uprobe_multi(release: &str) -> bool {
    parse_release(release).is_some_and(|v| v >= (6, 6))
}

fn running_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned()
}

/// `6.18.44-fc-v669` → (6, 18).
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_releases() {
        assert_eq!(parse_release("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_release("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(parse_release("garbage"), None);
    }

    #[test]
    fn old_kernels_are_a_problem() {
        let k = KernelFeatures {
            release: "5.10.0".into(),
            bpf_syscall: true,
            uprobes: true,
            perf_events: true,
            btf: false,
            uprobe_multi: false,
            thread_stacks: false,
        };
        assert_eq!(k.problems(), ["kernel 5.10.0 is older than 5.15"]);
    }

    #[test]
    fn this_kernel_is_described() {
        assert!(!KernelFeatures::probe().release.is_empty());
    }
}
