//! Faults from outside the program: a full standard output or error, signals from a service
//! manager, output places that cannot be written.
use std::{
    ffi::OsStr,
    fs::File,
    process::{Command, Output, Stdio},
};

use crate::common::*;

/// Which of the standard streams go to /dev/full (every write fails with ENOSPC).
#[derive(Clone, Copy)]
enum Full {
    Stdout,
    Stderr,
    Both,
}

fn dev_full() -> Stdio {
    Stdio::from(File::options().write(true).open("/dev/full").expect("/dev/full"))
}

fn run_into_full(full: Full, args: &[&OsStr]) -> Output {
    let mut cmd = Command::new(zeek_probe());
    cmd.args(args).stdin(Stdio::null());
    if matches!(full, Full::Stdout | Full::Both) {
        cmd.stdout(dev_full());
    }
    if matches!(full, Full::Stderr | Full::Both) {
        cmd.stderr(dev_full());
    }
    cmd.output().unwrap()
}

/// A failed run that did not panic (a panic exits with 101 and says "panicked").
fn assert_failed_without_panic(output: &Output, what: &str) {
    let said = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{what}: expected failure, got {:?}: {said}", output.status);
    assert_ne!(output.status.code(), Some(101), "{what}: panicked: {said}");
    assert!(!said.contains("panicked"), "{what}: {said}");
}

#[test]
fn a_full_stdout_is_one_error_line_not_a_panic() {
    let fixture = fixture("zeek-shaped-8.2");
    for args in
        [&["check".as_ref(), fixture.as_os_str()][..], &["check".as_ref(), "--json".as_ref(), fixture.as_os_str()]]
    {
        let output = run_into_full(Full::Stdout, args);
        assert_failed_without_panic(&output, "check");
        assert_one_line_error(&output, "cannot write to standard output: No space left on device");
    }
    let output = run_into_full(Full::Stdout, &["targets".as_ref(), "--format".as_ref(), "json".as_ref()]);
    assert_failed_without_panic(&output, "targets");
    // Without privileges a warning comes first; the error is the last line.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.lines().last().is_some_and(|l| l.starts_with("zeek-probe: error: cannot write to standard output")),
        "{stderr}"
    );
    if !privileged() {
        return;
    }
    let output = run_into_full(Full::Stdout, &["targets".as_ref()]);
    assert_one_line_error(&output, "cannot write to standard output");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let output = run_into_full(
        Full::Stdout,
        &[
            "record".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
            "--".as_ref(),
            fixture.as_os_str(),
            "--rounds".as_ref(),
            "1".as_ref(),
        ],
    );
    assert_failed_without_panic(&output, "record");
    assert_one_line_error(&output, "cannot write to standard output");
    assert!(out.join("summary.json").is_file(), "the report is written before the table");
}

#[test]
fn a_full_stderr_is_a_failed_exit_not_a_panic() {
    let fixture = fixture("zeek-shaped-8.2");
    // The error line cannot be written; the exit status still says it failed.
    assert_failed_without_panic(
        &run_into_full(Full::Stderr, &["check".as_ref(), "/nonexistent/zeek".as_ref()]),
        "check",
    );
    assert_failed_without_panic(&run_into_full(Full::Both, &["check".as_ref(), fixture.as_os_str()]), "check");
    assert_failed_without_panic(&run_into_full(Full::Both, &["targets".as_ref()]), "targets");
    assert_failed_without_panic(
        &run_into_full(Full::Stderr, &["attach".as_ref(), "--pid".as_ref(), "99999999".as_ref()]),
        "attach",
    );
    if !privileged() {
        return;
    }
    // Notes that cannot be written do not stop the work.
    let target = Reaped(Command::new(&fixture).args(["--seconds", "30"]).stdout(Stdio::null()).spawn().unwrap());
    let pid = target.0.id().to_string();
    let output = run_into_full(
        Full::Stderr,
        &[
            "attach".as_ref(),
            "--pid".as_ref(),
            pid.as_ref(),
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--duration".as_ref(),
            "1".as_ref(),
        ],
    );
    assert!(output.status.success(), "attach with a full stderr: {:?}", output.status);
}
