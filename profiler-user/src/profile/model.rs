//! What a profile says about one target: the rows `record` reports and `attach` exports.
use serde::Serialize;

use crate::symbolize::{FuncKind, StackFrame};

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
    /// How its uprobes are attached: multi-uprobe links (6.6+) or a perf event per point.
    pub uprobe_links: crate::probes::uprobe_multi::UprobeLinkKind,
    /// The CPU sampling rate, when sampling.
    pub sample_hz: Option<u64>,
    /// ZAM-compiled scripts: inlined functions' time lands in their callers.
    pub zam: bool,
    /// Why long event dispatches are not measured (`None`: they are, see the profile's
    /// `long_dispatches`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long_dispatches_unavailable: Option<String>,
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

/// Sampled CPU time of one Zeek component (`symbolize::component`), inclusive: a sample counts
/// once in every component on its stack, so components overlap (a log write from a script is
/// in both) and do not add up to the total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentTime {
    pub component: String,
    pub seconds: f64,
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
    /// Native stack records dropped for a full ring (their samples named by the leaf).
    pub native_stacks_dropped: u64,
    /// Samples the sampler could not count (its last tail call failed).
    pub samples_lost: u64,
    /// Samples of threads other than the main one whose stack end (FS base) did not fit their
    /// stack: no stack copied, named by their thread.
    pub thread_stack_end_unknown: u64,
    /// Counted calls whose function name could not be decoded in user space.
    pub unnamed_calls: u64,
    /// Samples whose stack could not be decoded.
    pub unnamed_samples: u64,
    /// Samples whose native frames and script frames disagree on the number of calls
    /// (caught mid-call): both kept, the unmatched script frames at the innermost `Invoke`.
    pub mismatched_stacks: u64,
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
    /// How many samples have unwound native stacks.
    pub native_stacks: NativeStackShare,
}

fn native_share<S: serde::Serializer>(sampling: &Option<Sampling>, out: S) -> Result<S::Ok, S::Error> {
    sampling.as_ref().map(|s| s.native_stacks).serialize(out)
}

/// The samples with full native stacks; the rest name native code by its leaf.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NativeStackShare {
    /// Whether native stacks were copied at all (`--native-stacks on`)...
    pub enabled: bool,
    /// ...and for the threads other than the main one too: their stack ends at their FS base,
    /// found in the kernel's `task_struct` through its BTF (false: the kernel has none, or
    /// it lacks `thread.fsbase`).
    pub thread_stacks: bool,
    /// The main thread's samples; `to_root` counts those unwound up to `main`.
    #[serde(flatten, serialize_with = "main_thread_share")]
    pub main_thread: StackShare,
    /// The other threads' samples; `to_root` counts those unwound up to libc's thread start.
    pub threads: StackShare,
}

/// Of some samples, how many have unwound native stacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StackShare {
    pub samples: u64,
    /// Of them, with an unwound native stack...
    pub unwound: u64,
    /// ...unwound up to their thread's root.
    pub to_root: u64,
}

impl NativeStackShare {
    /// Adds another process's share (several targets in one profile).
    pub fn add(&mut self, other: &Self) {
        self.enabled |= other.enabled;
        self.thread_stacks |= other.thread_stacks;
        self.main_thread.add(&other.main_thread);
        self.threads.add(&other.threads);
    }
}

impl StackShare {
    fn add(&mut self, other: &Self) {
        self.samples += other.samples;
        self.unwound += other.unwound;
        self.to_root += other.to_root;
    }
}

/// The main thread's share as summary.json has always said it: `samples`, `unwound`, `to_main`.
fn main_thread_share<S: serde::Serializer>(share: &StackShare, out: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = out.serialize_map(Some(3))?;
    map.serialize_entry("samples", &share.samples)?;
    map.serialize_entry("unwound", &share.unwound)?;
    map.serialize_entry("to_main", &share.to_root)?;
    map.end()
}

/// The long event dispatches of one target, measured by sampling: a dispatch's duration is
/// the time from its first main-thread sample to its last plus one sample period (accurate to
/// one period), and dispatches shorter than `min_periods` periods are not recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LongDispatches {
    pub period_seconds: f64,
    pub min_periods: u32,
    /// The histogram's upper bounds (past the last: +Inf).
    pub bucket_bounds_seconds: Vec<f64>,
    /// Per event, by name.
    pub events: Vec<DispatchHistogram>,
    /// The longest dispatches, longest first.
    pub longest: Vec<LongDispatchRow>,
}

/// One event's long dispatches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DispatchHistogram {
    pub event: String,
    /// Dispatches per bucket (not cumulative), one more than the bounds: +Inf last.
    pub bucket_counts: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

/// One long dispatch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LongDispatchRow {
    pub event: String,
    /// Zeek's dispatch counter while it ran: which dispatch of the process it was.
    pub seq: u64,
    pub seconds: f64,
    pub samples: u32,
    /// The stack sampled most in it, root first, and its samples.
    pub top_stack: Vec<StackFrame>,
    pub top_stack_samples: u32,
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
    /// Sampled inclusive time per Zeek component, busiest first (empty without sampling).
    pub components: Vec<ComponentTime>,
    /// The sampled stacks themselves (written as folded stacks, flame graph and pprof); in
    /// summary.json only the share of them with native stacks, as `native_stacks`.
    #[serde(rename = "native_stacks", serialize_with = "native_share", skip_serializing_if = "Option::is_none")]
    pub sampling: Option<Sampling>,
    /// Sampling of a Zeek whose dispatches can be told apart (7.2+) only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long_dispatches: Option<LongDispatches>,
    pub probe_health: ProbeHealth,
}
