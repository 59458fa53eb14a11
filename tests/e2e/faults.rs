//! Faults from outside the program: a full standard output or error, signals from a service
//! manager, output places that cannot be written.
use std::{
    ffi::OsStr,
    fs::{self, File},
    io::Read as _,
    os::unix::process::CommandExt as _,
    path::Path,
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

/// SIGTERM (systemd, timeout, container runtimes), SIGHUP and a SIGINT sent to zeek-probe
/// alone do what Ctrl-C does: the command gets the signal, the report is written, and
/// zeek-probe exits with the command's status. Nothing is left running.
#[test]
fn stopping_record_stops_the_command_and_keeps_the_report() {
    if !privileged() {
        return;
    }
    let program = fixture("zeek-shaped-8.2");
    let signals = [(libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP"), (libc::SIGINT, "SIGINT")];
    for (sig, name) in signals {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("report");
        let mut command = Command::new(zeek_probe());
        command.args(["record", "--out"]).arg(&out).arg("--").arg(&program).args(["--seconds", "120"]);
        // As from a terminal: a test run under `nohup` (SIGHUP ignored) or started in the
        // background by a shell without job control (SIGINT ignored) passes the ignoring on
        // through zeek-probe to the command, which then outlives the signal, as it would
        // started so without zeek-probe.
        // SAFETY: signal() is async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                for (sig, _) in signals {
                    libc::signal(sig, libc::SIG_DFL);
                }
                Ok(())
            })
        };
        let mut record = Reaped(command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
        let command = running_child(record.0.id(), &program);
        signal(record.0.id(), sig);
        let mut stdout = String::new();
        record.0.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
        let mut stderr = String::new();
        record.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let status = record.0.wait().unwrap();
        assert_eq!(status.code(), Some(128 + sig), "{name}: the command's status (killed by {name}): {stderr}");
        assert!(out.join("summary.json").is_file() && out.join("flamegraph.svg").is_file(), "{name}: {stderr}");
        assert!(stdout.contains("report: "), "{name}: top table printed: {stdout}");
        assert!(!Path::new(&format!("/proc/{command}")).exists(), "{name}: the command is left running");
    }
}

/// An output directory that cannot take the report is refused before the command runs (the
/// fixture's truth file, written as it starts, is not there).
#[test]
fn record_refuses_an_unwritable_out_before_running() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let truth = dir.path().join("truth.json");
    for out in [Path::new("/proc/zeek-probe-report"), Path::new("/proc"), &file, &file.join("report")] {
        let output = Command::new(zeek_probe())
            .args(["record", "--out"])
            .arg(out)
            .arg("--")
            .arg(fixture("zeek-shaped-8.2"))
            .args(["--rounds", "1", "--truth"])
            .arg(&truth)
            .output()
            .unwrap();
        assert_one_line_error(&output, &format!("cannot write to {}", out.display()));
        assert_one_line_error(&output, "give --out a directory zeek-probe can write to");
        assert!(!truth.exists(), "{}: the command ran", out.display());
    }
}

#[test]
fn attach_refuses_a_flamegraph_in_a_missing_directory_before_attaching() {
    let dir = tempfile::tempdir().unwrap();
    for path in [dir.path().join("missing/flame.svg"), dir.path().to_owned()] {
        let output = Command::new(zeek_probe())
            .args(["attach", "--pid", "1", "--listen", "127.0.0.1:0", "--flamegraph"])
            .arg(&path)
            .output()
            .unwrap();
        assert_one_line_error(&output, &format!("cannot write to {}", path.display()));
        assert_one_line_error(&output, "give --flamegraph a file in an existing directory");
    }
}

/// A flame graph that cannot be written at exit (its directory went away) is a failed exit.
#[test]
fn attach_fails_when_the_final_flamegraph_cannot_be_written() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let place = dir.path().join("graphs");
    fs::create_dir(&place).unwrap();
    let target = Reaped(Command::new(fixture("zeek-shaped-8.2")).args(["--seconds", "60"]).spawn().unwrap());
    let mut cmd = Command::new(zeek_probe());
    cmd.args(["attach", "--hz", "999", "--listen", "127.0.0.1:0", "--flamegraph"])
        .arg(place.join("flame.svg"))
        .args(["--pid", &target.0.id().to_string()]);
    let mut exporter = Exporter::start(cmd, "http");
    fs::remove_dir(&place).unwrap();
    exporter.wait_for("samples taken", |t| t.contains("zeek_probe_function_self_seconds_total{"));
    signal(exporter.child.0.id(), libc::SIGTERM);
    let (status, log) = exporter.exit();
    assert_eq!(status.code(), Some(1), "{log}");
    let last = log.lines().last().unwrap_or_default();
    assert!(last.starts_with("zeek-probe: error: cannot write ") && last.contains("flame.svg"), "{log}");
}
