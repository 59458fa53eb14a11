//! `zeek-probe attach --pid` against a running fixture: metrics that promtool accepts and
//! whose values equal the fixture's truth once it has ended.
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::common::*;

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
    let early = scrape(&address);
    assert!(early.contains(&format!("zeek_probe_target_up{{node=\"worker-7\",pid=\"{pid}\"}} 1")), "{early}");

    signal(pid, libc::SIGUSR1);
    let mut fixture = fixture;
    let status = fixture.0.wait().unwrap();
    assert!(status.success(), "the fixture exits cleanly under the probes: {status:?}");

    // The exporter notices the exit within its refresh interval (the bound is loose: the
    // machine may be loaded).
    let down = format!("zeek_probe_target_up{{node=\"worker-7\",pid=\"{pid}\"}} 0");
    let text = wait_until("the exporter notices the exit", Duration::from_secs(30), || {
        let text = scrape(&address);
        if text.contains(&down) { Ok(text) } else { Err(text) }
    });

    assert_promtool_accepts(&text);

    let truth = read_json(&truth_path);
    assert_exported_counts_match_truth(&text, "worker-7", pid, &truth);
    let cpu = samples(&text, "zeek_probe_process_cpu_seconds_total");
    assert!(cpu.len() == 1 && cpu[0].1 > 0.5, "the fixture burnt CPU for 2 s: {cpu:?}");

    // Sampled CPU: self and inclusive seconds per function, per caller edge, native code.
    let self_seconds: BTreeMap<String, f64> = samples(&text, "zeek_probe_function_self_seconds_total")
        .into_iter()
        .map(|(l, v)| (l["function"].clone(), v))
        .collect();
    assert!(self_seconds.get("fib").is_some_and(|s| *s > 0.05), "fib sampled: {self_seconds:?}");
    // A share, not seconds: how much CPU the fixture gets in its 2 s depends on the machine's load.
    let sampled: f64 = self_seconds.values().sum();
    let native_share = self_seconds.get("zeek::Connection::NextPacket").map_or(0.0, |s| s / sampled);
    assert!(native_share > 0.2, "native ({native_share:.3} of {sampled:.3} s): {self_seconds:?}");
    let inclusive = samples(&text, "zeek_probe_function_seconds_total");
    let event_total = inclusive.iter().find(|(l, _)| l["function"] == "new_connection").map(|(_, v)| *v);
    assert!(event_total.is_some_and(|t| t >= self_seconds["new_connection"]), "inclusive ≥ self");
    let edges = samples(&text, "zeek_probe_caller_seconds_total");
    assert!(
        edges.iter().any(|(l, v)| l["caller"] == "new_connection" && l["function"] == "Conn::set_conn" && *v > 0.0)
    );

    // SIGTERM (systemd's stop) ends the exporter cleanly and promptly, writing the flame graph
    // on the way out. The bound is loose: the machine may be loaded.
    let asked = Instant::now();
    signal(exporter.0.id(), libc::SIGTERM);
    let status = exporter.0.wait().unwrap();
    let took = asked.elapsed();
    assert!(status.success(), "exporter exit: {status:?}");
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?} to end the exporter");
    let svg = std::fs::read_to_string(dir.path().join("flame.svg")).expect("flame graph written on exit");
    // Script frames, and the native stacks above them unwound up to the C library's start.
    assert!(svg.contains("fib") && svg.contains("__libc_start_call_main"), "flame graph frames");
}
