//! zeek-probe as a ZeroMQ subscriber (issue #6), through real libzmq sockets over TCP loopback
//! and IPC: a test XPUB standing in for the Zeek manager's XPUB/XSUB proxy, and PUB sockets
//! standing in for the NCSA ZeroMQ log writer. No privileges needed.
use std::{
    path::Path,
    time::{Duration, Instant},
};

use prometheus::{Encoder, TextEncoder};
use zeek_probe::exporter::zeromq_metrics;
use zeek_probe_zeromq::{
    CurveKeys, FeedConfig, Feeds,
    broker_bin::{Event, Value},
    encode,
};

use crate::common::samples;

fn text(feeds: &Feeds) -> String {
    let mut out = Vec::new();
    TextEncoder::new().encode(&zeromq_metrics::families(&feeds.snapshot()), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The value of the one sample of `metric` whose labels include `labels`.
fn value(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples(text, metric)
        .into_iter()
        .filter(|(l, _)| labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| v)
        .collect();
    assert!(matching.len() <= 1, "{metric}{labels:?} matches {} samples:\n{text}", matching.len());
    matching.first().copied()
}

fn messages(text: &str, feed: &str, outcome: &str) -> f64 {
    value(text, "zeek_probe_zmq_messages_total", &[("feed", feed), ("outcome", outcome)]).unwrap_or(0.0)
}

fn malformed(text: &str, feed: &str, reason: &str) -> f64 {
    value(text, "zeek_probe_zmq_malformed_total", &[("feed", feed), ("reason", reason)]).unwrap_or(0.0)
}

/// Polls the metrics until `done` holds, doing `poke` between tries (for a publisher that must
/// retry until its peer is connected: ZeroMQ's slow joiner).
fn wait_until(feeds: &Feeds, mut poke: impl FnMut(), done: impl Fn(&str) -> bool) -> String {
    crate::common::wait_until("the feed's metrics", Duration::from_secs(30), || {
        let t = text(feeds);
        if done(&t) {
            return Ok(t);
        }
        poke();
        Err(t)
    })
}

/// The manager's XPUB, bound where the feed connects.
struct Xpub {
    _context: zmq::Context,
    socket: zmq::Socket,
    endpoint: String,
}

impl Xpub {
    fn bind(endpoint: &str, curve_secret: Option<&[u8]>) -> Xpub {
        let context = zmq::Context::new();
        let socket = context.socket(zmq::XPUB).unwrap();
        socket.set_rcvtimeo(10_000).unwrap();
        socket.set_sndhwm(100_000).unwrap();
        if let Some(secret) = curve_secret {
            socket.set_curve_server(true).unwrap();
            socket.set_curve_secretkey(secret).unwrap();
        }
        socket.bind(endpoint).unwrap();
        let endpoint = socket.get_last_endpoint().unwrap().unwrap();
        Xpub { _context: context, socket, endpoint }
    }

    /// The subscription the feed sent: what it asked the cluster for.
    fn subscription(&self) -> Vec<u8> {
        self.socket.recv_bytes(0).expect("a subscription within 10 s")
    }

    fn publish(&self, topic: &[u8], format: &[u8], payload: &[u8]) {
        let frames: [&[u8]; 4] = [topic, b"zeromq_worker-1_host_4242_1", format, payload];
        self.socket.send_multipart(frames, 0).unwrap();
    }

    fn publish_frames(&self, frames: &[&[u8]]) {
        self.socket.send_multipart(frames, 0).unwrap();
    }
}

/// The NCSA writer's PUB, connecting to the feed's bound SUB.
struct Writer {
    _context: zmq::Context,
    socket: zmq::Socket,
}

impl Writer {
    fn connect(endpoint: &str) -> Writer {
        let context = zmq::Context::new();
        let socket = context.socket(zmq::PUB).unwrap();
        socket.set_sndhwm(100_000).unwrap();
        socket.connect(endpoint).unwrap();
        Writer { _context: context, socket }
    }

    fn write(&self, path: &str, record: &str) {
        self.socket.send_multipart([path.as_bytes(), record.as_bytes()], 0).unwrap();
    }

    fn frames(&self, frames: &[&[u8]]) {
        self.socket.send_multipart(frames, 0).unwrap();
    }

    /// Retries a record until the feed has counted one: the connection is then up.
    fn warm_up(&self, feeds: &Feeds) {
        wait_until(
            feeds,
            || self.write("warmup", r#"{"ts":0.0}"#),
            |t| value(t, "zeek_probe_zmq_log_records_total", &[("path", "warmup")]).is_some(),
        );
    }
}

fn ipc(dir: &Path, name: &str) -> String {
    format!("ipc://{}", dir.join(name).display())
}

fn logs_feed(endpoint: &str, top_n: usize) -> (Feeds, String) {
    let feeds = Feeds::start(FeedConfig { logs: Some(endpoint.into()), top_n, ..FeedConfig::default() }).unwrap();
    let bound = feeds.endpoints()[0].1.clone();
    (feeds, bound)
}

fn cluster_events(endpoint: &str) {
    let xpub = Xpub::bind(endpoint, None);
    let feeds =
        Feeds::start(FeedConfig { cluster: Some(xpub.endpoint.clone()), top_n: 2, ..FeedConfig::default() }).unwrap();
    assert_eq!(xpub.subscription(), b"\x01zeek.probe.", "subscribed narrowly, to the package's topics only");
    let w1 = encode::memory_stats_event(
        "worker-1",
        3,
        &[
            ("Conn", "conns", Some(5000), None),
            ("Known", "hosts", Some(300), Some(4096)),
            ("GLOBAL", "small", Some(120), Some(100)),
            ("GLOBAL", "smaller", Some(101), None),
        ],
    );
    xpub.publish(b"zeek.probe.stats", b"broker-bin-v1", &encode::bin_event(&w1));
    let manager = encode::memory_stats_event("manager", 1, &[("Cluster", "nodes", Some(150), None)]);
    xpub.publish(b"zeek.probe.stats", b"broker-json-v1", encode::json_event(&manager).as_bytes());
    // Another event on the package's topics: decoded, not used.
    let other = Event { name: "ZeekProbe::hello".into(), args: vec![], metadata: vec![] };
    xpub.publish(b"zeek.probe.other", b"broker-bin-v1", &encode::bin_event(&other));
    let t = wait_until(&feeds, || {}, |t| messages(t, "cluster", "decoded") >= 3.0);
    let footprint = |node, module, variable| {
        value(&t, "zeek_probe_memory_footprint", &[("node", node), ("module", module), ("variable", variable)])
    };
    assert_eq!(footprint("worker-1", "Conn", "conns"), Some(5000.0), "{t}");
    assert_eq!(footprint("worker-1", "Known", "hosts"), Some(300.0), "{t}");
    assert_eq!(footprint("worker-1", "GLOBAL", "small"), None, "past the top 2: {t}");
    assert_eq!(footprint("worker-1", "<other>", "<other>"), Some(221.0), "120 + 101: {t}");
    assert_eq!(footprint("manager", "Cluster", "nodes"), Some(150.0), "from broker-json-v1: {t}");
    let bytes = |node, variable| value(&t, "zeek_probe_memory_bytes", &[("node", node), ("variable", variable)]);
    assert_eq!(bytes("worker-1", "hosts"), Some(4096.0));
    assert_eq!(bytes("worker-1", "<other>"), Some(100.0), "only the measured bytes are summed");
    assert_eq!(bytes("worker-1", "conns"), None, "not measured: no bytes row");
    assert_eq!(value(&t, "zeek_probe_memory_entries", &[("node", "worker-1")]), Some(4.0));
    assert_eq!(value(&t, "zeek_probe_memory_stats_run", &[("node", "worker-1")]), Some(3.0));
    assert_eq!(value(&t, "zeek_probe_memory_stats_run_seconds", &[("node", "manager")]), Some(0.0035));
    assert_eq!(value(&t, "zeek_probe_zeek_stat", &[("node", "worker-1"), ("stat", "mem_bytes")]), Some(123_456_789.0));
    assert_eq!(messages(&t, "cluster", "received"), 3.0);
    assert_eq!(messages(&t, "cluster", "malformed") + messages(&t, "cluster", "dropped"), 0.0);
    assert!(t.contains(&format!(r#"endpoint="{}""#, xpub.endpoint)), "{t}");
}

#[test]
fn cluster_events_over_tcp() {
    cluster_events("tcp://127.0.0.1:*");
}

#[test]
fn cluster_events_over_ipc() {
    let dir = tempfile::tempdir().unwrap();
    cluster_events(&ipc(dir.path(), "xpub.sock"));
}

fn log_records(endpoint: &str) {
    let (feeds, bound) = logs_feed(endpoint, 2);
    let writer = Writer::connect(&bound);
    writer.warm_up(&feeds);
    // A run of the package: memory rows first, then its stats row (scripts/main.zeek).
    for (module, variable, footprint) in
        [("Conn", "conns", 900), ("Known", "hosts", 500), ("GLOBAL", "a", 150), ("GLOBAL", "b", 100)]
    {
        writer.write(
            "zeek_probe_memory",
            &format!(
                r#"{{"ts":1700000000.5,"run":7,"node":"worker-2","module":"{module}","variable":"{variable}","footprint":{footprint}}}"#
            ),
        );
    }
    writer.write(
        "zeek_probe_stats",
        r#"{"ts":"2023-11-14T22:13:20.500000Z","run":7,"node":"worker-2","cost":0.0125,"cpu_cost":0.01,"globals":4,"mem_bytes":987654321,"pkts_dropped":0}"#,
    );
    writer.write("conn", r#"{"ts":1700000000.1,"uid":"C1","id.orig_h":"10.0.0.1","_node_name":"worker-2"}"#);
    writer.write("conn", r#"{"ts":1700000000.2,"uid":"C2","_node_name":"worker-3"}"#);
    writer.write("dns", r#"{"ts":1700000000.3,"query":"example.com"}"#);
    let t = wait_until(
        &feeds,
        || {},
        |t| {
            value(t, "zeek_probe_memory_footprint", &[("node", "worker-2"), ("variable", "<other>")]).is_some()
                && value(t, "zeek_probe_zmq_log_records_total", &[("path", "dns")]).is_some()
        },
    );
    let records = |path, node| value(&t, "zeek_probe_zmq_log_records_total", &[("path", path), ("node", node)]);
    assert_eq!(records("zeek_probe_memory", "worker-2"), Some(4.0), "{t}");
    assert_eq!(records("zeek_probe_stats", "worker-2"), Some(1.0));
    assert_eq!(records("conn", "worker-2"), Some(1.0));
    assert_eq!(records("conn", "worker-3"), Some(1.0));
    assert_eq!(records("dns", "unknown"), Some(1.0));
    let footprint =
        |variable| value(&t, "zeek_probe_memory_footprint", &[("node", "worker-2"), ("variable", variable)]);
    assert_eq!((footprint("conns"), footprint("hosts"), footprint("<other>")), (Some(900.0), Some(500.0), Some(250.0)));
    let stat = |stat| value(&t, "zeek_probe_zeek_stat", &[("node", "worker-2"), ("stat", stat)]);
    assert_eq!((stat("mem_bytes"), stat("globals"), stat("pkts_dropped")), (Some(987_654_321.0), Some(4.0), Some(0.0)));
    assert_eq!(value(&t, "zeek_probe_memory_stats_run_seconds", &[("node", "worker-2")]), Some(0.0125));
    assert_eq!(messages(&t, "logs", "malformed") + messages(&t, "logs", "dropped"), 0.0);
}

#[test]
fn log_records_over_tcp() {
    log_records("tcp://127.0.0.1:*");
}

#[test]
fn log_records_over_ipc() {
    let dir = tempfile::tempdir().unwrap();
    log_records(&ipc(dir.path(), "logs.sock"));
}

/// Wrong frame counts, bad payloads, invalid UTF-8, unknown formats, non-JSON and frames over
/// the limit are counted by reason; the feeds keep working.
#[test]
fn malformed_input_is_counted_and_survived() {
    let xpub = Xpub::bind("tcp://127.0.0.1:*", None);
    let config = FeedConfig {
        cluster: Some(xpub.endpoint.clone()),
        logs: Some("tcp://127.0.0.1:*".into()),
        max_frame: 64 * 1024,
        ..FeedConfig::default()
    };
    let feeds = Feeds::start(config).unwrap();
    assert_eq!(xpub.subscription(), b"\x01zeek.probe.");
    let logs = feeds.endpoints().into_iter().find(|(k, _)| k.as_str() == "logs").unwrap().1;
    let writer = Writer::connect(&logs);
    writer.warm_up(&feeds);

    let good = encode::bin_event(&encode::memory_stats_event("worker-1", 1, &[("Conn", "conns", Some(10), None)]));
    let huge = vec![b'x'; 100 * 1024];
    xpub.publish_frames(&[b"zeek.probe.stats", b"sender", b"broker-bin-v1"]);
    xpub.publish_frames(&[b"zeek.probe.stats", b"sender", b"broker-bin-v1", &good, b"extra"]);
    xpub.publish(b"zeek.probe.stats", b"broker-bin-v1", &good[..good.len() / 2]);
    xpub.publish(b"zeek.probe.stats", b"broker-json-v1", b"{\"@data-type\":");
    xpub.publish(b"zeek.probe.stats", b"zeek-bin-serializer", &good);
    xpub.publish(b"zeek.probe.\xff", b"broker-bin-v1", &good);
    xpub.publish(b"zeek.probe.stats", b"broker-bin-v1", &huge);
    // Right shape, wrong contract: cost as a real.
    let mut off_contract = encode::memory_stats_event("worker-1", 1, &[]);
    off_contract.args[2] = Value::Real(0.1);
    xpub.publish(b"zeek.probe.stats", b"broker-bin-v1", &encode::bin_event(&off_contract));
    xpub.publish(b"zeek.probe.stats", b"broker-bin-v1", &good);

    writer.frames(&[b"conn"]);
    writer.frames(&[b"conn", b"{}", b"{}"]);
    writer.frames(&[b"conn", b"{\"uid\":\"\xc3\x28\"}"]);
    writer.frames(&[b"co\xffnn", b"{}"]);
    writer.write("conn", "not json at all");
    writer.write("zeek_probe_memory", r#"{"run":1,"node":"w","module":"M","variable":"v","footprint":"many"}"#);
    writer.frames(&[b"conn", &huge]);
    writer.write("conn", r#"{"ts":1.0,"_node_name":"worker-1"}"#);

    let t = wait_until(
        &feeds,
        || {},
        |t| {
            value(t, "zeek_probe_memory_footprint", &[("node", "worker-1"), ("variable", "conns")]).is_some()
                && value(t, "zeek_probe_zmq_log_records_total", &[("path", "conn"), ("node", "worker-1")]).is_some()
        },
    );
    let expected_cluster =
        [("frames", 2.0), ("payload", 2.0), ("format", 1.0), ("utf8", 1.0), ("oversized", 1.0), ("schema", 1.0)];
    for (reason, n) in expected_cluster {
        assert_eq!(malformed(&t, "cluster", reason), n, "cluster {reason}:\n{t}");
    }
    let expected_logs = [("frames", 2.0), ("utf8", 2.0), ("payload", 1.0), ("schema", 1.0), ("oversized", 1.0)];
    for (reason, n) in expected_logs {
        assert_eq!(malformed(&t, "logs", reason), n, "logs {reason}:\n{t}");
    }
    assert_eq!(messages(&t, "cluster", "malformed"), 8.0);
    assert_eq!(messages(&t, "cluster", "decoded"), 1.0);
    assert_eq!(messages(&t, "logs", "malformed"), 7.0);
}

/// A frame far over the limit (past ZMQ_MAXMSGSIZE) is refused by libzmq before it is
/// allocated: it costs the sender its connection, which it makes again, and nothing else.
#[test]
fn frames_past_the_hard_limit_cost_the_sender_its_connection_only() {
    let config = FeedConfig { logs: Some("tcp://127.0.0.1:*".into()), max_frame: 64 * 1024, ..FeedConfig::default() };
    let feeds = Feeds::start(config).unwrap();
    let writer = Writer::connect(&feeds.endpoints()[0].1);
    writer.warm_up(&feeds);
    let before = messages(&text(&feeds), "logs", "received");
    writer.frames(&[b"conn", &vec![b'x'; 4 << 20]]);
    // The writer reconnects by itself; records sent meanwhile are lost, so retry.
    let t = wait_until(
        &feeds,
        || writer.write("after", r#"{"ts":1.0}"#),
        |t| value(t, "zeek_probe_zmq_log_records_total", &[("path", "after")]).is_some(),
    );
    let received = messages(&t, "logs", "received") - before;
    let after = value(&t, "zeek_probe_zmq_log_records_total", &[("path", "after")]).unwrap();
    assert_eq!(malformed(&t, "logs", "oversized"), 0.0, "never received: {t}");
    // Late warm-up records may have come in too; the huge one did not.
    assert!(received >= after && received - after <= 3.0, "{t}");
}

/// A node that stops reporting disappears after three intervals, not before.
#[test]
fn silent_nodes_expire() {
    let xpub = Xpub::bind("tcp://127.0.0.1:*", None);
    let interval = Duration::from_millis(300);
    let config = FeedConfig { cluster: Some(xpub.endpoint.clone()), interval, ..FeedConfig::default() };
    let feeds = Feeds::start(config).unwrap();
    xpub.subscription();
    let sent = Instant::now();
    xpub.publish(
        b"zeek.probe.stats",
        b"broker-bin-v1",
        &encode::bin_event(&encode::memory_stats_event("proxy-1", 1, &[("M", "v", Some(1), None)])),
    );
    let present = |t: &str| value(t, "zeek_probe_memory_stats_run", &[("node", "proxy-1")]).is_some();
    wait_until(&feeds, || {}, present);
    wait_until(&feeds, || {}, |t| !present(t));
    let gone_after = sent.elapsed();
    assert!(gone_after >= interval * 3, "expired after {gone_after:?}, before 3 intervals");
    assert!(gone_after < Duration::from_secs(5), "expired only after {gone_after:?}");
    let t = text(&feeds);
    assert_eq!(value(&t, "zeek_probe_memory_footprint", &[("node", "proxy-1")]), None);
    assert_eq!(messages(&t, "cluster", "decoded"), 1.0, "counters stay");
}

/// A subscriber that falls behind keeps its queue within bounds and counts what it drops; the
/// receiving thread keeps draining the socket meanwhile (so the cluster is never stalled).
#[test]
fn a_subscriber_that_falls_behind_drops_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let config = FeedConfig { logs: Some(ipc(dir.path(), "flood.sock")), queue: 100, ..FeedConfig::default() };
    let feeds = Feeds::start(config).unwrap();
    let writer = Writer::connect(&feeds.endpoints()[0].1);
    writer.warm_up(&feeds);
    feeds.pause_consumers(true);
    let before = messages(&text(&feeds), "logs", "received");
    const FLOOD: f64 = 5000.0;
    for i in 0..FLOOD as u64 {
        writer.write("conn", &format!(r#"{{"ts":{i}.0,"_node_name":"worker-1"}}"#));
    }
    let t = wait_until(&feeds, || {}, |t| messages(t, "logs", "received") - before >= FLOOD);
    let queued = value(&t, "zeek_probe_zmq_queue_messages", &[("feed", "logs")]).unwrap();
    let max_queued = value(&t, "zeek_probe_zmq_queue_max_messages", &[("feed", "logs")]).unwrap();
    assert!(queued <= 100.0 && max_queued <= 100.0, "the queue holds at most 100:\n{t}");
    feeds.pause_consumers(false);
    // Every flooded record is either decoded (counted under conn) or dropped. At most the 100
    // queued were kept, and one more that the consumer, waiting on the queue when the pause
    // began, had already taken.
    let conn = |t: &str| value(t, "zeek_probe_zmq_log_records_total", &[("path", "conn")]).unwrap_or(0.0);
    let t = wait_until(&feeds, || {}, |t| conn(t) + messages(t, "logs", "dropped") >= FLOOD);
    assert_eq!(conn(&t) + messages(&t, "logs", "dropped"), FLOOD, "{t}");
    assert!(conn(&t) <= 101.0, "{t}");
    let t = wait_until(&feeds, || {}, |t| value(t, "zeek_probe_zmq_queue_messages", &[("feed", "logs")]) == Some(0.0));
    let (received, decoded, dropped) =
        (messages(&t, "logs", "received"), messages(&t, "logs", "decoded"), messages(&t, "logs", "dropped"));
    assert_eq!(received, decoded + dropped, "every message accounted for:\n{t}");
}

/// An encrypted cluster: the feed talks CURVE with the XPUB's key; without keys it gets nothing.
#[test]
fn curve_encrypted_cluster() {
    let server = zmq::CurveKeyPair::new().unwrap();
    let client = zmq::CurveKeyPair::new().unwrap();
    let xpub = Xpub::bind("tcp://127.0.0.1:*", Some(&server.secret_key));
    let z85 = |k: &[u8]| zmq::z85_encode(k).unwrap();
    let keys =
        CurveKeys::from_z85(&z85(&client.public_key), &z85(&client.secret_key), &z85(&server.public_key)).unwrap();
    let feeds =
        Feeds::start(FeedConfig { cluster: Some(xpub.endpoint.clone()), curve: Some(keys), ..FeedConfig::default() })
            .unwrap();
    assert_eq!(xpub.subscription(), b"\x01zeek.probe.", "the CURVE handshake succeeded");
    xpub.publish(
        b"zeek.probe.stats",
        b"broker-bin-v1",
        &encode::bin_event(&encode::memory_stats_event("w", 1, &[("M", "v", Some(7), None)])),
    );
    wait_until(
        &feeds,
        || {},
        |t| value(t, "zeek_probe_memory_footprint", &[("node", "w"), ("variable", "v")]) == Some(7.0),
    );

    // The same server, a subscriber without keys: no handshake, no subscription, nothing,
    // while what is published meanwhile does reach the keyed subscriber.
    let plain = Feeds::start(FeedConfig { cluster: Some(xpub.endpoint.clone()), ..FeedConfig::default() }).unwrap();
    xpub.socket.set_rcvtimeo(500).unwrap();
    assert!(xpub.socket.recv_bytes(0).is_err(), "no subscription arrives over a refused handshake");
    for run in 2..=3 {
        xpub.publish(
            b"zeek.probe.stats",
            b"broker-bin-v1",
            &encode::bin_event(&encode::memory_stats_event("w", run, &[("M", "v", Some(run), None)])),
        );
        wait_until(
            &feeds,
            || {},
            |t| value(t, "zeek_probe_memory_footprint", &[("node", "w"), ("variable", "v")]) == Some(run as f64),
        );
        assert_eq!(messages(&text(&plain), "cluster", "received"), 0.0, "run {run} reached the keyless subscriber");
    }
}

#[test]
fn bad_configuration_says_what_to_do() {
    let error = |config: FeedConfig| match Feeds::start(config) {
        Ok(_) => panic!("started"),
        Err(e) => e.to_string(),
    };
    let e = error(FeedConfig { logs: Some("127.0.0.1:5557".into()), ..FeedConfig::default() });
    assert!(e.contains("use tcp://HOST:PORT or ipc:///PATH"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
    let e = error(FeedConfig { cluster: Some("tcp://127.0.0.1".into()), ..FeedConfig::default() });
    assert!(e.contains("no :PORT"), "{e}");
    let (_taken, bound) = logs_feed("tcp://127.0.0.1:*", 1);
    let e = error(FeedConfig { logs: Some(bound.clone()), ..FeedConfig::default() });
    assert!(
        e.starts_with(&format!("cannot bind {bound}"))
            && e.contains("another process is bound to it: choose a free port"),
        "{e}"
    );
    let keys = CurveKeys::from_z85(&"0".repeat(40), &"0".repeat(40), &"0".repeat(40)).unwrap();
    let e = error(FeedConfig { logs: Some("tcp://127.0.0.1:*".into()), curve: Some(keys), ..FeedConfig::default() });
    assert!(e.contains("--zmq-cluster"), "{e}");
    // Nothing configured: nothing runs, nothing is exported.
    let idle = Feeds::start(FeedConfig::default()).unwrap();
    assert!(zeromq_metrics::families(&idle.snapshot()).is_empty());
}

/// `attach --cluster --zmq-logs`: the package's memory records and the eBPF side's metrics of
/// the same node in one exposition.
#[test]
fn attach_exports_what_the_package_sends_beside_the_probes_metrics() {
    if !crate::common::privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let endpoint = ipc(dir.path(), "logs");
    let mut cmd = std::process::Command::new(crate::common::zeek_probe());
    cmd.args(["attach", "--cluster", "--no-sample", "--listen", "127.0.0.1:0", "--duration", "120"]).args([
        "--zmq-logs",
        &endpoint,
        "--zmq-top-n",
        "1",
    ]);
    let exporter = crate::common::Exporter::start(cmd, "http");
    let worker = crate::common::Reaped(
        std::process::Command::new(crate::common::fixture("zeek-shaped-8.2"))
            .args(["--seconds", "60"])
            .env("CLUSTER_NODE", "worker-zmq")
            .spawn()
            .unwrap(),
    );
    let writer = Writer::connect(&endpoint);
    let record = |run: u64, variable: &str, footprint: u64| {
        format!(
            r#"{{"ts":1700000000.5,"run":{run},"node":"worker-zmq","module":"Conn","variable":"{variable}","footprint":{footprint}}}"#
        )
    };
    // Until the connection is up the writer's records are lost (PUB/SUB): runs are sent, as
    // the package does, until they arrive.
    let mut run = 0;
    let text =
        crate::common::wait_until("the package's records and the node both exported", Duration::from_secs(60), || {
            run += 1;
            writer.write("zeek_probe_memory", &record(run, "conns", 900));
            writer.write("zeek_probe_memory", &record(run, "pending", 40));
            let stats = format!(r#"{{"ts":1700000000.5,"run":{run},"node":"worker-zmq","cost":0.25,"globals":2}}"#);
            writer.write("zeek_probe_stats", &stats);
            let text = crate::common::scrape(&exporter.address);
            let both = text
                .contains(r#"zeek_probe_memory_footprint{node="worker-zmq",module="Conn",variable="conns"} 900"#)
                && text.contains(&format!(r#"zeek_probe_target_up{{node="worker-zmq",pid="{}"}} 1"#, worker.0.id()));
            if both { Ok(text) } else { Err(format!("{text}\nexporter log:\n{}", exporter.log.lock().unwrap())) }
        });
    assert!(
        text.contains(r#"zeek_probe_memory_footprint{node="worker-zmq",module="<other>",variable="<other>"} 40"#),
        "top 1 plus the rest summed:\n{text}\n{}",
        exporter.log.lock().unwrap()
    );
    assert!(text.contains(r#"zeek_probe_memory_stats_run_seconds{node="worker-zmq"} 0.25"#), "{text}");
    assert!(text.contains(&format!(r#"zeek_probe_target_up{{node="worker-zmq",pid="{}"}} 1"#, worker.0.id())));
    assert!(exporter.log.lock().unwrap().contains("ZeroMQ logs feed on ipc://"), "{}", exporter.log.lock().unwrap());
}

#[test]
fn attach_refuses_a_bad_zmq_endpoint_in_one_line() {
    let output = std::process::Command::new(crate::common::zeek_probe())
        .args(["attach", "--cluster", "--zmq-logs", "nonsense://here"])
        .output()
        .unwrap();
    crate::common::assert_one_line_error(&output, "nonsense://here");
}
