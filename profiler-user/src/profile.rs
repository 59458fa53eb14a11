//! The symbolised result for one target: what `record` reports and `attach` exports.
use std::collections::{BTreeMap, HashMap, HashSet};

use profiler_common::{ProbeStat, maps::CALLER_NATIVE};
use serde::Serialize;

pub use crate::symbolize::StackFrame;
use crate::{
    binary::symbols::NativeSymbols,
    probes::loader::MapSnapshot,
    symbolize::{DecodedFrame, FuncKind, FunctionNames, LogStreamNames, StackDecoder},
    target::mappings::Mapping,
};

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
    /// The CPU sampling rate, when sampling.
    pub sample_hz: Option<u64>,
    /// ZAM-compiled scripts: inlined functions' time lands in their callers.
    pub zam: bool,
    /// The process's user + system CPU time, all threads, when it exited (`record`): what the
    /// sampled seconds add up to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
}

/// One function (or native frame, or thread) with what was counted and sampled for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionStats {
    /// The name people read: Zeek's name, lambdas as `lambda@file:line`.
    pub name: String,
    /// Zeek's own name where it differs (lambdas), as its `--profile-scripts` shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zeek_name: Option<String>,
    pub kind: FuncKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Exact calls (with `--count-calls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
    /// Sampled CPU time with this function on top of the stack.
    pub self_seconds: f64,
    /// Sampled CPU time with this function anywhere on the stack (recursion counted once).
    pub total_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallerEdge {
    /// `None` for calls from C++ (the event loop), which have no calling script frame.
    pub caller: Option<String>,
    pub callee: String,
    /// Exact calls (with `--count-calls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
    /// Sampled CPU time in the callee (on top) when called from this caller.
    pub self_seconds: f64,
    /// Sampled CPU time below this edge (each sample counted once).
    pub total_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamWrites {
    pub stream: String,
    pub writes: u64,
}

/// Sampled CPU time per script file, and per installed package.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceTime {
    /// A script file, or a package directory under Zeek's site packages folder.
    pub source: String,
    pub self_seconds: f64,
}

/// The probes' own health for this target: what was dropped or could not be resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProbeHealth {
    pub read_failed: u64,
    pub invalid_func: u64,
    pub map_full: u64,
    pub caller_unresolved: u64,
    /// Samples taken before Zeek's initialisers ran (`record` from the first instruction):
    /// native code, named as such; not a failure.
    pub before_init: u64,
    /// Counted calls whose function name could not be decoded in user space.
    pub unnamed_calls: u64,
    /// Samples whose stack could not be decoded.
    pub unnamed_samples: u64,
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
    /// Busiest first: by sampled total time, then calls.
    pub functions: Vec<FunctionStats>,
    pub callers: Vec<CallerEdge>,
    pub log_writes: Vec<StreamWrites>,
    /// Sampled self time per script file and per installed package (empty without sampling).
    pub files: Vec<SourceTime>,
    pub packages: Vec<SourceTime>,
    /// The sampled stacks themselves (written as folded stacks, flame graph and pprof).
    #[serde(skip)]
    pub sampling: Option<Sampling>,
    pub probe_health: ProbeHealth,
}

/// What decoding one process's samples needs.
pub struct SampleContext<'a> {
    pub hz: u64,
    pub natives: &'a NativeSymbols,
    /// Runtime minus link-time addresses of the executable.
    pub bias: u64,
    /// The process's mappings, to name code in libraries.
    pub mappings: &'a [Mapping],
}

#[derive(Default)]
struct FunctionRow {
    zeek_name: Option<String>,
    file: Option<String>,
    calls: Option<u64>,
    self_samples: u64,
    total_samples: u64,
}

#[derive(Default)]
struct EdgeRow {
    calls: Option<u64>,
    self_samples: u64,
    total_samples: u64,
}

/// The package a script belongs to: the directory under `site/packages/` (zkg's layout).
pub fn package_of(file: &str) -> Option<&str> {
    let (_, rest) = file.split_once("/site/packages/")?;
    rest.split('/').next().filter(|p| !p.is_empty())
}

impl Profile {
    /// Folds the snapshot's entries for `target.pid` into named, sorted rows.
    pub fn build(
        target: TargetSummary,
        snapshot: &MapSnapshot,
        streams: &LogStreamNames,
        sampling: Option<SampleContext>,
    ) -> Self {
        let pid = target.pid;
        let mut health = ProbeHealth::default();
        for (key, count) in snapshot.stats.iter().filter(|(k, _)| k.pid == pid) {
            match ProbeStat::try_from(key.stat) {
                Ok(ProbeStat::ReadFailed) => health.read_failed += count,
                Ok(ProbeStat::InvalidFunc) => health.invalid_func += count,
                Ok(ProbeStat::MapFull) => health.map_full += count,
                Ok(ProbeStat::CallerUnresolved) => health.caller_unresolved += count,
                Ok(ProbeStat::BeforeInit) => health.before_init += count,
                Err(_) => {}
            }
        }

        let mut functions: BTreeMap<(String, FuncKind), FunctionRow> = BTreeMap::new();
        let mut edges: BTreeMap<(Option<String>, String), EdgeRow> = BTreeMap::new();

        // The functions this process's calls and samples name, and only those.
        let called = snapshot.calls.iter().filter(|(k, _)| k.pid == pid).flat_map(|(k, _)| [k.callee, k.caller]);
        let sampled_stacks =
            snapshot.samples.iter().filter(|(k, _)| k.pid == pid).filter_map(|(k, _)| snapshot.stacks.get(&k.stack));
        let on_stacks = sampled_stacks.flat_map(|t| t.frames().iter().copied().chain([t.leaf]));
        let names = FunctionNames::new(&snapshot.funcs, called.chain(on_stacks));
        for (key, calls) in snapshot.calls.iter().filter(|(k, _)| k.pid == pid) {
            let Some(callee) = names.get(key.callee) else {
                health.unnamed_calls += calls;
                continue;
            };
            let caller = (key.caller != CALLER_NATIVE).then(|| names.shown_name(key.caller).to_owned());
            let row = functions.entry((callee.name.clone(), callee.kind)).or_default();
            *row.calls.get_or_insert(0) += calls;
            row.zeek_name.clone_from(&callee.zeek_name);
            row.file.clone_from(&callee.file);
            *edges.entry((caller, callee.name.clone())).or_default().calls.get_or_insert(0) += calls;
        }

        let mut files: BTreeMap<String, u64> = BTreeMap::new();
        let mut sampled = None;
        if let Some(ctx) = sampling {
            let mut decoder = StackDecoder::new(&names, ctx.natives, ctx.bias, ctx.mappings);
            let mut stacks: HashMap<Vec<StackFrame>, u64> = HashMap::new();
            for (key, samples) in snapshot.samples.iter().filter(|(k, _)| k.pid == pid) {
                let Some(frames) = snapshot.stacks.get(&key.stack).and_then(|t| decoder.decode(t)) else {
                    health.unnamed_samples += samples;
                    continue;
                };
                let Some(leaf) = frames.last() else { continue };
                functions.entry((leaf.frame.name.clone(), leaf.kind)).or_default().self_samples += samples;
                if let Some(file) = &leaf.frame.file {
                    *files.entry(file.clone()).or_default() += samples;
                }
                let mut seen = HashSet::new();
                for f in &frames {
                    if seen.insert((&f.frame.name, f.kind)) {
                        let row = functions.entry((f.frame.name.clone(), f.kind)).or_default();
                        row.total_samples += samples;
                        row.file = row.file.take().or_else(|| f.frame.file.clone());
                        row.zeek_name = row.zeek_name.take().or_else(|| f.zeek_name.clone());
                    }
                }
                // Script stacks start at a call from C++; other kinds have no call edges.
                let script = frames.iter().all(|f| !matches!(f.kind, FuncKind::Native | FuncKind::Thread));
                let mut callers: Vec<Option<&str>> = vec![None];
                callers.extend(frames.iter().map(|f| Some(f.frame.name.as_str())));
                let mut seen_edges = HashSet::new();
                for (i, DecodedFrame { frame, .. }) in frames.iter().enumerate().filter(|_| script) {
                    let edge = (callers[i].map(str::to_owned), frame.name.clone());
                    let row = edges.entry(edge.clone()).or_default();
                    // Inclusive: once per sample however often recursion repeats the edge.
                    if seen_edges.insert(edge) {
                        row.total_samples += samples;
                    }
                    if i + 1 == frames.len() {
                        row.self_samples += samples;
                    }
                }
                *stacks.entry(frames.into_iter().map(|f| f.frame).collect()).or_default() += samples;
            }
            let mut stacks: Vec<SampledStack> =
                stacks.into_iter().map(|(frames, samples)| SampledStack { frames, samples }).collect();
            stacks.sort_by(|a, b| b.samples.cmp(&a.samples).then_with(|| a.frames.cmp(&b.frames)));
            sampled = Some((ctx.hz, Sampling { hz: ctx.hz, stacks }));
        }

        let hz = sampled.as_ref().map_or(1, |(hz, _)| (*hz).max(1)) as f64;
        let seconds = |samples: u64| samples as f64 / hz;
        let mut functions: Vec<FunctionStats> = functions
            .into_iter()
            .map(|((name, kind), row)| FunctionStats {
                name,
                zeek_name: row.zeek_name,
                kind,
                file: row.file,
                calls: row.calls,
                self_seconds: seconds(row.self_samples),
                total_seconds: seconds(row.total_samples),
            })
            .collect();
        functions.sort_by(|a, b| {
            b.total_seconds.total_cmp(&a.total_seconds).then(b.calls.cmp(&a.calls)).then_with(|| a.name.cmp(&b.name))
        });
        let mut callers: Vec<CallerEdge> = edges
            .into_iter()
            .map(|((caller, callee), row)| CallerEdge {
                caller,
                callee,
                calls: row.calls,
                self_seconds: seconds(row.self_samples),
                total_seconds: seconds(row.total_samples),
            })
            .collect();
        callers.sort_by(|a, b| {
            b.total_seconds
                .total_cmp(&a.total_seconds)
                .then(b.calls.cmp(&a.calls))
                .then_with(|| (&a.callee, &a.caller).cmp(&(&b.callee, &b.caller)))
        });

        let mut log_writes: BTreeMap<String, u64> = BTreeMap::new();
        for (key, writes) in snapshot.log_writes.iter().filter(|(k, _)| k.pid == pid) {
            *log_writes.entry(streams.name(pid, key.enum_type, key.ordinal)).or_default() += writes;
        }
        let mut log_writes: Vec<StreamWrites> =
            log_writes.into_iter().map(|(stream, writes)| StreamWrites { stream, writes }).collect();
        log_writes.sort_by(|a, b| b.writes.cmp(&a.writes).then_with(|| a.stream.cmp(&b.stream)));

        let mut packages: BTreeMap<String, u64> = BTreeMap::new();
        for (file, samples) in &files {
            if let Some(package) = package_of(file) {
                *packages.entry(package.to_owned()).or_default() += samples;
            }
        }
        let by_time = |m: BTreeMap<String, u64>| {
            let mut v: Vec<SourceTime> =
                m.into_iter().map(|(source, n)| SourceTime { source, self_seconds: seconds(n) }).collect();
            v.sort_by(|a, b| b.self_seconds.total_cmp(&a.self_seconds).then_with(|| a.source.cmp(&b.source)));
            v
        };

        Self {
            target,
            functions,
            callers,
            log_writes,
            files: by_time(files),
            packages: by_time(packages),
            sampling: sampled.map(|(_, s)| s),
            probe_health: health,
        }
    }
}

#[cfg(test)]
mod tests {
    use profiler_common::{
        CallKey, FuncInfo, LogKey, SampleKey, StackKind, StackTrace, StatKey, maps::CALLER_UNRESOLVED,
        name_hash::name_hash_bytes,
    };

    use super::*;
    use crate::symbolize::{UNRESOLVED, function_names::func_info};

    fn info(name: &str, kind: u8, flavor: u8) -> FuncInfo {
        func_info(name, kind, flavor, "", 0)
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
            sample_hz: None,
            zam: false,
            cpu_seconds: None,
        }
    }

    fn stack(frames: &[u64]) -> StackTrace {
        let mut t = StackTrace::zeroed();
        t.kind = StackKind::Script as u32;
        t.depth = frames.len() as u32;
        t.frames[..frames.len()].copy_from_slice(frames);
        t
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
        let p = Profile::build(target(7), &snap, &LogStreamNames::default(), None);
        let fmt = p.functions.iter().find(|f| f.name == "fmt").unwrap();
        assert_eq!((fmt.kind, fmt.calls), (FuncKind::Bif, Some(21)));
        assert_eq!(p.functions.len(), 3);
        let edge = |caller: Option<&str>, callee: &str| {
            p.callers.iter().find(|e| e.caller.as_deref() == caller && e.callee == callee).map(|e| e.calls)
        };
        assert_eq!(edge(None, "new_connection"), Some(Some(10)));
        assert_eq!(edge(Some(UNRESOLVED), "fmt"), Some(Some(1)));
        assert_eq!(p.log_writes, vec![StreamWrites { stream: "Log::ID#3".into(), writes: 5 }]);
        assert_eq!(p.probe_health.map_full, 2);
        assert!(p.sampling.is_none());
    }

    #[test]
    fn calls_without_a_decodable_name_are_counted_as_unnamed() {
        let snap = MapSnapshot {
            calls: vec![(CallKey { pid: 1, _pad: 0, callee: 12345, caller: CALLER_NATIVE }, 4)],
            ..Default::default()
        };
        let p = Profile::build(target(1), &snap, &LogStreamNames::default(), None);
        assert!(p.functions.is_empty());
        assert_eq!(p.probe_health.unnamed_calls, 4);
    }

    #[test]
    fn samples_give_self_and_total_time_with_recursion_counted_once() {
        let (ev, fib) = (name_hash_bytes(b"zeek_init"), name_hash_bytes(b"fib"));
        let mut snap = MapSnapshot::default();
        snap.funcs.insert(ev, info("zeek_init", 0, 1));
        snap.funcs.insert(fib, func_info("fib", 0, 0, "/z/site/packages/math/fib.zeek", 0));
        // 30 samples in fib (recursing), 10 in zeek_init itself.
        snap.stacks.insert(1, stack(&[ev, fib, fib, fib]));
        snap.stacks.insert(2, stack(&[ev]));
        snap.samples = vec![
            (SampleKey { pid: 3, _pad: 0, stack: 1 }, 30),
            (SampleKey { pid: 3, _pad: 0, stack: 2 }, 10),
            (SampleKey { pid: 3, _pad: 0, stack: 99 }, 1),
        ];
        let natives = NativeSymbols::default();
        let ctx = SampleContext { hz: 10, natives: &natives, bias: 0, mappings: &[] };
        let p = Profile::build(target(3), &snap, &LogStreamNames::default(), Some(ctx));
        let f = |name: &str| p.functions.iter().find(|f| f.name == name).unwrap();
        assert_eq!((f("fib").self_seconds, f("fib").total_seconds), (3.0, 3.0), "recursion counted once");
        assert_eq!((f("zeek_init").self_seconds, f("zeek_init").total_seconds), (1.0, 4.0));
        let edge = p.callers.iter().find(|e| e.caller.as_deref() == Some("fib") && e.callee == "fib").unwrap();
        assert_eq!((edge.self_seconds, edge.total_seconds), (3.0, 3.0));
        assert_eq!(p.packages, vec![SourceTime { source: "math".into(), self_seconds: 3.0 }]);
        assert_eq!(p.probe_health.unnamed_samples, 1);
        let sampling = p.sampling.unwrap();
        assert_eq!(sampling.stacks.iter().map(|s| s.samples).sum::<u64>(), 40);
    }

    #[test]
    fn packages_are_directories_under_site_packages() {
        assert_eq!(package_of("/usr/local/zeek/share/zeek/site/packages/zeek-ja4/main.zeek"), Some("zeek-ja4"));
        assert_eq!(package_of("/usr/local/zeek/share/zeek/base/init-bare.zeek"), None);
    }
}
