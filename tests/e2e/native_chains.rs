//! The fixture's native call chains (`--native-chains`, tests/fixture/native_chains.h): deep
//! stacks of native code built -O2 without frame pointers, some functions inlined, some in the
//! fixture's own shared library, with self and inclusive CPU per function measured by the
//! fixture. Linux perf, walking the stacks with its own DWARF unwinder, must see the same
//! shares: that makes the fixture a fair target for zeek-probe's unwinder.
use std::{collections::BTreeMap, path::Path, process::Command};

use serde_json::Value;

use crate::common::*;

/// Agreement asked for, in points of the main thread's CPU.
const POINTS: f64 = 3.0;
/// Rounds, not seconds: the CPU they take, hence perf's samples, does not shrink when the
/// machine is busy (about 18 ms of CPU per round here, so some 5000 samples at 999 Hz).
const ROUNDS: &str = "300";
/// The fixture's library, as perf names its DSO (a path ending in this).
const LIBRARY: &str = "/libzeek_shaped_helpers.so";
/// What perf puts for a frame's DSO when DWARF says the frame is an inlined call.
const INLINED: &str = "inlined";
/// How zeek-probe's folded stacks mark an inlined call.
const INLINED_MARK: &str = " (inlined)";
/// Where the chain functions are defined (native_chains.h, helpers/ for the library's).
const FIXTURE_SOURCES: &str = "/tests/fixture/";

/// One chain function as the fixture measured it (truth.h, "native_chain").
struct Truth {
    name: String,
    inlined: bool,
    library: bool,
    callers: Vec<String>,
    /// Percent of the main thread's CPU.
    self_share: f64,
    inclusive_share: f64,
}

fn chain_truth(truth: &Value) -> Vec<Truth> {
    let main = truth["main_thread_cpu_seconds"].as_f64().unwrap();
    let share = |v: &Value| 100.0 * v.as_f64().unwrap() / main;
    truth["native_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| Truth {
            name: f["name"].as_str().unwrap().to_owned(),
            inlined: f["inlined"].as_bool().unwrap(),
            library: f["library"].as_bool().unwrap(),
            callers: f["callers"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect(),
            self_share: share(&f["self_seconds"]),
            inclusive_share: share(&f["inclusive_seconds"]),
        })
        .collect()
}

/// A frame of a perf sample: (symbol, DSO).
type Frame = (String, String);

/// The main thread's samples (thread id = process id), each innermost frame first. A sample
/// is a `TID` line, then one line per frame: tab, `IP SYMBOL (DSO)`.
fn perf_stacks(script: &str, pid: u64) -> Vec<Vec<Frame>> {
    let mut stacks: Vec<(u64, Vec<Frame>)> = Vec::new();
    for line in script.lines() {
        if let Some(frame) = line.strip_prefix('\t') {
            let Some((_ip, rest)) = frame.trim_start().split_once(' ') else { continue };
            let Some((symbol, dso)) = rest.rsplit_once(" (") else { continue };
            if let Some((_, frames)) = stacks.last_mut() {
                frames.push((symbol.to_owned(), dso.trim_end_matches(')').to_owned()));
            }
        } else if let Some(tid) = line.split_whitespace().next().and_then(|t| t.parse().ok()) {
            stacks.push((tid, Vec::new()));
        }
    }
    stacks.into_iter().filter(|(tid, _)| *tid == pid).map(|(_, frames)| frames).collect()
}

fn record_chains_under_perf(dir: &Path) -> Result<(Value, Vec<Vec<Frame>>), String> {
    let (perf_data, truth_path) = (dir.join("perf.data"), dir.join("truth.json"));
    let output = Command::new("perf")
        .args(["record", "--call-graph", "dwarf", "-F", "999", "-e", "cpu-clock", "--no-bpf-event", "-q", "-o"])
        .arg(&perf_data)
        .arg("--")
        .arg(fixture("zeek-shaped-8.2"))
        .args(["--native-chains", "--rounds", ROUNDS, "--truth"])
        .arg(&truth_path)
        .output()
        .expect("perf (Debian's linux-perf) runs");
    assert!(output.status.success(), "perf record: {}", String::from_utf8_lossy(&output.stderr));
    let truth = read_json(&truth_path);
    let script = Command::new("perf").args(["script", "-F", "tid,ip,sym,dso", "-i"]).arg(&perf_data).output().unwrap();
    if !script.status.success() {
        return Err(String::from_utf8_lossy(&script.stderr).into_owned());
    }
    let stacks = perf_stacks(&String::from_utf8_lossy(&script.stdout), truth["pid"].as_u64().unwrap());
    Ok((truth, stacks))
}

/// Per chain function, perf's inclusive share (samples with it anywhere on the stack) and
/// self share (samples whose innermost chain frame it is: like the truth, what it calls
/// outside the chains, libc's clock_gettime and the kernel under it, is its own).
fn perf_shares(stacks: &[Vec<Frame>], chain: &[Truth]) -> BTreeMap<String, (f64, f64)> {
    let mut shares: BTreeMap<String, (f64, f64)> = chain.iter().map(|f| (f.name.clone(), (0.0, 0.0))).collect();
    for frames in stacks {
        let mut on_stack: Vec<&str> =
            frames.iter().map(|(s, _)| s.as_str()).filter(|s| shares.contains_key(*s)).collect();
        if let Some(innermost) = on_stack.first() {
            shares.get_mut(*innermost).unwrap().0 += 1.0;
        }
        on_stack.sort_unstable();
        on_stack.dedup();
        for name in on_stack {
            shares.get_mut(name).unwrap().1 += 1.0;
        }
    }
    let total = stacks.len() as f64;
    shares.values_mut().for_each(|(s, i)| (*s, *i) = (100.0 * *s / total, 100.0 * *i / total));
    shares
}

/// perf agrees with the fixture's self and inclusive share of every chain function within
/// `POINTS`, sees inlined exactly the functions the fixture inlined, names the library's
/// functions from the library, and walks every chain stack down to `main`. The table it prints
/// (`--nocapture`) documents the expected shares.
#[test]
fn perf_dwarf_unwinding_agrees_with_the_native_chains_truth() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (truth, stacks) = measured_under_perf(|| record_chains_under_perf(dir.path()));
    let chain = chain_truth(&truth);
    assert!(chain.len() >= 20, "the fixture ran its native chains: {} functions", chain.len());
    assert!(stacks.len() > 2000, "perf sampled the main thread: {} samples", stacks.len());
    let perf = perf_shares(&stacks, &chain);

    eprintln!("{:<70} {:>12} {:>12}", "native chain function", "self t/perf", "incl t/perf");
    for f in &chain {
        let (perf_self, perf_inclusive) = perf[&f.name];
        eprintln!(
            "{:<70} {:>5.2}/{:<5.2} {:>6.2}/{:<5.2}",
            f.name, f.self_share, perf_self, f.inclusive_share, perf_inclusive
        );
    }
    // Not even half the share the fixture gave it says perf missed the function, where chance
    // cannot: 30 samples or more expected (then fewer than 15 has odds below 0.2 %).
    let samples = stacks.len() as f64;
    for f in &chain {
        let (perf_self, perf_inclusive) = perf[&f.name];
        for (what, want, got) in [("inclusive", f.inclusive_share, perf_inclusive), ("self", f.self_share, perf_self)] {
            let halved = want * samples / 100.0 >= 30.0 && got < want / 2.0;
            assert!(
                (got - want).abs() <= POINTS && !halved,
                "{}: perf's {what} share {got:.2}%, the fixture's {want:.2}% of the main thread ({samples} samples)",
                f.name
            );
        }
    }

    // How perf saw each function's frames: inlined or not, and in which file.
    for f in &chain {
        let where_seen: Vec<&str> =
            stacks.iter().flatten().filter(|(s, _)| *s == f.name).map(|(_, dso)| dso.as_str()).collect();
        if f.inlined {
            assert!(where_seen.iter().all(|d| *d == INLINED), "{}: inlined, perf: {where_seen:?}", f.name);
        } else {
            let object = if f.library { LIBRARY } else { "/zeek-shaped-8.2" };
            assert!(where_seen.iter().all(|d| d.ends_with(object)), "{}: in {object}, perf: {where_seen:?}", f.name);
        }
    }
    // The library's functions are the library's (its exported, hidden and inlined ones).
    let library: Vec<&Truth> = chain.iter().filter(|f| f.library).collect();
    assert!(library.len() >= 4 && library.iter().any(|f| f.inlined), "library functions in the chains");

    // Every stack through a chain is complete to `main`, each chain edge as the fixture made it.
    let (mut chain_samples, mut to_main) = (0, 0);
    for frames in &stacks {
        let names: Vec<&str> = frames.iter().map(|(s, _)| s.as_str()).collect();
        if !chain.iter().any(|f| names.contains(&f.name.as_str())) {
            continue;
        }
        chain_samples += 1;
        if names.contains(&"main") {
            to_main += 1;
        }
        for pair in names.windows(2) {
            let in_chain = |name: &str| chain.iter().find(|f| f.name == name);
            let (Some(callee), Some(_)) = (in_chain(pair[0]), in_chain(pair[1])) else { continue };
            assert!(callee.callers.iter().any(|c| c == pair[1]), "perf saw {} call {}: {names:?}", pair[1], pair[0]);
        }
    }
    assert!(to_main * 100 >= chain_samples * 99, "{to_main} of {chain_samples} chain stacks unwound to main");
}

/// Every build of the fixture (generations, CET, stripped, debug, debuglink) finds its library
/// and runs the same chains; without the flag it runs none.
#[test]
fn every_fixture_runs_the_same_native_chains_and_none_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, flag: &[&str]| {
        let truth_path = dir.path().join(format!("{name}.json"));
        let output = Command::new(fixture(name))
            .args(flag)
            .args(["--rounds", "1", "--truth"])
            .arg(&truth_path)
            .output()
            .unwrap();
        assert!(output.status.success(), "{name}: {}", String::from_utf8_lossy(&output.stderr));
        let chain = chain_truth(&read_json(&truth_path));
        chain.into_iter().map(|f| (f.name, (f.inlined, f.library, f.callers))).collect::<BTreeMap<_, _>>()
    };
    let reference = run("zeek-shaped-8.2", &["--native-chains"]);
    assert!(reference.len() >= 20, "{reference:?}");
    for name in GENERATIONS.iter().map(|(name, _, _)| *name).chain(VARIANTS) {
        assert_eq!(run(name, &["--native-chains"]), reference, "{name}");
        assert!(run(name, &[]).is_empty(), "{name} without --native-chains");
    }
}

/// zeek-probe's own unwinder on the chains, of the fixture whose DWARF is in a separate debug
/// file (`.gnu_debuglink`; the library has its own): every chain function has its inclusive share of
/// the main thread within `POINTS` of the truth (from the folded stacks), the inlined ones as
/// `name (inlined)` frames right under a caller the fixture gave them; pprof has them as lines
/// inlined into their caller's location, with the fixture's source file and line; and the Zeek
/// components its frames belong to take the inclusive time of the chain's outermost function
/// of each (`zeek_probe_component_seconds_total`, from summary.json). So for a first record,
/// which reads the debug files' units, and for a second, which starts from what the first kept
/// of them (`units-*` in the cache directory).
#[test]
fn zeek_probe_unwinds_the_native_chains_and_their_components() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    for run in ["first", "second"] {
        let (truth_path, out) = (dir.path().join(format!("truth-{run}.json")), dir.path().join(run));
        let output = Command::new(zeek_probe())
            .args(["record", "--hz", "999", "--out"])
            .arg(&out)
            .env("CACHE_DIRECTORY", &cache)
            .env_remove("ZEEK_PROBE_CACHE")
            .arg("--")
            .arg(fixture("zeek-shaped-8.2-debuglink"))
            .args(["--native-chains", "--rounds", ROUNDS, "--truth"])
            .arg(&truth_path)
            .output()
            .unwrap();
        assert!(output.status.success(), "{run}: {}", String::from_utf8_lossy(&output.stderr));
        assert_chains_and_components(&out, &truth_path);
        let kept = std::fs::read_dir(&cache).unwrap().filter_map(Result::ok);
        let units = kept.filter(|e| e.file_name().to_string_lossy().starts_with("units-")).count();
        assert!(units >= 2, "{run}: the units of the fixture's and its library's debug information kept: {units}");
    }
}

fn assert_chains_and_components(out: &Path, truth_path: &Path) {
    let truth = read_json(truth_path);
    let chain = chain_truth(&truth);
    let summary = read_json(&out.join("summary.json"));
    let folded = std::fs::read_to_string(out.join("profile.folded")).unwrap();

    // The main thread's stacks (other threads' are rooted at their name).
    let stacks: Vec<(Vec<&str>, f64)> = folded
        .lines()
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(stack, _)| !stack.starts_with("[thread]"))
        .map(|(stack, n)| (stack.split(';').collect(), n.parse().unwrap()))
        .collect();
    let main_samples: f64 = stacks.iter().map(|(_, n)| n).sum();
    let inclusive = |name: &str| {
        100.0 * stacks.iter().filter(|(s, _)| s.contains(&name)).map(|(_, n)| n).sum::<f64>() / main_samples
    };
    for f in &chain {
        let shown = if f.inlined { format!("{}{INLINED_MARK}", f.name) } else { f.name.clone() };
        let got = inclusive(&shown);
        let bound = POINTS.max(crate::sampling::tolerance(f.inclusive_share, main_samples));
        assert!(
            (got - f.inclusive_share).abs() <= bound,
            "{}: zeek-probe {got:.2}% inclusive, true {:.2}% (± {bound:.2})",
            f.name,
            f.inclusive_share
        );
    }

    for (stack, _) in &stacks {
        for pair in stack.windows(2) {
            // Other inlined calls (the fixture's timing, its busy work) are no chain function's.
            let Some(inlined) = pair[1].strip_suffix(INLINED_MARK) else { continue };
            let Some(truth) = chain.iter().find(|f| f.name == inlined) else { continue };
            let caller = pair[0].strip_suffix(INLINED_MARK).unwrap_or(pair[0]);
            assert!(truth.inlined && truth.callers.iter().any(|c| c == caller), "{caller} → {inlined}: {stack:?}");
        }
    }
    inlined_calls_are_pprof_lines(&pprof::decode(&std::fs::read(out.join("profile.pb.gz")).unwrap()), &chain);

    let main = truth["main_thread_cpu_seconds"].as_f64().unwrap();
    let component = |name: &str| {
        let rows = summary["components"].as_array().expect("components in summary.json");
        let row = rows.iter().find(|c| c["component"] == name);
        100.0 * row.map_or(0.0, |c| c["seconds"].as_f64().unwrap()) / main
    };
    let of = |function: &str| chain.iter().find(|f| f.name == function).expect("a chain function").inclusive_share;
    for (name, outermost) in [
        ("packet_analysis/ip", "zeek::packet_analysis::IP::IPAnalyzer::AnalyzePacket"),
        ("analyzer/http", "zeek::analyzer::http::HTTP_Analyzer::DeliverStream"),
        ("timers", "zeek::detail::TimerMgr::Advance"),
        ("table_expiration", "zeek::TableVal::DoExpire"),
        ("log_writer/ascii", "zeek::logging::writer::detail::Ascii::DoWrite"),
        ("cluster/zeromq", "zeek::cluster::zeromq::ZeroMQBackend::DoPublishEvent"),
    ] {
        let (got, want) = (component(name), of(outermost));
        let bound = POINTS.max(crate::sampling::tolerance(want, main_samples));
        assert!((got - want).abs() <= bound, "{name}: {got:.2}% against {outermost}'s {want:.2}% (± {bound:.2})");
    }
}

/// Each inlined chain function (the executable's and the library's) is a line of a location,
/// inlined into (before) a caller the fixture gave it, both with a fixture source file and a
/// line in it.
fn inlined_calls_are_pprof_lines(profile: &pprof::Profile, chain: &[Truth]) {
    let locations = profile.location_lines();
    for f in chain.iter().filter(|f| f.inlined) {
        let found = locations.iter().find_map(|lines| {
            let at = lines.iter().position(|(name, _, _)| *name == f.name)?;
            Some((lines[at], *lines.get(at + 1)?))
        });
        let Some((inlined, caller)) = found else { panic!("{}: no location has it inlined", f.name) };
        assert!(f.callers.iter().any(|c| c == caller.0), "{} inlined into {}", f.name, caller.0);
        for (name, file, line) in [inlined, caller] {
            assert!(file.contains(FIXTURE_SOURCES) && line > 0, "{name}: {file}:{line}");
        }
    }
}
