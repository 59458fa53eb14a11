//! Bad input: each answered with one line naming the problem, and a non-zero exit.
use std::process::{Command, Stdio};

use crate::common::*;

fn zeek_probe_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(zeek_probe());
    cmd.args(args).stdin(Stdio::null());
    cmd
}

#[test]
fn attach_to_a_pid_that_does_not_exist() {
    if !privileged() {
        return;
    }
    // PIDs are below pid_max (at most 2^22): this one cannot exist.
    let output = zeek_probe_cmd(&["attach", "--pid", "99999999"]).output().unwrap();
    assert_one_line_error(&output, "no process with PID 99999999");
}

#[test]
fn attach_to_a_process_that_is_not_zeek() {
    if !privileged() {
        return;
    }
    let mut sleep = Command::new("sleep").arg("30").spawn().unwrap();
    let output = zeek_probe_cmd(&["attach", "--pid", &sleep.id().to_string()]).output().unwrap();
    let _ = sleep.kill();
    let _ = sleep.wait();
    assert_one_line_error(&output, "is not Zeek");
}

#[test]
fn record_a_binary_without_zeek_symbols() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output =
        zeek_probe_cmd(&["record", "--out", dir.path().to_str().unwrap(), "--", "/bin/true"]).output().unwrap();
    assert_one_line_error(&output, "is not Zeek: it has no ScriptFunc::Invoke symbol");
}

#[test]
fn record_a_command_that_cannot_start() {
    if !privileged() {
        return;
    }
    let output = zeek_probe_cmd(&["record", "--", "/nonexistent/zeek"]).output().unwrap();
    assert_one_line_error(&output, "cannot start `/nonexistent/zeek`: No such file or directory");
}

#[test]
fn without_bpf_privileges() {
    if !privileged() {
        return;
    }
    // Root without any capability: what an unprivileged user has.
    let output = Command::new("setpriv")
        .args(["--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"])
        .arg(zeek_probe())
        .args(["record", "--"])
        .arg(fixture("zeek-shaped-8.2"))
        .args(["--rounds", "1"])
        .output()
        .unwrap();
    assert_one_line_error(&output, "lacks CAP_SYS_ADMIN, CAP_SYS_PTRACE");
}
