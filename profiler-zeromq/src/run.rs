//! What one message says about one run of the companion package on one node: the one model
//! every decoder yields. A run reaches zeek-probe over two transports, in two shapes: whole, as
//! one `ZeekProbe::memory_stats` event on the cluster feed (`cluster_events`, in broker-bin-v1 or
//! broker-json-v1), and in parts on the logs feed (`ncsa_logs`): one `zeek_probe_memory` record
//! per container, then one `zeek_probe_stats` record. `memory_stats` keeps what they say.

/// One container a run measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryEntry {
    pub module: String,
    pub variable: String,
    /// Elements (`val_footprint`), when measured.
    pub footprint: Option<u64>,
    /// Bytes, when measured.
    pub bytes: Option<u64>,
}

/// A run, or part of one, as a node reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub node: String,
    /// The run's number since the node started, from 1.
    pub run: u64,
    pub part: RunPart,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunPart {
    /// The whole run at once (the event).
    Whole {
        /// What the run cost the node (its own measurement), seconds.
        cost_seconds: f64,
        entries: Vec<MemoryEntry>,
        /// The cheap counters (`mem_bytes`, `events_dispatched`, ..., `cpu_cost_us`).
        stats: Vec<(String, f64)>,
    },
    /// One container (a `zeek_probe_memory` record).
    Entry(MemoryEntry),
    /// The run's summary, written after its entries (a `zeek_probe_stats` record).
    Summary {
        cost_seconds: Option<f64>,
        /// Every numeric field but `ts` and `run` (so `cost`, `cpu_cost`, `globals`, ...).
        stats: Vec<(String, f64)>,
    },
}
