//! The table `record` prints when the command has ended: where the CPU went (sampled self and
//! total shares), exact calls when counted, and the busiest log streams.
use std::fmt::Write as _;

use crate::{
    profile::{FunctionStats, NativeStackShare, Profile},
    symbolize::FuncKind,
};

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
            let _ = writeln!(out, "{}", native_stacks_line(&s.native_stacks));
        }
        (None, true) => {
            let _ = writeln!(out, "{total_calls} calls counted (CPU not sampled)");
        }
        (None, false) => {
            let _ = writeln!(out, "nothing sampled or counted: only log writes");
        }
    }

    // Native code that only calls (main, the run loop: its time is all below it) is in
    // summary.json; here it would sit at the top of every table.
    let shown = |f: &&FunctionStats| {
        (f.total_seconds > 0.0 || f.calls.is_some()) && (f.kind != FuncKind::Native || f.self_seconds > 0.0)
    };
    let rows: Vec<_> = profile.functions.iter().filter(shown).collect();
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
        components(&mut out, profile, share);
    }
    long_dispatches(&mut out, profile);
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
        (h.native_stacks_dropped, "native stacks dropped (ring full)"),
        (h.samples_lost, "samples lost"),
        (h.thread_stack_end_unknown, "thread samples without a stack end (not a glibc thread's stack)"),
        (h.mismatched_stacks, "samples caught mid-call (native and script frames disagree)"),
    ];
    let problems: Vec<String> =
        problems.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
    let _ =
        writeln!(out, "\nprobe health: {}", if problems.is_empty() { "ok".to_owned() } else { problems.join(", ") });
    out
}

/// Zeek components by inclusive share, on one line each.
fn components(out: &mut String, profile: &Profile, share: impl Fn(f64) -> String) {
    if profile.components.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{:>7}  Zeek component (inclusive: a sample counts in each on its stack)", "total");
    for c in profile.components.iter().take(TOP_ROWS) {
        let _ = writeln!(out, "{:>7}  {}", share(c.seconds), c.component);
    }
    more(out, profile.components.len(), "components");
}

/// Frames of a dispatch's top stack shown, innermost ones.
const STACK_FRAMES_SHOWN: usize = 4;

/// The longest event dispatches with the stack sampled most in each, or why there are none.
fn long_dispatches(out: &mut String, profile: &Profile) {
    if profile.sampling.is_none() {
        return;
    }
    let Some(d) = &profile.long_dispatches else {
        let why = profile.target.long_dispatches_unavailable.as_deref();
        let _ = writeln!(out, "\n{}", crate::profile::dispatch_line(why));
        return;
    };
    let count: u64 = d.events.iter().map(|h| h.count).sum();
    let period_ms = d.period_seconds * 1e3;
    let shortest_ms = f64::from(d.min_periods) * period_ms;
    if d.longest.is_empty() {
        let _ = writeln!(out, "\nno event dispatch of {shortest_ms:.1} ms or more");
        return;
    }
    let _ = writeln!(
        out,
        "\n{count} event dispatches of {shortest_ms:.1} ms or more (±{period_ms:.1} ms); the longest:\n{:>10}  {:<32}  most sampled stack (samples)",
        "duration", "event"
    );
    for row in &d.longest {
        let names: Vec<&str> = row.top_stack.iter().map(|f| f.name.as_str()).collect();
        let shown = names.len().saturating_sub(STACK_FRAMES_SHOWN);
        let stack = format!("{}{}", if shown > 0 { "…;" } else { "" }, names[shown..].join(";"));
        let _ = writeln!(
            out,
            "{:>7.1} ms  {:<32}  {stack} ({}/{})",
            row.seconds * 1e3,
            row.event,
            row.top_stack_samples,
            row.samples
        );
    }
}

fn more(out: &mut String, len: usize, what: &str) {
    if len > TOP_ROWS {
        let _ = writeln!(out, "{:>12}  … {} more {what} in summary.json", "", len - TOP_ROWS);
    }
}

/// How many samples have full native stacks, the main thread's and the other threads'.
fn native_stacks_line(n: &NativeStackShare) -> String {
    if !n.enabled {
        return "native stacks: off (native code named by its leaf)".to_owned();
    }
    let (main, threads) = (n.main_thread, n.threads);
    let others = match n.thread_stacks {
        true => {
            format!("{} of {} other threads' ({} to their start)", threads.unwound, threads.samples, threads.to_root)
        }
        false => "other threads by their name (no task_struct.thread.fsbase in the kernel's BTF)".to_owned(),
    };
    format!(
        "native stacks: unwound {} of {} main-thread samples ({} to main), {others}; the rest by their leaf",
        main.unwound, main.samples, main.to_root
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        binary::LayoutSource,
        profile::{
            ComponentTime, FunctionStats, ProbeHealth, SampledStack, Sampling, StackFrame, StreamWrites, TargetSummary,
        },
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
        let frame = |name: &str| StackFrame::named(name);
        Profile {
            target: TargetSummary {
                pid: 42,
                node: "standalone".into(),
                zeek_version: "8.2.2".into(),
                abi: "8.2".into(),
                layout_source: LayoutSource::Table,
                binary: "/usr/bin/zeek".into(),
                calls_counted,
                uprobe_links: crate::probes::uprobe_multi::UprobeLinkKind::Multi,
                sample_hz: sampled.then_some(100),
                zam: false,
                long_dispatches_unavailable: None,
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
            components: vec![],
            sampling: sampled.then(|| Sampling {
                hz: 100,
                native_stacks: Default::default(),
                stacks: vec![SampledStack { frames: vec![frame("new_connection"), frame("fmt")], samples: 200 }],
            }),
            long_dispatches: None,
            probe_health: ProbeHealth { map_full: 3, ..Default::default() },
        }
    }

    #[test]
    fn lists_the_longest_dispatches_with_their_top_stacks_or_says_why_not() {
        let mut p = profile(false, true);
        p.target.long_dispatches_unavailable = Some("Zeek < 7.2".into());
        assert!(render(&p).contains("long dispatches: unavailable (Zeek < 7.2)"), "{}", render(&p));
        let frames = ["zeek_init", "a", "b", "c", "Site::slow"];
        p.long_dispatches = Some(crate::profile::LongDispatches {
            period_seconds: 0.001,
            min_periods: 2,
            bucket_bounds_seconds: vec![0.002],
            events: vec![crate::profile::DispatchHistogram {
                event: "zeek_init".into(),
                bucket_counts: vec![0, 1],
                count: 1,
                sum_seconds: 0.08,
            }],
            longest: vec![crate::profile::LongDispatchRow {
                event: "zeek_init".into(),
                seq: 3,
                seconds: 0.08,
                samples: 80,
                top_stack: frames.iter().map(|n| StackFrame::named(*n)).collect(),
                top_stack_samples: 70,
            }],
        });
        let text = render(&p);
        assert!(text.contains("1 event dispatches of 2.0 ms or more (±1.0 ms); the longest:"), "{text}");
        assert!(text.contains("   80.0 ms  zeek_init"), "{text}");
        assert!(text.contains("…;a;b;c;Site::slow (70/80)"), "{text}");
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
    fn native_stacks_count_the_main_thread_and_the_others_apart() {
        use crate::profile::StackShare;
        let mut n = NativeStackShare {
            enabled: true,
            thread_stacks: true,
            main_thread: StackShare { samples: 100, unwound: 98, to_root: 97 },
            threads: StackShare { samples: 40, unwound: 30, to_root: 29 },
        };
        assert_eq!(
            native_stacks_line(&n),
            "native stacks: unwound 98 of 100 main-thread samples (97 to main), 30 of 40 other threads' \
             (29 to their start); the rest by their leaf"
        );
        n.thread_stacks = false;
        assert!(native_stacks_line(&n).contains("other threads by their name (no task_struct.thread.fsbase"));
        n.enabled = false;
        assert_eq!(native_stacks_line(&n), "native stacks: off (native code named by its leaf)");
    }

    #[test]
    fn components_show_their_inclusive_shares() {
        let mut p = profile(false, true);
        assert!(!render(&p).contains("Zeek component"), "no section without components");
        p.components = vec![ComponentTime { component: "script_interpreter".into(), seconds: 1.5 }];
        let text = render(&p);
        assert!(text.contains("  total  Zeek component (inclusive"), "{text}");
        assert!(text.contains(" 75.0%  script_interpreter"), "{text}");
    }

    #[test]
    fn counts_alone_show_dashes_for_shares() {
        let text = render(&profile(true, false));
        assert!(text.contains("100 calls counted (CPU not sampled)"), "{text}");
        assert!(text.contains("    -        -            75  bif       fmt"), "{text}");
    }
}
