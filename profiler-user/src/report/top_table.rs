//! The table `record` prints when the command has ended: the busiest functions and log streams.
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
    if t.calls_counted {
        let total: u64 = profile.functions.iter().map(|f| f.calls).sum();
        let _ = writeln!(out, "\n{:>12}  {:>6}  {:<8}  function", "calls", "share", "kind");
        for f in profile.functions.iter().take(TOP_ROWS) {
            let share = 100.0 * f.calls as f64 / total.max(1) as f64;
            let _ = writeln!(out, "{:>12}  {:>5.1}%  {:<8}  {}", f.calls, share, f.kind.as_str(), f.name);
        }
        more(&mut out, profile.functions.len(), "functions");
        let _ = writeln!(out, "{:>12}  total calls", total);
    } else {
        let _ = writeln!(out, "\nscript calls were not counted (add --count-calls to count every call)");
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
        profile::{FunctionCalls, ProbeHealth, StreamWrites, TargetSummary},
        symbolize::FuncKind,
    };

    fn profile(calls_counted: bool) -> Profile {
        Profile {
            target: TargetSummary {
                pid: 42,
                node: "standalone".into(),
                zeek_version: "8.2.2".into(),
                abi: "8.2".into(),
                layout_source: LayoutSource::Table,
                binary: "/usr/bin/zeek".into(),
                calls_counted,
            },
            functions: vec![
                FunctionCalls { name: "fmt".into(), kind: FuncKind::Bif, calls: 75 },
                FunctionCalls { name: "new_connection".into(), kind: FuncKind::Event, calls: 25 },
            ],
            callers: vec![],
            log_writes: vec![StreamWrites { stream: "Conn::LOG".into(), writes: 9 }],
            probe_health: ProbeHealth { map_full: 3, ..Default::default() },
        }
    }

    #[test]
    fn shows_shares_streams_and_health() {
        let text = render(&profile(true));
        assert!(text.contains("75   75.0%  bif       fmt"), "{text}");
        assert!(text.contains("25   25.0%  event     new_connection"), "{text}");
        assert!(text.contains("100  total calls"), "{text}");
        assert!(text.contains("9  Conn::LOG"), "{text}");
        assert!(text.contains("probe health: 3 drops (map full)"), "{text}");
    }

    #[test]
    fn says_when_calls_were_not_counted() {
        assert!(render(&profile(false)).contains("add --count-calls"));
    }
}
