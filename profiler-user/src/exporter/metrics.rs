//! Profiles → Prometheus text exposition format (0.0.4). Every series carries `node` and `pid`.
use prometheus::{
    Encoder, TextEncoder,
    proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType},
};

use crate::{
    profile::{CallerEdge, FunctionStats, Profile},
    target::stats::ProcessStats,
};

/// `caller` label value for calls made from C++ (no calling script frame).
pub const NATIVE_CALLER: &str = "<native>";

/// The content type of `encode`'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything exported for one target.
#[derive(Debug, Clone)]
pub struct TargetMetrics {
    pub profile: Profile,
    /// Last stats read while it ran (kept after it exits).
    pub process: Option<ProcessStats>,
    pub up: bool,
    pub attach_errors: u64,
    /// Export sampled seconds per caller edge, at most this many series (the rest summed).
    pub caller_series: Option<usize>,
}

/// Label value standing for everything past the caller series limit.
pub const OTHER: &str = "<other>";

/// The busiest caller edges' (self, total) seconds, the rest summed into one `<other>` row.
fn caller_seconds(t: &TargetMetrics) -> Vec<(Labels, (f64, f64))> {
    let Some(limit) = t.caller_series.filter(|_| t.profile.sampling.is_some()) else { return Vec::new() };
    // `callers` is sorted by total time, busiest first.
    let mut sampled = t.profile.callers.iter().filter(|e| e.total_seconds > 0.0);
    let mut rows: Vec<(Labels, (f64, f64))> =
        sampled.by_ref().take(limit).map(|e| (edge_labels(t, e), (e.self_seconds, e.total_seconds))).collect();
    let rest = sampled.fold((0.0, 0.0, 0), |(s, tot, n), e| (s + e.self_seconds, tot + e.total_seconds, n + 1));
    if rest.2 > 0 {
        let labels = with(base_labels(t), &[("function", OTHER), ("kind", ""), ("caller", OTHER)]);
        rows.push((labels, (rest.0, rest.1)));
    }
    rows
}

/// A series' labels, in order.
pub(crate) type Labels = Vec<(&'static str, String)>;

fn base_labels(t: &TargetMetrics) -> Labels {
    vec![("node", t.profile.target.node.clone()), ("pid", t.profile.target.pid.to_string())]
}

/// Labels of a caller→callee edge: the callee as `function` with its `kind`, and the caller.
fn edge_labels(t: &TargetMetrics, e: &CallerEdge) -> Labels {
    let kind = t.profile.functions.iter().find(|f| f.name == e.callee).map_or("", |f| f.kind.as_str());
    let caller = e.caller.as_deref().unwrap_or(NATIVE_CALLER);
    with(base_labels(t), &[("function", &e.callee), ("kind", kind), ("caller", caller)])
}

fn function_labels(t: &TargetMetrics, f: &FunctionStats) -> Labels {
    with(base_labels(t), &[("function", &f.name), ("kind", f.kind.as_str())])
}

pub(crate) fn with(mut labels: Labels, extra: &[(&'static str, &str)]) -> Labels {
    labels.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    labels
}

/// One metric family from its rows. An empty family is left out.
pub(crate) fn family(
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels, f64)>,
) -> Option<MetricFamily> {
    let metrics: Vec<Metric> = rows
        .into_iter()
        .map(|(labels, value)| {
            let mut m = Metric::default();
            m.set_label(
                labels
                    .into_iter()
                    .map(|(k, v)| {
                        let mut pair = LabelPair::default();
                        pair.set_name(k.to_owned());
                        pair.set_value(v);
                        pair
                    })
                    .collect(),
            );
            match kind {
                MetricType::COUNTER => {
                    let mut c = Counter::default();
                    c.set_value(value);
                    m.set_counter(c);
                }
                _ => {
                    let mut g = Gauge::default();
                    g.set_value(value);
                    m.set_gauge(g);
                }
            }
            m
        })
        .collect();
    if metrics.is_empty() {
        return None;
    }
    let mut f = MetricFamily::default();
    f.set_name(name.to_owned());
    f.set_help(help.to_owned());
    f.set_field_type(kind);
    f.set_metric(metrics);
    Some(f)
}

fn families(t: &[TargetMetrics]) -> Vec<MetricFamily> {
    use MetricType::{COUNTER, GAUGE};
    [
        family(
            "zeek_probe_target_info",
            "Attached Zeek process (value 1), with version and ABI",
            GAUGE,
            t.iter().map(|t| {
                let s = &t.profile.target;
                let labels = with(
                    base_labels(t),
                    &[
                        ("zeek_version", &s.zeek_version),
                        ("abi", &s.abi),
                        ("binary", &s.binary),
                        ("calls_counted", if s.calls_counted { "true" } else { "false" }),
                        ("zam", if s.zam { "true" } else { "false" }),
                    ],
                );
                (labels, 1.0)
            }),
        ),
        family(
            "zeek_probe_target_up",
            "1 while the attached Zeek process runs, 0 after it exited",
            GAUGE,
            t.iter().map(|t| (base_labels(t), if t.up { 1.0 } else { 0.0 })),
        ),
        family(
            "zeek_probe_function_calls_total",
            "Calls of a script function, event, hook or BIF (with --count-calls)",
            COUNTER,
            t.iter().flat_map(|t| t.profile.functions.iter().filter_map(move |f| Some((function_labels(t, f), f.calls? as f64)))),
        ),
        family(
            "zeek_probe_function_self_seconds_total",
            "Sampled CPU time with the function on top of the stack (native code and other threads: kind native, thread)",
            COUNTER,
            t.iter()
                .filter(|t| t.profile.sampling.is_some())
                .flat_map(|t| t.profile.functions.iter().map(move |f| (function_labels(t, f), f.self_seconds))),
        ),
        family(
            "zeek_probe_function_seconds_total",
            "Sampled CPU time with the function anywhere on the stack (inclusive, recursion counted once)",
            COUNTER,
            t.iter()
                .filter(|t| t.profile.sampling.is_some())
                .flat_map(|t| t.profile.functions.iter().map(move |f| (function_labels(t, f), f.total_seconds))),
        ),
        family(
            "zeek_probe_caller_calls_total",
            "Calls per caller and callee; caller <native> for calls from C++ (with --count-calls)",
            COUNTER,
            t.iter().flat_map(|t| {
                t.profile.callers.iter().filter_map(move |e| Some((edge_labels(t, e), e.calls? as f64)))
            }),
        ),
        family(
            "zeek_probe_caller_self_seconds_total",
            "Sampled CPU time in the function when called from the caller (with --caller-metrics, busiest edges)",
            COUNTER,
            t.iter().flat_map(|t| caller_seconds(t).into_iter().map(|(l, (s, _))| (l, s))),
        ),
        family(
            "zeek_probe_caller_seconds_total",
            "Sampled CPU time below the caller→function edge (with --caller-metrics, busiest edges)",
            COUNTER,
            t.iter().flat_map(|t| caller_seconds(t).into_iter().map(|(l, (_, total))| (l, total))),
        ),
        family(
            "zeek_probe_log_writes_total",
            "Log::write calls per log stream",
            COUNTER,
            t.iter().flat_map(|t| {
                t.profile
                    .log_writes
                    .iter()
                    .map(move |s| (with(base_labels(t), &[("stream", &s.stream)]), s.writes as f64))
            }),
        ),
        family(
            "zeek_probe_process_cpu_seconds_total",
            "User and system CPU time of the Zeek process",
            COUNTER,
            t.iter().filter_map(|t| Some((base_labels(t), t.process?.cpu_seconds))),
        ),
        family(
            "zeek_probe_process_start_time_seconds",
            "Start time of the Zeek process since the Unix epoch",
            GAUGE,
            t.iter().filter_map(|t| Some((base_labels(t), t.process?.start_time_seconds))),
        ),
        family(
            "zeek_probe_process_resident_memory_bytes",
            "Resident memory of the Zeek process",
            GAUGE,
            t.iter().filter_map(|t| Some((base_labels(t), t.process?.resident_bytes as f64))),
        ),
        family(
            "zeek_probe_attach_errors_total",
            "Failed attempts to attach probes to the process",
            COUNTER,
            t.iter().map(|t| (base_labels(t), t.attach_errors as f64)),
        ),
        family(
            "zeek_probe_map_full_drops_total",
            "Counts dropped because a BPF map was full",
            COUNTER,
            t.iter().map(|t| (base_labels(t), t.profile.probe_health.map_full as f64)),
        ),
        family(
            "zeek_probe_unresolved_pointers_total",
            "Reads of the target that failed or gave implausible values, by reason",
            COUNTER,
            t.iter().flat_map(|t| {
                let h = &t.profile.probe_health;
                [
                    ("read_failed", h.read_failed),
                    ("invalid_func", h.invalid_func),
                    ("caller_unresolved", h.caller_unresolved),
                    ("unnamed", h.unnamed_calls),
                ]
                .map(|(reason, n)| (with(base_labels(t), &[("reason", reason)]), n as f64))
            }),
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The text exposition format of all targets' metrics.
pub fn encode(targets: &[TargetMetrics]) -> String {
    let mut out = Vec::new();
    TextEncoder::new().encode(&families(targets), &mut out).expect("families are well-formed");
    String::from_utf8(out).expect("the text encoder writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        binary::LayoutSource,
        profile::{CallerEdge, FunctionStats, ProbeHealth, Sampling, StreamWrites, TargetSummary},
        symbolize::FuncKind,
    };

    fn target() -> TargetMetrics {
        TargetMetrics {
            profile: Profile {
                target: TargetSummary {
                    pid: 42,
                    node: "worker-1".into(),
                    zeek_version: "8.2.2".into(),
                    abi: "8.2".into(),
                    layout_source: LayoutSource::Table,
                    binary: "/usr/bin/zeek".into(),
                    calls_counted: true,
                    sample_hz: Some(99),
                    zam: false,
                },
                functions: vec![FunctionStats {
                    name: "fmt".into(),
                    zeek_name: None,
                    kind: FuncKind::Bif,
                    file: None,
                    calls: Some(7),
                    self_seconds: 0.25,
                    total_seconds: 0.5,
                }],
                callers: vec![
                    CallerEdge {
                        caller: Some("f".into()),
                        callee: "fmt".into(),
                        calls: Some(5),
                        self_seconds: 0.0,
                        total_seconds: 0.0,
                    },
                    CallerEdge {
                        caller: None,
                        callee: "fmt".into(),
                        calls: Some(2),
                        self_seconds: 0.0,
                        total_seconds: 0.0,
                    },
                ],
                log_writes: vec![StreamWrites { stream: "Conn::LOG".into(), writes: 3 }],
                files: vec![],
                packages: vec![],
                sampling: Some(Sampling { hz: 99, stacks: vec![] }),
                probe_health: ProbeHealth::default(),
            },
            process: Some(ProcessStats { cpu_seconds: 1.5, start_time_seconds: 1e9, resident_bytes: 4096 }),
            up: true,
            attach_errors: 0,
            caller_series: None,
        }
    }

    #[test]
    fn caller_seconds_are_capped_with_the_rest_summed() {
        let mut t = target();
        let edge = |caller: &str, total: f64| CallerEdge {
            caller: Some(caller.into()),
            callee: "fmt".into(),
            calls: None,
            self_seconds: total / 2.0,
            total_seconds: total,
        };
        t.profile.callers = vec![edge("a", 4.0), edge("b", 2.0), edge("c", 1.0), edge("d", 1.0)];
        assert!(!encode(&[t.clone()]).contains("zeek_probe_caller_seconds_total"), "off by default");
        t.caller_series = Some(2);
        let text = encode(&[t]);
        assert!(
            text.contains(
                r#"zeek_probe_caller_seconds_total{node="worker-1",pid="42",function="fmt",kind="bif",caller="a"} 4"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"caller="b"} 2"#), "{text}");
        assert!(!text.contains(r#"caller="c""#), "{text}");
        assert!(text.contains(r#"zeek_probe_caller_seconds_total{node="worker-1",pid="42",function="<other>",kind="",caller="<other>"} 2"#), "{text}");
        assert!(text.contains(r#"zeek_probe_caller_self_seconds_total{node="worker-1",pid="42",function="<other>",kind="",caller="<other>"} 1"#), "{text}");
    }

    #[test]
    fn exports_counts_with_node_and_pid() {
        let text = encode(&[target()]);
        assert!(
            text.contains(r#"zeek_probe_function_calls_total{node="worker-1",pid="42",function="fmt",kind="bif"} 7"#),
            "{text}"
        );
        assert!(text.contains(r#"zeek_probe_caller_calls_total{node="worker-1",pid="42",function="fmt",kind="bif",caller="<native>"} 2"#), "{text}");
        assert!(
            text.contains(r#"zeek_probe_log_writes_total{node="worker-1",pid="42",stream="Conn::LOG"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"zeek_probe_process_cpu_seconds_total{node="worker-1",pid="42"} 1.5"#), "{text}");
        assert!(text.contains("# TYPE zeek_probe_target_up gauge"), "{text}");
        assert!(
            text.contains(
                r#"zeek_probe_function_self_seconds_total{node="worker-1",pid="42",function="fmt",kind="bif"} 0.25"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"zeek_probe_function_seconds_total{node="worker-1",pid="42",function="fmt",kind="bif"} 0.5"#
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE zeek_probe_function_calls_total counter"), "{text}");
    }
}
