//! Counted calls (`--count-calls`) → calls per function and per caller edge.
use profiler_common::maps::CALLER_NATIVE;

use super::tally::Tally;
use crate::{probes::MapSnapshot, symbolize::FunctionNames};

/// Adds the calls counted for `pid` to `tally`; returns how many had a callee whose name could
/// not be decoded (left out of the rows).
pub(super) fn count_calls(snapshot: &MapSnapshot, pid: u32, names: &FunctionNames, tally: &mut Tally) -> u64 {
    let mut unnamed = 0;
    for (key, calls) in snapshot.calls.iter().filter(|(k, _)| k.pid == pid) {
        let Some(callee) = names.get(key.callee) else {
            unnamed += calls;
            continue;
        };
        let caller = (key.caller != CALLER_NATIVE).then(|| names.shown_name(key.caller).to_owned());
        let row = tally.function(&callee.name, callee.kind);
        *row.calls.get_or_insert(0) += calls;
        row.zeek_name.clone_from(&callee.zeek_name);
        row.file.clone_from(&callee.file);
        *tally.edge((caller, callee.name.clone())).calls.get_or_insert(0) += calls;
    }
    unnamed
}
