//! Shared helpers: finding the binaries, privilege policy, reading truth and summaries.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Output,
};

use serde_json::Value;

pub fn zeek_probe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zeek-probe"))
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every ABI generation's fixture, with the version and ABI zeek-probe must report for it.
pub const GENERATIONS: [(&str, &str, &str); 6] = [
    ("zeek-shaped-6.0", "6.0.0", "6.0"),
    ("zeek-shaped-7.0", "7.0.0", "7.0"),
    ("zeek-shaped-7.2", "7.2.0", "7.2"),
    ("zeek-shaped-8.0", "8.0.0", "8.0"),
    ("zeek-shaped-8.1", "8.1.0", "8.1"),
    ("zeek-shaped-8.2", "8.2.2", "8.2"),
];

/// Build variants of two generations: CET prologues, stripped of .symtab and DWARF, debug
/// builds (whose `EnumVal` layout differs before 8.2).
pub const VARIANTS: [&str; 7] = [
    "zeek-shaped-8.2-cet",
    "zeek-shaped-7.0-cet",
    "zeek-shaped-8.2-stripped",
    "zeek-shaped-7.0-stripped",
    "zeek-shaped-8.2-debug",
    "zeek-shaped-7.0-debug",
    "zeek-shaped-8.2-debuglink",
];

/// A fixture built by `cargo xtask fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    let path = workspace_root().join("target/fixtures").join(name);
    assert!(path.is_file(), "{} is missing: run `cargo xtask fixtures`", path.display());
    path
}

/// Whether privileged tests can run here. Under CI=true a missing privilege is a failure.
pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("privileged end-to-end tests must run as root in CI");
    }
    eprintln!("skipping: needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE)");
    false
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Shown name → Zeek's own name (they differ for lambdas, shown as `lambda@file:line`).
pub fn zeek_names(doc: &Value) -> BTreeMap<String, String> {
    doc["functions"]
        .as_array()
        .expect("functions array")
        .iter()
        .filter_map(|f| Some((f["name"].as_str()?.to_owned(), f["zeek_name"].as_str()?.to_owned())))
        .collect()
}

/// (Zeek name, kind) → calls, from a `functions` array (rows without counted calls left out).
pub fn functions(doc: &Value) -> BTreeMap<(String, String), u64> {
    let names = zeek_names(doc);
    doc["functions"]
        .as_array()
        .expect("functions array")
        .iter()
        .filter_map(|f| {
            let name = f["name"].as_str().unwrap();
            let name = names.get(name).map_or(name, String::as_str).to_owned();
            Some(((name, f["kind"].as_str().unwrap().to_owned()), f["calls"].as_u64()?))
        })
        .collect()
}

/// (caller Zeek name or "", callee Zeek name) → calls, from a `callers` array.
pub fn callers(doc: &Value) -> BTreeMap<(String, String), u64> {
    let names = zeek_names(doc);
    let zeek = |n: &str| names.get(n).map_or(n, String::as_str).to_owned();
    doc["callers"]
        .as_array()
        .expect("callers array")
        .iter()
        .filter_map(|c| {
            let caller = c["caller"].as_str().map_or_else(String::new, zeek);
            Some(((caller, zeek(c["callee"].as_str().unwrap())), c["calls"].as_u64()?))
        })
        .collect()
}

/// stream → writes from a `log_writes` array.
pub fn log_writes(doc: &Value) -> BTreeMap<String, u64> {
    doc["log_writes"]
        .as_array()
        .expect("log_writes array")
        .iter()
        .map(|l| (l["stream"].as_str().unwrap().to_owned(), l["writes"].as_u64().unwrap()))
        .collect()
}

/// Asserts a failed run said what went wrong in exactly one line.
pub fn assert_one_line_error(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected failure, got {:?}; stderr: {stderr}", output.status);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line of error, got: {stderr}");
    assert!(lines[0].starts_with("zeek-probe: error: "), "{stderr}");
    assert!(lines[0].contains(expected), "expected {expected:?} in: {stderr}");
}
