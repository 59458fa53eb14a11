//! The running Zeek process: who it is, reading its memory, and starting one under our control.
pub mod discovery;
pub mod launch;
pub mod mappings;
pub mod memory;
pub mod node;
pub mod process;
pub mod stats;

pub use launch::{LaunchError, Tracee};
pub use memory::{MemoryError, TargetMemory};
pub use process::{ProcessError, ProcessInfo};
