//! CPU sampling against the fixture's own measurement of where its main thread's CPU went.
use std::{
    collections::{BTreeMap, HashSet},
    process::Command,
};

use serde_json::Value;

use crate::common::*;

/// The name of a frame that could not be read.
const UNRESOLVED: &str = "<unresolved>";
/// The constructor of a script call's frame, on the native stack while a call is set up.
const FRAME_BEING_BUILT: &str = ";zeek::detail::Frame::Frame";

/// Sampled seconds per Zeek name (lambdas mapped back from `lambda@file:line`) of the samples
/// whose innermost script frame it is: its body's own time as the fixture's truth measures it,
/// which includes what the kernel and the interpreter's C++ do for the body (the truth's own
/// clock reads are syscalls on these VMs: under a function with many short calls, `fib`, the
/// sampler sees them as kernel frames, some points of its time).
fn script_self(summary: &Value, folded: &str, hz: f64) -> BTreeMap<String, f64> {
    let (script, names) = (script_names(summary), zeek_names(summary));
    let mut seconds: BTreeMap<String, f64> = BTreeMap::new();
    // An event's dispatch outside its bodies is not the body's time.
    let bodies = folded.lines().filter_map(|l| l.rsplit_once(' ')).filter(|(stack, _)| !stack.contains("[dispatch]"));
    for (stack, count) in bodies {
        let Some(leaf) = stack.split(';').rfind(|f| script.contains(*f)) else { continue };
        let name = names.get(leaf).map_or(leaf, String::as_str).to_owned();
        *seconds.entry(name).or_default() += count.parse::<f64>().unwrap() / hz;
    }
    seconds
}

/// The names script frames are shown by (functions, events, hooks, BIFs, unresolved ones): the
/// other frames of a mixed stack are native code.
pub fn script_names(summary: &Value) -> HashSet<String> {
    let rows = summary["functions"].as_array().unwrap();
    let script = |f: &&Value| !matches!(f["kind"].as_str(), Some("native" | "thread" | "kernel"));
    rows.iter().filter(script).map(|f| f["name"].as_str().unwrap().to_owned()).chain([UNRESOLVED.to_owned()]).collect()
}

/// Where a folded stack's user-space frames end (the kernel's are under them), and the
/// innermost user-space function: its machine frame, not the calls inlined into it that follow
/// it (`name (inlined)`, where the code has DWARF: libc's from `libc6-dbg`).
pub fn user_leaf<'a>(frames: &[&'a str]) -> (usize, &'a str) {
    let at = frames.iter().rposition(|f| !is_kernel_frame(f)).unwrap_or(0);
    let function = frames[..=at].iter().rposition(|f| !f.ends_with(" (inlined)")).unwrap_or(at);
    (at, frames[function])
}

pub fn record(dir: &std::path::Path, fixture_name: &str, extra: &[&str]) -> (Value, Value) {
    let truth_path = dir.join("truth.json");
    let out = dir.join("report");
    let output = Command::new(zeek_probe())
        .args(["record", "--hz", "999", "--out"])
        .arg(&out)
        .args(extra)
        .arg("--")
        .arg(fixture(fixture_name))
        .args(["--seconds", "5", "--truth"])
        .arg(&truth_path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{fixture_name}: {}", String::from_utf8_lossy(&output.stderr));
    (read_json(&truth_path), read_json(&out.join("summary.json")))
}

#[test]
fn sampled_shares_match_the_fixtures_cpu_and_stacks_are_real_call_paths() {
    if !privileged() {
        return;
    }
    for fixture_name in GENERATIONS.iter().map(|(name, _, _)| *name).chain(VARIANTS) {
        check_sampling(fixture_name);
    }
}

/// How far a sampled share (in points of the main thread's CPU) may stray from the truth: five
/// standard errors of a share estimated from `samples` samples, plus a point for what the
/// truth cannot time (its own clock reads, the instants around them). The machine's load sets
/// how much CPU the fixture gets in its 5 s, hence the samples, hence the bound.
pub fn tolerance(share: f64, samples: f64) -> f64 {
    let p = (share / 100.0).clamp(0.0, 1.0);
    1.0 + 5.0 * 100.0 * (p * (1.0 - p) / samples.max(1.0)).sqrt()
}

/// The fixture's BIF that throws, once per run (`zeek_shaped.cc`).
const THROWING_BIF: &str = "to_addr";

/// At 999 Hz over 5 s: the top functions' and the native functions' self-time shares within
/// `tolerance` of the truth, every stack a real call path, every name a real function.
fn check_sampling(fixture_name: &str) {
    let dir = tempfile::tempdir().unwrap();
    // Counting on top of sampling: both in one run, and the counts name every function.
    let (truth, summary) = record(dir.path(), fixture_name, &["--count-calls"]);
    let main = truth["main_thread_cpu_seconds"].as_f64().unwrap();
    let folded = std::fs::read_to_string(dir.path().join("report/profile.folded")).unwrap();
    let sampled = script_self(&summary, &folded, 999.0);

    // The top functions' self-time shares, within 3 percentage points.
    let mut true_cpu: Vec<(String, f64)> = truth["cpu"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c["self_seconds"].as_f64().unwrap()))
        .collect();
    true_cpu.sort_by(|a, b| b.1.total_cmp(&a.1));
    let samples = main * 999.0;
    // What a share off its truth was made of, for the failure message: the most sampled
    // stacks that name the function.
    let stacks_with = |name: &str| {
        let mut lines: Vec<(u64, &str)> = folded
            .lines()
            .filter(|line| line.contains(name))
            .filter_map(|line| Some((line.rsplit_once(' ')?.1.parse().ok()?, line)))
            .collect();
        lines.sort_unstable_by_key(|(count, _)| std::cmp::Reverse(*count));
        lines.iter().take(15).map(|(_, line)| *line).collect::<Vec<_>>().join("\n")
    };
    for (name, seconds) in true_cpu.iter().take(8) {
        let want = 100.0 * seconds / main;
        let got = 100.0 * sampled.get(name).copied().unwrap_or(0.0) / main;
        let bound = tolerance(want, samples);
        assert!(
            (got - want).abs() <= bound,
            "{fixture_name}: {name}: sampled {got:.2}% of the main thread, true {want:.2}% (± {bound:.2}); its stacks:\n{}",
            stacks_with(name)
        );
    }
    // Native time shows up under native frames, each within 3 points too.
    for native in truth["native"].as_array().unwrap() {
        let name = native["name"].as_str().unwrap();
        let want = 100.0 * native["self_seconds"].as_f64().unwrap() / main;
        let row = summary["functions"].as_array().unwrap().iter().find(|f| f["name"] == name);
        let row = row.unwrap_or_else(|| panic!("{fixture_name}: native function {name} not sampled"));
        assert_eq!(row["kind"], "native");
        let got = 100.0 * row["self_seconds"].as_f64().unwrap() / main;
        let bound = tolerance(want, samples);
        assert!(
            (got - want).abs() <= bound,
            "{fixture_name}: {name}: sampled {got:.2}%, true {want:.2}% (± {bound:.2}); its stacks:\n{}",
            stacks_with(name)
        );
    }

    // Every folded stack is a real call path: each edge between its script frames is one the
    // fixture made, whatever native frames (unwound) sit between them.
    let script = script_names(&summary);
    let names = zeek_names(&summary);
    let zeek = |n: &str| names.get(n).map_or(n, String::as_str).to_owned();
    let edges = callers(&truth);
    // The BIF that throws once per run (`to_addr`) leaves its `call_stack` entry behind, as in
    // Zeek, under the rest of the event's bodies (a call to `fmt`). In 8.0 an entry holds the
    // `Func*`, nothing that tells a leftover from a live call: a sample in that moment shows
    // the BIF calling on (once in a CI run). Before 8.0 the sampler walks `g_frame_stack`
    // instead, and from 8.1 the entry holds the BIF's own `Frame`, freed when it threw: those
    // generations are held to exact edges.
    let abi = GENERATIONS.iter().find(|(name, _, _)| fixture_name.starts_with(name));
    let leftover_looks_live = abi.is_some_and(|(_, _, abi)| *abi == "8.0");
    // Samples caught at the instant a call is pushed or popped (see programs/sample.rs): a
    // stale bottom entry misjudged adds or drops a root, a frame being built reads as
    // <unresolved>. Rare; everything else must be exact.
    let (mut script_samples, mut racy) = (0, 0);
    for line in folded.lines() {
        let (stack, count) = line.rsplit_once(' ').unwrap();
        let count: u64 = count.parse().unwrap();
        // The kernel's frames sit under the script stack whose code entered the kernel.
        let mut frames: Vec<String> = stack.split(';').filter(|f| script.contains(*f)).map(zeek).collect();
        if frames.is_empty() {
            continue; // native code and other threads: no script frames
        }
        script_samples += count;
        // With the native stack unwound, a sample taken while a call's Frame is being built
        // (before the call is pushed) shows it: that is when a stale bottom entry's freed
        // Frame can hold the new one and read as a live call (see programs/sample.rs).
        if stack.contains(UNRESOLVED) || stack.contains(FRAME_BEING_BUILT) {
            racy += count;
            continue;
        }
        if !edges.contains_key(&(String::new(), frames[0].clone())) {
            racy += count;
            frames.remove(0);
        }
        let calling_on = frames.iter().rev().skip(1).position(|f| f == THROWING_BIF);
        if leftover_looks_live && let Some(from_leaf) = calling_on {
            racy += count;
            frames.remove(frames.len() - 2 - from_leaf);
        }
        for pair in frames.windows(2) {
            assert!(
                edges.contains_key(&(pair[0].clone(), pair[1].clone())),
                "{fixture_name}: {line}: invented edge {pair:?}"
            );
        }
    }
    assert!(script_samples > 1000, "{fixture_name}: script stacks sampled: {script_samples}");
    // About 0.3 % of script samples, most of them in a Frame's construction: 1 % leaves room
    // for their count's noise where a loaded machine gives fewer script samples (7 of 1248).
    assert!(racy * 100 <= script_samples, "{fixture_name}: {racy} of {script_samples} script samples caught mid-call");
    let true_names: Vec<String> = functions(&truth).into_keys().map(|(n, _)| n).collect();
    for f in summary["functions"].as_array().unwrap() {
        let kind = f["kind"].as_str().unwrap();
        let name = f["zeek_name"].as_str().or(f["name"].as_str()).unwrap();
        // Stale call_stack entries (the fixture's throwing BIF) never give garbage names.
        assert!(
            matches!(kind, "native" | "thread" | "kernel")
                || name == UNRESOLVED
                || true_names.iter().any(|n| n == name),
            "{fixture_name}: {name} ({kind}) is not a function the fixture has"
        );
    }
}

/// Zeek components against the fixture's truth: its DNS parser is the `analyzer/dns`
/// component, and everything its scripts ran (functions, events, hooks, BIFs) the script
/// interpreter's.
#[test]
fn zeek_components_take_the_time_of_their_code() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (truth, summary) = record(dir.path(), "zeek-shaped-8.2", &[]);
    let main = truth["main_thread_cpu_seconds"].as_f64().unwrap();
    let samples = main * 999.0;
    let components: BTreeMap<String, f64> = summary["components"]
        .as_array()
        .expect("summary.json lists the components")
        .iter()
        .map(|c| (c["component"].as_str().unwrap().to_owned(), c["seconds"].as_f64().unwrap()))
        .collect();
    let parser = truth["native"].as_array().unwrap().iter().find(|n| n["name"] == PARSER).expect("the parser's truth");
    let scripts: f64 = truth["cpu"].as_array().unwrap().iter().map(|c| c["self_seconds"].as_f64().unwrap()).sum();
    for (component, seconds) in
        [("analyzer/dns", parser["self_seconds"].as_f64().unwrap()), ("script_interpreter", scripts)]
    {
        let want = 100.0 * seconds / main;
        let got = 100.0 * components.get(component).copied().unwrap_or(0.0) / main;
        let bound = tolerance(want, samples);
        assert!(
            (got - want).abs() <= bound,
            "{component}: sampled {got:.2}%, true {want:.2}% (± {bound:.2}): {components:?}"
        );
    }
}

/// The fixture's DNS parser, a protocol analyzer's code as Zeek names it.
const PARSER: &str = "zeek::analyzer::dns::DNS_Interpreter::ParseMessage";

fn is_kernel_frame(frame: &str) -> bool {
    frame.starts_with("[k] ") || frame == "[kernel]"
}

/// The fixture spends known shares of its main thread in the kernel (read() of /dev/zero) and
/// in libc (memset of big buffers): the first shows as kernel frames named from kallsyms
/// under libc's read wrapper, the second under memset's own (IFUNC-chosen) symbol, each within
/// `tolerance` of the truth; no frame in a library with symbols is a bare library name.
#[test]
fn kernel_time_is_shown_as_kernel_and_library_code_by_its_symbols() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (truth, summary) = record(dir.path(), "zeek-shaped-8.2", &[]);
    let main = truth["main_thread_cpu_seconds"].as_f64().unwrap();
    let samples = main * 999.0;
    let folded = std::fs::read_to_string(dir.path().join("report/profile.folded")).unwrap();
    let stacks: Vec<(Vec<&str>, f64)> = folded
        .lines()
        .map(|line| {
            let (stack, count) = line.rsplit_once(' ').unwrap();
            (stack.split(';').collect(), count.parse().unwrap())
        })
        .collect();
    let share = |matches: &dyn Fn(&[&str]) -> bool| {
        100.0 * stacks.iter().filter(|(f, _)| matches(f)).map(|(_, n)| n).sum::<f64>() / 999.0 / main
    };

    // Every kernel frame is a kernel function by kallsyms' name.
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let kernel_names: std::collections::HashSet<&str> =
        kallsyms.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    let mut kernel_frames = 0;
    for frame in stacks.iter().flat_map(|(f, _)| f).filter(|f| is_kernel_frame(f)) {
        let name = frame.strip_prefix("[k] ").unwrap_or_else(|| panic!("kallsyms readable as root: {frame}"));
        let name = name.split(' ').next().unwrap();
        // zeek-probe's own uprobe programs (a sample taken while one ran) leave kallsyms when
        // they are unloaded, before this reads it.
        assert!(kernel_names.contains(name) || frame.ends_with(" [bpf]"), "{frame} is not in /proc/kallsyms");
        kernel_frames += 1;
    }
    assert!(kernel_frames > 0, "kernel frames sampled");

    // read() of /dev/zero: libc's read with the kernel's read_zero under it, outside scripts
    // (named by the leaf, or with the native stack unwound above it).
    let script = script_names(&summary);
    let outside_scripts = |f: &[&str]| !f[0].starts_with("[thread]") && !f.iter().any(|f| script.contains(*f));
    let reads = |f: &[&str]| outside_scripts(f) && user_leaf(f).1.ends_with("read") && f.contains(&"[k] read_zero");
    let want = 100.0 * truth["read_syscall_seconds"].as_f64().unwrap() / main;
    let got = share(&reads);
    let bound = tolerance(want, samples);
    assert!(
        (got - want).abs() <= bound,
        "read(/dev/zero) in the kernel: sampled {got:.2}%, true {want:.2}% (± {bound:.2})\n{folded}"
    );
    let kernel_path = stacks.iter().find(|(f, _)| reads(f)).unwrap();
    let under_leaf = user_leaf(&kernel_path.0).0 + 1;
    assert!(
        kernel_path.0[..under_leaf].iter().all(|f| !is_kernel_frame(f)),
        "kernel frames under the user leaf: {:?}",
        kernel_path.0
    );
    assert!(
        kernel_path.0[under_leaf].contains("entry_SYSCALL_64"),
        "outermost kernel frame is the syscall entry: {:?}",
        kernel_path.0
    );

    // memset: libc's own symbol for the variant that ran, from its debug file.
    let memsets = |f: &[&str]| outside_scripts(f) && f.last().is_some_and(|leaf| leaf.starts_with("__memset_"));
    let want = 100.0 * truth["memset_seconds"].as_f64().unwrap() / main;
    let got = share(&memsets);
    let bound = tolerance(want, samples);
    assert!((got - want).abs() <= bound, "memset: sampled {got:.2}%, true {want:.2}% (± {bound:.2})\n{folded}");

    // Libraries with symbols (libc, libstdc++, ld.so, the vDSO) name their code where it ran.
    // (libgcc_s and libstdc++ ship without symbols for their static functions, nor debug
    // files: libgcc_s's code stays bare wherever it runs, and so does what runs under
    // `_Unwind_*` for the fixture's throwing BIF and the libraries' own constructors and
    // destructors that ld.so runs at load (`_dl_init`: libstdc++'s, libgcc_s's
    // `__cpu_indicator_init`) and at exit (`_dl_fini`). ld.so's entry point, where the
    // command's first sample lands, is named by its debug file's sizeless `_start`.)
    // An event's `Invoke` that catches its body's exception ends the catch in libstdc++'s
    // static `__gxx_exception_cleanup` with no frame between them: `__cxa_end_catch` and
    // libgcc_s's `_Unwind_DeleteException` reach it by tail calls. `conn_weird` is the event
    // whose first body calls a function that throws.
    let static_code =
        |f: &&str| f.starts_with("_Unwind_") || ["_dl_init", "_dl_fini"].contains(f) || *f == "[libgcc_s.so.1]";
    let exception_cleanup = |frames: &[&str], at: usize| {
        frames[at].starts_with("[libstdc++.so") && at > 0 && frames[at - 1] == "conn_weird"
    };
    for (frames, _) in &stacks {
        let (at, leaf) = user_leaf(frames);
        let static_code = frames.iter().any(static_code) || exception_cleanup(frames, at);
        let bare = leaf.starts_with('[') && (leaf.contains(".so") || leaf == "[vdso]") && !static_code;
        assert!(!bare, "a bare library leaf: {frames:?}");
    }
    // summary.json has kernel rows, with self time.
    let functions = summary["functions"].as_array().unwrap();
    let kernel_self: f64 =
        functions.iter().filter(|f| f["kind"] == "kernel").map(|f| f["self_seconds"].as_f64().unwrap()).sum();
    assert!(kernel_self > 0.0, "kernel functions in summary.json");
}

#[test]
fn record_writes_a_valid_flame_graph_and_pprof_profile() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, summary) = record(dir.path(), "zeek-shaped-8.2", &[]);
    let report = dir.path().join("report");
    assert_eq!(summary["target"]["sample_hz"], 999);

    let svg = std::fs::read_to_string(report.join("flamegraph.svg")).unwrap();
    let options = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    let doc = roxmltree::Document::parse_with_options(&svg, options).expect("well-formed SVG");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(svg.contains("zeek::Connection::NextPacket") && svg.contains("fib"), "frames drawn");

    let profile = pprof::decode(&std::fs::read(report.join("profile.pb.gz")).unwrap());
    assert_eq!(profile.string_table[0], "");
    let types: Vec<&str> =
        profile.sample_type.iter().map(|t| profile.string_table[t.r#type as usize].as_str()).collect();
    assert_eq!(types, ["samples", "cpu"]);
    let samples: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
    let stacks: u64 = summary["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["self_seconds"].as_f64().unwrap() * 999.0).round() as u64)
        .sum();
    assert_eq!(samples as u64, stacks, "every sample is in the pprof profile");
    let fib = profile.string_table.iter().position(|s| s == "fib").expect("fib named") as i64;
    assert!(profile.function.iter().any(|f| f.name == fib));
}
