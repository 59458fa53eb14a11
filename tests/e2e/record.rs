//! `zeek-probe record --count-calls` against the fixture's own ground truth.
use std::{collections::BTreeMap, process::Command};

use crate::common::*;

#[test]
fn record_counts_exactly_on_every_abi_generation() {
    if !privileged() {
        return;
    }
    for (fixture, version, _) in GENERATIONS {
        let summary = assert_exact_counts(fixture);
        assert_eq!(summary["target"]["zeek_version"], version, "{fixture}");
    }
}

#[test]
fn record_counts_exactly_on_cet_stripped_and_debug_builds() {
    if !privileged() {
        return;
    }
    for fixture in VARIANTS {
        assert_exact_counts(fixture);
    }
}

/// Records `fixture_name` with every call counted and compares with its truth; returns the
/// summary. Needs privileges: its callers skip without them.
fn assert_exact_counts(fixture_name: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let truth_path = dir.path().join("truth.json");
    let out = dir.path().join("report");
    let output = Command::new(zeek_probe())
        .args(["record", "--count-calls", "--out"])
        .arg(&out)
        .arg("--")
        .arg(fixture(fixture_name))
        .args(["--rounds", "25", "--truth"])
        .arg(&truth_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{fixture_name}: record failed: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    let truth = read_json(&truth_path);
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["target"]["pid"], truth["pid"]);
    assert_eq!(summary["target"]["node"], "standalone");

    let expected = functions(&truth);
    assert!(expected.len() > 15, "the fixture should exercise many functions: {expected:?}");
    assert!(expected.keys().any(|(n, _)| n.starts_with("lambda_<")), "lambdas are part of the workload");
    assert_eq!(functions(&summary), expected, "{fixture_name}: calls per function and kind");
    // Lambdas by where Zeek's own profiler places them, each apart.
    let shown: BTreeMap<String, String> = zeek_names(&summary).into_iter().map(|(shown, zeek)| (zeek, shown)).collect();
    for (zeek_name, name) in expected_lambda_names(&truth) {
        assert_eq!(shown.get(&zeek_name), Some(&name), "{fixture_name}: {zeek_name} shown by its definition");
    }
    assert_eq!(callers(&summary), callers(&truth), "{fixture_name}: calls per caller→callee edge");
    assert_eq!(log_writes(&summary), log_writes(&truth), "{fixture_name}: writes per log stream");

    let health = &summary["probe_health"];
    for field in ["invalid_func", "map_full", "unnamed_calls", "unnamed_samples"] {
        assert_eq!(health[field], 0, "probe health {field}: {health}");
    }
    // The sampler may meet a page that is not resident (BPF cannot fault it in): rare.
    let calls: u64 = expected.values().sum();
    assert!(health["read_failed"].as_u64().unwrap() * 1000 < calls, "probe health: {health}");
    assert!(stdout.contains("every call counted"), "top table printed: {stdout}");
    summary
}

#[test]
fn record_exits_with_the_commands_status() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The fixture rejects unknown arguments with status 2.
    let output = Command::new(zeek_probe())
        .args(["record", "--out"])
        .arg(dir.path())
        .arg("--")
        .arg(fixture("zeek-shaped-8.2"))
        .arg("--no-such-option")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(dir.path().join("summary.json").is_file(), "a report is written even for a failed run");
}
