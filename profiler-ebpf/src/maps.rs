//! The maps shared with user space (looked up there by these names, which
//! `profiler_common::names` lists) and the counting helper every program uses.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::bpf_get_current_pid_tgid,
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray},
};
use profiler_common::{
    CallKey, DispatchBucketKey, DispatchEventKey, DispatchKey, DispatchState, FuncInfo, FuncPtrKey, LogKey,
    LongDispatch, ProbeStat, SampleKey, StackTrace, StatKey, TargetLayout,
};

/// Layout and vtables per target PID, written by user space before attaching.
#[map]
pub static TARGETS: HashMap<u32, TargetLayout> = HashMap::with_max_entries(1024, 0);

/// Calls per (pid, callee, caller) edge.
#[map]
pub static CALLS: HashMap<CallKey, u64> = HashMap::with_max_entries(65536, 0);

/// Function name, kind and flavor per name hash, recorded the first time a hash is counted.
#[map]
pub static FUNCS: HashMap<u64, FuncInfo> = HashMap::with_max_entries(32768, 0);

/// Name hash of each function object seen entering `Invoke` (see `funcs::remember_hash`).
#[map]
pub static FUNC_HASHES: LruHashMap<FuncPtrKey, u64> = LruHashMap::with_max_entries(16384, 0);

/// CPU samples per (pid, stack hash).
#[map]
pub static SAMPLES: HashMap<SampleKey, u64> = HashMap::with_max_entries(65536, 0);

/// Each distinct stack, by its hash, recorded the first time it is sampled.
#[map]
pub static STACKS: HashMap<u64, StackTrace> = HashMap::with_max_entries(65536, 0);

/// Per-CPU room to assemble a `StackTrace` (larger than the BPF stack).
#[map]
pub static STACK_SCRATCH: PerCpuArray<StackTrace> = PerCpuArray::with_max_entries(1, 0);

/// Writes per (pid, Log::ID enum type, ordinal).
#[map]
pub static LOG_WRITES: HashMap<LogKey, u64> = HashMap::with_max_entries(4096, 0);

/// The probes' own health counters per (pid, `ProbeStat`).
#[map]
pub static STATS: HashMap<StatKey, u64> = HashMap::with_max_entries(4096, 0);

/// The event dispatch in progress on each target's main thread, per PID (as many as `TARGETS`).
#[map]
pub static DISPATCH_STATE: HashMap<u32, DispatchState> = HashMap::with_max_entries(1024, 0);

/// Finished dispatches of `MIN_LONG_DISPATCH_PERIODS` sample periods or more, per (pid, counter).
#[map]
pub static LONG_DISPATCHES: HashMap<DispatchKey, LongDispatch> = HashMap::with_max_entries(1024, 0);

/// Long dispatches per (pid, histogram bucket, event).
#[map]
pub static DISPATCH_BUCKETS: HashMap<DispatchBucketKey, u64> = HashMap::with_max_entries(1024, 0);

/// Durations of long dispatches added up per (pid, event), ns.
#[map]
pub static DISPATCH_NANOS: HashMap<DispatchEventKey, u64> = HashMap::with_max_entries(256, 0);

/// Per-CPU room to assemble a `FuncInfo` (too large for the 512-byte BPF stack with the rest).
#[map]
pub static FUNC_SCRATCH: PerCpuArray<FuncInfo> = PerCpuArray::with_max_entries(1, 0);

/// The current process's id and layout, if it is a target (the PID filter of every program).
#[inline(always)]
pub fn current_target() -> Option<(u32, &'static TargetLayout)> {
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: read-only use of the map value while the program runs.
    let layout = unsafe { TARGETS.get(&pid) }?;
    Some((pid, layout))
}

/// Counts a health event for the current process. Only on error paths: it costs a lookup.
#[inline(always)]
pub fn bump(stat: ProbeStat) {
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let key = StatKey { pid, stat: stat as u32 };
    if !increment_existing(&STATS, &key) {
        // A full STATS map has nowhere to count itself; the event is lost.
        let _ = STATS.insert(&key, &1, BPF_NOEXIST as u64);
    }
}

/// Adds one to `map[key]` if the entry exists; returns whether it did.
#[inline(always)]
pub fn increment_existing<K>(map: &HashMap<K, u64>, key: &K) -> bool {
    add_existing(map, key, 1)
}

/// Adds `n` to `map[key]` if the entry exists; returns whether it did.
#[inline(always)]
pub fn add_existing<K>(map: &HashMap<K, u64>, key: &K, n: u64) -> bool {
    match map.get_ptr_mut(key) {
        Some(count) => {
            // SAFETY: the pointer comes from the map and stays valid while we run; the
            // atomic add (BPF has no compare-and-swap, so no core::sync::atomic) keeps
            // concurrent hits from other CPUs exact.
            unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(count, n) };
            true
        }
        None => false,
    }
}

/// Adds one to `map[key]`, creating the entry; counts a `MapFull` when it cannot be stored.
#[inline(always)]
pub fn increment<K>(map: &HashMap<K, u64>, key: &K) {
    add(map, key, 1)
}

/// Adds `n` to `map[key]`, creating the entry; counts a `MapFull` when it cannot be stored.
#[inline(always)]
pub fn add<K>(map: &HashMap<K, u64>, key: &K, n: u64) {
    if add_existing(map, key, n) {
        return;
    }
    if map.insert(key, &n, BPF_NOEXIST as u64).is_ok() {
        return;
    }
    // Another CPU may have created it between our lookup and insert.
    if !add_existing(map, key, n) {
        bump(ProbeStat::MapFull);
    }
}
