//! The BPF maps user space fills (target registrations) and reads (counts, names, stacks).
use std::collections::HashMap as StdHashMap;

use aya::{
    Ebpf,
    maps::{HashMap, MapData, RingBuf},
};
use profiler_common::{
    CallKey, DispatchBucketKey, DispatchEventKey, DispatchKey, DispatchState, FuncInfo, LogKey, LongDispatch,
    SampleKey, StackTrace, StatKey, TargetLayout, names,
};

use super::ProbeError;
use crate::unwind::{NativeStackCollector, NativeStackTable};

/// Everything the maps hold at one moment.
#[derive(Debug, Default, Clone)]
pub struct MapSnapshot {
    pub calls: Vec<(CallKey, u64)>,
    pub funcs: StdHashMap<u64, FuncInfo>,
    pub log_writes: Vec<(LogKey, u64)>,
    pub stats: Vec<(StatKey, u64)>,
    pub samples: Vec<(SampleKey, u64)>,
    pub stacks: StdHashMap<u64, StackTrace>,
    /// Finished long dispatches, their histogram counts and samples per event.
    pub long_dispatches: Vec<(DispatchKey, LongDispatch)>,
    pub dispatch_buckets: Vec<(DispatchBucketKey, u64)>,
    pub dispatch_nanos: Vec<(DispatchEventKey, u64)>,
    /// The sampled threads' native stacks, unwound in user space (empty when not copied).
    pub native_stacks: NativeStackTable,
}

pub struct ProbeMaps {
    targets: HashMap<MapData, u32, TargetLayout>,
    calls: HashMap<MapData, CallKey, u64>,
    funcs: HashMap<MapData, u64, FuncInfo>,
    log_writes: HashMap<MapData, LogKey, u64>,
    stats: HashMap<MapData, StatKey, u64>,
    samples: HashMap<MapData, SampleKey, u64>,
    stacks: HashMap<MapData, u64, StackTrace>,
    dispatch_state: HashMap<MapData, u32, DispatchState>,
    long_dispatches: HashMap<MapData, DispatchKey, LongDispatch>,
    dispatch_buckets: HashMap<MapData, DispatchBucketKey, u64>,
    dispatch_nanos: HashMap<MapData, DispatchEventKey, u64>,
}

fn take<K: aya::Pod, V: aya::Pod>(ebpf: &mut Ebpf, name: &'static str) -> Result<HashMap<MapData, K, V>, ProbeError> {
    let map = ebpf.take_map(name).ok_or(ProbeError::Missing { what: "map", name })?;
    HashMap::try_from(map).map_err(|source| ProbeError::Map { map: name, source })
}

/// Starts unwinding what the sampler sends through the native stack ring.
pub fn native_stack_collector(ebpf: &mut Ebpf) -> Result<NativeStackCollector, ProbeError> {
    let name = names::NATIVE_STACKS;
    let map = ebpf.take_map(name).ok_or(ProbeError::Missing { what: "map", name })?;
    let ring = RingBuf::try_from(map).map_err(|source| ProbeError::Map { map: name, source })?;
    NativeStackCollector::start(ring).map_err(|source| ProbeError::Thread { source })
}

/// Deletes every key of `map` that `is_pid` claims.
fn remove_pid<K: aya::Pod, V: aya::Pod>(map: &mut HashMap<MapData, K, V>, is_pid: impl Fn(&K) -> bool) {
    let keys: Vec<K> = map.keys().filter_map(Result::ok).filter(|k| is_pid(k)).collect();
    for key in keys {
        let _ = map.remove(&key);
    }
}

impl ProbeMaps {
    /// Takes the maps out of the loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, ProbeError> {
        Ok(Self {
            targets: take(ebpf, names::TARGETS)?,
            calls: take(ebpf, names::CALLS)?,
            funcs: take(ebpf, names::FUNCS)?,
            log_writes: take(ebpf, names::LOG_WRITES)?,
            stats: take(ebpf, names::STATS)?,
            samples: take(ebpf, names::SAMPLES)?,
            stacks: take(ebpf, names::STACKS)?,
            dispatch_state: take(ebpf, names::DISPATCH_STATE)?,
            long_dispatches: take(ebpf, names::LONG_DISPATCHES)?,
            dispatch_buckets: take(ebpf, names::DISPATCH_BUCKETS)?,
            dispatch_nanos: take(ebpf, names::DISPATCH_NANOS)?,
        })
    }

    /// Makes `pid` a target: the programs count its hits from now on, read with `layout`.
    pub fn register(&mut self, pid: u32, layout: TargetLayout) -> Result<(), ProbeError> {
        self.targets.insert(pid, layout, 0).map_err(|source| ProbeError::Map { map: names::TARGETS, source })
    }

    /// The programs ignore `pid` from now on; its counts stay.
    pub fn unregister(&mut self, pid: u32) {
        let _ = self.targets.remove(&pid);
    }

    /// Deletes `pid`'s counts (names and stacks, shared by all, stay).
    pub fn forget(&mut self, pid: u32) {
        remove_pid(&mut self.calls, |k| k.pid == pid);
        remove_pid(&mut self.log_writes, |k| k.pid == pid);
        remove_pid(&mut self.stats, |k| k.pid == pid);
        remove_pid(&mut self.samples, |k| k.pid == pid);
        remove_pid(&mut self.dispatch_state, |k| *k == pid);
        remove_pid(&mut self.long_dispatches, |k| k.pid == pid);
        remove_pid(&mut self.dispatch_buckets, |k| k.pid == pid);
        remove_pid(&mut self.dispatch_nanos, |k| k.pid == pid);
    }

    /// Copies every map. Counters are cumulative: nothing is reset.
    pub fn snapshot(&self) -> MapSnapshot {
        MapSnapshot {
            calls: self.calls.iter().filter_map(Result::ok).collect(),
            funcs: self.funcs.iter().filter_map(Result::ok).collect(),
            log_writes: self.log_writes.iter().filter_map(Result::ok).collect(),
            stats: self.stats.iter().filter_map(Result::ok).collect(),
            samples: self.samples.iter().filter_map(Result::ok).collect(),
            stacks: self.stacks.iter().filter_map(Result::ok).collect(),
            long_dispatches: self.long_dispatches.iter().filter_map(Result::ok).collect(),
            dispatch_buckets: self.dispatch_buckets.iter().filter_map(Result::ok).collect(),
            dispatch_nanos: self.dispatch_nanos.iter().filter_map(Result::ok).collect(),
            native_stacks: NativeStackTable::default(),
        }
    }

    /// The log streams written so far: all that naming needs while processes run, without
    /// copying the stacks and counts.
    pub fn log_write_keys(&self) -> Vec<LogKey> {
        self.log_writes.keys().filter_map(Result::ok).collect()
    }
}
