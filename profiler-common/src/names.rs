//! Names by which user space finds the BPF object's maps and programs. The BPF side names
//! them by its statics and functions (aya takes the identifier), so the names are written
//! there once more; user space checks the embedded object against this list in its tests.

/// Per-process layouts and runtime addresses: registering a PID makes it a target.
pub const TARGETS: &str = "TARGETS";
/// Calls per caller→callee edge.
pub const CALLS: &str = "CALLS";
/// Names of functions seen, by name hash.
pub const FUNCS: &str = "FUNCS";
/// Writes per log stream.
pub const LOG_WRITES: &str = "LOG_WRITES";
/// The probes' own health counters.
pub const STATS: &str = "STATS";
/// CPU samples per stack.
pub const SAMPLES: &str = "SAMPLES";
/// Sampled stacks, by stack hash.
pub const STACKS: &str = "STACKS";
/// Name hashes of function objects already read, so a hot function's name is hashed once.
pub const FUNC_HASHES: &str = "FUNC_HASHES";
/// Holds the frame-walking step the sampler tail-calls, at `SAMPLE_STEP_SLOT`.
pub const SAMPLE_STEPS: &str = "SAMPLE_STEPS";
pub const SAMPLE_STEP_SLOT: u32 = 0;
/// ...and the program that counts the sample (and copies its native stack), at this slot.
pub const SAMPLE_FINISH_SLOT: u32 = 1;
/// Sampled threads' user stacks and registers, for user space to unwind (`native_stacks`).
pub const NATIVE_STACKS: &str = "NATIVE_STACKS";
/// The event dispatch in progress per process (user space deletes a forgotten process's).
pub const DISPATCH_STATE: &str = "DISPATCH_STATE";
/// Finished long dispatches, by (pid, dispatch counter).
pub const LONG_DISPATCHES: &str = "LONG_DISPATCHES";
/// Long dispatches per (pid, histogram bucket, event).
pub const DISPATCH_BUCKETS: &str = "DISPATCH_BUCKETS";
/// Durations of long dispatches added up per (pid, event), ns: the histogram's sum.
pub const DISPATCH_NANOS: &str = "DISPATCH_NANOS";
/// The sampler's period in ns, a global of the BPF object set at load.
pub const SAMPLE_PERIOD_NS: &str = "SAMPLE_PERIOD_NS";
/// Most user stack bytes copied per native stack record, a global set at load (0: none).
pub const NATIVE_STACK_BYTES: &str = "NATIVE_STACK_BYTES";
/// Byte offset of `thread.fsbase` in the kernel's `task_struct`, a global set at load from the
/// kernel's BTF (0: unknown, other threads' native stacks are not copied).
pub const TASK_FSBASE_OFFSET: &str = "TASK_FSBASE_OFFSET";

/// Counts one call per caller→callee edge, on the `Invoke` entries.
pub const FUNC_INVOKE: &str = "func_invoke";
/// Does nothing: the kernel's uprobe floor, for benchmarks.
pub const EMPTY_PROBE: &str = "empty_probe";
/// Counts writes per log stream, on `Manager::Write`.
pub const LOG_WRITE: &str = "log_write";
/// The CPU sampler, on a perf event per CPU.
pub const CPU_SAMPLE: &str = "cpu_sample";
/// Walks a few script frames per run, tail-calling itself through `SAMPLE_STEPS`.
pub const SAMPLE_FRAMES: &str = "sample_frames";
/// Counts a sample under its stack and copies its native stack, tail-called at the end.
pub const SAMPLE_FINISH: &str = "sample_finish";

/// Every map user space reads, fills or sizes.
pub const MAPS: [&str; 14] = [
    TARGETS,
    CALLS,
    FUNCS,
    LOG_WRITES,
    STATS,
    SAMPLES,
    STACKS,
    FUNC_HASHES,
    SAMPLE_STEPS,
    DISPATCH_STATE,
    LONG_DISPATCHES,
    DISPATCH_BUCKETS,
    DISPATCH_NANOS,
    NATIVE_STACKS,
];
/// Every uprobe program, loaded up front.
pub const UPROBES: [&str; 3] = [FUNC_INVOKE, EMPTY_PROBE, LOG_WRITE];
/// Every perf event program, loaded up front.
pub const PERF_EVENTS: [&str; 3] = [CPU_SAMPLE, SAMPLE_FRAMES, SAMPLE_FINISH];
