//! Profiles → Prometheus text exposition format (0.0.4). Every series carries `node` and `pid`.
use std::collections::HashMap;

use prometheus::{
    Encoder, TextEncoder,
    proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType},
};

use crate::{
    profile::{CallerEdge, FunctionStats, Profile},
    symbolize::{FuncKind, kernel_symbols::KERNEL_UNNAMED},
    target::{node::NodeType, stats::ProcessStats},
};

/// `caller` label value for calls made from C++ (no calling script frame).
pub const NATIVE_CALLER: &str = "<native>";

/// The content type of `encode`'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything one scrape shows.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub targets: Vec<TargetMetrics>,
    /// Zeek processes that could not be attached (retried).
    pub failing: Vec<FailingTarget>,
    /// Failed attach attempts per node name.
    pub attach_errors: Vec<(String, u64)>,
    /// Families from other sources (the ZeroMQ feeds).
    pub extra: Vec<MetricFamily>,
}

/// A Zeek process that could not be attached, and why (in one line).
#[derive(Debug, Clone)]
pub struct FailingTarget {
    pub node: String,
    pub pid: u32,
    pub error: String,
}

/// Everything exported for one target.
#[derive(Debug, Clone)]
pub struct TargetMetrics {
    pub profile: Profile,
    pub node_type: NodeType,
    /// Last stats read while it ran (kept after it exits).
    pub process: Option<ProcessStats>,
    pub up: bool,
    /// Export sampled seconds per caller edge, at most this many series (the rest summed).
    pub caller_series: Option<usize>,
    /// Sampled seconds per script file and per package: at most this many series of each.
    pub source_series: usize,
}

/// Label value standing for everything past the caller series limit.
pub const OTHER: &str = "<other>";

/// The busiest caller edges' (self, total) seconds, the rest summed into one `<other>` row.
fn caller_seconds(t: &TargetMetrics) -> Vec<(Labels, (f64, f64))> {
    let Some(limit) = t.caller_series.filter(|_| t.profile.sampling.is_some()) else { return Vec::new() };
    // `callers` is sorted by total time, busiest first.
    let sampled = labelled_edges(t).into_iter().filter(|(_, e)| e.total_seconds > 0.0);
    let other = with(base_labels(t), &[("function", OTHER), ("kind", ""), ("caller", OTHER)]);
    busiest(sampled.map(|(labels, e)| (labels, (e.self_seconds, e.total_seconds))), limit, other, |a, b| {
        (a.0 + b.0, a.1 + b.1)
    })
}

/// The first `limit` of `rows` (sorted busiest first), and the rest summed with `add` into
/// one row labelled `other`: a node's series stay bounded however much it runs.
pub(crate) fn busiest<V>(
    rows: impl IntoIterator<Item = (Labels, V)>,
    limit: usize,
    other: Labels,
    add: impl Fn(V, V) -> V,
) -> Vec<(Labels, V)> {
    let mut rows = rows.into_iter();
    let mut kept: Vec<(Labels, V)> = rows.by_ref().take(limit).collect();
    if let Some(rest) = rows.map(|(_, v)| v).reduce(add) {
        kept.push((other, rest));
    }
    kept
}

/// A series' labels, in order.
pub(crate) type Labels = Vec<(&'static str, String)>;

pub(crate) fn base_labels(t: &TargetMetrics) -> Labels {
    vec![("node", t.profile.target.node.clone()), ("pid", t.profile.target.pid.to_string())]
}

/// Each caller→callee edge with its labels: the callee as `function` with its `kind`, and the
/// caller. Kinds are looked up in an index, so a scrape stays linear in edges and functions.
fn labelled_edges(t: &TargetMetrics) -> Vec<(Labels, &CallerEdge)> {
    let kinds: HashMap<&str, &str> = t.profile.functions.iter().map(|f| (f.name.as_str(), f.kind.as_str())).collect();
    t.profile
        .callers
        .iter()
        .map(|e| {
            let kind = kinds.get(e.callee.as_str()).copied().unwrap_or("");
            let caller = e.caller.as_deref().unwrap_or(NATIVE_CALLER);
            (with(base_labels(t), &[("function", &e.callee), ("kind", kind), ("caller", caller)]), e)
        })
        .collect()
}

/// Sampled (self, total) seconds per function series: one per script or native function, and
/// the kernel's functions summed into one `[kernel]` series (a series per kernel function would
/// be unbounded). Kernel frames are the leaf-ward end of every stack they are on, so each
/// sample in the kernel is one kernel function's self time: the sum is the kernel's total too.
fn sampled_functions(t: &TargetMetrics) -> Vec<(Labels, (f64, f64))> {
    // Native callers that are never a leaf (main, the run loop) have only inclusive time,
    // from unwound stacks: a series each would grow with the C++ seen; the components family
    // gives that time with bounded labels.
    let (kernel, rest): (Vec<&FunctionStats>, Vec<&FunctionStats>) = t
        .profile
        .functions
        .iter()
        .filter(|f| f.kind != FuncKind::Native || f.self_seconds > 0.0)
        .partition(|f| f.kind == FuncKind::Kernel);
    let mut rows: Vec<_> =
        rest.into_iter().map(|f| (function_labels(t, f), (f.self_seconds, f.total_seconds))).collect();
    if !kernel.is_empty() {
        let seconds = kernel.iter().map(|f| f.self_seconds).sum();
        let labels = with(base_labels(t), &[("function", KERNEL_UNNAMED), ("kind", FuncKind::Kernel.as_str())]);
        rows.push((labels, (seconds, seconds)));
    }
    rows
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
    let metrics = rows.into_iter().map(|(labels, value)| {
        let mut m = labelled(labels);
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
    });
    assemble(name, help, kind, metrics.collect())
}

/// A metric with these labels and no value yet.
pub(crate) fn labelled(labels: Labels) -> Metric {
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
    m
}

/// The family of `metrics`; none when there are none.
pub(crate) fn assemble(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> Option<MetricFamily> {
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

fn families(e: &Exposition) -> Vec<MetricFamily> {
    use MetricType::{COUNTER, GAUGE};
    let t = &e.targets;
    [
        family(
            "zeek_probe_build_info",
            "zeek-probe itself (value 1), with its version",
            GAUGE,
            [(vec![("version", env!("CARGO_PKG_VERSION").to_owned())], 1.0)],
        ),
        family(
            "zeek_probe_targets",
            "Zeek processes served, by state: attached (running), exited (final counts kept a while), failing (cannot be attached, retried)",
            GAUGE,
            [
                ("attached", t.iter().filter(|t| t.up).count()),
                ("exited", t.iter().filter(|t| !t.up).count()),
                ("failing", e.failing.len()),
            ]
            .map(|(state, n)| (vec![("state", state.to_owned())], n as f64)),
        ),
        family(
            "zeek_probe_target_info",
            "Attached Zeek process (value 1), with version and ABI",
            GAUGE,
            t.iter().map(|t| {
                let s = &t.profile.target;
                let labels = with(
                    base_labels(t),
                    &[
                        ("node_type", t.node_type.as_str()),
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
            "Sampled CPU time with the function on top of the stack (native code and other threads: kind native, thread; the kernel's functions as one [kernel] series)",
            COUNTER,
            t.iter()
                .filter(|t| t.profile.sampling.is_some())
                .flat_map(|t| sampled_functions(t).into_iter().map(|(labels, (s, _))| (labels, s))),
        ),
        family(
            "zeek_probe_function_seconds_total",
            "Sampled CPU time with the function anywhere on the stack (inclusive, recursion counted once)",
            COUNTER,
            t.iter()
                .filter(|t| t.profile.sampling.is_some())
                .flat_map(|t| sampled_functions(t).into_iter().map(|(labels, (_, total))| (labels, total))),
        ),
        family(
            "zeek_probe_component_seconds_total",
            "Sampled CPU time per Zeek component (protocol and packet analyzers, file analyzers, log writers, threading, I/O sources, cluster backend, timers, table expiration, script interpreter), inclusive: a sample counts in every component on its stack",
            COUNTER,
            t.iter().flat_map(|t| {
                t.profile
                    .components
                    .iter()
                    .map(move |c| (with(base_labels(t), &[("component", &c.component)]), c.seconds))
            }),
        ),
        family(
            "zeek_probe_caller_calls_total",
            "Calls per caller and callee; caller <native> for calls from C++ (with --count-calls)",
            COUNTER,
            t.iter().flat_map(|t| {
                labelled_edges(t).into_iter().filter_map(|(labels, e)| Some((labels, e.calls? as f64)))
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
            "Failed attempts to attach to a Zeek node's process (retried with backoff)",
            COUNTER,
            e.attach_errors.iter().map(|(node, n)| (vec![("node", node.clone())], *n as f64)),
        ),
        family(
            "zeek_probe_attach_failing",
            "1 for a Zeek process that cannot be attached at the moment, with the reason",
            GAUGE,
            e.failing.iter().map(|f| {
                (vec![("node", f.node.clone()), ("pid", f.pid.to_string()), ("error", f.error.clone())], 1.0)
            }),
        ),
        family(
            "zeek_probe_map_full_drops_total",
            "Counts dropped because a BPF map was full",
            COUNTER,
            t.iter().map(|t| (base_labels(t), t.profile.probe_health.map_full as f64)),
        ),
        family(
            "zeek_probe_native_stacks_dropped_total",
            "Main-thread native stacks not unwound because the ring buffer was full (named by their leaf)",
            COUNTER,
            t.iter().map(|t| (base_labels(t), t.profile.probe_health.native_stacks_dropped as f64)),
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
    .chain(super::source_metrics::families(t))
    .chain([super::dispatch_metrics::family(t)])
    .flatten()
    .chain(e.extra.iter().cloned())
    .collect()
}

/// The text exposition format of everything.
pub fn encode(exposition: &Exposition) -> String {
    let mut out = Vec::new();
    TextEncoder::new().encode(&families(exposition), &mut out).expect("families are well-formed");
    String::from_utf8(out).expect("the text encoder writes UTF-8")
}

#[cfg(test)]
pub(crate) mod tests {
    #[cfg(feature = "zmq")]
    use std::collections::BTreeSet;

    use super::*;
    use crate::{
        binary::LayoutSource,
        live_view::interval::tests::function,
        profile::{
            CallerEdge, ComponentTime, FunctionStats, ProbeHealth, Sampling, SourceTime, StreamWrites, TargetSummary,
        },
        symbolize::FuncKind,
    };

    pub(crate) fn target() -> TargetMetrics {
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
                    uprobe_links: crate::probes::uprobe_multi::UprobeLinkKind::Multi,
                    sample_hz: Some(99),
                    zam: false,
                    long_dispatches_unavailable: None,
                    cpu_seconds: None,
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
                files: vec![SourceTime { source: "/z/site/packages/math/fib.zeek".into(), self_seconds: 0.25 }],
                packages: vec![SourceTime { source: "math".into(), self_seconds: 0.25 }],
                components: vec![],
                sampling: Some(Sampling { hz: 99, ..Sampling::default() }),
                long_dispatches: None,
                probe_health: ProbeHealth::default(),
            },
            node_type: NodeType::Worker,
            process: Some(ProcessStats { cpu_seconds: 1.5, start_time_seconds: 1e9, resident_bytes: 4096 }),
            up: true,
            caller_series: None,
            source_series: 100,
        }
    }

    fn exposition(targets: Vec<TargetMetrics>) -> Exposition {
        Exposition { targets, ..Exposition::default() }
    }

    /// The names of every family zeek-probe can export (everything switched on: the dashboard
    /// shows the ZeroMQ feeds' too).
    #[cfg(feature = "zmq")]
    fn every_family() -> BTreeSet<String> {
        let mut t = target();
        t.caller_series = Some(10);
        t.profile.callers[0].total_seconds = 1.0;
        t.profile.components = vec![ComponentTime { component: "analyzer/http".into(), seconds: 1.0 }];
        t.profile.long_dispatches = Some(crate::profile::LongDispatches {
            bucket_bounds_seconds: vec![0.002],
            events: vec![crate::profile::DispatchHistogram {
                event: "new_connection".into(),
                bucket_counts: vec![1, 0],
                count: 1,
                sum_seconds: 0.002,
            }],
            ..Default::default()
        });
        let e = Exposition {
            targets: vec![t],
            failing: vec![FailingTarget { node: "worker-9".into(), pid: 7, error: "unsupported".into() }],
            attach_errors: vec![("worker-9".into(), 3)],
            extra: crate::exporter::zeromq_metrics::families(&crate::exporter::zeromq_metrics::tests::example()),
        };
        // A histogram is queried by its series' names.
        let typed = encode(&e);
        let typed = typed.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '));
        typed
            .flat_map(|(name, kind)| {
                let suffixes: &[&str] = if kind == "histogram" { &["_bucket", "_sum", "_count"] } else { &[""] };
                suffixes.iter().map(move |suffix| format!("{name}{suffix}"))
            })
            .collect()
    }

    /// `zeek_probe_*` names in a dashboard or rule file.
    #[cfg(feature = "zmq")]
    fn queried(path: &str) -> BTreeSet<String> {
        let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut names = BTreeSet::new();
        for (i, _) in text.match_indices("zeek_probe_") {
            let name: String = text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            // Service discovery meta labels are labels, not metrics.
            if !text[..i].ends_with("__meta_") {
                names.insert(name);
            }
        }
        names
    }

    #[cfg(feature = "zmq")]
    #[test]
    fn dashboard_and_alerts_query_only_exported_metrics() {
        let exported = every_family();
        for path in ["prometheus/dashboard.json", "prometheus/alerts.yml"] {
            let used = queried(path);
            assert!(used.len() >= 5, "{path} queries zeek-probe's metrics: {used:?}");
            let unknown: Vec<_> = used.difference(&exported).collect();
            assert!(unknown.is_empty(), "{path} queries metrics zeek-probe does not export: {unknown:?}");
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
        assert!(!encode(&exposition(vec![t.clone()])).contains("zeek_probe_caller_seconds_total"), "off by default");
        t.caller_series = Some(2);
        let text = encode(&exposition(vec![t]));
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
        let text = encode(&exposition(vec![target()]));
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

    #[test]
    fn components_are_one_series_each() {
        let mut t = target();
        t.profile.components = vec![
            ComponentTime { component: "analyzer/http".into(), seconds: 1.5 },
            ComponentTime { component: "script_interpreter".into(), seconds: 0.5 },
        ];
        let text = encode(&exposition(vec![t]));
        assert!(text.contains("# TYPE zeek_probe_component_seconds_total counter"), "{text}");
        for (component, seconds) in [("analyzer/http", "1.5"), ("script_interpreter", "0.5")] {
            let series = format!(
                r#"zeek_probe_component_seconds_total{{node="worker-1",pid="42",component="{component}"}} {seconds}"#
            );
            assert!(text.contains(&series), "{text}");
        }
    }

    #[test]
    fn native_callers_without_self_time_are_no_series() {
        let mut t = target();
        let native = |name: &str, self_seconds| function(name, FuncKind::Native, self_seconds, 3.0, None);
        t.profile.functions.extend([native("main", 0.0), native("memcpy", 0.5)]);
        let text = encode(&exposition(vec![t]));
        assert!(text.contains(r#"function="memcpy",kind="native"} 3"#), "{text}");
        assert!(!text.contains(r#"function="main""#), "{text}");
    }

    #[test]
    fn kernel_functions_are_one_series() {
        let mut t = target();
        let kernel = |name: &str, seconds| function(name, FuncKind::Kernel, seconds, 2.0, None);
        t.profile.functions.extend([kernel("[k] read_zero", 0.5), kernel("[k] do_syscall_64", 0.25)]);
        let text = encode(&exposition(vec![t]));
        for family in ["zeek_probe_function_self_seconds_total", "zeek_probe_function_seconds_total"] {
            let series = format!(r#"{family}{{node="worker-1",pid="42",function="[kernel]",kind="kernel"}} 0.75"#);
            assert!(text.contains(&series), "{text}");
        }
        assert!(!text.contains("[k] "), "no series per kernel function: {text}");
    }
}
