//! The table `record` prints when the command has ended: where the CPU went (sampled self and
//! total shares), exact calls when counted, and the busiest log streams.
use std::fmt::Write as _;

use crate::profile::Profile;

/// Rows shown per table; the rest is in summary.json.
pub const TOP_ROWS: usize = 25;

pub fn render(profile: &Profile) -> String {
    let t = &profile.target;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "zeek-probe: PID {} (node {}), Zeek {} (ABI {}), {}",
        t.pid, t.node, t.zeek_version, t.abi, t.binary
    );
    if t.zam {
        let _ = writeln!(out, "ZAM-optimised scripts: inlined functions' time and calls land in their callers");
    }
    let sampled: u64 = profile.sampling.as_ref().map_or(0, |s| s.stacks.iter().map(|s| s.samples).sum());
    let total_calls: u64 = profile.functions.iter().filter_map(|f| f.calls).sum();
    match (&profile.sampling, t.calls_counted) {
        (Some(s), _) => {
            let _ = writeln!(
                out,
                "{sampled} CPU samples at {} Hz ({:.2} s of CPU{}){}",
                s.hz,
                sampled as f64 / s.hz.max(1) as f64,
                t.cpu_seconds.map_or_else(String::new, |cpu| format!("; the process used {cpu:.2} s")),
                if t.calls_counted { ", every call counted" } else { "" }
            );
        }
        (None, true) => {
            let _ = writeln!(out, "{total_calls} calls counted (CPU not sampled)");
        }
        (None, false) => {
            let _ = writeln!(out, "nothing sampled or counted: only log writes");
        }
    }

    let rows: Vec<_> = profile.functions.iter().filter(|f| f.total_seconds > 0.0 || f.calls.is_some()).collect();
    if !rows.is_empty() {
        let cpu_seconds = sampled as f64 / profile.sampling.as_ref().map_or(1, |s| s.hz.max(1)) as f64;
        let share = |seconds: f64| {
            if cpu_seconds > 0.0 { format!("{:5.1}%", 100.0 * seconds / cpu_seconds) } else { "    -".into() }
        };
        let _ = writeln!(out, "\n{:>7}  {:>7}  {:>12}  {:<8}  function", "self", "total", "calls", "kind");
        for f in rows.iter().take(TOP_ROWS) {
            let calls = f.calls.map_or_else(|| "-".to_owned(), |c| c.to_string());
            let _ = writeln!(
                out,
                "{:>7}  {:>7}  {:>12}  {:<8}  {}",
                share(f.self_seconds),
                share(f.total_seconds),
                calls,
                f.kind.as_str(),
                f.name
            );
        }
        more(&mut out, rows.len(), "functions");
    }
    if let Some(top) = profile.packages.first() {
        let _ = writeln!(out, "\nbusiest package: {} ({:.2} s self CPU)", top.source, top.self_seconds);
    }
    if profile.log_writes.is_empty() {
        let _ = writeln!(out, "\nno log writes seen");
    } else {
        let _ = writeln!(out, "\n{:>12}  log stream", "writes");
        for s in profile.log_writes.iter().take(TOP_ROWS) {
            let _ = writeln!(out, "{:>12}  {}", s.writes, s.stream);
        }
        more(&mut out, profile.log_writes.len(), "log streams");
    }
    let h = &profile.probe_health;
    let problems = [
        (h.read_failed, "failed reads"),
        (h.invalid_func, "invalid function objects"),
        (h.map_full, "drops (map full)"),
        (h.caller_unresolved, "unresolved callers"),
        (h.unnamed_calls, "calls without a name"),
        (h.unnamed_samples, "samples without a stack"),
    ];
    let problems: Vec<String> =
        problems.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
    let _ =
        writeln!(out, "\nprobe health: {}", if problems.is_empty() { "ok".to_owned() } else { problems.join(", ") });
    out
}

fn more(out: &mut String, len: usize, what: &str) {
    if len > TOP_ROWS {
        let _ = writeln!(out, "{:>12}  … {} more {what} in summary.json", "", len - TOP_ROWS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        binary::LayoutSource,
        profile::{FunctionStats, ProbeHealth, SampledStack, Sampling, StackFrame, StreamWrites, TargetSummary},
        symbolize::FuncKind,
    };

    fn function(
        name: &str,
        kind: FuncKind,
        calls: Option<u64>,
        self_seconds: f64,
        total_seconds: f64,
    ) -> FunctionStats {
        FunctionStats { name: name.into(), zeek_name: None, kind, file: None, calls, self_seconds, total_seconds }
    }

    fn profile(calls_counted: bool, sampled: bool) -> Profile {
        let frame = |name: &str| StackFrame { name: name.into(), file: None, line: 0 };
        Profile {
            target: TargetSummary {
                pid: 42,
                node: "standalone".into(),
                zeek_version: "8.2.2".into(),
                abi: "8.2".into(),
                layout_source: LayoutSource::Table,
                binary: "/usr/bin/zeek".into(),
                calls_counted,
                sample_hz: sampled.then_some(100),
                zam: false,
                cpu_seconds: None,
            },
            functions: vec![
                function("new_connection", FuncKind::Event, calls_counted.then_some(25), 0.5, 2.0),
                function("fmt", FuncKind::Bif, calls_counted.then_some(75), 1.5, 1.5),
            ],
            callers: vec![],
            log_writes: vec![StreamWrites { stream: "Conn::LOG".into(), writes: 9 }],
            files: vec![],
            packages: vec![],
            sampling: sampled.then(|| Sampling {
                hz: 100,
                stacks: vec![SampledStack { frames: vec![frame("new_connection"), frame("fmt")], samples: 200 }],
            }),
            probe_health: ProbeHealth { map_full: 3, ..Default::default() },
        }
    }

    #[test]
    fn shows_self_total_calls_streams_and_health() {
        let text = render(&profile(true, true));
        assert!(text.contains("200 CPU samples at 100 Hz (2.00 s of CPU), every call counted"), "{text}");
        assert!(text.contains(" 25.0%   100.0%            25  event     new_connection"), "{text}");
        assert!(text.contains(" 75.0%    75.0%            75  bif       fmt"), "{text}");
        assert!(text.contains("9  Conn::LOG"), "{text}");
        assert!(text.contains("probe health: 3 drops (map full)"), "{text}");
    }

    #[test]
    fn counts_alone_show_dashes_for_shares() {
        let text = render(&profile(true, false));
        assert!(text.contains("100 calls counted (CPU not sampled)"), "{text}");
        assert!(text.contains("    -        -            75  bif       fmt"), "{text}");
    }
}
