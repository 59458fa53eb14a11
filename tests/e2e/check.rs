//! `zeek-probe check`: version, ABI, offset source, probe placement and verdict for every
//! fixture generation and variant; one-line errors for what is not Zeek; the layout cache.
use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::common::*;

fn check_json(args: &[&str]) -> (Option<i32>, Value) {
    let output = Command::new(zeek_probe()).arg("check").args(args).arg("--json").output().unwrap();
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    });
    (output.status.code(), report)
}

#[test]
fn reports_version_abi_and_placement_for_every_generation() {
    if !privileged() {
        return;
    }
    for (name, version, abi) in GENERATIONS {
        let path = fixture(name);
        let (status, r) = check_json(&[path.to_str().unwrap()]);
        assert_eq!(status, Some(0), "{name}: {r}");
        assert_eq!((r["zeek_version"].as_str(), r["abi"].as_str()), (Some(version), Some(abi)), "{name}");
        assert_eq!(r["layout_source"], "dwarf", "{name}");
        assert!(r["offsets"].as_array().unwrap().iter().all(|o| o["source"] == "dwarf"), "{name}: {r}");
        let evidence = r["abi_evidence"].as_array().unwrap();
        assert!(evidence.len() == 2 && evidence.iter().all(|e| e["agrees"] == true), "{name}: {r}");
        assert_eq!(r["layout_mismatches"].as_array().map(Vec::len), Some(0), "{name}: {r}");
        assert_eq!(r["stdlib"], "libstdc++");
        assert_eq!(r["probe_points"].as_array().unwrap().len(), 3, "{name}");
        assert!(r["probe_points"].as_array().unwrap().iter().all(|p| p["cost"] == "emulated" && p["skipped"] == 0));
        assert_eq!(r["names_dispatched_events"], abi >= "7.2", "{name}");
        assert!(r["verdict"].as_str().unwrap().starts_with("ready"), "{name}: {r}");
        // This machine's kernel has BTF with task_struct.thread.fsbase: threads get stacks.
        assert_eq!(r["kernel"]["thread_stacks"], true, "{name}: {r}");
    }
    for name in VARIANTS {
        let (status, r) = check_json(&[fixture(name).to_str().unwrap()]);
        assert_eq!(status, Some(0), "{name}: {r}");
        let points = r["probe_points"].as_array().unwrap();
        let skipped = if name.ends_with("-cet") { 4 } else { 0 };
        assert!(points.iter().all(|p| p["skipped"] == skipped && p["cost"] == "emulated"), "{name}: {r}");
        // A push of r8..r15 (real Zeek: `push %r15`, zeek-abi.md §10), past any endbr64.
        assert!(points.iter().all(|p| p["instruction_bytes"].as_str().unwrap().starts_with("41 5")), "{name}: {r}");
        let source = if name.ends_with("-stripped") { "table" } else { "dwarf" };
        assert!(r["offsets"].as_array().unwrap().iter().all(|o| o["source"] == source), "{name}: {r}");
        assert_eq!(r["debug_build"], name.ends_with("-debug"), "{name}");
        assert_eq!(r["layout_source"], if name.ends_with("-stripped") { "table" } else { "dwarf" }, "{name}");
        if name.ends_with("-debuglink") {
            // Stripped of its DWARF, found again through .gnu_debuglink.
            let dwarf_file = r["dwarf_file"].as_str().unwrap_or_default();
            assert!(dwarf_file.ends_with("zeek-shaped-8.2-debuglink.debug"), "{name}: {r}");
        }
        // Debug builds before 8.2 move the EnumVal ordinal from +32 to +40.
        let int_val = r["offsets"].as_array().unwrap().iter().find(|o| o["field"] == "EnumVal::int_val").unwrap();
        assert_eq!(int_val["offset"], if name == "zeek-shaped-7.0-debug" { 40 } else { 32 }, "{name}");
    }
}

#[test]
fn a_running_process_gets_its_node_and_zam_state() {
    if !privileged() {
        return;
    }
    // Killed when the test ends, should it fail before the signal that lets it finish.
    let mut zeek = Reaped(
        Command::new(fixture("zeek-shaped-8.2"))
            .args(["--wait-for-signal", "--rounds", "1"])
            .env("CLUSTER_NODE", "worker-3")
            .env("ZEEK_ZAM", "1")
            .spawn()
            .unwrap(),
    );
    let (status, r) = check_json(&["--pid", &zeek.0.id().to_string()]);
    signal(zeek.0.id(), libc::SIGUSR1);
    assert!(zeek.0.wait().unwrap().success());
    assert_eq!(status, Some(0), "{r}");
    assert_eq!((r["node"].as_str(), r["zam"].as_bool()), (Some("worker-3"), Some(true)), "{r}");

    let text =
        Command::new(zeek_probe()).args(["check", fixture("zeek-shaped-8.2").to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.lines().last().unwrap().starts_with("ready: "), "the verdict is the last line: {text}");
}

#[test]
fn without_privileges_the_verdict_says_what_is_missing() {
    if !privileged() {
        return;
    }
    let output = Command::new("setpriv")
        .args(["--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"])
        .arg(zeek_probe())
        .arg("check")
        .arg(fixture("zeek-shaped-8.2"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("not ready: run as root or grant CAP_SYS_ADMIN, CAP_SYS_PTRACE"));
}

#[test]
fn what_is_not_zeek_gets_one_line() {
    let output = Command::new(zeek_probe()).args(["check", "/bin/true"]).output().unwrap();
    assert_one_line_error(&output, "/bin/true is not Zeek: it has no ScriptFunc::Invoke symbol");
    let output = Command::new(zeek_probe()).args(["check", "/nonexistent/zeek"]).output().unwrap();
    assert_one_line_error(&output, "cannot open /nonexistent/zeek");
    let debug = fixture("zeek-shaped-8.2-debuglink.debug");
    let output = Command::new(zeek_probe()).arg("check").arg(&debug).output().unwrap();
    assert_one_line_error(&output, &format!("{} is a debug-information file, not an executable", debug.display()));
}

/// A FIFO is refused at once (opening it to read would wait for a writer forever), as is any
/// other file that is not a regular one.
#[test]
fn what_is_not_a_regular_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("zeek");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
    let started = std::time::Instant::now();
    let mut check = Reaped(
        Command::new(zeek_probe())
            .arg("check")
            .arg(&fifo)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = wait_until("check of a FIFO ends", std::time::Duration::from_secs(30), || {
        check.0.try_wait().unwrap().ok_or_else(|| format!("still running after {:?}", started.elapsed()))
    });
    let mut stderr = Vec::new();
    std::io::Read::read_to_end(&mut check.0.stderr.take().unwrap(), &mut stderr).unwrap();
    let output = std::process::Output { status, stdout: Vec::new(), stderr };
    assert_one_line_error(&output, &format!("{} is a FIFO, not an executable file", fifo.display()));
    for (path, kind) in [("/tmp", "a directory"), ("/dev/null", "a device")] {
        let output = Command::new(zeek_probe()).args(["check", path]).output().unwrap();
        assert_one_line_error(&output, &format!("{path} is {kind}, not an executable file"));
    }
}

/// `check --json` of `binary` with the layout cache in `cache`.
fn check_cached(binary: &Path, cache: &Path) -> Value {
    let output = Command::new(zeek_probe())
        .args(["check", "--json"])
        .arg(binary)
        .env("CACHE_DIRECTORY", cache)
        .env_remove("ZEEK_PROBE_CACHE")
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap()
}

/// What DWARF said is kept per binary: the second inspection reads it from the cache with the
/// same offsets; a corrupt entry is ignored and rewritten; the cache can be turned off.
#[test]
fn the_layout_cache_is_used_the_second_time_and_survives_corruption() {
    let cache = tempfile::tempdir().unwrap();
    let binary = fixture("zeek-shaped-8.2-debuglink");
    let first = check_cached(&binary, cache.path());
    let entry = first["layout_cache"]["stored"].as_str().unwrap_or_else(|| panic!("kept: {first}")).to_owned();
    assert!(entry.starts_with(cache.path().to_str().unwrap()), "{entry}");
    let second = check_cached(&binary, cache.path());
    assert_eq!(second["layout_cache"]["hit"], entry.as_str(), "{second}");
    assert_eq!(second["offsets"], first["offsets"]);
    assert_eq!(second["dwarf_file"], first["dwarf_file"]);
    assert_eq!(second["layout_source"], "dwarf");

    fs::write(&entry, "{\"format\": 1, \"offsets\": [[").unwrap();
    let rewritten = check_cached(&binary, cache.path());
    assert_eq!(rewritten["layout_cache"]["stored"], entry.as_str(), "{rewritten}");
    assert_eq!(rewritten["offsets"], first["offsets"]);
    assert_eq!(check_cached(&binary, cache.path())["layout_cache"]["hit"], entry.as_str());

    let output = Command::new(zeek_probe())
        .args(["check", "--json"])
        .arg(&binary)
        .env("ZEEK_PROBE_CACHE", "off")
        .output()
        .unwrap();
    let off: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(off["layout_cache"], "off", "{off}");
    assert_eq!(off["offsets"], first["offsets"]);
}
