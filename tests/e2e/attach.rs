//! `zeek-probe attach --pid` against a running fixture: metrics that promtool accepts and
//! whose values equal the fixture's truth once it has ended.
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::common::*;

/// Kills the child when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0, "cannot signal {pid}");
}

fn http_get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to the exporter");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    body.to_owned()
}

/// Parses `name{k="v",...} value` samples of one metric into (labels, value).
fn samples(text: &str, metric: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter_map(|line| line.strip_prefix(metric)?.strip_prefix('{'))
        .map(|rest| {
            let (labels, value) = rest.rsplit_once("} ").expect("labels then value");
            let mut map = BTreeMap::new();
            let mut chars = labels.chars().peekable();
            while chars.peek().is_some() {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                assert_eq!(chars.next(), Some('"'));
                let mut value = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next().unwrap()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
                if chars.peek() == Some(&',') {
                    chars.next();
                }
                map.insert(key.trim_start_matches(',').to_owned(), value);
            }
            (map, value.parse().unwrap())
        })
        .collect()
}

#[test]
fn attach_serves_metrics_matching_the_truth() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let truth_path = dir.path().join("truth.json");
    // The fixture waits for SIGUSR1 before its workload, so the probes see every call.
    let fixture = Reaped(
        Command::new(fixture("zeek-shaped-8.2"))
            .args(["--wait-for-signal", "--seconds", "2", "--truth"])
            .arg(&truth_path)
            .env("CLUSTER_NODE", "worker-7")
            .spawn()
            .unwrap(),
    );
    let pid = fixture.0.id();
    let mut exporter = Reaped(
        Command::new(zeek_probe())
            .args(["attach", "--count-calls", "--caller-metrics", "--hz", "499", "--listen", "127.0.0.1:0"])
            .args(["--duration", "120", "--flamegraph"])
            .arg(dir.path().join("flame.svg"))
            .arg("--pid")
            .arg(pid.to_string())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(exporter.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no metrics address in: {line}"))
        .to_owned();
    assert!(line.contains("node worker-7"), "{line}");

    // While it waits, the target is up and the exposition is valid.
    let early = http_get(&address, "/metrics");
    assert!(early.contains(&format!("zeek_probe_target_up{{node=\"worker-7\",pid=\"{pid}\"}} 1")), "{early}");

    signal(pid, libc::SIGUSR1);
    let mut fixture = fixture;
    let status = fixture.0.wait().unwrap();
    assert!(status.success(), "the fixture exits cleanly under the probes: {status:?}");

    // The exporter notices the exit within its refresh interval.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = http_get(&address, "/metrics");
        if text.contains(&format!("zeek_probe_target_up{{node=\"worker-7\",pid=\"{pid}\"}} 0"))
            || Instant::now() > deadline
        {
            break text;
        }
        thread::sleep(Duration::from_millis(200));
    };

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed by cargo xtask setup");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool rejects the exposition: {}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let truth = read_json(&truth_path);
    let exported: BTreeMap<(String, String), u64> = samples(&text, "zeek_probe_function_calls_total")
        .into_iter()
        .map(|(l, v)| {
            assert_eq!((l["node"].as_str(), l["pid"].as_str()), ("worker-7", pid.to_string().as_str()));
            ((l["function"].clone(), l["kind"].clone()), v as u64)
        })
        .collect();
    // Lambdas are exported by where they are defined, the truth knows Zeek's lambda_<hash>
    // names: compare those as the multiset of their counts, everything else by name.
    let (lambdas, named): (BTreeMap<_, _>, BTreeMap<_, _>) =
        exported.into_iter().partition(|((name, _), _)| name.starts_with("lambda@"));
    let (true_lambdas, true_named): (BTreeMap<_, _>, BTreeMap<_, _>) =
        functions(&truth).into_iter().partition(|((name, _), _)| name.starts_with("lambda_"));
    assert_eq!(named, true_named, "calls per function");
    let counts = |m: BTreeMap<(String, String), u64>| {
        let mut v: Vec<u64> = m.into_values().collect();
        v.sort_unstable();
        v
    };
    assert_eq!(counts(lambdas), counts(true_lambdas), "calls per lambda");
    let edges: BTreeMap<(String, String), u64> = samples(&text, "zeek_probe_caller_calls_total")
        .into_iter()
        .filter(|(l, _)| !l["function"].starts_with("lambda@") && !l["caller"].starts_with("lambda@"))
        .map(|(l, v)| {
            let caller = if l["caller"] == "<native>" { String::new() } else { l["caller"].clone() };
            ((caller, l["function"].clone()), v as u64)
        })
        .collect();
    let true_edges: BTreeMap<(String, String), u64> = callers(&truth)
        .into_iter()
        .filter(|((a, b), _)| !a.starts_with("lambda_") && !b.starts_with("lambda_"))
        .collect();
    assert_eq!(edges, true_edges, "calls per caller edge (lambdas compared above)");
    let streams: BTreeMap<String, u64> = samples(&text, "zeek_probe_log_writes_total")
        .into_iter()
        .map(|(l, v)| (l["stream"].clone(), v as u64))
        .collect();
    assert_eq!(streams, log_writes(&truth), "writes per log stream");
    let cpu = samples(&text, "zeek_probe_process_cpu_seconds_total");
    assert!(cpu.len() == 1 && cpu[0].1 > 0.5, "the fixture burnt CPU for 2 s: {cpu:?}");

    // Sampled CPU: self and inclusive seconds per function, per caller edge, native code.
    let self_seconds: BTreeMap<String, f64> = samples(&text, "zeek_probe_function_self_seconds_total")
        .into_iter()
        .map(|(l, v)| (l["function"].clone(), v))
        .collect();
    assert!(self_seconds.get("fib").is_some_and(|s| *s > 0.05), "fib sampled: {self_seconds:?}");
    assert!(self_seconds.get("zeek::Connection::NextPacket").is_some_and(|s| *s > 0.3), "native: {self_seconds:?}");
    let inclusive = samples(&text, "zeek_probe_function_seconds_total");
    let event_total = inclusive.iter().find(|(l, _)| l["function"] == "new_connection").map(|(_, v)| *v);
    assert!(event_total.is_some_and(|t| t >= self_seconds["new_connection"]), "inclusive ≥ self");
    let edges = samples(&text, "zeek_probe_caller_seconds_total");
    assert!(
        edges.iter().any(|(l, v)| l["caller"] == "new_connection" && l["function"] == "Conn::set_conn" && *v > 0.0)
    );

    // SIGTERM ends the exporter cleanly, writing the flame graph on the way out.
    signal(exporter.0.id(), libc::SIGTERM);
    let status = exporter.0.wait().unwrap();
    assert!(status.success(), "exporter exit: {status:?}");
    let svg = std::fs::read_to_string(dir.path().join("flame.svg")).expect("flame graph written on exit");
    assert!(svg.contains("fib") && svg.contains("[native]"), "flame graph frames");
}
