//! zeek-probe or its target killed outright: whatever dies, Zeek carries on as if never probed
//! (its probed instructions restored, no BPF program left behind), and what can still be
//! reported is. And what a `record` that ended normally leaves: nothing either, once the child
//! it hands the kernel's slow release of its probes to has gone.
use std::{
    collections::BTreeSet,
    fs,
    io::Read as _,
    os::unix::fs::FileExt as _,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::common::*;

/// Where `check` says the fixture is probed: (file offset, the instruction bytes there).
fn probe_points(binary: &Path) -> Vec<(u64, Vec<u8>)> {
    let output = Command::new(zeek_probe()).args(["check", "--json"]).arg(binary).output().unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    report["probe_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let bytes = p["instruction_bytes"].as_str().unwrap();
            let bytes = bytes.split(' ').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
            (p["file_offset"].as_u64().unwrap(), bytes)
        })
        .collect()
}

/// The bytes at each probe point as the process `pid` sees them now (its text, as mapped).
fn probed_bytes(pid: u32, binary: &Path, points: &[(u64, Vec<u8>)]) -> Result<Vec<Vec<u8>>, String> {
    let binary = binary.canonicalize().unwrap();
    let binary = binary.to_str().unwrap();
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).map_err(|e| format!("PID {pid}'s maps: {e}"))?;
    let mem = fs::File::open(format!("/proc/{pid}/mem")).map_err(|e| format!("PID {pid}'s memory: {e}"))?;
    points
        .iter()
        .map(|(offset, original)| {
            let address = maps
                .lines()
                .filter(|l| l.ends_with(binary))
                .find_map(|l| {
                    let fields: Vec<&str> = l.split_whitespace().collect();
                    let (start, end) = fields[0].split_once('-')?;
                    let (start, end) = (u64::from_str_radix(start, 16).ok()?, u64::from_str_radix(end, 16).ok()?);
                    let file_offset = u64::from_str_radix(fields[2], 16).ok()?;
                    (file_offset <= *offset && *offset < file_offset + end - start)
                        .then(|| start + offset - file_offset)
                })
                .ok_or_else(|| format!("offset {offset:#x} of {binary} is not mapped in {pid}"))?;
            let mut now = vec![0; original.len()];
            mem.read_exact_at(&mut now, address).map_err(|e| format!("PID {pid} at {address:#x}: {e}"))?;
            Ok(now)
        })
        .collect()
}

/// Waits until the process's probe points hold their original instructions.
fn wait_for_original_bytes(what: &str, pid: u32, binary: &Path, points: &[(u64, Vec<u8>)]) {
    let originals: Vec<Vec<u8>> = points.iter().map(|(_, b)| b.clone()).collect();
    wait_until(what, Duration::from_secs(10), || {
        let now = probed_bytes(pid, binary, points)?;
        if now == originals { Ok(()) } else { Err(format!("{now:02x?} against {originals:02x?}")) }
    });
}

/// Waits until every probe point of the process holds a breakpoint: its uprobes are in.
fn wait_for_probes_in_place(pid: u32, binary: &Path, points: &[(u64, Vec<u8>)]) {
    wait_until("the probes in place", Duration::from_secs(60), || {
        let now = probed_bytes(pid, binary, points)?;
        if now.iter().all(|b| b[0] == 0xcc) { Ok(()) } else { Err(format!("{now:02x?}")) }
    });
}

/// Waits until none of the BPF programs `ours` is loaded any more.
fn wait_for_programs_unloaded(what: &str, ours: &BTreeSet<u32>) {
    wait_until(what, Duration::from_secs(10), || {
        let left: Vec<u32> = loaded_bpf_programs().intersection(ours).copied().collect();
        if left.is_empty() { Ok(()) } else { Err(format!("still loaded: {left:?}")) }
    });
}

/// The BPF programs a process holds open (from its file descriptors' fdinfo).
fn bpf_programs_held_by(pid: u32) -> BTreeSet<u32> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else { return BTreeSet::new() };
    fds.filter_map(|fd| fs::read_to_string(fd.ok()?.path()).ok())
        .filter_map(|info| info.lines().find_map(|l| l.strip_prefix("prog_id:")?.trim().parse().ok()))
        .collect()
}

fn loaded_bpf_programs() -> BTreeSet<u32> {
    aya::programs::loaded_programs().filter_map(Result::ok).map(|p| p.id()).collect()
}

/// `record --count-calls --out OUT -- BINARY ARGS`, running, its output to `stdout`.
fn record_counting(out: &Path, binary: &Path, args: &[&std::ffi::OsStr], stdout: Stdio) -> Reaped {
    let mut cmd = Command::new(zeek_probe());
    cmd.args(["record", "--count-calls", "--out"]).arg(out).arg("--").arg(binary).args(args);
    Reaped(cmd.stdout(stdout).spawn().unwrap())
}

/// `kill -9` of `attach`: the target's probed instructions are its own again and every BPF
/// program zeek-probe loaded is gone, within seconds; the target then runs to a clean end.
#[test]
fn kill_9_of_attach_leaves_the_target_as_it_was() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let binary = fixture("zeek-shaped-8.2");
    let points = probe_points(&binary);
    assert!(points.len() >= 3, "Invoke ×2 and Manager::Write: {points:?}");
    let truth = dir.path().join("truth.json");
    let mut target = Reaped(
        Command::new(&binary).args(["--wait-for-signal", "--rounds", "20", "--truth"]).arg(&truth).spawn().unwrap(),
    );
    let pid = target.0.id();
    wait_for_original_bytes("the fixture mapped", pid, &binary, &points);

    let mut cmd = Command::new(zeek_probe());
    cmd.args(["attach", "--count-calls", "--listen", "127.0.0.1:0", "--pid"]).arg(pid.to_string());
    let mut exporter = Exporter::start(cmd, "http");
    let probed = probed_bytes(pid, &binary, &points).unwrap();
    assert!(probed.iter().all(|b| b[0] == 0xcc), "uprobes in place (int3): {probed:02x?}");
    let ours = bpf_programs_held_by(exporter.child.0.id());
    assert!(ours.len() >= 4, "the exporter holds its programs: {ours:?}");

    exporter.child.0.kill().unwrap();
    exporter.child.0.wait().unwrap();
    wait_for_original_bytes("the target's instructions restored", pid, &binary, &points);
    wait_for_programs_unloaded("zeek-probe's BPF programs unloaded", &ours);

    signal(pid, libc::SIGUSR1);
    let status = target.0.wait().unwrap();
    assert!(status.success(), "the target ran on to a clean end: {status:?}");
    assert!(read_json(&truth)["rounds"].as_u64().is_some_and(|r| r == 20), "its workload completed");
}

/// `kill -9` of `record`: the command is let go (not killed with its tracer), its probes go,
/// and it runs to its own end.
#[test]
fn kill_9_of_record_lets_the_command_finish() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let binary = fixture("zeek-shaped-8.2");
    let points = probe_points(&binary);
    let truth = dir.path().join("truth.json");
    let mut record = record_counting(
        &dir.path().join("report"),
        &binary,
        &["--seconds".as_ref(), "6".as_ref(), "--truth".as_ref(), truth.as_os_str()],
        Stdio::null(),
    );
    // Past its stop after exec: right after exec the command briefly shows as running before it
    // stops, and the probes go in only once it has stopped; so probes in place and running
    // again means it was let go.
    let pid = running_child(record.0.id(), &binary);
    wait_for_probes_in_place(pid, &binary, &points);
    assert_eq!(running_child(record.0.id(), &binary), pid);
    record.0.kill().unwrap();
    record.0.wait().unwrap();
    wait_for_original_bytes("the command's instructions restored", pid, &binary, &points);
    wait_until("the command ran to its end", Duration::from_secs(60), || {
        if Path::new(&format!("/proc/{pid}")).exists() { Err("still running".into()) } else { Ok(()) }
    });
    let truth = read_json(&truth);
    assert!(truth["rounds"].as_u64().is_some_and(|r| r > 0), "it finished its workload and wrote its truth");
}

/// A `record` that ended: its output read to its end, its BPF programs are released after it
/// (by the child holding them, which then goes too), whatever number of uprobes it attached.
#[test]
fn a_finished_record_leaves_no_probe_behind() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let binary = fixture("zeek-shaped-8.2");
    let seconds = ["--seconds".as_ref(), "2".as_ref()];
    let mut record = record_counting(&dir.path().join("report"), &binary, &seconds, Stdio::piped());
    let record_pid = record.0.id();
    let pid = running_child(record_pid, &binary);
    wait_for_probes_in_place(pid, &binary, &probe_points(&binary));
    let ours = bpf_programs_held_by(record_pid);
    assert!(ours.len() >= 4, "record holds its programs: {ours:?}");
    let mut output = String::new();
    record.0.stdout.take().unwrap().read_to_string(&mut output).unwrap();
    assert!(record.0.wait().unwrap().success());
    assert!(output.contains("report: "), "its output, to its end: {output}");
    wait_for_programs_unloaded("record's BPF programs released after it", &ours);
}

/// `kill -9` of `record` while the command waits in its stop after exec, before its probes
/// are in (the window in which a SIGTRAP-delivery stop used to kill it with its tracer): the
/// command runs on unprobed to its own end.
#[test]
fn kill_9_of_record_in_the_commands_exec_stop_lets_it_run() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let binary = fixture("zeek-shaped-8.2");
    // The window is record's start-up, tens of milliseconds: a record whose command got past
    // it before it was caught is let go, and another one tried (with a truth file of its own).
    let (mut record, pid, truth) = (1..=10)
        .find_map(|attempt| {
            let truth = dir.path().join(format!("truth-{attempt}.json"));
            let record = record_counting(
                &dir.path().join("report"),
                &binary,
                &["--seconds".as_ref(), "2".as_ref(), "--truth".as_ref(), truth.as_os_str()],
                Stdio::null(),
            );
            caught_in_exec_stop(record.0.id(), &binary).map(|pid| (record, pid, truth))
        })
        .expect("record caught with its command in the stop after exec, in one of 10 tries");
    record.0.kill().unwrap();
    record.0.wait().unwrap();
    wait_until("the command ran to its end", Duration::from_secs(60), || {
        if Path::new(&format!("/proc/{pid}")).exists() { Err("still running".into()) } else { Ok(()) }
    });
    let truth = read_json(&truth);
    assert!(truth["rounds"].as_u64().is_some_and(|r| r > 0), "it ran its workload and wrote its truth");
}

/// Freezes `parent` (record) with its command past exec and in its tracing stop, if it can be
/// caught there: record is frozen and looked at, and let go a millisecond, again and again,
/// until the command runs (too late) or a minute has passed; the command's PID.
fn caught_in_exec_stop(parent: u32, program: &Path) -> Option<u32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        signal(parent, libc::SIGSTOP);
        let command = command_state(parent, program);
        if let Some((pid, 't')) = command {
            return Some(pid);
        }
        signal(parent, libc::SIGCONT);
        if matches!(command, Some((_, 'R' | 'S' | 'D'))) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// A target killed while `record` profiles it: zeek-probe exits with its status (137) and
/// still writes what it counted.
#[test]
fn a_target_killed_mid_record_still_gets_its_report() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let binary = fixture("zeek-shaped-8.2");
    let out = dir.path().join("report");
    let mut record = record_counting(&out, &binary, &["--seconds".as_ref(), "60".as_ref()], Stdio::null());
    let pid = running_child(record.0.id(), &binary);
    std::thread::sleep(Duration::from_millis(500));
    signal(pid, libc::SIGKILL);
    let status = record.0.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGKILL), "the command's status: {status:?}");
    let summary = read_json(&out.join("summary.json"));
    let calls: u64 = functions(&summary).values().sum();
    assert!(calls > 0, "what was counted before the kill is reported: {summary}");
}

/// A restart storm under `--cluster`: many short-lived nodes coming and going, some gone
/// before they could be attached. The exporter stays up, serves a valid exposition, and ends
/// with every storm node exited or never seen, none still counted as attached.
#[test]
fn a_restart_storm_leaves_the_cluster_exporter_healthy() {
    if !privileged() {
        return;
    }
    let mut cmd = Command::new(zeek_probe());
    cmd.args(["attach", "--cluster", "--no-sample", "--count-calls", "--listen", "127.0.0.1:0"]);
    let mut exporter = Exporter::start(cmd, "http");
    let binary = fixture("zeek-shaped-7.0");
    let storm_pids: Vec<String> = (0..24)
        .map(|i| {
            let mut node = Command::new(&binary)
                .args(["--seconds", if i % 3 == 0 { "1.5" } else { "0.05" }])
                .env("CLUSTER_NODE", format!("storm-{}", i % 4))
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            let pid = node.id().to_string();
            if i % 4 == 3 {
                node.wait().unwrap();
            } else {
                std::thread::spawn(move || node.wait());
            }
            std::thread::sleep(Duration::from_millis(40));
            pid
        })
        .collect();
    exporter.wait_for("storm nodes attached, then every one exited", |text| {
        let up = samples(text, "zeek_probe_target_up");
        let storm: Vec<f64> = up
            .iter()
            .filter(|(l, _)| l["node"].starts_with("storm-") && storm_pids.contains(&l["pid"]))
            .map(|(_, v)| *v)
            .collect();
        !storm.is_empty() && storm.iter().all(|v| *v == 0.0)
    });
    assert!(exporter.child.0.try_wait().unwrap().is_none(), "the exporter is still running");
    let text = scrape(&exporter.address);
    assert!(text.contains("zeek_probe_build_info"), "a full exposition: {text}");
    let log = exporter.log.lock().unwrap().clone();
    assert!(!log.contains("panicked"), "{log}");
}
