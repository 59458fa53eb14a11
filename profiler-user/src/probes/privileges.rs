//! Whether this process may load BPF programs and read other processes' memory, checked
//! before trying so that the answer is one clear line instead of a kernel errno.
use std::fs;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_PTRACE: u32 = 19;

/// The effective capability set of this process.
fn effective_capabilities() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1 << cap) != 0
}

/// The capabilities missing to load the probes and read a target's memory, by name.
pub fn missing() -> Vec<&'static str> {
    missing_from(effective_capabilities())
}

/// CAP_BPF loads the programs and CAP_PERFMON opens the sampler's perf events, but the kernel
/// opens uprobe perf events only for CAP_SYS_ADMIN (seen on 6.x with perf_event_paranoid 2:
/// EACCES with CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and CAP_DAC_*; the systemd unit's test
/// shows it), and CAP_SYS_ADMIN implies the other two. CAP_SYS_PTRACE reads the targets'
/// /proc/PID/{mem,environ,root}.
fn missing_from(caps: u64) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !has(caps, CAP_SYS_ADMIN) {
        missing.push("CAP_SYS_ADMIN");
    }
    if !has(caps, CAP_SYS_PTRACE) {
        missing.push("CAP_SYS_PTRACE");
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;

    #[test]
    fn sys_admin_and_ptrace_suffice() {
        assert_eq!(missing_from(1 << CAP_SYS_ADMIN | 1 << CAP_SYS_PTRACE), Vec::<&str>::new());
    }

    #[test]
    fn names_what_is_missing() {
        assert_eq!(missing_from(0), vec!["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]);
        assert_eq!(missing_from(1 << CAP_BPF | 1 << CAP_PERFMON | 1 << CAP_SYS_PTRACE), vec!["CAP_SYS_ADMIN"]);
    }
}
