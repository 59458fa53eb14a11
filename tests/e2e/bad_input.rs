//! Bad input: each answered with one line naming the problem, and a non-zero exit.
use std::{
    net::TcpListener,
    process::{Command, Output, Stdio},
};

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
fn record_with_uprobe_links_misspelt() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut record = zeek_probe_cmd(&["record", "--out", dir.path().to_str().unwrap(), "--", "/bin/true"]);
    let output = record.env("ZEEK_PROBE_UPROBE_LINKS", "perf_event").output().unwrap();
    assert_one_line_error(&output, "ZEEK_PROBE_UPROBE_LINKS is \"perf_event\": set it to perf-event");
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

/// The line says the underlying error once, with the hint that fits it.
fn assert_said_once(output: &Output, detail: &str, hint: &str) {
    assert_one_line_error(output, hint);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches(detail).count(), 1, "{detail:?} said once: {stderr}");
}

#[test]
fn configuration_errors_say_the_cause_once_with_the_right_hint() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "basic_auth_users: [\n").unwrap();
    let attach = |extra: &[&str]| {
        zeek_probe_cmd(&["attach", "--cluster", "--listen", "127.0.0.1:0"]).args(extra).output().unwrap()
    };
    assert_said_once(&attach(&["--web-config", web.to_str().unwrap()]), "invalid type", "web config");
    let bad_host = attach(&["--zmq-logs", "tcp://nosuchhost.invalid:5557"]);
    assert_said_once(&bad_host, "No such device", "the host is not an address of this machine");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("tcp://{}", taken.local_addr().unwrap());
    assert_said_once(&attach(&["--zmq-logs", &endpoint]), "Address already in use", "another process is bound to it");
}

/// Refused as root (with CAP_SYS_PTRACE), the message says what the kernel refused rather
/// than asking for the privilege zeek-probe has.
#[test]
fn attach_to_pid_1_says_what_failed() {
    if !privileged() {
        return;
    }
    let output = zeek_probe_cmd(&["attach", "--pid", "1"]).output().unwrap();
    assert_one_line_error(&output, "PID 1");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("run zeek-probe as root"), "{output:?}");
}

/// A target that exits while zeek-probe attaches to it is said to have exited, whatever step
/// it was at (not the kernel's "No such process" from perf_event_open). Targets living ever
/// longer, until one lives long enough to be attached, sweep through every step.
#[test]
fn a_target_exiting_during_attach_is_said_to_have_exited() {
    if !privileged() {
        return;
    }
    let mut said = Vec::new();
    for step in 1..=100 {
        let seconds = format!("{:.2}", f64::from(step) * 0.03);
        let mut target = Reaped(
            Command::new(fixture("zeek-shaped-8.2"))
                .args(["--seconds", &seconds])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let pid = target.0.id().to_string();
        let output =
            zeek_probe_cmd(&["attach", "--pid", &pid, "--listen", "127.0.0.1:0", "--duration", "1"]).output().unwrap();
        target.0.wait().unwrap();
        if output.status.success() {
            eprintln!("targets living {seconds} s were attached; before, zeek-probe said: {said:?}");
            return;
        }
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            stderr.contains(&format!("no process with PID {pid}"))
                || stderr.contains(&format!("PID {pid} exited while zeek-probe was attaching to it")),
            "a target living {seconds} s: {stderr}"
        );
        assert_one_line_error(&output, &pid);
        said.push(stderr.trim().to_owned());
    }
    panic!("no target was attached: {said:?}");
}

/// Without privileges, no Zeek visible is not "no Zeek running".
#[test]
fn targets_without_privileges_says_it_cannot_see_them() {
    if !privileged() {
        return;
    }
    let _zeek = Reaped(Command::new(fixture("zeek-shaped-8.2")).args(["--seconds", "60"]).spawn().unwrap());
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"])
        .arg(zeek_probe())
        .arg("targets")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(!stdout.contains("no Zeek process is running"), "{stdout}");
    assert!(stdout.contains("cannot see other users' processes (run it as root"), "{stdout}");
}

/// `top` draws on a terminal; into a pipe it says so before attaching anything (no privilege
/// needed to be told).
#[test]
fn top_without_a_terminal_is_a_usage_error() {
    let output = zeek_probe_cmd(&["top", "--pid", "1"]).output().unwrap();
    assert_one_line_error(&output, "standard output is not one");
    assert_eq!(output.status.code(), Some(2), "a usage error");
    assert!(output.stdout.is_empty(), "nothing drawn into the pipe");
}
