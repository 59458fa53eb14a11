//! zeek-probe: an external eBPF profiler for unmodified Zeek processes.
//!
//! The data flows through the modules in this order:
//! `binary` (what the Zeek executable is: version, symbols, layout, probe points) →
//! `target` (the running process: identity, memory, launching one under our control) →
//! `probes` (BPF programs attached at the probe points, filling BPF maps) →
//! `collect` (draining the maps into raw counts) →
//! `symbolize` (turning hashes, ordinals and pointers into names) →
//! `profile` (the symbolised result) → `report` (files and tables) / `exporter` (Prometheus).
//!
//! With the `zmq` feature (default), `attach` also subscribes to the companion package over
//! ZeroMQ: the `profiler-zeromq` crate, exported beside the probes' metrics.
pub mod binary;
pub mod cli;
pub mod commands;
pub mod exporter;
pub mod output;
pub mod probes;
pub mod profile;
pub mod report;
pub mod session;
pub mod symbolize;
pub mod target;
pub mod target_set;
