//! Real Zeek in the loop: the companion package, call counts, names, script errors, `check` and
//! sampling on a real Zeek (8.2.2 from `../shared/zeek/`, installed by `cargo xtask setup`; else
//! `$ZEEK` or a `zeek` on PATH). What only a real Zeek shows is tested here; the other ABI
//! generations and build variants, and exact CPU truth, stay with the fixture. They run whenever
//! a real Zeek is installed; under CI=true a missing one fails them.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde_json::Value;

use crate::{common::*, real_zeek_support::*};

/// The companion package loads with no error or warning, bare and with `local`, and writes its
/// two logs with the fields its README documents.
#[test]
fn the_package_loads_and_logs_on_real_zeek() {
    let Some(zeek) = real_zeek() else { return };
    let trace = merged_trace();
    for mode in [&["-b"][..], &["local"]] {
        let dir = tempfile::tempdir().unwrap();
        let tune = write(dir.path(), "tune.zeek", PACKAGE_EVERY_SECOND);
        let output =
            zeek.command(dir.path()).arg("-r").arg(&trace).args(mode).arg(package_dir()).arg(&tune).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{mode:?}: {:?}\n{stderr}", output.status);
        assert!(stderr.trim().is_empty(), "{mode:?}: Zeek said something loading the package:\n{stderr}");
        assert_no_package_reports(dir.path(), mode);
        for log in ["zeek_probe_memory", "zeek_probe_stats"] {
            let (fields, rows) = read_zeek_log(&dir.path().join(format!("{log}.log")));
            assert_eq!(fields, documented_fields(log), "{mode:?}: {log}.log's fields, as scripts/README.md says");
            assert!(!rows.is_empty(), "{mode:?}: {log}.log has rows");
            let node = fields.iter().position(|f| f == "node").unwrap();
            assert!(rows.iter().all(|r| r[node] == "standalone"), "{mode:?}: {log}.log nodes");
        }
    }
}

/// A real ZeroMQ cluster (manager + 2 workers, the layout written here): the package loads on
/// every node, `attach --cluster --zmq-cluster` exports every node's footprints and counters
/// next to its probes' series, and goes on doing so across a worker killed and restarted.
#[test]
#[cfg_attr(not(feature = "zmq"), ignore = "zeek-probe built without the zmq feature has no --zmq-cluster")]
fn a_real_zeromq_cluster_reports_its_memory_through_the_package() {
    let Some(zeek) = real_zeek_privileged() else { return };
    let cluster = RealCluster::start(&zeek, Backend::ZeroMq, &["worker-1", "worker-2"]);
    let mut cmd = Command::new(zeek_probe());
    cmd.args(["attach", "--cluster", "--no-sample", "--listen", "127.0.0.1:0", "--zmq-interval", "1"])
        .args(["--zmq-cluster", &cluster.xpub_endpoint()]);
    let exporter = Exporter::start(cmd, "http");
    let nodes = ["manager", "worker-1", "worker-2"];
    let run_of = |text: &str, node: &str| -> Option<f64> {
        samples(text, "zeek_probe_memory_stats_run").into_iter().find(|(l, _)| l["node"] == node).map(|(_, v)| v)
    };
    let text = exporter.wait_for("every node's memory statistics", |text| {
        nodes.iter().all(|node| {
            run_of(text, node).is_some_and(|run| run >= 3.0)
                && samples(text, "zeek_probe_memory_footprint").iter().any(|(l, v)| l["node"] == *node && *v > 0.0)
                && samples(text, "zeek_probe_zeek_stat")
                    .iter()
                    .any(|(l, _)| l["node"] == *node && l["stat"] == "mem_bytes")
        })
    });
    for node in nodes {
        let pid = cluster.pid(node).to_string();
        let up = samples(&text, "zeek_probe_target_up");
        assert!(up.iter().any(|(l, v)| l["node"] == node && l["pid"] == pid && *v == 1.0), "{node} attached: {up:?}");
    }
    let decoded = samples(&text, "zeek_probe_zmq_messages_total");
    assert!(
        decoded.iter().any(|(l, v)| l["feed"] == "cluster" && l["outcome"] == "decoded" && *v >= 9.0),
        "real broker-bin-v1 frames decoded: {decoded:?}"
    );
    assert!(!decoded.iter().any(|(l, v)| l["outcome"] == "malformed" && *v > 0.0), "{decoded:?}");

    // A worker killed and restarted: its new process is attached and its new runs counted.
    let before = run_of(&text, "worker-2").unwrap();
    let mut cluster = cluster;
    let old_pid = cluster.pid("worker-2");
    cluster.restart("worker-2");
    let new_pid = cluster.pid("worker-2").to_string();
    assert_ne!(new_pid, old_pid.to_string());
    exporter.wait_for("the restarted worker-2", |text| {
        samples(text, "zeek_probe_target_up")
            .iter()
            .any(|(l, v)| l["node"] == "worker-2" && l["pid"] == new_pid && *v == 1.0)
            && run_of(text, "worker-2").is_some_and(|run| run < before)
    });
    exporter.wait_for("worker-2's runs going on", |text| run_of(text, "worker-2").is_some_and(|run| run >= 2.0));
    cluster.wait_for_every_nodes_runs(2);
    cluster.assert_every_node_loaded_cleanly();
}

/// On a Broker cluster (no ZeroMQ to publish on) the package loads on every node with no error
/// or warning, and every node's measurements reach the manager's log.
#[test]
fn the_package_runs_on_a_real_broker_cluster() {
    let Some(zeek) = real_zeek() else { return };
    let cluster = RealCluster::start(&zeek, Backend::Broker, &["worker-1"]);
    cluster.wait_for_every_nodes_runs(3);
    cluster.assert_every_node_loaded_cleanly();
}

/// `record --count-calls` of a real multi-protocol replay counts what Zeek's own
/// `--profile-scripts` counts, function by function, lambda by lambda; log writes per stream
/// are the records Zeek wrote to each log.
///
/// How the two compare, by definition: Zeek profiles body executions, zeek-probe counts
/// invocations. A function, BIF or single-bodied event/hook runs its body once per invocation:
/// the counts are equal. An event or hook with several bodies has a row per body; every
/// invocation runs its first body (a hook's `break` only stops later ones), so zeek-probe's
/// count equals the largest of them. Invocations that run no body (events nobody handles,
/// hooks without handlers such as `Log::log_stream_policy`) are counted by zeek-probe only.
/// Lambdas are matched by location: Zeek's profile names them with another hash.
///
/// Both ways zeek-probe attaches uprobes count alike: a multi-uprobe link per program (this
/// kernel's), and a perf event per probe point (kernels before 6.6).
#[test]
fn call_counts_equal_zeeks_own_profiler_on_a_real_replay() {
    let Some(zeek) = real_zeek_privileged() else { return };
    let this_kernels = if zeek_probe::probes::kernel_features::uprobe_multi() { "multi" } else { "perf-event" };
    for uprobe_links in [this_kernels, "perf-event"] {
        call_counts_equal_zeeks_own_profiler(&zeek, uprobe_links);
    }
}

fn call_counts_equal_zeeks_own_profiler(zeek: &RealZeek, uprobe_links: &str) {
    let dir = tempfile::tempdir().unwrap();
    let streams = write(dir.path(), "streams.zeek", STREAM_PATHS);
    let trace = merged_trace();
    let zeek_args: [&std::ffi::OsStr; 5] = [
        "-r".as_ref(),
        trace.as_os_str(),
        "--profile-scripts=prof.log".as_ref(),
        "local".as_ref(),
        streams.as_os_str(),
    ];
    let env = [("ZEEK_PROBE_UPROBE_LINKS", uprobe_links)];
    let summary = record_with_env(zeek, dir.path(), &["--count-calls", "--no-sample"], &zeek_args, &env);
    assert_eq!(summary["target"]["zeek_version"], "8.2.2");
    assert_eq!(summary["target"]["uprobe_links"], uprobe_links, "attached as asked");
    assert_eq!(summary["probe_health"]["read_failed"], 0, "{}", summary["probe_health"]);
    assert_eq!(summary["probe_health"]["unnamed_calls"], 0, "{}", summary["probe_health"]);

    let profile = ScriptProfile::read(&dir.path().join("prof.log"));
    assert!(profile.bodies.len() > 300, "a multi-protocol replay runs many scripts: {}", profile.bodies.len());
    let ours = counted(&summary);
    let mut lambdas = 0;
    for (name, bodies) in &profile.bodies {
        let (shown, expected) = if name.starts_with("lambda_<") {
            lambdas += 1;
            assert_eq!(bodies.len(), 1, "{name}: a lambda has one body");
            (lambda_name_at(&bodies[0].location), bodies[0].calls)
        } else {
            (name.clone(), bodies.iter().map(|b| b.calls).max().unwrap())
        };
        let got = ours.get(&shown).map(|f| f.calls);
        assert_eq!(got, Some(expected), "{shown}: zeek-probe's calls against --profile-scripts' {bodies:?}");
    }
    assert!(lambdas >= 4, "the replay runs lambdas of several scripts: {lambdas}");
    let ours_lambdas: Vec<&Counted> = ours.values().filter(|f| f.name.starts_with("lambda@")).collect();
    assert_eq!(ours_lambdas.len(), lambdas, "one row per lambda: {ours_lambdas:?}");
    for f in &ours_lambdas {
        let zeek_name = f.zeek_name.as_deref().unwrap_or_default();
        assert!(is_zeek_lambda_name(zeek_name), "{}: Zeek's own name kept, got {zeek_name:?}", f.name);
    }
    let bodiless: Vec<&Counted> =
        ours.values().filter(|f| !f.name.starts_with("lambda@") && !profile.bodies.contains_key(&f.name)).collect();
    for f in bodiless {
        assert!(f.kind == "event" || f.kind == "hook", "{f:?}: only events and hooks run without a body");
    }

    // Log writes: Log::write calls per stream against the records in each stream's file. Two
    // base scripts veto records in their stream's policy hook: Files (certificates are logged
    // in x509.log instead) and X509 (certificates already logged); those have fewer lines.
    let paths = stream_paths(&dir.path().join("streams.tsv"));
    let writes = log_writes(&summary);
    assert!(writes.len() > 15, "many streams written: {writes:?}");
    let vetoing = BTreeSet::from(["Files::LOG", "X509::LOG"]);
    for (stream, n) in &writes {
        let path = paths.get(stream).unwrap_or_else(|| panic!("{stream}: no path in {paths:?}"));
        let (_, rows) = read_zeek_log(&dir.path().join(format!("{path}.log")));
        if vetoing.contains(stream.as_str()) {
            assert!(rows.len() as u64 <= *n, "{stream}: {n} writes, {} records", rows.len());
        } else {
            assert_eq!(rows.len() as u64, *n, "{stream}: Log::write calls against records in {path}.log");
        }
    }
}

/// Two packages' `consts.zeek`, each with `&default` lambdas on the same lines with the same
/// text: named apart by package path and Zeek's first line, never merged, counted exactly.
#[test]
fn lambdas_are_named_as_zeek_names_them() {
    let Some(zeek) = real_zeek_privileged() else { return };
    let dir = tempfile::tempdir().unwrap();
    let packages = dir.path().join("share/zeek/site/packages");
    let mut scripts = Vec::new();
    for (package, calls) in [("alpha", 3), ("beta", 5)] {
        std::fs::create_dir_all(packages.join(package)).unwrap();
        scripts.push(write(&packages.join(package), "consts.zeek", &package_consts(package, calls)));
    }
    let mut args: Vec<&std::ffi::OsStr> = vec!["-b".as_ref(), "--profile-scripts=prof.log".as_ref()];
    args.extend(scripts.iter().map(|s| s.as_os_str()));
    let summary = record(&zeek, dir.path(), &["--count-calls", "--no-sample"], &args);
    let ours = counted(&summary);
    let profile = ScriptProfile::read(&dir.path().join("prof.log"));
    let zeeks: BTreeMap<String, u64> = profile
        .bodies
        .iter()
        .filter(|(name, _)| name.starts_with("lambda_<"))
        .map(|(_, b)| (lambda_name_at(&b[0].location), b[0].calls))
        .collect();
    let expected = BTreeMap::from([
        ("lambda@alpha/consts.zeek:4".to_owned(), 3),
        ("lambda@alpha/consts.zeek:7".to_owned(), 6),
        ("lambda@beta/consts.zeek:4".to_owned(), 5),
        ("lambda@beta/consts.zeek:7".to_owned(), 10),
    ]);
    assert_eq!(zeeks, expected, "where and how often Zeek's profiler saw them");
    let shown: BTreeMap<String, u64> =
        ours.values().filter(|f| f.name.starts_with("lambda@")).map(|f| (f.name.clone(), f.calls)).collect();
    assert_eq!(shown, expected, "zeek-probe's lambda rows");
    let zeek_names: BTreeSet<&str> = ours.values().filter_map(|f| f.zeek_name.as_deref()).collect();
    assert_eq!(zeek_names.len(), 4, "four distinct Zeek names: {zeek_names:?}");
    assert!(zeek_names.iter().all(|n| is_zeek_lambda_name(n)), "{zeek_names:?}");
}

/// Script runtime errors (thrown as C++ exceptions through `ScriptFunc::Invoke` and
/// `BuiltinFunc::Invoke`) leave Zeek running under both probe modes, exactly as without them.
#[test]
fn script_errors_leave_real_zeek_running_under_both_modes() {
    let Some(zeek) = real_zeek_privileged() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = write(dir.path(), "errors.zeek", SCRIPT_ERRORS);
    let trace = trace("http/get.pcap");
    let plain = zeek.command(dir.path()).arg("-b").arg("-r").arg(&trace).arg(&script).output().unwrap();
    let plain_stdout = String::from_utf8_lossy(&plain.stdout).into_owned();
    assert!(plain_stdout.contains("done"), "the script runs to its end: {plain_stdout}");
    assert!(String::from_utf8_lossy(&plain.stderr).contains("field value missing"), "{plain:?}");
    for mode in [&["--no-sample", "--count-calls"][..], &["--hz", "999"]] {
        let out = dir.path().join(format!("report{}", mode.len()));
        let output = Command::new(zeek_probe())
            .arg("record")
            .args(mode)
            .arg("--out")
            .arg(&out)
            .arg("--")
            .arg(&zeek.path)
            .arg("-b")
            .arg("-r")
            .arg(&trace)
            .arg(&script)
            .current_dir(dir.path())
            .envs(zeek.env())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), plain.status.code(), "{mode:?}: {}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.starts_with(&plain_stdout), "{mode:?}: Zeek's own output, then the report:\n{stdout}");
        assert!(!String::from_utf8_lossy(&output.stderr).contains("terminate called"), "{output:?}");
        let summary = read_json(&out.join("summary.json"));
        if mode.contains(&"--count-calls") {
            let calls = counted(&summary);
            assert_eq!(calls.get("read_field").map(|f| f.calls), Some(3), "{mode:?}: calls counted past the errors");
            assert_eq!(calls.get("sort").map(|f| f.calls), Some(2), "{mode:?}");
        }
    }
}

/// `check` on the real binary: from the version table alone without debug information; from
/// DWARF in the separate debug file found by build-id; from DWARF in the binary itself (a copy
/// rejoined with its debug sections). Every offset agrees.
#[test]
fn check_reads_the_real_binary_with_and_without_debug_information() {
    let Some(zeek) = real_zeek() else { return };
    let dir = tempfile::tempdir().unwrap();
    let installed = check_json(&zeek.path);
    let debug_file = installed["dwarf_file"].as_str().unwrap_or_else(|| panic!("no debug file found: {installed}"));
    assert!(debug_file.starts_with("/usr/lib/debug/.build-id/"), "found by build-id: {debug_file}");
    assert_eq!(installed["layout_source"], "dwarf");

    // Neither a build-id nor a debug link: nothing leads to the debug file.
    let bare = dir.path().join("zeek-without-debug-links");
    run_ok(
        Command::new("objcopy")
            .args(["--remove-section=.gnu_debuglink", "--remove-section=.note.gnu.build-id"])
            .arg(&zeek.path)
            .arg(&bare),
    );
    let table = check_json(&bare);
    assert_eq!((table["layout_source"].as_str(), table["dwarf_file"].as_str()), (Some("table"), None), "{table}");

    let joined = dir.path().join("zeek-with-dwarf");
    run_ok(Command::new("eu-unstrip").arg("-o").arg(&joined).arg(&zeek.path).arg(debug_file));
    let inside = check_json(&joined);
    assert_eq!(inside["layout_source"], "dwarf");
    assert_eq!(inside["dwarf_file"].as_str(), joined.to_str(), "DWARF read from the binary itself");

    for report in [&installed, &table, &inside] {
        assert_eq!((report["zeek_version"].as_str(), report["abi"].as_str()), (Some("8.2.2"), Some("8.2")));
        assert_eq!(report["layout_mismatches"], Value::Array(vec![]), "DWARF agrees with the table: {report}");
        assert_eq!(report["ready"], true, "{}", report["verdict"]);
    }
    let offsets = |r: &Value| {
        r["offsets"].as_array().unwrap().iter().map(|o| (o["field"].clone(), o["offset"].clone())).collect::<Vec<_>>()
    };
    assert_eq!(offsets(&installed), offsets(&table));
    assert_eq!(offsets(&inside), offsets(&table));
    assert!(inside["offsets"].as_array().unwrap().iter().all(|o| o["source"] == "dwarf"), "{inside}");
}

/// Sampling a real replay: the sampled seconds add up to the process's CPU time, and no target
/// read fails (samples before Zeek's initialisers ran are told apart, as `before_init`).
#[test]
fn sampled_seconds_add_up_to_real_zeeks_cpu_time() {
    let Some(zeek) = real_zeek_privileged() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Three replays: ~3 s of CPU on the development VM, still over a second on a machine twice as
    // fast (one replay took 0.99 s on CI's). Over a short run, the start and the end weigh more.
    let summary = record(
        &zeek,
        dir.path(),
        &["--hz", "999"],
        &["-r".as_ref(), thrice_merged_trace().as_os_str(), "local".as_ref()],
    );
    let health = &summary["probe_health"];
    assert_eq!((health["read_failed"].as_u64(), health["unnamed_samples"].as_u64()), (Some(0), Some(0)), "{health}");
    let cpu = summary["target"]["cpu_seconds"].as_f64().expect("the process's CPU time at exit");
    let folded = std::fs::read_to_string(dir.path().join("report/profile.folded")).unwrap();
    let samples: u64 = folded.lines().filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok()).sum();
    let sampled = samples as f64 / 999.0;
    assert!(cpu > 1.0, "the replay keeps Zeek busy: {cpu} s");
    // A sample stands for 1/999 s of a CPU's clock, taken when that CPU's timer fires. A VM's
    // host that keeps its vCPU from running (this one shows no steal time) makes the fires it
    // missed count for nothing, while the guest still counts that time as the process's: under
    // load sampled time falls short (by 7-8 % seen), never exceeds the CPU time.
    assert!(sampled <= 1.05 * cpu && sampled >= 0.85 * cpu, "sampled {sampled:.3} s of {cpu:.3} s CPU");
    let scripts: f64 = summary["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "event")
        .map(|f| f["self_seconds"].as_f64().unwrap())
        .sum();
    assert!(scripts > 0.0, "script time sampled on the real interpreter");

    // Long dispatches through the real EventMgr's counter: named events, distinct dispatches,
    // each at least two periods, together within the main thread's share of the run.
    let dispatches = &summary["long_dispatches"];
    let longest = dispatches["longest"].as_array().unwrap_or_else(|| panic!("measured on 8.2.2: {dispatches}"));
    let seqs: std::collections::BTreeSet<u64> = longest.iter().map(|d| d["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs.len(), longest.len(), "one row per dispatch: {dispatches}");
    for d in longest {
        assert!(d["seconds"].as_f64().unwrap() >= 2.0 / 999.0 - 1e-9, "{d}");
        assert!(d["event"].as_str().is_some_and(|e| !e.is_empty() && e != "<unresolved>"), "{d}");
    }
    let listed: f64 = longest.iter().map(|d| d["seconds"].as_f64().unwrap()).sum();
    assert!(listed <= cpu, "{listed} s of long dispatches in {cpu} s of CPU");
    let counted: u64 = dispatches["events"].as_array().unwrap().iter().map(|h| h["count"].as_u64().unwrap()).sum();
    assert!(counted >= longest.len() as u64, "{dispatches}");
}

/// Records `zeek_args` run in `dir` with the probe options `probe_args`; the summary.
/// A real Zeek 8.2.2 (no frame pointers) replaying traffic: at least 95 % of its main thread's
/// samples unwind to `main`, and script frames sit under the `Invoke` frames of the native
/// stack that runs them (event dispatch from the run loop).
#[test]
fn real_zeeks_main_thread_unwinds_to_main_with_script_frames_spliced_in() {
    let Some(zeek) = real_zeek_privileged() else { return };
    let dir = tempfile::tempdir().unwrap();
    let summary = record(
        &zeek,
        dir.path(),
        &["--hz", "999"],
        &["-r".as_ref(), thrice_merged_trace().as_os_str(), "local".as_ref()],
    );
    let (samples, unwound, to_main) = crate::native_stacks::native_share(&summary);
    // ~2.7 s of main-thread CPU on the development VM (less on faster machines, CI's took a third
    // less): enough for a 95 % share to mean something, whatever the machine's speed.
    assert!(samples > 500, "main-thread samples: {samples}");
    assert!(unwound * 100 >= samples * 95, "unwound {unwound} of {samples}: {}", summary["probe_health"]);
    assert!(to_main * 100 >= samples * 95, "{to_main} of {samples} main-thread samples unwind to main");
    let folded = std::fs::read_to_string(dir.path().join("report/profile.folded")).unwrap();
    let stacks = crate::native_stacks::folded_stacks(&folded);
    let events: std::collections::HashSet<&str> = summary["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "event")
        .filter_map(|f| f["name"].as_str())
        .collect();
    let dispatched = |frames: &[&str]| {
        let run_loop = frames.iter().position(|f| *f == "zeek::run_state::detail::run_loop");
        let event = frames.windows(2).position(|p| p[0] == "zeek::detail::ScriptFunc::Invoke" && events.contains(p[1]));
        frames.contains(&"main") && matches!((run_loop, event), (Some(r), Some(e)) if r < e)
    };
    let in_events: u64 = stacks.iter().filter(|(f, _)| dispatched(f)).map(|(_, n)| n).sum();
    assert!(in_events * 10 >= samples, "{in_events} of {samples} samples in events under the run loop");
    // Its log writer threads: from libc's thread start through Zeek's thread loop.
    let (thread_samples, thread_unwound, to_start) = crate::native_stacks::thread_share(&summary);
    assert!(to_start * 100 >= thread_unwound * 90, "{to_start} of {thread_unwound} thread stacks reach their start");
    let writers =
        crate::native_stacks::thread_samples_through(&stacks, "zk.", "zeek::threading::BasicThread::launcher");
    assert!(writers > 0, "no writer thread sample unwound through BasicThread::launcher of {thread_samples}");

    // Zeek's frames carry lines from its debug file: the run loop's in RunState.cc, and calls
    // inlined into Zeek's functions as lines of their locations (pprof).
    let profile = crate::common::pprof::decode(&std::fs::read(dir.path().join("report/profile.pb.gz")).unwrap());
    let locations = profile.location_lines();
    let run_loop: Vec<_> =
        locations.iter().flatten().filter(|(f, _, _)| *f == "zeek::run_state::detail::run_loop").collect();
    assert!(
        !run_loop.is_empty() && run_loop.iter().all(|(_, file, line)| file.ends_with("src/RunState.cc") && *line > 0),
        "{run_loop:?}"
    );
    let inlined =
        locations.iter().filter(|lines| lines.len() > 1 && lines.iter().all(|(_, file, _)| !file.is_empty())).count();
    assert!(inlined > 10, "{inlined} locations with inlined calls, each with its file");
}

/// A script stack deeper than the sampler keeps: a real Zeek's function recursing 80 deep,
/// then spinning. Its samples show the innermost `MAX_STACK_DEPTH` frames, read in steps of a
/// few entries chained by tail calls: none is lost for a chain cut short (the kernel allows 33
/// tail calls).
#[test]
fn a_deep_script_stack_keeps_its_innermost_frames() {
    let Some(zeek) = real_zeek_privileged() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = write(dir.path(), "deep.zeek", DESCEND_80_THEN_SPIN);
    let summary =
        record(&zeek, dir.path(), &["--hz", "999", "--native-stacks", "off"], &["-b".as_ref(), script.as_os_str()]);
    assert_eq!(summary["probe_health"]["samples_lost"].as_u64(), Some(0), "{}", summary["probe_health"]);
    let folded = std::fs::read_to_string(dir.path().join("report/profile.folded")).unwrap();
    let (spinning, samples) = folded
        .lines()
        .filter_map(|line| line.rsplit_once(' '))
        .map(|(stack, n)| (stack, n.parse::<u64>().unwrap()))
        .max_by_key(|(_, n)| *n)
        .expect("samples");
    let frames: Vec<&str> = spinning.split(';').collect();
    assert!(samples >= 10, "{samples} samples of the spin: {spinning}");
    assert_eq!(frames.len(), profiler_common::samples::MAX_STACK_DEPTH, "{spinning}");
    assert!(frames.iter().all(|f| *f == "descend"), "{spinning}");
}

const DESCEND_80_THEN_SPIN: &str = r#"function descend(n: count): count
	{
	if ( n == 0 )
		{
		local i = 0;
		local s = 0;
		while ( i < 2000000 )
			{
			s += i;
			++i;
			}
		return s;
		}
	return descend(n - 1) + 1;
	}

event zeek_init()
	{
	print descend(80);
	}
"#;

fn record(zeek: &RealZeek, dir: &Path, probe_args: &[&str], zeek_args: &[&std::ffi::OsStr]) -> Value {
    record_with_env(zeek, dir, probe_args, zeek_args, &[])
}

/// `record` with zeek-probe's environment plus `env`.
fn record_with_env(
    zeek: &RealZeek,
    dir: &Path,
    probe_args: &[&str],
    zeek_args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
) -> Value {
    let out = dir.join("report");
    let output = Command::new(zeek_probe())
        .arg("record")
        .args(probe_args)
        .arg("--out")
        .arg(&out)
        .arg("--")
        .arg(&zeek.path)
        .args(zeek_args)
        .current_dir(dir)
        .envs(zeek.env())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "record failed: {:?}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    read_json(&out.join("summary.json"))
}

fn check_json(binary: &Path) -> Value {
    let output = Command::new(zeek_probe()).args(["check", "--json"]).arg(binary).output().unwrap();
    assert!(output.status.success(), "check {}: {}", binary.display(), String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn run_ok(cmd: &mut Command) -> Output {
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(output.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// A counted function of a summary, by shown name.
#[derive(Debug)]
struct Counted {
    name: String,
    zeek_name: Option<String>,
    kind: String,
    calls: u64,
}

fn counted(summary: &Value) -> BTreeMap<String, Counted> {
    summary["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            let name = f["name"].as_str()?.to_owned();
            let counted = Counted {
                name: name.clone(),
                zeek_name: f["zeek_name"].as_str().map(str::to_owned),
                kind: f["kind"].as_str()?.to_owned(),
                calls: f["calls"].as_u64()?,
            };
            Some((name, counted))
        })
        .collect()
}

fn is_zeek_lambda_name(name: &str) -> bool {
    name.strip_prefix("lambda_<")
        .and_then(|rest| rest.strip_suffix('>'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// What zeek-probe must call the lambda `--profile-scripts` places at `location` (file:line).
fn lambda_name_at(location: &str) -> String {
    let relative = location
        .rsplit_once("/site/packages/")
        .or_else(|| location.rsplit_once("/share/zeek/"))
        .map_or(location, |(_, rest)| rest);
    format!("lambda@{relative}")
}

/// Nothing in reporter.log (written with `local`) names the package's scripts.
fn assert_no_package_reports(dir: &Path, mode: &[&str]) {
    let Ok(reporter) = std::fs::read_to_string(dir.join("reporter.log")) else { return };
    let package = package_dir();
    let package = package.to_str().unwrap();
    let ours: Vec<&str> = reporter.lines().filter(|l| !l.starts_with('#') && l.contains(package)).collect();
    assert!(ours.is_empty(), "{mode:?}: the package caused reports:\n{}", ours.join("\n"));
}

/// The log fields scripts/README.md documents for `log`.
fn documented_fields(log: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(workspace_root().join("scripts/README.md")).unwrap();
    let start = readme.find(&format!("- `{log}.log`:")).unwrap_or_else(|| panic!("{log}.log not documented"));
    let item = &readme[start..];
    let item = &item[..item.find("; one row").unwrap_or_else(|| panic!("{log}.log's fields end with '; one row'"))];
    item.split('`').skip(3).step_by(2).map(str::to_owned).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn package_dir() -> PathBuf {
    workspace_root().join("scripts")
}

/// Zeek's stream → path, for comparing writes with log files.
const STREAM_PATHS: &str = r#"
event zeek_done() &priority=-100
	{
	local f = open("streams.tsv");
	for ( id, stream in Log::active_streams )
		if ( stream?$path )
			print f, fmt("%s %s", id, stream$path);
	close(f);
	}
"#;

fn stream_paths(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().filter_map(|l| l.split_once(' ')).map(|(s, p)| (s.to_owned(), p.to_owned())).collect()
}

/// One package's consts.zeek: a one-line `&default` lambda on line 4 and a lambda whose header
/// and body start on different lines (7 and 8), the same text in every package; the first is
/// called `calls` times, the second twice as often.
fn package_consts(package: &str, calls: u32) -> String {
    format!(
        "module {package};\n\
         \n\
         global names: table[count] of string = {{\n\
         \t[1] = \"one\", }} &default=function(i: count): string {{ return fmt(\"unknown-%d\", i); }};\n\
         \n\
         global twice: table[count] of string = {{\n\
         \t[1] = \"one\", }} &default=function(i: count): string\n\
         \t{{\n\
         \treturn fmt(\"%d-%d\", i, i);\n\
         \t}};\n\
         \n\
         event zeek_init()\n\
         \t{{\n\
         \tlocal i = 0;\n\
         \twhile ( ++i <= {calls} )\n\
         \t\tprint names[i + 1], twice[i + 1], twice[i + 2];\n\
         \t}}\n"
    )
}

/// Runtime errors on a connection: a missing record field read in a script function (the
/// exception crosses `ScriptFunc::Invoke`) and inside a comparison lambda called by the `sort`
/// BIF (it crosses `BuiltinFunc::Invoke` too). Each aborts its event handler body only.
const SCRIPT_ERRORS: &str = r#"
type R: record { a: count &optional; };

function read_field(r: R): count
	{
	return r$a;
	}

event new_connection(c: connection)
	{
	print "first body";
	read_field(R());
	print "not reached";
	}

event new_connection(c: connection) &priority=-5
	{
	local v = vector(3, 1, 2);
	sort(v, function(a: count, b: count): int { return read_field(R()) == 0 ? -1 : 1; });
	print "not reached either";
	}

event new_connection(c: connection) &priority=-10
	{
	print read_field(R($a=7));
	local v = vector(3, 1, 2);
	sort(v, function(a: count, b: count): int { return a < b ? -1 : 1; });
	print v;
	}

event zeek_done()
	{
	print "done";
	}
"#;
