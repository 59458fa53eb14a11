//! Types shared by zeek-probe's BPF programs (kernel side) and its user-space side.
//!
//! Everything here is `#[repr(C)]` and plain data: both sides read and write the same bytes
//! through BPF maps. The BPF side is `no_std`, so is this crate.
#![no_std]

pub mod dispatches;
pub mod layout;
pub mod maps;
pub mod name_hash;
pub mod names;
pub mod native_stacks;
pub mod samples;
pub mod stats;

pub use dispatches::{DispatchBucketKey, DispatchEventKey, DispatchKey, DispatchState, LongDispatch};
pub use layout::TargetLayout;
pub use maps::{CallKey, FuncInfo, FuncPtrKey, LogKey};
pub use samples::{SampleKey, StackKind, StackTrace};
pub use stats::{ProbeStat, StatKey};
