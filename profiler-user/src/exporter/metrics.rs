//! Profiles → Prometheus text exposition. Every series carries `node` and `pid`.
//! Counter names are given without `_total`: the encoder appends it.
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

use crate::{profile::Profile, target::stats::ProcessStats};

/// `caller` label value for calls made from C++ (no calling script frame).
pub const NATIVE_CALLER: &str = "<native>";

/// Everything exported for one target.
#[derive(Debug, Clone)]
pub struct TargetMetrics {
    pub profile: Profile,
    /// Last stats read while it ran (kept after it exits).
    pub process: Option<ProcessStats>,
    pub up: bool,
    pub attach_errors: u64,
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
struct Targets(Vec<TargetMetrics>);

fn base_labels(t: &TargetMetrics) -> Labels {
    vec![("node", t.profile.target.node.clone()), ("pid", t.profile.target.pid.to_string())]
}

fn with(mut labels: Labels, extra: &[(&'static str, &str)]) -> Labels {
    labels.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    labels
}

fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauges(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Targets {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = &self.0;
        gauges(
            &mut enc,
            "zeek_probe_target_info",
            "Attached Zeek process (value 1), with version and ABI",
            t.iter().map(|t| {
                let s = &t.profile.target;
                let labels = with(
                    base_labels(t),
                    &[
                        ("zeek_version", &s.zeek_version),
                        ("abi", &s.abi),
                        ("binary", &s.binary),
                        ("calls_counted", if s.calls_counted { "true" } else { "false" }),
                    ],
                );
                (labels, 1.0)
            }),
        )?;
        gauges(
            &mut enc,
            "zeek_probe_target_up",
            "1 while the attached Zeek process runs, 0 after it exited",
            t.iter().map(|t| (base_labels(t), if t.up { 1.0 } else { 0.0 })),
        )?;
        counters(
            &mut enc,
            "zeek_probe_function_calls",
            "Calls of a script function, event, hook or BIF (with --count-calls)",
            t.iter().flat_map(|t| {
                t.profile.functions.iter().map(move |f| {
                    (with(base_labels(t), &[("function", &f.name), ("kind", f.kind.as_str())]), f.calls as f64)
                })
            }),
        )?;
        counters(
            &mut enc,
            "zeek_probe_caller_calls",
            "Calls per caller and callee; caller <native> for calls from C++ (with --count-calls)",
            t.iter().flat_map(|t| {
                t.profile.callers.iter().map(move |e| {
                    let kind = t.profile.functions.iter().find(|f| f.name == e.callee).map_or("", |f| f.kind.as_str());
                    let caller = e.caller.as_deref().unwrap_or(NATIVE_CALLER);
                    (
                        with(base_labels(t), &[("function", &e.callee), ("kind", kind), ("caller", caller)]),
                        e.calls as f64,
                    )
                })
            }),
        )?;
        counters(
            &mut enc,
            "zeek_probe_log_writes",
            "Log::write calls per log stream",
            t.iter().flat_map(|t| {
                t.profile
                    .log_writes
                    .iter()
                    .map(move |s| (with(base_labels(t), &[("stream", &s.stream)]), s.writes as f64))
            }),
        )?;
        counters(
            &mut enc,
            "zeek_probe_process_cpu_seconds",
            "User and system CPU time of the Zeek process",
            t.iter().filter_map(|t| Some((base_labels(t), t.process?.cpu_seconds))),
        )?;
        gauges(
            &mut enc,
            "zeek_probe_process_start_time_seconds",
            "Start time of the Zeek process since the Unix epoch",
            t.iter().filter_map(|t| Some((base_labels(t), t.process?.start_time_seconds))),
        )?;
        gauges(
            &mut enc,
            "zeek_probe_process_resident_memory_bytes",
            "Resident memory of the Zeek process",
            t.iter().filter_map(|t| Some((base_labels(t), t.process?.resident_bytes as f64))),
        )?;
        counters(
            &mut enc,
            "zeek_probe_attach_errors",
            "Failed attempts to attach probes to the process",
            t.iter().map(|t| (base_labels(t), t.attach_errors as f64)),
        )?;
        counters(
            &mut enc,
            "zeek_probe_map_full_drops",
            "Counts dropped because a BPF map was full",
            t.iter().map(|t| (base_labels(t), t.profile.probe_health.map_full as f64)),
        )?;
        counters(
            &mut enc,
            "zeek_probe_unresolved_pointers",
            "Reads of the target that failed or gave implausible values, by reason",
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
        )?;
        Ok(())
    }
}

/// The text exposition format of all targets' metrics.
pub fn encode(targets: Vec<TargetMetrics>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Targets(targets)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        binary::LayoutSource,
        profile::{CallerEdge, FunctionCalls, ProbeHealth, StreamWrites, TargetSummary},
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
                },
                functions: vec![FunctionCalls { name: "fmt".into(), kind: FuncKind::Bif, calls: 7 }],
                callers: vec![
                    CallerEdge { caller: Some("f".into()), callee: "fmt".into(), calls: 5 },
                    CallerEdge { caller: None, callee: "fmt".into(), calls: 2 },
                ],
                log_writes: vec![StreamWrites { stream: "Conn::LOG".into(), writes: 3 }],
                probe_health: ProbeHealth::default(),
            },
            process: Some(ProcessStats { cpu_seconds: 1.5, start_time_seconds: 1e9, resident_bytes: 4096 }),
            up: true,
            attach_errors: 0,
        }
    }

    #[test]
    fn exports_counts_with_node_and_pid() {
        let text = encode(vec![target()]);
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
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
