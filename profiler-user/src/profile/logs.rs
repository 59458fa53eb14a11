//! Log writes → writes per named stream.
use std::collections::BTreeMap;

use super::StreamWrites;
use crate::{probes::MapSnapshot, symbolize::LogStreamNames};

/// The writes counted for `pid` per stream, most first; entries that come to the same name are
/// added up.
pub(super) fn log_writes(snapshot: &MapSnapshot, pid: u32, streams: &LogStreamNames) -> Vec<StreamWrites> {
    let mut by_stream: BTreeMap<String, u64> = BTreeMap::new();
    for (key, writes) in snapshot.log_writes.iter().filter(|(k, _)| k.pid == pid) {
        *by_stream.entry(streams.name(pid, key.enum_type, key.ordinal)).or_default() += writes;
    }
    let mut log_writes: Vec<StreamWrites> =
        by_stream.into_iter().map(|(stream, writes)| StreamWrites { stream, writes }).collect();
    log_writes.sort_by(|a, b| b.writes.cmp(&a.writes).then_with(|| a.stream.cmp(&b.stream)));
    log_writes
}
