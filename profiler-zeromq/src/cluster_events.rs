//! Cluster events as the ZeroMQ backend publishes them (zeek-abi.md §7): four frames
//! `[topic][sender node id][format][payload]`, and the one event zeek-probe understands:
//!
//! ```zeek
//! module ZeekProbe;
//! type MemoryEntry: record { module: string; variable: string; footprint: count &optional; size: count &optional; };
//! global memory_stats: event(node: string, run: count, cost: interval, entries: vector of MemoryEntry,
//!                            counters: table[string] of count);
//! ```
//!
//! published by the companion Zeek package to topic `zeek.probe.stats`.
use super::{
    broker_bin::{self, DecodeError, Event, Value},
    broker_json::{self, JsonError},
    counters::Reason,
    run::{MemoryEntry, RunPart, RunReport},
};

/// What zeek-probe subscribes to: the companion package's topics and nothing else (a broad
/// subscription would make the cluster's XPUB send us, and wait for us to read, everything).
pub const TOPIC_PREFIX: &str = "zeek.probe.";
pub const MEMORY_STATS_EVENT: &str = "ZeekProbe::memory_stats";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClusterError {
    #[error("{0} frames instead of 4 ([topic][sender][format][payload])")]
    Frames(usize),
    #[error("the {0} frame is not UTF-8")]
    NotUtf8(&'static str),
    #[error("unknown payload format {0:?}")]
    UnknownFormat(String),
    #[error("bad broker-bin-v1 payload: {0}")]
    Bin(#[from] DecodeError),
    #[error("bad broker-json-v1 payload: {0}")]
    Json(#[from] JsonError),
    #[error("topic {0:?} is outside {TOPIC_PREFIX}")]
    Topic(String),
    #[error("{MEMORY_STATS_EVENT}: {0}")]
    Schema(&'static str),
}

impl ClusterError {
    /// The malformed-message reason this error is counted under.
    pub fn reason(&self) -> Reason {
        match self {
            ClusterError::Frames(_) => Reason::Frames,
            ClusterError::NotUtf8(_) => Reason::Utf8,
            ClusterError::UnknownFormat(_) => Reason::Format,
            ClusterError::Bin(_) | ClusterError::Json(_) => Reason::Payload,
            ClusterError::Topic(_) | ClusterError::Schema(_) => Reason::Schema,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    BrokerBinV1,
    BrokerJsonV1,
}

impl Format {
    pub fn parse(frame: &str) -> Option<Format> {
        match frame {
            "broker-bin-v1" => Some(Format::BrokerBinV1),
            "broker-json-v1" => Some(Format::BrokerJsonV1),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::BrokerBinV1 => "broker-bin-v1",
            Format::BrokerJsonV1 => "broker-json-v1",
        }
    }
}

/// A decoded cluster message.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterMessage {
    pub topic: String,
    /// `zeromq_<node>_<host>_<pid>_<n>`; kept as sent (lossy if not UTF-8: it is informative only).
    pub sender: String,
    pub format: Format,
    pub event: Event,
}

/// Decodes the four frames of one message.
pub fn decode(frames: &[Vec<u8>]) -> Result<ClusterMessage, ClusterError> {
    let [topic, sender, format, payload] = frames else { return Err(ClusterError::Frames(frames.len())) };
    let topic = std::str::from_utf8(topic).map_err(|_| ClusterError::NotUtf8("topic"))?;
    if !topic.starts_with(TOPIC_PREFIX) {
        return Err(ClusterError::Topic(topic.chars().take(64).collect()));
    }
    let format = std::str::from_utf8(format).map_err(|_| ClusterError::NotUtf8("format"))?;
    let format = Format::parse(format).ok_or_else(|| ClusterError::UnknownFormat(format.chars().take(32).collect()))?;
    let event = match format {
        Format::BrokerBinV1 => broker_bin::decode_event(payload)?,
        Format::BrokerJsonV1 => broker_json::decode_event(payload)?,
    };
    Ok(ClusterMessage { topic: topic.to_owned(), sender: String::from_utf8_lossy(sender).into_owned(), format, event })
}

fn optional_count(v: &Value) -> Result<Option<u64>, ClusterError> {
    match v {
        Value::None => Ok(None),
        Value::Count(n) => Ok(Some(*n)),
        _ => Err(ClusterError::Schema("footprint and size must be counts or unset")),
    }
}

/// The arguments of `ZeekProbe::memory_stats`, checked against the wire contract: a whole run.
pub fn memory_report(event: &Event) -> Result<RunReport, ClusterError> {
    if event.name != MEMORY_STATS_EVENT {
        return Err(ClusterError::Schema("not this event"));
    }
    let [node, run, cost, entries, counters] = event.args.as_slice() else {
        return Err(ClusterError::Schema("expected 5 arguments (node, run, cost, entries, counters)"));
    };
    let Value::String(node) = node else { return Err(ClusterError::Schema("node must be a string")) };
    let Value::Count(run) = run else { return Err(ClusterError::Schema("run must be a count")) };
    let Value::Timespan(cost) = cost else { return Err(ClusterError::Schema("cost must be an interval")) };
    let Value::List(entries) = entries else { return Err(ClusterError::Schema("entries must be a vector")) };
    let Value::Table(counters) = counters else { return Err(ClusterError::Schema("counters must be a table")) };
    let entries = entries
        .iter()
        .map(|entry| {
            // A record: its fields in order, unset optional ones as none.
            let Value::List(fields) = entry else { return Err(ClusterError::Schema("an entry is not a record")) };
            let [Value::String(module), Value::String(variable), footprint, size] = fields.as_slice() else {
                return Err(ClusterError::Schema("an entry is not [module, variable, footprint, size]"));
            };
            Ok(MemoryEntry {
                module: module.clone(),
                variable: variable.clone(),
                footprint: optional_count(footprint)?,
                bytes: optional_count(size)?,
            })
        })
        .collect::<Result<_, _>>()?;
    let stats = counters
        .iter()
        .map(|pair| match pair {
            (Value::String(name), Value::Count(n)) => Ok((name.clone(), *n as f64)),
            _ => Err(ClusterError::Schema("counters must map strings to counts")),
        })
        .collect::<Result<_, _>>()?;
    let part = RunPart::Whole { cost_seconds: *cost as f64 / 1e9, entries, stats };
    Ok(RunReport { node: node.clone(), run: *run, part })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::encode::{self, memory_stats_event};

    fn frames(topic: &str, format: &str, payload: Vec<u8>) -> Vec<Vec<u8>> {
        vec![topic.into(), b"zeromq_worker-1_host_42_1".to_vec(), format.into(), payload]
    }

    #[test]
    fn decodes_memory_stats_in_both_formats() {
        let event = memory_stats_event(
            "worker-1",
            7,
            &[("Conn", "conns", Some(12), None), ("Known", "hosts", None, Some(4096))],
        );
        let expected = RunReport {
            node: "worker-1".into(),
            run: 7,
            part: RunPart::Whole {
                cost_seconds: 0.0035,
                entries: vec![
                    MemoryEntry { module: "Conn".into(), variable: "conns".into(), footprint: Some(12), bytes: None },
                    MemoryEntry {
                        module: "Known".into(),
                        variable: "hosts".into(),
                        footprint: None,
                        bytes: Some(4096),
                    },
                ],
                stats: vec![("mem_bytes".into(), 123_456_789.0), ("events_dispatched".into(), 42.0)],
            },
        };
        for (format, payload) in
            [("broker-bin-v1", encode::bin_event(&event)), ("broker-json-v1", encode::json_event(&event).into_bytes())]
        {
            let message = decode(&frames("zeek.probe.stats", format, payload)).unwrap();
            assert_eq!(message.sender, "zeromq_worker-1_host_42_1");
            assert_eq!(message.format.as_str(), format);
            assert_eq!(memory_report(&message.event).unwrap(), expected);
        }
    }

    #[test]
    fn malformed_messages_have_a_reason() {
        let good = encode::bin_event(&memory_stats_event("w", 1, &[]));
        let cases: Vec<(Vec<Vec<u8>>, Reason)> = vec![
            (vec![b"zeek.probe.stats".to_vec()], Reason::Frames),
            (
                frames("zeek.probe.stats", "broker-bin-v1", good.clone()).into_iter().chain([vec![]]).collect(),
                Reason::Frames,
            ),
            (vec![b"zeek.probe.\xff".to_vec(), vec![], b"broker-bin-v1".to_vec(), good.clone()], Reason::Utf8),
            (frames("zeek.probe.stats", "zeek-bin-serializer", good.clone()), Reason::Format),
            (frames("zeek.probe.stats", "broker-bin-v1", good[..good.len() - 1].to_vec()), Reason::Payload),
            (frames("zeek.probe.stats", "broker-json-v1", b"{".to_vec()), Reason::Payload),
            (frames("zeek/cluster/node", "broker-bin-v1", good), Reason::Schema),
        ];
        for (frames, reason) in cases {
            assert_eq!(decode(&frames).map(|_| ()).map_err(|e| e.reason()), Err(reason), "{frames:?}");
        }
    }

    #[test]
    fn events_off_the_contract_are_schema_errors() {
        let mut e = memory_stats_event("w", 1, &[("M", "v", Some(1), None)]);
        e.args[2] = Value::Real(0.1);
        assert_eq!(memory_report(&e), Err(ClusterError::Schema("cost must be an interval")));
        let mut e = memory_stats_event("w", 1, &[]);
        e.args[3] = Value::List(vec![Value::List(vec![
            Value::String("M".into()),
            Value::String("v".into()),
            Value::Integer(1),
            Value::None,
        ])]);
        assert!(memory_report(&e).is_err());
        let mut e = memory_stats_event("w", 1, &[]);
        e.args.pop();
        assert!(memory_report(&e).is_err());
        let mut e = memory_stats_event("w", 1, &[]);
        e.name = "Other::event".into();
        assert!(memory_report(&e).is_err());
    }
}
