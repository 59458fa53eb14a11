//! libzmq SUB sockets and the thread that drains one.
//!
//! The cluster's XPUB proxy does not drop for a slow subscriber (zeek-abi.md §7): a subscriber
//! that stops reading can stall the cluster. So the receiving thread does nothing but receive
//! and hand each message to a bounded queue; when the queue (by count or by bytes) is full the
//! message is dropped and counted. Decoding happens on another thread. Frame sizes and counts
//! are bounded before anything is queued, and ZMQ_MAXMSGSIZE makes libzmq itself refuse (by
//! disconnecting the peer) frames far above the limit before it allocates them.
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc::{SyncSender, TrySendError},
    },
    time::Duration,
};

use super::{
    counters::{Counters, Outcome, Reason},
    curve::{self, CurveKeys},
};

/// How long the receiver waits for a message before looking at the stop flag again.
const POLL_INTERVAL_MS: i64 = 100;
/// Messages taken per wake-up before polling (and checking the stop flag) again.
const DRAIN_BATCH: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("invalid ZeroMQ endpoint {endpoint:?}: {reason}; use tcp://HOST:PORT or ipc:///PATH")]
    BadEndpoint { endpoint: String, reason: &'static str },
    #[error("cannot bind {endpoint}: {error}; {}", bind_hint(*error))]
    Bind { endpoint: String, error: zmq::Error },
    #[error("cannot connect to {endpoint}: {error}; check the endpoint (tcp://HOST:PORT of the cluster's XPUB)")]
    Connect { endpoint: String, error: zmq::Error },
    #[error("cannot set up a ZeroMQ socket for {endpoint} ({what}): {error}")]
    Setup { endpoint: String, what: &'static str, error: zmq::Error },
    #[error("cannot start the ZeroMQ receiving thread: {0}")]
    Thread(std::io::Error),
}

/// What to do when binding failed for `error`.
fn bind_hint(error: zmq::Error) -> &'static str {
    match error {
        zmq::Error::EADDRINUSE => "another process is bound to it: choose a free port",
        // libzmq binds to a host name only if it names a local interface.
        zmq::Error::ENODEV | zmq::Error::EADDRNOTAVAIL => {
            "the host is not an address of this machine: bind to one of its IP addresses, an interface name or *"
        }
        zmq::Error::EACCES => "not allowed: choose a port above 1023 or a path zeek-probe can write to",
        _ => "choose a free address or port of this machine",
    }
}

/// One SUB socket: where, which way, and its limits.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    pub endpoint: String,
    /// Bind (the log writer's PUB sockets connect to us) or connect (to the cluster's XPUB).
    pub bind: bool,
    /// Topic prefix to subscribe to (empty: everything).
    pub subscribe: Vec<u8>,
    /// ZMQ_RCVHWM: messages libzmq buffers for us before it stops reading the connection.
    pub hwm: i32,
    /// Largest frame kept; bigger frames are counted as oversized and discarded.
    pub max_frame: usize,
    pub curve: Option<CurveKeys>,
}

impl SocketConfig {
    /// ZMQ_MAXMSGSIZE: a frame above this makes libzmq drop the connection instead of
    /// allocating it. Frames between `max_frame` and this are received, counted and discarded.
    pub fn hard_frame_limit(&self) -> i64 {
        (self.max_frame as i64).saturating_mul(4).clamp(1 << 16, 1 << 30)
    }
}

/// Checks the endpoint's form before libzmq sees it, for a clear message.
pub fn validate_endpoint(endpoint: &str) -> Result<(), SocketError> {
    let bad = |reason| Err(SocketError::BadEndpoint { endpoint: endpoint.to_owned(), reason });
    if let Some(address) = endpoint.strip_prefix("tcp://") {
        let Some((host, port)) = address.rsplit_once(':') else { return bad("no :PORT") };
        if host.is_empty() {
            return bad("no host (use * or 0.0.0.0 to bind on every address)");
        }
        if port != "*" && port.parse::<u16>().map_or(true, |p| p == 0) {
            return bad("the port is not a number from 1 to 65535 (or * to bind to any free port)");
        }
        return Ok(());
    }
    if let Some(path) = endpoint.strip_prefix("ipc://") {
        // Linux limits socket paths to 107 bytes (sun_path); libzmq only says EINVAL.
        return match path.len() {
            0 => bad("no path"),
            108.. => bad("the path is longer than 107 bytes"),
            _ => Ok(()),
        };
    }
    if endpoint.strip_prefix("inproc://").is_some_and(|name| !name.is_empty()) {
        return Ok(());
    }
    bad("unsupported transport")
}

/// Creates the SUB socket, configured before it connects or binds (libzmq applies CURVE and
/// limits to connections made after they are set). Returns it with its resolved endpoint (a
/// bound `tcp://host:*` becomes the port the system chose).
pub fn open(context: &zmq::Context, config: &SocketConfig) -> Result<(zmq::Socket, String), SocketError> {
    validate_endpoint(&config.endpoint)?;
    let endpoint = config.endpoint.clone();
    let setup = |what| {
        let endpoint = endpoint.clone();
        move |error| SocketError::Setup { endpoint, what, error }
    };
    let socket = context.socket(zmq::SUB).map_err(setup("socket"))?;
    // Nothing to flush on close: a SUB socket never sends data.
    socket.set_linger(0).map_err(setup("ZMQ_LINGER"))?;
    socket.set_rcvhwm(config.hwm).map_err(setup("ZMQ_RCVHWM"))?;
    socket.set_maxmsgsize(config.hard_frame_limit()).map_err(setup("ZMQ_MAXMSGSIZE"))?;
    if let Some(keys) = &config.curve {
        if !curve::supported() {
            return Err(SocketError::Setup { endpoint, what: "CURVE", error: zmq::Error::ENOTSUP });
        }
        socket.set_curve_serverkey(&keys.server_public).map_err(setup("ZMQ_CURVE_SERVERKEY"))?;
        socket.set_curve_publickey(&keys.client_public).map_err(setup("ZMQ_CURVE_PUBLICKEY"))?;
        socket.set_curve_secretkey(&keys.client_secret).map_err(setup("ZMQ_CURVE_SECRETKEY"))?;
    }
    socket.set_subscribe(&config.subscribe).map_err(setup("ZMQ_SUBSCRIBE"))?;
    if config.bind {
        socket.bind(&endpoint).map_err(|error| SocketError::Bind { endpoint: endpoint.clone(), error })?;
    } else {
        socket.connect(&endpoint).map_err(|error| SocketError::Connect { endpoint: endpoint.clone(), error })?;
    }
    let resolved = match config.bind {
        true => socket.get_last_endpoint().ok().and_then(Result::ok).unwrap_or_else(|| endpoint.clone()),
        false => endpoint.clone(),
    };
    Ok((socket, resolved))
}

/// A received message whose shape (frame count, sizes) has been checked.
#[derive(Debug)]
pub struct Received {
    pub frames: Vec<Vec<u8>>,
    /// Sum of the frame sizes (what the message holds in the queue).
    pub bytes: usize,
}

/// How the receiver checks and queues messages.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Exactly this many frames make a message (4 for cluster events, 2 for log records).
    pub frames: usize,
    pub max_frame: usize,
    /// Most messages waiting in the queue (the channel's own bound).
    pub queue: usize,
    /// Most bytes waiting in the queue.
    pub queue_bytes: usize,
}

/// One message off the socket: frames beyond `frames` and frames above `max_frame` are
/// received (libzmq delivers a message whole) but not kept.
enum Incoming {
    Message(Vec<Vec<u8>>),
    Malformed(Reason),
}

fn receive(socket: &zmq::Socket, limits: Limits) -> Result<Option<Incoming>, zmq::Error> {
    let mut frames = Vec::with_capacity(limits.frames);
    let (mut count, mut oversized) = (0usize, false);
    let mut flags = zmq::DONTWAIT;
    loop {
        let frame = match socket.recv_msg(flags) {
            Ok(frame) => frame,
            Err(zmq::Error::EAGAIN) if count == 0 => return Ok(None),
            Err(e) => return Err(e),
        };
        count += 1;
        if frame.len() > limits.max_frame {
            oversized = true;
        } else if frames.len() < limits.frames && !oversized {
            frames.push(frame.to_vec());
        }
        if !frame.get_more() {
            break;
        }
        // The rest of a multipart message is already here (libzmq delivers it atomically).
        flags = 0;
    }
    Ok(Some(match (oversized, count == limits.frames) {
        (true, _) => Incoming::Malformed(Reason::Oversized),
        (false, false) => Incoming::Malformed(Reason::Frames),
        (false, true) => Incoming::Message(frames),
    }))
}

/// Receives until `stop` is set (or the queue's consumer is gone), queueing what fits: the
/// body of a feed's receiving thread.
pub fn receive_until_stopped(
    socket: &zmq::Socket,
    queue: &SyncSender<Received>,
    counters: &Counters,
    limits: Limits,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        match socket.poll(zmq::POLLIN, POLL_INTERVAL_MS) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(zmq::Error::EINTR) => continue,
            // The context is gone: nothing more will arrive.
            Err(zmq::Error::ETERM) => return,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS as u64));
                continue;
            }
        }
        for _ in 0..DRAIN_BATCH {
            let incoming = match receive(socket, limits) {
                Ok(Some(incoming)) => incoming,
                Ok(None) | Err(zmq::Error::EINTR) => break,
                Err(zmq::Error::ETERM) => return,
                Err(_) => break,
            };
            counters.received();
            let frames = match incoming {
                Incoming::Malformed(reason) => {
                    counters.outcome(Outcome::Malformed(reason));
                    continue;
                }
                Incoming::Message(frames) => frames,
            };
            let bytes = frames.iter().map(Vec::len).sum();
            if !counters.try_enqueue(bytes, limits.queue, limits.queue_bytes) {
                counters.outcome(Outcome::Dropped);
                continue;
            }
            match queue.try_send(Received { frames, bytes }) {
                Ok(()) => {}
                // Not expected (the reservation bounds the count), but never block.
                Err(TrySendError::Full(_)) => {
                    counters.dequeued(bytes);
                    counters.outcome(Outcome::Dropped);
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            mpsc::{Receiver, sync_channel},
        },
        thread::JoinHandle,
        time::Instant,
    };

    use super::*;

    fn sub(endpoint: &str, bind: bool, max_frame: usize) -> SocketConfig {
        SocketConfig { endpoint: endpoint.into(), bind, subscribe: Vec::new(), hwm: 1000, max_frame, curve: None }
    }

    /// Waits up to 10 s for `cond`, retrying `poke` (which publishes something) meanwhile.
    fn eventually(mut poke: impl FnMut(), mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out");
            poke();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    struct Rig {
        _context: zmq::Context,
        publisher: zmq::Socket,
        rx: Receiver<Received>,
        counters: Arc<Counters>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl Drop for Rig {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                t.join().unwrap();
            }
        }
    }

    /// A bound SUB with its receiver thread, and a PUB connected to it.
    fn rig(endpoint: &str, limits: Limits) -> Rig {
        let context = zmq::Context::new();
        let (socket, resolved) = open(&context, &sub(endpoint, true, limits.max_frame)).unwrap();
        let publisher = context.socket(zmq::PUB).unwrap();
        publisher.set_sndhwm(100_000).unwrap();
        publisher.connect(&resolved).unwrap();
        let (tx, rx) = sync_channel(limits.queue);
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (counters, stop) = (counters.clone(), stop.clone());
            move || receive_until_stopped(&socket, &tx, &counters, limits, &stop)
        });
        Rig { _context: context, publisher, rx, counters, stop, thread: Some(thread) }
    }

    #[test]
    fn endpoints_are_checked_with_a_clear_message() {
        for ok in ["tcp://127.0.0.1:5555", "tcp://*:5557", "tcp://[::1]:1", "tcp://127.0.0.1:*", "ipc:///tmp/x"] {
            assert!(validate_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in ["", "127.0.0.1:5555", "tcp://127.0.0.1", "tcp://:5555", "tcp://h:0", "tcp://h:99999", "udp://h:1"] {
            let e = validate_endpoint(bad).unwrap_err().to_string();
            assert!(e.contains("use tcp://HOST:PORT"), "{e}");
        }
        assert!(validate_endpoint(&format!("ipc:///{}", "x".repeat(120))).is_err());
    }

    #[test]
    fn binding_a_taken_address_says_what_to_do() {
        let context = zmq::Context::new();
        let (_first, resolved) = open(&context, &sub("tcp://127.0.0.1:*", true, 1024)).unwrap();
        let Err(e) = open(&context, &sub(&resolved, true, 1024)) else { panic!("bound twice") };
        assert!(matches!(e, SocketError::Bind { .. }), "{e}");
        assert!(e.to_string().contains("another process is bound to it: choose a free port"), "{e}");
    }

    #[test]
    fn shapes_are_checked_before_queueing() {
        let limits = Limits { frames: 2, max_frame: 1024, queue: 100, queue_bytes: 1 << 20 };
        let r = rig("tcp://127.0.0.1:*", limits);
        eventually(|| r.publisher.send_multipart(["warmup", "{}"], 0).unwrap(), || r.counters.snapshot().received > 0);
        while r.rx.try_recv().is_ok() {}
        let before = r.counters.snapshot();
        r.publisher.send("one frame", 0).unwrap();
        r.publisher.send_multipart(["a", "b", "c"], 0).unwrap();
        r.publisher.send_multipart([&b"conn"[..], &vec![b'x'; 4096]], 0).unwrap();
        r.publisher.send_multipart(["conn", "{\"ok\":1}"], 0).unwrap();
        // Late warm-up messages may come first.
        let got = std::iter::from_fn(|| r.rx.recv_timeout(Duration::from_secs(10)).ok())
            .find(|m| m.frames[0] != b"warmup")
            .unwrap();
        assert_eq!(got.frames, vec![b"conn".to_vec(), b"{\"ok\":1}".to_vec()]);
        let after = r.counters.snapshot();
        assert!(after.received - before.received >= 4);
        let malformed =
            |s: &crate::CountersSnapshot, reason| s.malformed.iter().find(|(r, _)| *r == reason).map_or(0, |(_, n)| *n);
        assert_eq!(malformed(&after, Reason::Frames) - malformed(&before, Reason::Frames), 2);
        assert_eq!(malformed(&after, Reason::Oversized), 1);
    }

    /// A consumer that never reads: the queue stays within its bound and every message past it
    /// is counted as dropped, while the receiver keeps draining the socket.
    #[test]
    fn a_stalled_consumer_costs_drops_not_memory() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = format!("ipc://{}", dir.path().join("flood.sock").display());
        let limits = Limits { frames: 2, max_frame: 1024, queue: 64, queue_bytes: 1 << 20 };
        let r = rig(&endpoint, limits);
        eventually(|| r.publisher.send_multipart(["warmup", "{}"], 0).unwrap(), || r.counters.snapshot().received > 0);
        const FLOOD: u64 = 5000;
        let start = r.counters.snapshot().received;
        for i in 0..FLOOD {
            r.publisher.send_multipart([b"conn".to_vec(), format!("{{\"n\":{i}}}").into_bytes()], 0).unwrap();
        }
        eventually(|| {}, || r.counters.snapshot().received - start >= FLOOD);
        let s = r.counters.snapshot();
        assert!(s.max_queued <= 64 && s.queued <= 64, "{s:?}");
        assert_eq!(s.received, s.dropped + s.queued as u64, "{s:?}");
        assert!(s.dropped >= FLOOD - 64, "{s:?}");
        assert_eq!(r.rx.try_iter().count(), s.queued);
    }

    #[test]
    fn the_byte_bound_drops_too() {
        let limits = Limits { frames: 2, max_frame: 4096, queue: 1000, queue_bytes: 10_000 };
        let r = rig("tcp://127.0.0.1:*", limits);
        eventually(|| r.publisher.send_multipart(["warmup", "{}"], 0).unwrap(), || r.counters.snapshot().received > 0);
        let start = r.counters.snapshot().received;
        for _ in 0..20 {
            r.publisher.send_multipart([&b"p"[..], &[b' '; 3000]], 0).unwrap();
        }
        eventually(|| {}, || r.counters.snapshot().received - start >= 20);
        let s = r.counters.snapshot();
        assert!(s.queued_bytes <= 10_000, "{s:?}");
        assert!(s.dropped >= 17, "{s:?}");
    }
}
