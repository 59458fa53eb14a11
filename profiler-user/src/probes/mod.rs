//! The BPF side as seen from user space: loading the embedded programs, attaching them to a
//! Zeek binary for one process, and handing out the maps they fill.
pub mod kernel_features;
pub mod loader;
pub mod privileges;

pub use loader::{ProbeError, Probes};
