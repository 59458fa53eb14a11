//! Native stacks without frame pointers, the design of `perf --call-graph dwarf`: the sampler
//! copies a sample's user registers and the top of its stack into a ring buffer
//! (`profiler_common::native_stacks`); here a thread drains it on a timer (`ring`), unwinds each
//! record with the `.eh_frame` of the binary and libraries the address is in (`binary_unwind_data`,
//! shared by every process running a file; `process_unwinder`, one per process from its
//! /proc/PID/maps) and counts the return addresses per (process, script stack, native frames)
//! (`table`), so memory follows distinct stacks, not samples. `StackDecoder::splice` then names
//! the frames and splices the main thread's script frames into them. One unwinder serves all
//! of a process's threads: they share its address space, and each record carries its own
//! registers and stack bytes.
pub mod binary_unwind_data;
pub mod collector;
pub mod process_unwinder;
pub mod ring;
pub mod table;

use std::time::Duration;

pub use collector::{NativeStackCollector, NewAddresses};
pub use profiler_common::native_stacks::USER_STACK_MAX;
pub use table::NativeStackTable;

/// User stack bytes copied per sample by default: what a real Zeek 8.2.2's main
/// thread needs to unwind to `main` in ≥ 95 % of its samples (measured on a replay, see the
/// native_stacks e2e tests).
pub const DEFAULT_STACK_BYTES: u32 = 16 * 1024;
/// How often the ring is drained. Its default size holds ~5 periods of one busy target.
pub const DRAIN_PERIOD: Duration = Duration::from_millis(20);
/// Deepest native stack kept; deeper ones keep their innermost frames.
pub const MAX_NATIVE_DEPTH: usize = 128;
