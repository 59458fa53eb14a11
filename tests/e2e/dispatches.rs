//! Long event dispatches against the fixture's `--long-dispatches` run: dispatches of 5, 20 and
//! 80 ms of CPU among hundreds of short ones, every dispatch timed by the fixture itself.
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::common::*;

/// CPU samples per second in these runs: one period is 1.001 ms.
const HZ: u64 = 999;
const PERIOD: f64 = 1.0 / HZ as f64;
/// What the fixture injects (`kLongDispatchMs`), under this event.
const INJECTED_MS: [f64; 3] = [5.0, 20.0, 80.0];
const INJECTED_EVENT: &str = "Dispatch::slow_work";

/// The fixture's timed dispatches by dispatch counter: (event, CPU seconds, wall seconds).
fn timed_dispatches(truth: &Value) -> BTreeMap<u64, (String, f64, f64)> {
    let list = truth["dispatches"].as_array().expect("the truth lists dispatches");
    let timed = truth["dispatches_timed"].as_u64().unwrap();
    assert!(timed > 500, "many short dispatches around the long ones: {timed}");
    list.iter()
        .map(|d| {
            let seconds = |field: &str| d[field].as_f64().unwrap();
            (
                d["seq"].as_u64().unwrap(),
                (d["event"].as_str().unwrap().to_owned(), seconds("cpu_seconds"), seconds("wall_seconds")),
            )
        })
        .collect()
}

/// A measured duration is within one period of how long the dispatch ran: no shorter than its
/// CPU time less a period, no longer than its wall time (preemptions included) plus one.
/// A dispatch taken off its CPU (preempted, or moved to another CPU, whose sample clock ticks
/// in another phase) ran its CPU time in slices, and slices shorter than a period at its ends
/// can fall between two samples: up to a period more may go unseen then. A tenth of a period
/// of wall time over the CPU time is more than reading the clocks costs.
fn within_one_period(measured: f64, cpu: f64, wall: f64) -> bool {
    let preempted = wall > cpu + PERIOD / 10.0;
    let shortest = if preempted { cpu - 2.0 * PERIOD } else { cpu - PERIOD };
    measured >= shortest && measured <= wall + PERIOD
}

#[test]
fn record_finds_each_long_dispatch_within_one_sample_period_and_invents_none() {
    if !privileged() {
        return;
    }
    for fixture_name in ["zeek-shaped-7.2", "zeek-shaped-8.0", "zeek-shaped-8.1", "zeek-shaped-8.2"] {
        let dir = tempfile::tempdir().unwrap();
        let truth_path = dir.path().join("truth.json");
        let out = dir.path().join("report");
        let output = Command::new(zeek_probe())
            .args(["record", "--hz", &HZ.to_string(), "--out"])
            .arg(&out)
            .arg("--")
            .arg(fixture(fixture_name))
            .args(["--long-dispatches", "--truth"])
            .arg(&truth_path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{fixture_name}: {}", String::from_utf8_lossy(&output.stderr));
        let truth = timed_dispatches(&read_json(&truth_path));
        let summary = read_json(&out.join("summary.json"));
        let measured = &summary["long_dispatches"];
        let longest = measured["longest"].as_array().unwrap_or_else(|| panic!("{fixture_name}: {summary}"));
        assert!(longest.len() < 20, "{fixture_name}: all of them listed: {longest:?}");

        // None invented: each one listed was a dispatch of that event, as long as measured.
        for d in longest {
            let seq = d["seq"].as_u64().unwrap();
            let seconds = d["seconds"].as_f64().unwrap();
            let Some((event, cpu, wall)) = truth.get(&seq) else {
                panic!("{fixture_name}: dispatch {seq} ({seconds} s) was not that long: {d}")
            };
            assert_eq!(d["event"].as_str(), Some(event.as_str()), "{fixture_name}: dispatch {seq}");
            assert!(
                within_one_period(seconds, *cpu, *wall),
                "{fixture_name}: dispatch {seq} of {event} measured {seconds:.4} s, ran {cpu:.4} s CPU, {wall:.4} s wall"
            );
        }
        // Each injected one found, with the handler as the stack sampled most in it. They come
        // in the order of INJECTED_MS, each the first dispatch of its event after the one before
        // that ran at least as long: the handler spins until its thread's CPU clock has run that
        // long, so a dispatch's CPU time may exceed it (by 1.7 ms once, on a loaded CI machine)
        // but never fall short.
        let mut after = 0;
        for ms in INJECTED_MS {
            let (seq, (_, cpu, wall)) = truth
                .range(after..)
                .find(|(_, (event, cpu, _))| event == INJECTED_EVENT && cpu * 1e3 >= ms)
                .unwrap_or_else(|| panic!("{fixture_name}: the fixture injected {ms} ms: {truth:?}"));
            after = seq + 1;
            let found = longest.iter().find(|d| d["seq"] == *seq);
            let found =
                found.unwrap_or_else(|| panic!("{fixture_name}: the {ms} ms dispatch ({seq}) not found: {longest:?}"));
            let seconds = found["seconds"].as_f64().unwrap();
            assert!(
                within_one_period(seconds, *cpu, *wall),
                "{fixture_name}: {ms} ms measured {seconds:.4} s ({wall:.4} s wall)"
            );
            // Its innermost script frame (the kernel's may sit under it: the fixture reads the clock).
            let top: Vec<&str> = found["top_stack"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f["name"].as_str())
                .filter(|name| !name.starts_with("[k] ") && *name != "[kernel]")
                .collect();
            assert_eq!(top.last(), Some(&INJECTED_EVENT), "{fixture_name}: {found}");
        }
        // The histogram counts what was listed.
        let counted: u64 = measured["events"].as_array().unwrap().iter().map(|h| h["count"].as_u64().unwrap()).sum();
        assert_eq!(counted, longest.len() as u64, "{fixture_name}: {measured}");
        assert!(stdout.contains("event dispatches of 2.0 ms or more (±1.0 ms); the longest:"), "{stdout}");
        assert!(stdout.contains(INJECTED_EVENT), "{stdout}");
    }
}

#[test]
fn record_and_check_say_long_dispatches_are_unavailable_before_7_2() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(zeek_probe())
        .args(["record", "--out"])
        .arg(dir.path())
        .arg("--")
        .arg(fixture("zeek-shaped-7.0"))
        .args(["--rounds", "3"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("long dispatches: unavailable (Zeek < 7.2)"), "{stdout}");
    let summary = read_json(&dir.path().join("summary.json"));
    assert!(summary.get("long_dispatches").is_none(), "{summary}");
    assert_eq!(summary["target"]["long_dispatches_unavailable"], "Zeek < 7.2");

    let check = |name: &str| {
        let out = Command::new(zeek_probe()).arg("check").arg(fixture(name)).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(check("zeek-shaped-7.0").contains("long dispatches: unavailable (Zeek < 7.2)"));
    let text = check("zeek-shaped-8.2");
    assert!(text.contains("long dispatches: measured"), "{text}");
    assert!(text.contains("EventMgr::num_events_dispatched   48  (dwarf)"), "{text}");
}

#[test]
fn attach_exports_the_dispatch_histogram_with_buckets_from_two_periods() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixture = Reaped(
        Command::new(fixture("zeek-shaped-8.2"))
            .args(["--wait-for-signal", "--long-dispatches", "--truth"])
            .arg(dir.path().join("truth.json"))
            .env("CLUSTER_NODE", "worker-3")
            .spawn()
            .unwrap(),
    );
    let pid = fixture.0.id();
    let mut exporter = Reaped(
        Command::new(zeek_probe())
            .args(["attach", "--hz", &HZ.to_string(), "--listen", "127.0.0.1:0", "--duration", "120", "--pid"])
            .arg(pid.to_string())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(exporter.0.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let address = line.split("http://").nth(1).and_then(|rest| rest.split('/').next()).unwrap().to_owned();
    assert!(!scrape(&address).contains("zeek_probe_event_dispatch_seconds"), "nothing dispatched yet");

    signal(pid, libc::SIGUSR1);
    let mut fixture = fixture;
    assert!(fixture.0.wait().unwrap().success());
    let down = format!("zeek_probe_target_up{{node=\"worker-3\",pid=\"{pid}\"}} 0");
    let text = wait_until("the exporter notices the exit", Duration::from_secs(30), || {
        let text = scrape(&address);
        if text.contains(&down) { Ok(text) } else { Err(text) }
    });

    assert_promtool_accepts(&text);

    let injected: Vec<(String, f64)> = samples(&text, "zeek_probe_event_dispatch_seconds_bucket")
        .into_iter()
        .filter(|(l, _)| l["event"] == INJECTED_EVENT && l["node"] == "worker-3" && l["pid"] == pid.to_string())
        .map(|(l, v)| (l["le"].clone(), v))
        .collect();
    let bounds: Vec<&str> = injected.iter().map(|(le, _)| le.as_str()).collect();
    let expected: Vec<String> =
        (1..=10).map(|k| format!("{}", f64::from(1u32 << k) * PERIOD)).chain(["+Inf".to_owned()]).collect();
    assert_eq!(bounds, expected.iter().map(String::as_str).collect::<Vec<_>>(), "{text}");
    // Each bucket counts what ran that long: a dispatch measured within one period of its run
    // (no shorter than its CPU time less one, no longer than its wall time plus one) is surely
    // at or under a bound its wall time plus a period reaches, surely above one under its CPU
    // time less a period; it is surely observed from 3 periods of CPU.
    let truth = timed_dispatches(&read_json(&dir.path().join("truth.json")));
    let runs: Vec<(f64, f64)> =
        truth.values().filter(|(event, _, _)| event == INJECTED_EVENT).map(|(_, cpu, wall)| (*cpu, *wall)).collect();
    assert!(runs.len() >= INJECTED_MS.len(), "{truth:?}");
    for (le, cumulative) in &injected {
        let bound = if le == "+Inf" { f64::INFINITY } else { le.parse::<f64>().unwrap() };
        let surely = runs.iter().filter(|(cpu, wall)| *cpu >= 3.0 * PERIOD && wall + PERIOD <= bound).count();
        let at_most = runs.iter().filter(|(cpu, _)| cpu - PERIOD <= bound).count();
        assert!(
            (surely as f64..=at_most as f64).contains(cumulative),
            "le={le}: {cumulative} counted, {surely}..={at_most} ran that long: {injected:?} {runs:?}"
        );
    }
    let count = samples(&text, "zeek_probe_event_dispatch_seconds_count");
    let count = count.iter().find(|(l, _)| l["event"] == INJECTED_EVENT).map(|(_, v)| *v);
    assert_eq!(count, injected.last().map(|(_, v)| *v), "{injected:?}");
}
