//! The running feeds: per feed, a receiving and a decoding thread, both without capabilities.
use std::{
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
        mpsc::{Receiver, RecvTimeoutError, sync_channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    FeedConfig, FeedKind, FeedSnapshot, Snapshot, ZmqError, cluster_events,
    counters::{Counters, Outcome},
    log_counts::LogCounts,
    memory_stats::{Kept, MemoryStats},
    ncsa_logs,
    socket::{self, Limits, Received, SocketConfig},
    unprivileged,
};

/// How often the consumer completes settled runs and expires silent nodes when idle.
const TICK: Duration = Duration::from_millis(200);

struct Feed {
    kind: FeedKind,
    endpoint: String,
    counters: Arc<Counters>,
    log_counts: Arc<Mutex<LogCounts>>,
}

/// What the consumers share with `snapshot()`.
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
            feeds.add(FeedKind::Cluster, socket, &config)?;
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
            feeds.add(FeedKind::Logs, socket, &config)?;
        }
        Ok(feeds)
    }

    fn add(&mut self, kind: FeedKind, socket_config: SocketConfig, config: &FeedConfig) -> Result<(), ZmqError> {
        let (tx, rx) = sync_channel(config.queue);
        let counters = Arc::new(Counters::default());
        let log_counts = Arc::new(Mutex::new(LogCounts::default()));
        let limits = Limits {
            frames: kind.frames(),
            max_frame: config.max_frame,
            queue: config.queue,
            queue_bytes: config.queue_bytes,
        };
        let context = self.context.clone();
        let (receiving, stop) = (counters.clone(), self.stop.clone());
        let (receiver, endpoint) = unprivileged::spawn(
            format!("zmq-{}-rx", kind.as_str()),
            move || Ok(socket::open(&context, &socket_config)?),
            move |socket| socket::receive_until_stopped(&socket, &tx, &receiving, limits, &stop),
        )?;
        self.threads.push(receiver);
        let consumer = Consumer { kind, rx, counters: counters.clone(), log_counts: log_counts.clone() };
        let (shared, stop) = (self.shared.clone(), self.stop.clone());
        let (decoder, ()) = unprivileged::spawn(
            format!("zmq-{}-decode", kind.as_str()),
            || Ok(((), ())),
            move |()| consumer.run(&shared, &stop),
        )?;
        self.threads.push(decoder);
        self.feeds.push(Feed { kind, endpoint, counters, log_counts });
        Ok(())
    }

    /// The endpoints in use (bound ones resolved), by feed.
    pub fn endpoints(&self) -> Vec<(FeedKind, String)> {
        self.feeds.iter().map(|f| (f.kind, f.endpoint.clone())).collect()
    }

    /// The counters are read before the nodes: a message is applied to the nodes before it is
    /// counted, so every message counted is in the nodes read (read the other way round, a
    /// scrape could count messages decoded whose rows it did not show).
    pub fn snapshot(&self) -> Snapshot {
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
        let nodes = {
            let mut memory = lock(&self.shared.memory);
            memory.tick(Instant::now());
            memory.snapshot()
        };
        Snapshot { feeds, nodes }
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
        let report = match self.kind {
            FeedKind::Cluster => {
                let message = match cluster_events::decode(frames) {
                    Ok(message) => message,
                    Err(e) => return Outcome::Malformed(e.reason()),
                };
                if message.event.name != cluster_events::MEMORY_STATS_EVENT {
                    // Another event on our topics: well-formed, nothing to do with it.
                    return Outcome::Decoded;
                }
                match cluster_events::memory_report(&message.event) {
                    Ok(report) => report,
                    Err(e) => return Outcome::Malformed(e.reason()),
                }
            }
            FeedKind::Logs => {
                let log = match ncsa_logs::parse(frames) {
                    Ok(log) => log,
                    Err(e) => return Outcome::Malformed(e.reason()),
                };
                lock(&self.log_counts).count(&log.path, log.record.node());
                match log.record {
                    ncsa_logs::Record::Run(report) => report,
                    ncsa_logs::Record::Other { .. } => return Outcome::Decoded,
                }
            }
        };
        match lock(memory).apply(report, Instant::now()) {
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
