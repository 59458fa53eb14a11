//! Log records from the NCSA ZeroMQ log writer (zeek-abi.md §7): two frames, `[log path, JSON
//! record]`, one message per record, from every log stream the writer is enabled for. The
//! writer formats records with Zeek's JSON formatter: fields by name (nested records flattened
//! as `id.orig_h`), unset optional fields left out, intervals as float seconds, and `ts` as
//! float epoch seconds (the writer uses `TS_EPOCH`) or ISO 8601 (Zeek's other JSON timestamp
//! setting); both are accepted.
//!
//! Two paths come from the companion package (`scripts/main.zeek`): `zeek_probe_memory` (one
//! record per variable: `ts, run, node, module, variable, footprint?, size?`) and
//! `zeek_probe_stats` (one per run, written after its memory rows: `ts, run, node, cost,
//! cpu_cost?, globals` and cheap counters). Every other record is only counted, per path and
//! node.
use serde_json::{Map, Value as Json};

use super::{
    broker_json,
    counters::Reason,
    run::{MemoryEntry, RunPart, RunReport},
};

pub const MEMORY_PATH: &str = "zeek_probe_memory";
pub const STATS_PATH: &str = "zeek_probe_stats";
/// Longest path accepted (Zeek's are short names like `conn` or `zeek_probe_memory`).
pub const MAX_PATH: usize = 128;
/// Most numeric fields of one stats record kept (in field name order).
pub const MAX_STATS: usize = 64;
/// The fields that may name the node a record comes from, in order of preference: `_node_name`
/// is what the `add-node-names` package adds with Zeek's default `Log::default_ext_prefix` "_".
pub const NODE_FIELDS: [&str; 3] = ["_node_name", "_node", "node"];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LogError {
    #[error("{0} frames instead of 2 ([path][record])")]
    Frames(usize),
    #[error("the {0} frame is not UTF-8")]
    NotUtf8(&'static str),
    #[error("bad log path (empty, over {MAX_PATH} bytes, or control characters)")]
    BadPath,
    #[error("record is not JSON: {0}")]
    NotJson(String),
    #[error("record is not a JSON object")]
    NotAnObject,
    #[error("{path}: field {field} {problem}")]
    Field { path: &'static str, field: &'static str, problem: &'static str },
}

impl LogError {
    pub fn reason(&self) -> Reason {
        match self {
            LogError::Frames(_) => Reason::Frames,
            LogError::NotUtf8(_) => Reason::Utf8,
            LogError::BadPath | LogError::NotJson(_) | LogError::NotAnObject => Reason::Payload,
            LogError::Field { .. } => Reason::Schema,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A record of the package's two streams: part of a run.
    Run(RunReport),
    /// A record of any other stream; `node` from its node field, if it has one.
    Other { node: Option<String> },
}

impl Record {
    /// The node to count the record under.
    pub fn node(&self) -> Option<&str> {
        match self {
            Record::Run(report) => Some(&report.node),
            Record::Other { node } => node.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub path: String,
    /// `ts` in seconds since the epoch, when the record has one.
    pub ts: Option<f64>,
    pub record: Record,
}

/// Parses the two frames of one message.
pub fn parse(frames: &[Vec<u8>]) -> Result<LogRecord, LogError> {
    let [path, record] = frames else { return Err(LogError::Frames(frames.len())) };
    let path = std::str::from_utf8(path).map_err(|_| LogError::NotUtf8("path"))?;
    if path.is_empty() || path.len() > MAX_PATH || path.chars().any(char::is_control) {
        return Err(LogError::BadPath);
    }
    let text = std::str::from_utf8(record).map_err(|_| LogError::NotUtf8("record"))?;
    let json: Json = serde_json::from_str(text).map_err(|e| LogError::NotJson(e.to_string()))?;
    let Json::Object(fields) = json else { return Err(LogError::NotAnObject) };
    let ts = match fields.get("ts") {
        None => None,
        Some(ts) => Some(timestamp(ts).ok_or(LogError::Field {
            path: "record",
            field: "ts",
            problem: "is neither epoch seconds nor ISO 8601",
        })?),
    };
    let record = match path {
        MEMORY_PATH => memory(&fields)?,
        STATS_PATH => stats(&fields)?,
        _ => Record::Other { node: NODE_FIELDS.iter().find_map(|f| fields.get(*f)?.as_str()).map(str::to_owned) },
    };
    Ok(LogRecord { path: path.to_owned(), ts, record })
}

fn timestamp(ts: &Json) -> Option<f64> {
    match ts {
        Json::Number(n) => n.as_f64(),
        // Whole seconds and the fraction apart: one division of the nanoseconds would round.
        Json::String(s) => broker_json::timestamp(s)
            .map(|ns| ns.div_euclid(1_000_000_000) as f64 + ns.rem_euclid(1_000_000_000) as f64 / 1e9),
        _ => None,
    }
}

fn string(fields: &Map<String, Json>, path: &'static str, field: &'static str) -> Result<String, LogError> {
    match fields.get(field) {
        Some(Json::String(s)) => Ok(s.clone()),
        Some(_) => Err(LogError::Field { path, field, problem: "is not a string" }),
        None => Err(LogError::Field { path, field, problem: "is missing" }),
    }
}

fn count(fields: &Map<String, Json>, path: &'static str, field: &'static str) -> Result<Option<u64>, LogError> {
    match fields.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(LogError::Field { path, field, problem: "is not a count" }),
    }
}

fn required(value: Option<u64>, path: &'static str, field: &'static str) -> Result<u64, LogError> {
    value.ok_or(LogError::Field { path, field, problem: "is missing" })
}

fn memory(fields: &Map<String, Json>) -> Result<Record, LogError> {
    let p = MEMORY_PATH;
    Ok(Record::Run(RunReport {
        node: string(fields, p, "node")?,
        run: required(count(fields, p, "run")?, p, "run")?,
        part: RunPart::Entry(MemoryEntry {
            // The package names the column `module` (its record field is `module_name`, `module`
            // being a Zeek keyword); a filter without its field-name map logs `module_name`.
            module: match fields.contains_key("module") {
                true => string(fields, p, "module")?,
                false => string(fields, p, "module_name")?,
            },
            variable: string(fields, p, "variable")?,
            footprint: count(fields, p, "footprint")?,
            bytes: count(fields, p, "size")?,
        }),
    }))
}

fn stats(fields: &Map<String, Json>) -> Result<Record, LogError> {
    let p = STATS_PATH;
    let cost_seconds = match fields.get("cost") {
        None | Some(Json::Null) => None,
        Some(v) => Some(v.as_f64().ok_or(LogError::Field { path: p, field: "cost", problem: "is not a number" })?),
    };
    // Sorted by name whatever the map's order (serde_json keeps insertion order when some crate
    // enables its preserve_order feature), so that the kept ones are always the same.
    let mut stats: Vec<(String, f64)> = fields
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "ts" | "run"))
        .filter_map(|(name, v)| Some((name.clone(), v.as_f64()?)))
        .collect();
    stats.sort_by(|a, b| a.0.cmp(&b.0));
    stats.truncate(MAX_STATS);
    Ok(Record::Run(RunReport {
        node: string(fields, p, "node")?,
        run: required(count(fields, p, "run")?, p, "run")?,
        part: RunPart::Summary { cost_seconds, stats },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(path: &str, record: &str) -> Vec<Vec<u8>> {
        vec![path.into(), record.into()]
    }

    #[test]
    fn memory_records_with_epoch_or_iso_timestamps() {
        let epoch = parse(&frames(
            MEMORY_PATH,
            r#"{"ts":1700000000.25,"run":3,"node":"worker-1","module":"Conn","variable":"conns","footprint":42}"#,
        ))
        .unwrap();
        assert_eq!(epoch.ts, Some(1_700_000_000.25));
        assert_eq!(
            epoch.record,
            Record::Run(RunReport {
                node: "worker-1".into(),
                run: 3,
                part: RunPart::Entry(MemoryEntry {
                    module: "Conn".into(),
                    variable: "conns".into(),
                    footprint: Some(42),
                    bytes: None
                }),
            })
        );
        let unmapped =
            parse(&frames(MEMORY_PATH, r#"{"run":1,"node":"w","module_name":"GLOBAL","variable":"v"}"#)).unwrap();
        assert!(
            matches!(unmapped.record, Record::Run(RunReport { part: RunPart::Entry(MemoryEntry { ref module, .. }), .. }) if module == "GLOBAL")
        );
        let iso = parse(&frames(
            MEMORY_PATH,
            r#"{"ts":"2023-11-14T22:13:20.250000Z","run":3,"node":"w","module":"M","variable":"v","size":4096}"#,
        ))
        .unwrap();
        assert_eq!(iso.ts, Some(1_700_000_000.25));
        assert!(matches!(
            iso.record,
            Record::Run(RunReport { part: RunPart::Entry(MemoryEntry { footprint: None, bytes: Some(4096), .. }), .. })
        ));
    }

    #[test]
    fn stats_records_export_every_numeric_field() {
        let r = parse(&frames(
            STATS_PATH,
            r#"{"ts":1.0,"run":9,"node":"manager","cost":0.004,"cpu_cost":0.003,"globals":812,"mem_bytes":123456789,"events_dispatched":77,"note":"text","flag":true}"#,
        ))
        .unwrap();
        let Record::Run(RunReport { node, run, part: RunPart::Summary { cost_seconds, stats } }) = r.record else {
            panic!("{r:?}")
        };
        assert_eq!((node.as_str(), run, cost_seconds), ("manager", 9, Some(0.004)));
        assert_eq!(
            stats,
            vec![
                ("cost".into(), 0.004),
                ("cpu_cost".into(), 0.003),
                ("events_dispatched".into(), 77.0),
                ("globals".into(), 812.0),
                ("mem_bytes".into(), 123_456_789.0),
            ]
        );
    }

    #[test]
    fn other_streams_are_counted_by_their_node_field() {
        let node = |record: &str| parse(&frames("conn", record)).unwrap().record.node().map(str::to_owned);
        assert_eq!(
            node(r#"{"ts":1.0,"uid":"C1","id.orig_h":"10.0.0.1","_node_name":"worker-2"}"#),
            Some("worker-2".into())
        );
        assert_eq!(node(r#"{"ts":1.0,"_node":"worker-3","node":"x"}"#), Some("worker-3".into()));
        assert_eq!(node(r#"{"ts":1.0,"node":"proxy-1"}"#), Some("proxy-1".into()));
        assert_eq!(node(r#"{"ts":1.0}"#), None);
    }

    #[test]
    fn malformed_records_have_a_reason() {
        let cases: Vec<(Vec<Vec<u8>>, Reason)> = vec![
            (vec![b"conn".to_vec()], Reason::Frames),
            (vec![b"conn".to_vec(), b"{}".to_vec(), b"{}".to_vec()], Reason::Frames),
            (vec![b"co\xffnn".to_vec(), b"{}".to_vec()], Reason::Utf8),
            (vec![b"conn".to_vec(), b"{\"a\":\"\xc3\x28\"}".to_vec()], Reason::Utf8),
            (frames("", "{}"), Reason::Payload),
            (frames(&"p".repeat(MAX_PATH + 1), "{}"), Reason::Payload),
            (frames("conn", "not json"), Reason::Payload),
            (frames("conn", "[1,2]"), Reason::Payload),
            (frames("conn", r#"{"ts":"yesterday"}"#), Reason::Schema),
            (frames(MEMORY_PATH, r#"{"ts":1.0,"run":1,"node":"w","module":"M"}"#), Reason::Schema),
            (frames(MEMORY_PATH, r#"{"run":-1,"node":"w","module":"M","variable":"v"}"#), Reason::Schema),
            (
                frames(MEMORY_PATH, r#"{"run":1,"node":"w","module":"M","variable":"v","footprint":1.5}"#),
                Reason::Schema,
            ),
            (frames(STATS_PATH, r#"{"run":1,"node":7}"#), Reason::Schema),
            (frames(STATS_PATH, r#"{"run":1,"node":"w","cost":"1s"}"#), Reason::Schema),
        ];
        for (frames, reason) in cases {
            assert_eq!(parse(&frames).map(|_| ()).map_err(|e| e.reason()), Err(reason), "{frames:?}");
        }
    }

    #[test]
    fn random_records_never_panic() {
        let mut state = 0x853c_49e6_748f_ea9bu64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seed = br#"{"ts":1.5,"run":2,"node":"w","module":"M","variable":"v","footprint":3,"size":4}"#;
        for round in 0..5_000 {
            let mut record = seed.to_vec();
            for _ in 0..1 + next() % 4 {
                let i = (next() as usize) % record.len();
                record[i] = next() as u8;
            }
            let path = [MEMORY_PATH, STATS_PATH, "conn"][round % 3];
            let _ = parse(&[path.as_bytes().to_vec(), record]);
        }
    }
}
