//! The symbolised result for one target: what `record` reports and `attach` exports.
use std::collections::{BTreeMap, HashMap};

use profiler_common::{
    ProbeStat,
    maps::{CALLER_NATIVE, CALLER_UNRESOLVED},
};
use serde::Serialize;

use crate::{
    probes::loader::MapSnapshot,
    symbolize::{FuncKind, LogStreamNames, func_name},
};

/// Caller label for an edge whose caller could not be read.
pub const UNRESOLVED_CALLER: &str = "<unresolved>";

#[derive(Debug, Clone, Serialize)]
pub struct TargetSummary {
    pub pid: u32,
    pub node: String,
    pub zeek_version: String,
    pub abi: String,
    pub layout_source: crate::binary::LayoutSource,
    pub binary: String,
    /// Whether every script call was counted (`--count-calls`).
    pub calls_counted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionCalls {
    pub name: String,
    pub kind: FuncKind,
    pub calls: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallerEdge {
    /// `None` for calls from C++ (the event loop), which have no calling script frame.
    pub caller: Option<String>,
    pub callee: String,
    pub calls: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamWrites {
    pub stream: String,
    pub writes: u64,
}

/// The probes' own health for this target: what was dropped or could not be resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProbeHealth {
    pub read_failed: u64,
    pub invalid_func: u64,
    pub map_full: u64,
    pub caller_unresolved: u64,
    /// Counted calls whose function name could not be decoded in user space.
    pub unnamed_calls: u64,
}

impl ProbeHealth {
    pub fn get(&self, stat: ProbeStat) -> u64 {
        match stat {
            ProbeStat::ReadFailed => self.read_failed,
            ProbeStat::InvalidFunc => self.invalid_func,
            ProbeStat::MapFull => self.map_full,
            ProbeStat::CallerUnresolved => self.caller_unresolved,
        }
    }
}

/// One frame of a sampled stack, as people read it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct StackFrame {
    /// Script function/event/hook/BIF name, `lambda@file:line`, a demangled native function,
    /// or a thread name.
    pub name: String,
    /// Source file of a script function, where known.
    pub file: Option<String>,
    /// First line in `file` (0 when unknown).
    pub line: u32,
}

/// A distinct stack and how many samples landed on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SampledStack {
    /// Root first, leaf (where the CPU was) last.
    pub frames: Vec<StackFrame>,
    pub samples: u64,
}

/// The sampled part of a profile.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sampling {
    /// Samples per second per thread; one sample stands for `1 / hz` CPU seconds.
    pub hz: u64,
    pub stacks: Vec<SampledStack>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub target: TargetSummary,
    pub functions: Vec<FunctionCalls>,
    pub callers: Vec<CallerEdge>,
    pub log_writes: Vec<StreamWrites>,
    pub probe_health: ProbeHealth,
}

impl Profile {
    /// Folds the snapshot's entries for `target.pid` into named, sorted rows.
    pub fn build(target: TargetSummary, snapshot: &MapSnapshot, streams: &LogStreamNames) -> Self {
        let pid = target.pid;
        let mut health = ProbeHealth::default();
        let mut names: HashMap<u64, Option<(String, FuncKind)>> = HashMap::new();
        let mut name_of = |hash: u64| -> Option<(String, FuncKind)> {
            names
                .entry(hash)
                .or_insert_with(|| {
                    let info = snapshot.funcs.get(&hash)?;
                    Some((func_name(info)?, FuncKind::from_raw(info.kind, info.flavor)?))
                })
                .clone()
        };

        let mut functions: BTreeMap<(String, FuncKind), u64> = BTreeMap::new();
        let mut edges: BTreeMap<(Option<String>, String), u64> = BTreeMap::new();
        for (key, calls) in snapshot.calls.iter().filter(|(k, _)| k.pid == pid) {
            let Some((callee, kind)) = name_of(key.callee) else {
                health.unnamed_calls += calls;
                continue;
            };
            let caller = match key.caller {
                CALLER_NATIVE => None,
                CALLER_UNRESOLVED => Some(UNRESOLVED_CALLER.to_owned()),
                hash => Some(name_of(hash).map_or_else(|| UNRESOLVED_CALLER.to_owned(), |(n, _)| n)),
            };
            *functions.entry((callee.clone(), kind)).or_default() += calls;
            *edges.entry((caller, callee)).or_default() += calls;
        }

        let mut log_writes: BTreeMap<String, u64> = BTreeMap::new();
        for (key, writes) in snapshot.log_writes.iter().filter(|(k, _)| k.pid == pid) {
            *log_writes.entry(streams.name(pid, key.enum_type, key.ordinal)).or_default() += writes;
        }

        for (key, count) in snapshot.stats.iter().filter(|(k, _)| k.pid == pid) {
            match ProbeStat::try_from(key.stat) {
                Ok(ProbeStat::ReadFailed) => health.read_failed += count,
                Ok(ProbeStat::InvalidFunc) => health.invalid_func += count,
                Ok(ProbeStat::MapFull) => health.map_full += count,
                Ok(ProbeStat::CallerUnresolved) => health.caller_unresolved += count,
                Err(_) => {}
            }
        }

        let mut functions: Vec<FunctionCalls> =
            functions.into_iter().map(|((name, kind), calls)| FunctionCalls { name, kind, calls }).collect();
        functions.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.name.cmp(&b.name)));
        let mut callers: Vec<CallerEdge> =
            edges.into_iter().map(|((caller, callee), calls)| CallerEdge { caller, callee, calls }).collect();
        callers.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| (&a.callee, &a.caller).cmp(&(&b.callee, &b.caller))));
        let mut log_writes: Vec<StreamWrites> =
            log_writes.into_iter().map(|(stream, writes)| StreamWrites { stream, writes }).collect();
        log_writes.sort_by(|a, b| b.writes.cmp(&a.writes).then_with(|| a.stream.cmp(&b.stream)));

        Self { target, functions, callers, log_writes, probe_health: health }
    }
}

#[cfg(test)]
mod tests {
    use profiler_common::{CallKey, FuncInfo, LogKey, StatKey, name_hash::name_hash_bytes};

    use super::*;

    fn info(name: &str, kind: u8, flavor: u8) -> FuncInfo {
        let mut i = FuncInfo::zeroed();
        i.name[..name.len()].copy_from_slice(name.as_bytes());
        i.name_len = name.len() as u32;
        i.kind = kind;
        i.flavor = flavor;
        i
    }

    fn target(pid: u32) -> TargetSummary {
        TargetSummary {
            pid,
            node: "worker-1".into(),
            zeek_version: "8.2.2".into(),
            abi: "8.2".into(),
            layout_source: crate::binary::LayoutSource::Table,
            binary: "/usr/bin/zeek".into(),
            calls_counted: true,
        }
    }

    #[test]
    fn folds_edges_into_functions_and_keeps_other_pids_out() {
        let (ev, f, bif) = (name_hash_bytes(b"new_connection"), name_hash_bytes(b"set_conn"), name_hash_bytes(b"fmt"));
        let mut snap = MapSnapshot::default();
        snap.funcs.insert(ev, info("new_connection", 0, 1));
        snap.funcs.insert(f, info("set_conn", 0, 0));
        snap.funcs.insert(bif, info("fmt", 1, 0));
        snap.calls = vec![
            (CallKey { pid: 7, _pad: 0, callee: ev, caller: CALLER_NATIVE }, 10),
            (CallKey { pid: 7, _pad: 0, callee: f, caller: ev }, 10),
            (CallKey { pid: 7, _pad: 0, callee: bif, caller: f }, 20),
            (CallKey { pid: 7, _pad: 0, callee: bif, caller: CALLER_UNRESOLVED }, 1),
            (CallKey { pid: 8, _pad: 0, callee: bif, caller: f }, 99),
        ];
        snap.log_writes = vec![(LogKey { pid: 7, _pad: 0, enum_type: 0x1000, ordinal: 3 }, 5)];
        snap.stats = vec![(StatKey { pid: 7, stat: ProbeStat::MapFull as u32 }, 2)];
        let p = Profile::build(target(7), &snap, &LogStreamNames::default());
        assert_eq!(p.functions[0], FunctionCalls { name: "fmt".into(), kind: FuncKind::Bif, calls: 21 });
        assert_eq!(p.functions.len(), 3);
        assert!(p.callers.contains(&CallerEdge { caller: None, callee: "new_connection".into(), calls: 10 }));
        assert!(p.callers.contains(&CallerEdge {
            caller: Some(UNRESOLVED_CALLER.into()),
            callee: "fmt".into(),
            calls: 1
        }));
        assert_eq!(p.log_writes, vec![StreamWrites { stream: "Log::ID#3".into(), writes: 5 }]);
        assert_eq!(p.probe_health.map_full, 2);
    }

    #[test]
    fn calls_without_a_decodable_name_are_counted_as_unnamed() {
        let snap = MapSnapshot {
            calls: vec![(CallKey { pid: 1, _pad: 0, callee: 12345, caller: CALLER_NATIVE }, 4)],
            ..Default::default()
        };
        let p = Profile::build(target(1), &snap, &LogStreamNames::default());
        assert!(p.functions.is_empty());
        assert_eq!(p.probe_health.unnamed_calls, 4);
    }
}
