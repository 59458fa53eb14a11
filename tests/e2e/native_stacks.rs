//! Full native stacks without frame pointers (the fixture is built -O2 without them, as Zeek's
//! release builds are): unwound in user space from the copies of the threads' stacks, the main
//! thread's with the script frames spliced in under the `Invoke` frames that run them, the
//! other threads' up to libc's thread start.
use std::collections::HashSet;

use serde_json::Value;

use crate::{
    common::*,
    sampling::{record, script_names},
};

const INVOKES: [&str; 2] = ["zeek::detail::ScriptFunc::Invoke", "zeek::detail::BuiltinFunc::Invoke"];

/// Folded stacks: frames root first, and samples.
pub fn folded_stacks(folded: &str) -> Vec<(Vec<&str>, u64)> {
    folded
        .lines()
        .map(|line| {
            let (stack, count) = line.rsplit_once(' ').unwrap();
            (stack.split(';').collect(), count.parse().unwrap())
        })
        .collect()
}

/// What `summary.json` says of the native stacks: (samples, unwound, to main).
pub fn native_share(summary: &Value) -> (u64, u64, u64) {
    let n = &summary["native_stacks"];
    assert_eq!(n["enabled"], true, "{n}");
    let get = |k: &str| n[k].as_u64().unwrap();
    (get("samples"), get("unwound"), get("to_main"))
}

/// What `summary.json` says of the other threads' native stacks: (samples, unwound, to their
/// start).
pub fn thread_share(summary: &Value) -> (u64, u64, u64) {
    let n = &summary["native_stacks"];
    assert_eq!(n["thread_stacks"], true, "{n}");
    let get = |k: &str| n["threads"][k].as_u64().unwrap();
    (get("samples"), get("unwound"), get("to_root"))
}

/// Samples of threads named `name_prefix…` whose folded stack goes from libc's thread start
/// (`clone3` → `start_thread`) through `function`.
pub fn thread_samples_through(stacks: &[(Vec<&str>, u64)], name_prefix: &str, function: &str) -> u64 {
    let thread = format!("[thread] {name_prefix}");
    stacks
        .iter()
        .filter(|(f, _)| f[0].starts_with(&thread))
        .filter(|(f, _)| f.get(1..3) == Some(&["clone3", "start_thread"][..]) && f.contains(&function))
        .map(|(_, n)| n)
        .sum()
}

/// Of the samples whose stack has script frames: how many have `run_loop_frame` above the
/// outermost one, and how many have every script frame right under an `Invoke` (or the
/// script frame it is left over with).
fn spliced(stacks: &[(Vec<&str>, u64)], script: &HashSet<String>, run_loop_frame: &str) -> (u64, u64, u64) {
    let (mut with_scripts, mut under_run_loop, mut well_spliced) = (0, 0, 0);
    for (frames, n) in stacks {
        let Some(first) = frames.iter().position(|f| script.contains(*f)) else { continue };
        if frames[0].starts_with("[thread]") {
            continue;
        }
        with_scripts += n;
        if frames[..first].contains(&"main") && frames[..first].contains(&run_loop_frame) {
            under_run_loop += n;
        }
        let each_under_invoke = frames
            .windows(2)
            .filter(|pair| script.contains(pair[1]))
            .all(|pair| INVOKES.contains(&pair[0]) || script.contains(pair[0]));
        if each_under_invoke {
            well_spliced += n;
        }
    }
    (with_scripts, under_run_loop, well_spliced)
}

#[test]
fn fixture_main_thread_stacks_unwind_to_main_with_script_frames_under_the_run_loop() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, summary) = record(dir.path(), "zeek-shaped-8.2", &[]);
    let (samples, unwound, to_main) = native_share(&summary);
    assert!(samples > 500, "main-thread samples: {samples}");
    // Records are dropped only for a full ring, which the drain keeps from happening here.
    assert!(unwound * 100 >= samples * 95, "unwound {unwound} of {samples} main-thread samples");
    assert!(to_main * 100 >= unwound * 95, "{to_main} of {unwound} unwound samples reach main");

    let folded = std::fs::read_to_string(dir.path().join("report/profile.folded")).unwrap();
    let stacks = folded_stacks(&folded);
    let main_samples: u64 = stacks.iter().filter(|(f, _)| f.contains(&"main")).map(|(_, n)| n).sum();
    assert!(main_samples * 100 >= unwound * 95, "folded stacks through main: {main_samples} of {unwound}");
    // The fixture's run loop dispatches events from EventMgr::Drain, under main.
    let script = script_names(&summary);
    let (with_scripts, under_run_loop, well_spliced) = spliced(&stacks, &script, "zeek::EventMgr::Drain");
    assert!(with_scripts > 200, "samples in scripts: {with_scripts}\n{folded}");
    assert!(under_run_loop * 100 >= with_scripts * 95, "{under_run_loop} of {with_scripts} under the run loop");
    let mismatched = summary["probe_health"]["mismatched_stacks"].as_u64().unwrap();
    assert!(well_spliced + mismatched >= with_scripts, "{well_spliced} spliced + {mismatched} mismatched");
    assert!(well_spliced * 100 >= with_scripts * 90, "{well_spliced} of {with_scripts} spliced under Invoke");
}

/// The fixture's log writer threads (`zk.*`, made by `std::thread`): their stacks end at their
/// FS base, and unwind from libc's thread start through the writer's loop.
#[test]
fn fixture_writer_thread_stacks_unwind_to_the_threads_start_through_the_writer_loop() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, summary) = record(dir.path(), "zeek-shaped-8.2", &[]);
    let (samples, unwound, to_start) = thread_share(&summary);
    // The writers' formatting and waking take tens of samples in 5 s at 999 Hz (~45 unloaded).
    assert!(samples >= 10, "writer thread samples: {samples}");
    assert!(unwound * 100 >= samples * 90, "unwound {unwound} of {samples} other threads' samples");
    assert!(to_start * 100 >= unwound * 90, "{to_start} of {unwound} unwound to the thread's start");
    // `std::thread`s are glibc's: each one's FS base tops its stack.
    let no_end = summary["probe_health"]["thread_stack_end_unknown"].as_u64().unwrap();
    assert!(no_end <= samples - unwound, "{no_end} samples without a stack end, {unwound} of {samples} unwound");
    let folded = std::fs::read_to_string(dir.path().join("report/profile.folded")).unwrap();
    let stacks = folded_stacks(&folded);
    let through_run = thread_samples_through(&stacks, "zk.", "zeek::logging::WriterBackend::Run");
    assert!(through_run * 100 >= to_start * 90, "{through_run} of {to_start} through the writer loop\n{folded}");
    // A writer's stack places it by its code: none is left to its name alone.
    let by_name = stacks.iter().filter(|(f, _)| f.len() == 1 && f[0].starts_with("[thread] zk.")).count();
    assert!(by_name as u64 <= samples - unwound, "{by_name} writer stacks by name only\n{folded}");
    // Their time is their functions' self time (the sampled instruction pointer's): a writer's
    // own row keeps only samples whose instruction pointer was unreadable.
    let writers: Vec<&Value> = summary["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "thread" && f["name"].as_str().is_some_and(|n| n.starts_with("[thread] zk.")))
        .collect();
    let seconds = |field: &str| writers.iter().map(|f| f[field].as_f64().unwrap()).sum::<f64>();
    assert!(seconds("total_seconds") > 0.0, "writer rows: {writers:?}");
    assert!(seconds("self_seconds") * 10.0 <= seconds("total_seconds"), "writer rows: {writers:?}");
}

#[test]
fn without_native_stacks_native_code_is_named_by_its_leaf_and_outputs_say_so() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let output = std::process::Command::new(zeek_probe())
        .args(["record", "--hz", "999", "--native-stacks", "off", "--out"])
        .arg(&out)
        .arg("--")
        .arg(fixture("zeek-shaped-8.2"))
        .args(["--seconds", "2"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("native stacks: off"), "{table}");
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["native_stacks"]["enabled"], false, "{summary}");
    assert_eq!(summary["native_stacks"]["unwound"], 0);
    let folded = std::fs::read_to_string(out.join("profile.folded")).unwrap();
    let stacks = folded_stacks(&folded);
    // `main` only ever as a sampled leaf (the instruction pointer in it), never as a caller.
    let unwound = |f: &[&str]| f.iter().enumerate().any(|(i, name)| *name == "main" && !(i == 1 && f[0] == "[native]"));
    assert!(stacks.iter().all(|(f, _)| !unwound(f)), "no unwound stacks:\n{folded}");
    assert!(stacks.iter().any(|(f, _)| f[0] == "[native]"), "native code by its leaf:\n{folded}");
}
