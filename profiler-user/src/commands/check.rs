//! `zeek-probe check (--pid PID | PATH) [--json]`: can zeek-probe profile this Zeek here, and
//! how? Version and ABI, where each offset comes from, every probe point with its placement
//! and cost, what sampling can read, kernel features and privileges; the last line is the
//! verdict. Needs no privileges for a PATH.
use std::path::PathBuf;

use serde::Serialize;

use crate::{
    binary::{ProbePoint, ZeekBinary, layout_fields::LAYOUT_FIELDS},
    cli::CheckArgs,
    output,
    probes::{kernel_features::KernelFeatures, privileges},
    target::ProcessInfo,
};

#[derive(Serialize)]
struct Offset {
    field: &'static str,
    offset: u32,
    /// "dwarf" or "table".
    source: &'static str,
}

#[derive(Serialize)]
struct CheckReport {
    binary: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    zeek_version: String,
    plugin_api: u32,
    debug_build: bool,
    abi: &'static str,
    /// Other symbols checked against the ABI the version symbol names.
    abi_evidence: Vec<crate::binary::abi_evidence::Evidence>,
    stdlib: &'static str,
    layout_source: crate::binary::LayoutSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    dwarf_file: Option<PathBuf>,
    /// Table offsets DWARF contradicted; DWARF's are used.
    layout_mismatches: Vec<crate::binary::Mismatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dwarf_error: Option<String>,
    /// Whether what DWARF says came from the layout cache, or was kept there.
    layout_cache: crate::binary::layout_cache::CacheUse,
    offsets: Vec<Offset>,
    probe_points: Vec<ProbePoint>,
    samples_script_stacks: bool,
    names_dispatched_events: bool,
    /// Why long event dispatches cannot be measured (`None`: they can).
    #[serde(skip_serializing_if = "Option::is_none")]
    long_dispatches_unavailable: Option<&'static str>,
    /// Known only for a running process.
    #[serde(skip_serializing_if = "Option::is_none")]
    zam: Option<bool>,
    kernel: KernelFeatures,
    missing_privileges: Vec<&'static str>,
    ready: bool,
    verdict: String,
}

pub fn run(args: CheckArgs) -> anyhow::Result<i32> {
    let (path, shown, process) = match (args.pid, args.path) {
        (Some(pid), _) => {
            let p = ProcessInfo::read(pid)?;
            (p.exe.clone(), p.exe_link.clone(), Some(p))
        }
        (None, Some(path)) => (path.clone(), path, None),
        (None, None) => anyhow::bail!("say what to check: --pid PID or the path of a zeek binary"),
    };
    let binary = match (ZeekBinary::inspect(&path, &shown), &process) {
        (Ok(binary), _) => binary,
        (Err(err), Some(p)) => return Err(anyhow::Error::from(err).context(format!("PID {}", p.pid))),
        (Err(err), None) => return Err(err.into()),
    };
    let report = assess(&binary, shown, process.as_ref());
    if args.json {
        output::print(&(serde_json::to_string_pretty(&report)? + "\n"))?;
    } else {
        output::print(&render(&report))?;
    }
    Ok(if report.ready { 0 } else { 1 })
}

fn assess(binary: &ZeekBinary, shown: PathBuf, process: Option<&ProcessInfo>) -> CheckReport {
    let l = &binary.layout;
    let from_dwarf = |field| binary.dwarf.as_ref().is_some_and(|d| d.get(field).is_some());
    let offsets = LAYOUT_FIELDS
        .iter()
        .filter_map(|field| {
            Some(Offset {
                field: field.name,
                offset: (field.get)(l)?,
                source: if from_dwarf(field.dwarf) { "dwarf" } else { "table" },
            })
        })
        .collect();
    let kernel = KernelFeatures::probe();
    let missing_privileges = privileges::missing();
    let mut problems = kernel.problems();
    if !missing_privileges.is_empty() {
        problems.push(format!("run as root or grant {}", missing_privileges.join(", ")));
    }
    let samples_script_stacks = binary.call_stack.is_some();
    let ready = problems.is_empty();
    let verdict = if ready {
        format!("ready: zeek-probe can profile this Zeek {} here", binary.version)
    } else {
        format!("not ready: {}", problems.join("; "))
    };
    CheckReport {
        binary: shown,
        pid: process.map(|p| p.pid),
        node: process.map(|p| p.node.clone()),
        zeek_version: binary.version.to_string(),
        plugin_api: binary.version.plugin_api,
        debug_build: binary.version.debug,
        abi: l.abi,
        abi_evidence: binary.abi_evidence.clone(),
        stdlib: "libstdc++",
        layout_source: l.source,
        dwarf_file: binary.dwarf.as_ref().map(|d| d.file.clone()),
        layout_mismatches: binary.layout_mismatches.clone(),
        dwarf_error: binary.dwarf_error.clone(),
        layout_cache: binary.layout_cache.clone(),
        offsets,
        probe_points: binary.probe_points.clone(),
        samples_script_stacks,
        names_dispatched_events: l.event_mgr_current.is_some() && binary.event_mgr.is_some(),
        long_dispatches_unavailable: binary.long_dispatches().err(),
        zam: process.map(|p| p.zam),
        kernel,
        missing_privileges,
        ready,
        verdict,
    }
}

fn render(r: &CheckReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "binary:   {}", r.binary.display());
    if let (Some(pid), Some(node)) = (r.pid, &r.node) {
        let _ = writeln!(out, "process:  PID {pid}, node {node}");
    }
    let _ = writeln!(out, "zeek:     {} (plugin API {}), ABI {}, {}", r.zeek_version, r.plugin_api, r.abi, r.stdlib);
    for e in &r.abi_evidence {
        let _ = writeln!(
            out,
            "          {} {}",
            if e.agrees { "confirmed:" } else { "CONTRADICTS the version symbol:" },
            e.fact
        );
    }
    match &r.dwarf_file {
        Some(file) => {
            let _ = writeln!(
                out,
                "layout:   from DWARF in {}, checked against the table for ABI {}",
                file.display(),
                r.abi
            );
        }
        None => {
            let _ = writeln!(out, "layout:   from the built-in table for ABI {} (no debug information found)", r.abi);
        }
    }
    if let Some(err) = &r.dwarf_error {
        let _ = writeln!(out, "          debug information unreadable, table used: {err}");
    }
    use crate::binary::layout_cache::CacheUse;
    match &r.layout_cache {
        CacheUse::Off => {}
        CacheUse::Hit(entry) => {
            let _ = writeln!(out, "          read from the layout cache ({})", entry.display());
        }
        CacheUse::Stored(entry) => {
            let _ = writeln!(out, "          kept in the layout cache ({})", entry.display());
        }
        CacheUse::NotStored(why) => {
            let _ = writeln!(out, "          not kept in the layout cache: {why}");
        }
    }
    for m in &r.layout_mismatches {
        let _ =
            writeln!(out, "          table says {} is at {}, DWARF says {}: using DWARF", m.field, m.table, m.dwarf);
    }
    for o in &r.offsets {
        let _ = writeln!(out, "          {:<31} {:>4}  ({})", o.field, o.offset, o.source);
    }
    let _ = writeln!(out, "probes:");
    for p in &r.probe_points {
        let skipped = if p.skipped > 0 { format!(" (past a {}-byte endbr64)", p.skipped) } else { String::new() };
        let _ = writeln!(
            out,
            "          {:<36} file offset {:#x}{skipped}: [{}] {}",
            p.kind.display(),
            p.file_offset,
            p.instruction_bytes,
            p.cost.cost()
        );
    }
    let _ = writeln!(
        out,
        "sampling: script stacks {}, dispatched events {}",
        if r.samples_script_stacks { "yes" } else { "no (no call_stack symbol)" },
        if r.names_dispatched_events { "named" } else { "not named (Zeek < 7.2)" }
    );
    let _ = writeln!(
        out,
        "native stacks: main thread yes (unwound in user space from .eh_frame), other threads {}",
        if r.kernel.thread_stacks {
            "yes"
        } else {
            "by their name only (no task_struct.thread.fsbase in the kernel's BTF)"
        }
    );
    let _ = writeln!(out, "{}", crate::profile::dispatch_line(r.long_dispatches_unavailable));
    match r.zam {
        Some(true) => {
            let _ = writeln!(out, "ZAM:      on: inlined functions' time and calls land in their callers");
        }
        Some(false) => {
            let _ = writeln!(out, "ZAM:      off");
        }
        None => {}
    }
    let k = &r.kernel;
    let yes = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(
        out,
        "kernel:   {}: BPF {}, uprobes {}, perf events {}, BTF {}, uprobe_multi {}",
        k.release,
        yes(k.bpf_syscall),
        yes(k.uprobes),
        yes(k.perf_events),
        yes(k.btf),
        yes(k.uprobe_multi)
    );
    let _ = writeln!(
        out,
        "privileges: {}",
        if r.missing_privileges.is_empty() {
            "ok".to_owned()
        } else {
            format!("missing {}", r.missing_privileges.join(", "))
        }
    );
    let _ = writeln!(out, "{}", r.verdict);
    out
}
