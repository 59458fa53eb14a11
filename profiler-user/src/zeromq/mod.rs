//! Zeek's ZeroMQ side (zeek-abi.md §7): zeek-probe as a subscriber.
//!
//! Two feeds, each optional:
//! - **cluster**: a SUB socket that connects to the cluster's XPUB (`tcp://127.0.0.1:5555` by
//!   default, zeekctl 8.1+: `<manager>:27760`), subscribed to `zeek.probe.` only, decoding
//!   `ZeekProbe::memory_stats` events (`cluster_events`, `broker_bin`, `broker_json`);
//! - **logs**: a SUB socket that binds where the NCSA ZeroMQ log writer's PUB sockets connect,
//!   counting records per path and node and reading the companion package's
//!   `zeek_probe_memory` / `zeek_probe_stats` streams (`ncsa_logs`).
//!
//! Per feed, one thread only receives (`socket`) into a bounded queue, dropping and counting
//! what does not fit, and one thread decodes and aggregates (`memory_stats`, `log_counts`).
//! [`Feeds`] owns them all; dropping it stops them. `exporter::zeromq_metrics` turns a
//! [`Snapshot`] into Prometheus families.
pub mod broker_bin;
pub mod broker_json;
pub mod cluster_events;
pub mod counters;
pub mod curve;
pub mod encode;
pub mod log_counts;
pub mod memory_stats;
pub mod ncsa_logs;
pub mod socket;

use std::{
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
        mpsc::{Receiver, RecvTimeoutError, sync_channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use counters::{Counters, Outcome};
pub use counters::{CountersSnapshot, Reason};
pub use curve::{CurveError, CurveKeys};
use log_counts::LogCounts;
use memory_stats::{Kept, MemoryStats, NodeSnapshot};
pub use socket::SocketError;
use socket::{Limits, Received, SocketConfig};

/// Default reporting interval assumed for nodes (the companion package's default).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// How often the consumer completes settled runs and expires silent nodes when idle.
const TICK: Duration = Duration::from_millis(200);

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

    fn frames(self) -> usize {
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

struct Feed {
    kind: FeedKind,
    endpoint: String,
    counters: Arc<Counters>,
    log_counts: Arc<Mutex<LogCounts>>,
}

/// What the consumers share with `families()`.
struct Shared {
    memory: Mutex<MemoryStats>,
    paused: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking consumer leaves consistent data behind (every update is a single call).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running feeds. Dropping it stops and joins every thread.
pub struct Feeds {
    feeds: Vec<Feed>,
    shared: Arc<Shared>,
    /// Tells every thread to finish.
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    // Declared last: dropped after the threads (and their sockets) are gone, as libzmq requires.
    context: zmq::Context,
}

impl Feeds {
    /// Opens the sockets and starts the threads. With neither endpoint configured, there is
    /// nothing to run and the result exports nothing.
    pub fn start(config: FeedConfig) -> Result<Self, ZmqError> {
        if config.top_n == 0 || config.queue == 0 || config.queue_bytes == 0 {
            return Err(ZmqError::BadLimits);
        }
        if config.curve.is_some() && config.cluster.is_none() {
            return Err(ZmqError::CurveWithoutCluster);
        }
        let mut feeds = Feeds {
            feeds: Vec::new(),
            shared: Arc::new(Shared {
                memory: Mutex::new(MemoryStats::new(config.top_n, config.interval)),
                paused: AtomicBool::new(false),
            }),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            context: zmq::Context::new(),
        };
        // On an error below, `feeds` is dropped: whatever already started is stopped.
        if let Some(endpoint) = &config.cluster {
            let socket = SocketConfig {
                endpoint: endpoint.clone(),
                bind: false,
                subscribe: cluster_events::TOPIC_PREFIX.as_bytes().to_vec(),
                hwm: config.hwm,
                max_frame: config.max_frame,
                curve: config.curve.clone(),
            };
            feeds.add(FeedKind::Cluster, &socket, &config)?;
        }
        if let Some(endpoint) = &config.logs {
            let socket = SocketConfig {
                endpoint: endpoint.clone(),
                bind: true,
                subscribe: Vec::new(),
                hwm: config.hwm,
                max_frame: config.max_frame,
                curve: None,
            };
            feeds.add(FeedKind::Logs, &socket, &config)?;
        }
        Ok(feeds)
    }

    fn add(&mut self, kind: FeedKind, socket_config: &SocketConfig, config: &FeedConfig) -> Result<(), ZmqError> {
        let (socket, endpoint) = socket::open(&self.context, socket_config)?;
        let (tx, rx) = sync_channel(config.queue);
        let counters = Arc::new(Counters::default());
        let log_counts = Arc::new(Mutex::new(LogCounts::default()));
        let limits = Limits {
            frames: kind.frames(),
            max_frame: config.max_frame,
            queue: config.queue,
            queue_bytes: config.queue_bytes,
        };
        let name = format!("zmq-{}-rx", kind.as_str());
        self.threads.push(socket::spawn_receiver(name, socket, tx, counters.clone(), limits, self.stop.clone())?);
        let consumer = Consumer { kind, rx, counters: counters.clone(), log_counts: log_counts.clone() };
        let (shared, stop) = (self.shared.clone(), self.stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("zmq-{}-decode", kind.as_str()))
            .spawn(move || consumer.run(&shared, &stop))
            .map_err(SocketError::Thread)?;
        self.threads.push(thread);
        self.feeds.push(Feed { kind, endpoint, counters, log_counts });
        Ok(())
    }

    /// The endpoints in use (bound ones resolved), by feed.
    pub fn endpoints(&self) -> Vec<(FeedKind, String)> {
        self.feeds.iter().map(|f| (f.kind, f.endpoint.clone())).collect()
    }

    pub fn snapshot(&self) -> Snapshot {
        let nodes = {
            let mut memory = lock(&self.shared.memory);
            memory.tick(Instant::now());
            memory.snapshot()
        };
        let feeds = self
            .feeds
            .iter()
            .map(|f| FeedSnapshot {
                kind: f.kind,
                endpoint: f.endpoint.clone(),
                counters: f.counters.snapshot(),
                log_records: lock(&f.log_counts).snapshot(),
            })
            .collect();
        Snapshot { feeds, nodes }
    }

    /// The feeds' metrics (see `exporter::zeromq_metrics`).
    pub fn families(&self) -> Vec<prometheus::proto::MetricFamily> {
        crate::exporter::zeromq_metrics::families(&self.snapshot())
    }

    /// Stops (or resumes) the consumers while the receivers go on: for tests of what a
    /// subscriber that falls behind does.
    #[doc(hidden)]
    pub fn pause_consumers(&self, paused: bool) {
        self.shared.paused.store(paused, Ordering::Relaxed);
    }
}

impl Drop for Feeds {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            // A panicked thread has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

/// Decodes one feed's messages and updates the shared state.
struct Consumer {
    kind: FeedKind,
    rx: Receiver<Received>,
    counters: Arc<Counters>,
    log_counts: Arc<Mutex<LogCounts>>,
}

impl Consumer {
    fn run(self, shared: &Shared, stop: &AtomicBool) {
        let mut last_tick = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if shared.paused.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            match self.rx.recv_timeout(TICK) {
                Ok(message) => {
                    self.counters.dequeued(message.bytes);
                    let outcome = self.handle(&message.frames, &shared.memory);
                    self.counters.outcome(outcome);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                lock(&shared.memory).tick(last_tick);
            }
        }
    }

    fn handle(&self, frames: &[Vec<u8>], memory: &Mutex<MemoryStats>) -> Outcome {
        let now = Instant::now();
        let kept = match self.kind {
            FeedKind::Cluster => {
                let message = match cluster_events::decode(frames) {
                    Ok(message) => message,
                    Err(e) => return Outcome::Malformed(e.reason()),
                };
                if message.event.name != cluster_events::MEMORY_STATS_EVENT {
                    // Another event on our topics: well-formed, nothing to do with it.
                    return Outcome::Decoded;
                }
                let report = match cluster_events::memory_report(&message.event) {
                    Ok(report) => report,
                    Err(e) => return Outcome::Malformed(e.reason()),
                };
                let counters = report.counters.into_iter().map(|(name, n)| (name, n as f64));
                lock(memory).report(&report.node, report.run, report.cost_seconds, report.entries, counters, now)
            }
            FeedKind::Logs => {
                let log = match ncsa_logs::parse(frames) {
                    Ok(log) => log,
                    Err(e) => return Outcome::Malformed(e.reason()),
                };
                lock(&self.log_counts).count(&log.path, log.record.node());
                match log.record {
                    ncsa_logs::Record::Memory { node, run, entry } => lock(memory).row(&node, run, entry, now),
                    ncsa_logs::Record::Stats { node, run, cost_seconds, stats } => {
                        lock(memory).stats(&node, run, cost_seconds, stats, now)
                    }
                    ncsa_logs::Record::Other { .. } => Kept::Yes,
                }
            }
        };
        match kept {
            Kept::Yes => Outcome::Decoded,
            Kept::NodeLimit => Outcome::Dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exporter shares the feeds with its HTTP server's threads.
    #[test]
    fn feeds_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Feeds>();
    }
}
