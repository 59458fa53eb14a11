//! The threads that read outside input hold no capabilities while the rest of the process keeps
//! its own. A test binary of its own: in the unit tests, other tests' libzmq contexts (created
//! on privileged test threads) would run I/O threads of the same name.
use std::{collections::BTreeMap, time::Duration};

use zeek_probe_zeromq::{FeedConfig, Feeds};

/// Every thread of this process: name → its CapEff, CapPrm and NoNewPrivs.
fn threads() -> BTreeMap<String, Vec<(String, String, String)>> {
    let mut threads: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let Ok(status) = std::fs::read_to_string(task.unwrap().path().join("status")) else { continue };
        let field = |name: &str| {
            status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned()).unwrap_or_default()
        };
        let caps = (field("CapEff:"), field("CapPrm:"), field("NoNewPrivs:"));
        threads.entry(field("Name:")).or_default().push(caps);
    }
    threads
}

fn own_effective_capabilities() -> String {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim().to_owned()
}

#[test]
fn feed_threads_and_libzmqs_hold_no_capabilities() {
    const NONE: &str = "0000000000000000";
    let privileged = own_effective_capabilities() != NONE;
    if !privileged {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI runs as root: this test must see capabilities");
        eprintln!("skipped: this test thread holds no capabilities to drop (run as root)");
        return;
    }
    let feeds = Feeds::start(FeedConfig {
        cluster: Some("tcp://127.0.0.1:9".into()),
        logs: Some("tcp://127.0.0.1:*".into()),
        ..FeedConfig::default()
    })
    .unwrap();
    // libzmq names its threads when they start running.
    std::thread::sleep(Duration::from_millis(200));
    let threads = threads();
    let unprivileged: Vec<_> =
        threads.iter().filter(|(name, _)| name.starts_with("zmq-") || name.starts_with("ZMQbg/")).collect();
    let names: Vec<&str> = unprivileged.iter().map(|(name, _)| name.as_str()).collect();
    for expected in ["zmq-cluster-rx", "zmq-cluster-decode", "zmq-logs-rx", "zmq-logs-decode", "ZMQbg/IO/0"] {
        // The kernel keeps 15 bytes of a thread's name.
        let expected = &expected[..expected.len().min(15)];
        assert!(names.contains(&expected), "no thread {expected} in {threads:?}");
    }
    for (name, caps) in unprivileged {
        for (effective, permitted, no_new_privs) in caps {
            assert_eq!((effective.as_str(), permitted.as_str()), (NONE, NONE), "{name}");
            assert_eq!(no_new_privs, "1", "{name}");
        }
    }
    assert_ne!(own_effective_capabilities(), NONE, "the thread that started the feeds keeps its capabilities");
    drop(feeds);
}
