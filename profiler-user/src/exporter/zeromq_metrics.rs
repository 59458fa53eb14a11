//! The ZeroMQ feeds (`zeek_probe_zeromq::Feeds`) → Prometheus families. Every label set is bounded by the
//! feeds' own limits (top N per node plus `<other>`, capped nodes, paths and counters).
use prometheus::proto::{MetricFamily, MetricType};

use super::metrics::{Labels, family, with};
use zeek_probe_zeromq::{FeedSnapshot, Snapshot, memory_stats::NodeSnapshot};

fn node_labels(n: &NodeSnapshot) -> Labels {
    vec![("node", n.node.clone())]
}

fn feed_labels(f: &FeedSnapshot) -> Labels {
    vec![("feed", f.kind.as_str().to_owned()), ("endpoint", f.endpoint.clone())]
}

/// The families of one snapshot; empty ones are left out.
pub fn families(s: &Snapshot) -> Vec<MetricFamily> {
    use MetricType::{COUNTER, GAUGE};
    let entries = |value: fn(&zeek_probe_zeromq::run::MemoryEntry) -> Option<u64>| {
        s.nodes.iter().flat_map(move |n| {
            n.entries.iter().filter_map(move |e| {
                let labels = with(node_labels(n), &[("module", &e.module), ("variable", &e.variable)]);
                Some((labels, value(e)? as f64))
            })
        })
    };
    [
        family(
            "zeek_probe_memory_footprint",
            "Elements in a script-level container (val_footprint) at the node's last report; top N per node, the rest summed as <other>",
            GAUGE,
            entries(|e| e.footprint),
        ),
        family(
            "zeek_probe_memory_bytes",
            "Bytes of a script-level container at the node's last report, where measured; top N per node by footprint, the rest summed as <other>",
            GAUGE,
            entries(|e| e.bytes),
        ),
        family(
            "zeek_probe_memory_entries",
            "Containers measured in the node's last report (before the top-N cut)",
            GAUGE,
            s.nodes.iter().filter_map(|n| Some((node_labels(n), n.entries_total? as f64))),
        ),
        family(
            "zeek_probe_memory_stats_run",
            "Number of the node's last memory-stats run",
            GAUGE,
            s.nodes.iter().filter_map(|n| Some((node_labels(n), n.run? as f64))),
        ),
        family(
            "zeek_probe_memory_stats_run_seconds",
            "What the node's last memory-stats run cost it, as it measured",
            GAUGE,
            s.nodes.iter().filter_map(|n| Some((node_labels(n), n.cost_seconds?))),
        ),
        family(
            "zeek_probe_zeek_stat",
            "A counter the node reported with its memory stats (mem_bytes, events_dispatched, ...)",
            GAUGE,
            s.nodes.iter().flat_map(|n| n.stats.iter().map(|(stat, v)| (with(node_labels(n), &[("stat", stat)]), *v))),
        ),
        family(
            "zeek_probe_zmq_messages_total",
            "ZeroMQ messages per feed: received, and each one's fate (decoded, malformed, dropped because the queue was full)",
            COUNTER,
            s.feeds.iter().flat_map(|f| {
                let c = &f.counters;
                [("received", c.received), ("decoded", c.decoded), ("malformed", c.malformed_total()), ("dropped", c.dropped)]
                    .map(|(outcome, n)| (with(feed_labels(f), &[("outcome", outcome)]), n as f64))
            }),
        ),
        family(
            "zeek_probe_zmq_malformed_total",
            "Malformed ZeroMQ messages per feed, by reason",
            COUNTER,
            s.feeds.iter().flat_map(|f| {
                f.counters.malformed.iter().map(|(reason, n)| (with(feed_labels(f), &[("reason", reason.as_str())]), *n as f64))
            }),
        ),
        family(
            "zeek_probe_zmq_queue_messages",
            "Messages received and waiting to be decoded, per feed",
            GAUGE,
            s.feeds.iter().map(|f| (feed_labels(f), f.counters.queued as f64)),
        ),
        family(
            "zeek_probe_zmq_queue_max_messages",
            "Most messages ever waiting to be decoded, per feed",
            GAUGE,
            s.feeds.iter().map(|f| (feed_labels(f), f.counters.max_queued as f64)),
        ),
        family(
            "zeek_probe_zmq_log_records_total",
            "Log records received from the NCSA ZeroMQ writer per log path and node (node from _node_name/_node/node, else unknown)",
            COUNTER,
            s.feeds.iter().flat_map(|f| {
                f.log_records.iter().map(move |(path, node, n)| {
                    (with(vec![("endpoint", f.endpoint.clone())], &[("path", path), ("node", node)]), *n as f64)
                })
            }),
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use prometheus::{Encoder, TextEncoder};

    use super::*;
    use zeek_probe_zeromq::{CountersSnapshot, FeedKind, Reason, memory_stats::OTHER, run::MemoryEntry};

    /// A snapshot with every family present (also used to check the dashboard's queries).
    pub(crate) fn example() -> Snapshot {
        Snapshot {
            feeds: vec![FeedSnapshot {
                kind: FeedKind::Logs,
                endpoint: "tcp://127.0.0.1:5557".into(),
                counters: CountersSnapshot {
                    received: 10,
                    decoded: 7,
                    dropped: 1,
                    malformed: vec![(Reason::Frames, 2), (Reason::Utf8, 0)],
                    queued: 0,
                    queued_bytes: 0,
                    max_queued: 3,
                },
                log_records: vec![("conn".into(), "worker-1".into(), 5)],
            }],
            nodes: vec![NodeSnapshot {
                node: "worker-1".into(),
                run: Some(4),
                cost_seconds: Some(0.002),
                entries_total: Some(3),
                entries: vec![
                    MemoryEntry { module: "Conn".into(), variable: "conns".into(), footprint: Some(42), bytes: None },
                    MemoryEntry { module: OTHER.into(), variable: OTHER.into(), footprint: Some(5), bytes: Some(64) },
                ],
                stats: vec![("mem_bytes".into(), 1e6)],
            }],
        }
    }

    fn text(s: &Snapshot) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&families(s), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn exports_memory_counters_and_feed_health() {
        let snapshot = example();
        let t = text(&snapshot);
        for line in [
            r#"zeek_probe_memory_footprint{node="worker-1",module="Conn",variable="conns"} 42"#,
            r#"zeek_probe_memory_footprint{node="worker-1",module="<other>",variable="<other>"} 5"#,
            r#"zeek_probe_memory_bytes{node="worker-1",module="<other>",variable="<other>"} 64"#,
            r#"zeek_probe_memory_entries{node="worker-1"} 3"#,
            r#"zeek_probe_memory_stats_run{node="worker-1"} 4"#,
            r#"zeek_probe_memory_stats_run_seconds{node="worker-1"} 0.002"#,
            r#"zeek_probe_zeek_stat{node="worker-1",stat="mem_bytes"} 1000000"#,
            r#"zeek_probe_zmq_messages_total{feed="logs",endpoint="tcp://127.0.0.1:5557",outcome="received"} 10"#,
            r#"zeek_probe_zmq_messages_total{feed="logs",endpoint="tcp://127.0.0.1:5557",outcome="malformed"} 2"#,
            r#"zeek_probe_zmq_messages_total{feed="logs",endpoint="tcp://127.0.0.1:5557",outcome="dropped"} 1"#,
            r#"zeek_probe_zmq_malformed_total{feed="logs",endpoint="tcp://127.0.0.1:5557",reason="frames"} 2"#,
            r#"zeek_probe_zmq_queue_max_messages{feed="logs",endpoint="tcp://127.0.0.1:5557"} 3"#,
            r#"zeek_probe_zmq_log_records_total{endpoint="tcp://127.0.0.1:5557",path="conn",node="worker-1"} 5"#,
            "# TYPE zeek_probe_zmq_messages_total counter",
            "# TYPE zeek_probe_memory_footprint gauge",
        ] {
            assert!(t.contains(line), "missing {line}\n{t}");
        }
        assert!(!t.contains(r#"zeek_probe_memory_bytes{node="worker-1",module="Conn""#), "no bytes measured: no row");
    }

    #[test]
    fn nothing_configured_exports_nothing() {
        assert!(families(&Snapshot { feeds: vec![], nodes: vec![] }).is_empty());
    }
}
