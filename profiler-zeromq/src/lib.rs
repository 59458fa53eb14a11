//! zeek-probe's ZeroMQ side (zeek-abi.md §7): a subscriber to the companion Zeek package.
//!
//! Two feeds, each optional:
//! - **cluster**: a SUB socket that connects to the cluster's XPUB (`tcp://127.0.0.1:5555` by
//!   default, zeekctl 8.1+: `<manager>:27760`), subscribed to `zeek.probe.` only, decoding
//!   `ZeekProbe::memory_stats` events (`cluster_events`, `broker_bin`, `broker_json`);
//! - **logs**: a SUB socket that binds where the NCSA ZeroMQ log writer's PUB sockets connect,
//!   counting records per path and node and reading the companion package's
//!   `zeek_probe_memory` / `zeek_probe_stats` streams (`ncsa_logs`).
//!
//! Both feeds carry the same runs of the package; every decoder yields one model of what a
//! message says about a run (`run::RunReport`), which `memory_stats` keeps.
//!
//! Per feed, one thread only receives (`socket`) into a bounded queue, dropping and counting
//! what does not fit, and one thread decodes and aggregates (`memory_stats`, `log_counts`).
//! Every thread that touches outside input holds no capabilities (`unprivileged`), libzmq's
//! own I/O threads included. [`Feeds`] owns them all; dropping it stops them. zeek-probe's
//! exporter turns a [`Snapshot`] into Prometheus families.
pub mod broker_bin;
pub mod broker_json;
pub mod cluster_events;
pub mod counters;
pub mod curve;
#[cfg(any(test, feature = "test-support"))]
pub mod encode;
mod feeds;
pub mod log_counts;
pub mod memory_stats;
pub mod ncsa_logs;
pub mod run;
pub mod socket;
mod top_n;
mod unprivileged;

use std::time::Duration;

pub use counters::{CountersSnapshot, Reason};
pub use curve::{CurveError, CurveKeys};
pub use feeds::Feeds;
use memory_stats::NodeSnapshot;
pub use socket::SocketError;
pub use unprivileged::PrivilegeError;

/// Default reporting interval assumed for nodes (the companion package's default).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ZmqError {
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error(transparent)]
    Curve(#[from] CurveError),
    #[error("CURVE keys are for the cluster feed (--zmq-cluster); the log writer does not encrypt")]
    CurveWithoutCluster,
    #[error("--zmq-top-n must be at least 1 and --zmq-queue at least 1")]
    BadLimits,
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    #[error("the ZeroMQ thread {0} ended while starting")]
    ThreadDied(String),
}

/// What to subscribe to and how much to keep.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// The cluster's XPUB endpoint to connect to (`tcp://127.0.0.1:5555`).
    pub cluster: Option<String>,
    /// Where to bind for the NCSA log writer (`tcp://127.0.0.1:5557`).
    pub logs: Option<String>,
    /// CURVE keys for an encrypted cluster.
    pub curve: Option<CurveKeys>,
    /// Memory entries exported per node; the rest are summed into one `<other>` row.
    pub top_n: usize,
    /// Expected reporting interval; a node silent for 3 intervals (or 3 of its own observed
    /// intervals, if longer) is forgotten.
    pub interval: Duration,
    /// Messages waiting for the consumer, per feed, before new ones are dropped.
    pub queue: usize,
    /// Bytes waiting for the consumer, per feed, before new messages are dropped.
    pub queue_bytes: usize,
    /// Largest frame accepted; bigger ones are counted as malformed (`oversized`).
    pub max_frame: usize,
    /// ZMQ_RCVHWM of each SUB socket.
    pub hwm: i32,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            cluster: None,
            logs: None,
            curve: None,
            top_n: 20,
            interval: DEFAULT_INTERVAL,
            queue: 4096,
            queue_bytes: 64 << 20,
            max_frame: 4 << 20,
            hwm: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    Cluster,
    Logs,
}

impl FeedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::Cluster => "cluster",
            FeedKind::Logs => "logs",
        }
    }

    pub(crate) fn frames(self) -> usize {
        match self {
            FeedKind::Cluster => 4,
            FeedKind::Logs => 2,
        }
    }
}

/// One feed's counters, for export.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedSnapshot {
    pub kind: FeedKind,
    /// As configured; for a bound endpoint, with the port the system chose (`tcp://...:*`).
    pub endpoint: String,
    pub counters: CountersSnapshot,
    /// (path, node, records), logs feed only.
    pub log_records: Vec<(String, String, u64)>,
}

/// Everything the feeds know, at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub feeds: Vec<FeedSnapshot>,
    pub nodes: Vec<NodeSnapshot>,
}
