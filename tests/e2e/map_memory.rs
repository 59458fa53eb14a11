//! The BPF maps' kernel memory, as the kernel accounts it (fdinfo `memlock`), stays within
//! `--bpf-memory`: 16 MiB by default, more only when asked.
use std::{fs, process::Command};

use crate::common::*;

/// Bytes of kernel memory held by the BPF maps `pid` has open.
fn map_memory_of(pid: u32) -> u64 {
    let fds = fs::read_dir(format!("/proc/{pid}/fdinfo")).unwrap();
    fds.filter_map(|fd| fs::read_to_string(fd.ok()?.path()).ok())
        .filter(|info| info.lines().any(|l| l.starts_with("map_type:")))
        .filter_map(|info| info.lines().find_map(|l| l.strip_prefix("memlock:")?.trim().parse::<u64>().ok()))
        .sum()
}

/// `attach --cluster` with `extra` arguments, serving: its maps' memory, MiB.
fn attach_map_mib(extra: &[&str]) -> f64 {
    let mut cmd = Command::new(zeek_probe());
    cmd.args(["attach", "--cluster", "--count-calls", "--listen", "127.0.0.1:0"]).args(extra);
    let exporter = Exporter::start(cmd, "http");
    map_memory_of(exporter.child.0.id()) as f64 / f64::from(1 << 20)
}

#[test]
fn the_bpf_maps_fit_the_default_budget_and_grow_only_when_asked() {
    if !privileged() {
        return;
    }
    let default = attach_map_mib(&[]);
    assert!(default > 4.0 && default <= 16.0, "maps hold {default:.1} MiB by default, budget 16 MiB");
    let raised = attach_map_mib(&["--bpf-memory", "64"]);
    assert!(raised > 16.0 && raised <= 64.0, "maps hold {raised:.1} MiB with --bpf-memory 64");
}

#[test]
fn a_budget_below_the_default_is_refused_in_one_line() {
    let output = Command::new(zeek_probe()).args(["attach", "--cluster", "--bpf-memory", "4"]).output().unwrap();
    assert_one_line_error(&output, "invalid value '4' for '--bpf-memory <MIB>': 4 is not in 16..=4096");
    assert_eq!(output.status.code(), Some(2), "a usage error");
}
