//! Sampled stacks → the distinct stacks people read, and the samples they add per function
//! (self and total) and per caller edge. A sample whose native stack was unwound is shown with
//! its full stack (the main thread's mixed with its script frames); the rows add up the script-side stack (the script
//! frames and the native leaf) either way, so they do not depend on how many were unwound.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use profiler_common::StackKind;

use super::{NativeStackShare, SampledStack, Sampling, tally::Tally};
use crate::{
    probes::MapSnapshot,
    symbolize::{DecodedFrame, Effort, FuncKind, FunctionNames, NativeCode, StackDecoder, StackFrame, component_of},
};

/// What decoding one process's samples needs.
pub struct SampleContext<'a> {
    pub hz: u64,
    pub code: NativeCode<'a>,
    /// Whether the sampler copied native stacks for unwinding...
    pub native_stacks: bool,
    /// ...also of the threads other than the main one (it knew where to read their FS base).
    pub thread_stacks: bool,
}

/// What one process's samples came to besides what they added to the tally.
pub(super) struct Sampled {
    pub sampling: Sampling,
    /// Samples per script file of the leaf function, for the roll-ups.
    pub leaf_samples: BTreeMap<String, u64>,
    /// Samples whose stack could not be decoded.
    pub unnamed: u64,
    /// Samples whose native and script frames disagreed (`SplicedStack::mismatched`).
    pub mismatched: u64,
    /// Samples per Zeek component on their shown stack (inclusive).
    pub components: BTreeMap<String, u64>,
}

/// Decodes the stacks sampled for `pid` and adds their samples to `tally`.
pub(super) fn count_samples(
    snapshot: &MapSnapshot,
    pid: u32,
    names: &FunctionNames,
    ctx: &SampleContext,
    tally: &mut Tally,
) -> Sampled {
    ctx.code.prefetch_lines(native_addresses(snapshot, pid), Effort::AllCores);
    let mut decoder = StackDecoder::new(names, ctx.code);
    let mut stacks: HashMap<Vec<StackFrame>, u64> = HashMap::new();
    let mut leaf_samples: BTreeMap<String, u64> = BTreeMap::new();
    let mut components: BTreeMap<String, u64> = BTreeMap::new();
    let (mut unnamed, mut mismatched) = (0, 0);
    let mut native = NativeStackShare {
        enabled: ctx.native_stacks,
        thread_stacks: ctx.native_stacks && ctx.thread_stacks,
        ..NativeStackShare::default()
    };
    for (key, samples) in snapshot.samples.iter().filter(|(k, _)| k.pid == pid) {
        let Some((trace, frames)) =
            snapshot.stacks.get(&key.stack).and_then(|t| decoder.decode(t).map(|frames| (t, frames)))
        else {
            unnamed += samples;
            continue;
        };
        // Samples with a native stack get their full one; the rest (ring full, before the
        // drain, unwinding off, a thread whose stack end was not found) keep the leaf's.
        let mut by_leaf = *samples;
        let thread = trace.kind == StackKind::Thread as u32;
        let share = if thread { &mut native.threads } else { &mut native.main_thread };
        share.samples += samples;
        for (addresses, n) in snapshot.native_stacks.stacks_of(pid, key.stack) {
            let n = n.min(by_leaf);
            let Some(spliced) = decoder.splice(trace, addresses).filter(|_| n > 0) else { continue };
            by_leaf -= n;
            share.unwound += n;
            share.to_root += if reaches_root(&spliced.frames, thread) { n } else { 0 };
            mismatched += if spliced.mismatched && trace.kind == StackKind::Script as u32 { n } else { 0 };
            // A thread with its stack is placed by its code, not its name (the first frame).
            add_to_components(&mut components, &spliced.frames[usize::from(thread)..], n);
            add_native_totals(tally, &spliced.frames, &frames, n);
            *stacks.entry(spliced.frames.into_iter().map(|f| f.frame).collect()).or_default() += n;
        }
        let Some(leaf) = frames.last() else { continue };
        // Script files only: a native leaf's file is C++ source (DWARF).
        if let Some(file) = leaf.frame.file.as_ref().filter(|_| leaf.kind != FuncKind::Native) {
            *leaf_samples.entry(file.clone()).or_default() += samples;
        }
        add_to_functions(tally, &frames, *samples);
        add_to_edges(tally, &frames, *samples);
        if by_leaf > 0 {
            add_to_components(&mut components, &frames, by_leaf);
            *stacks.entry(frames.into_iter().map(|f| f.frame).collect()).or_default() += by_leaf;
        }
    }
    let mut stacks: Vec<SampledStack> =
        stacks.into_iter().map(|(frames, samples)| SampledStack { frames, samples }).collect();
    stacks.sort_by(|a, b| b.samples.cmp(&a.samples).then_with(|| a.frames.cmp(&b.frames)));
    Sampled {
        sampling: Sampling { hz: ctx.hz, stacks, native_stacks: native },
        leaf_samples,
        unnamed,
        mismatched,
        components,
    }
}

/// Every user-space address the decoder will name in `pid`'s samples: their unwound native
/// stacks, and the leaf of those sampled outside scripts.
fn native_addresses(snapshot: &MapSnapshot, pid: u32) -> HashSet<u64> {
    let mut addresses = HashSet::new();
    for (key, _) in snapshot.samples.iter().filter(|(k, _)| k.pid == pid) {
        let leaf = snapshot.stacks.get(&key.stack).filter(|t| {
            matches!(StackKind::try_from(t.kind), Ok(StackKind::Native | StackKind::Thread)) && t.leaf != 0
        });
        addresses.extend(leaf.map(|t| t.leaf));
        for (stack, _) in snapshot.native_stacks.stacks_of(pid, key.stack) {
            addresses.extend(stack.iter().copied());
        }
    }
    addresses
}

/// Samples to every Zeek component on the stack, once however many of its frames are there:
/// with the native frames unwound that is the time inside each component, else the time of
/// the leaves named after one.
fn add_to_components(components: &mut BTreeMap<String, u64>, frames: &[DecodedFrame], samples: u64) {
    let on_stack: BTreeSet<String> = frames.iter().filter_map(component_of).collect();
    for component in on_stack {
        *components.entry(component).or_default() += samples;
    }
}

/// Total samples to the native functions an unwound stack adds to the script-side one (its
/// callers in C++: the run loop, packet analysis, the interpreter), once each however often
/// recursion repeats them; the script-side stack's own frames have theirs already.
fn add_native_totals(tally: &mut Tally, unwound: &[DecodedFrame], script_side: &[DecodedFrame], samples: u64) {
    let mut seen: HashSet<&str> =
        script_side.iter().filter(|f| f.kind == FuncKind::Native).map(|f| f.frame.name.as_str()).collect();
    for f in unwound.iter().filter(|f| f.kind == FuncKind::Native && !f.frame.inlined) {
        if seen.insert(&f.frame.name) {
            let row = tally.function(&f.frame.name, FuncKind::Native);
            row.total_samples += samples;
            row.file = row.file.take().or_else(|| f.frame.file.clone());
        }
    }
}

/// Whether an unwound stack goes all the way up to its thread's root: Zeek's `main` for the
/// main thread, libc's thread start for the others.
fn reaches_root(frames: &[DecodedFrame], thread: bool) -> bool {
    let roots: &[&str] = if thread { &THREAD_ROOTS } else { &["main"] };
    frames.iter().any(|f| f.kind == FuncKind::Native && roots.contains(&f.frame.name.as_str()))
}

/// Where glibc starts a thread made by `pthread_create` (`clone3` calls `start_thread`; older
/// glibc, `clone`).
const THREAD_ROOTS: [&str; 3] = ["start_thread", "clone3", "clone"];

/// Self samples to the leaf; total samples to every function on the stack, once however often
/// recursion repeats it. A function first seen here takes the frame's file and Zeek name. The
/// rows are machine frames' functions, as their symbols name them: a call inlined into one is
/// its time (as in perf without `--inline`), shown on its own in the stacks only.
fn add_to_functions(tally: &mut Tally, frames: &[DecodedFrame], samples: u64) {
    let Some(leaf) = frames.iter().rfind(|f| !f.frame.inlined) else { return };
    tally.function(&leaf.frame.name, leaf.kind).self_samples += samples;
    let mut seen = HashSet::new();
    for f in frames.iter().filter(|f| !f.frame.inlined) {
        if seen.insert((&f.frame.name, f.kind)) {
            let row = tally.function(&f.frame.name, f.kind);
            row.total_samples += samples;
            row.file = row.file.take().or_else(|| f.frame.file.clone());
            row.zeek_name = row.zeek_name.take().or_else(|| f.zeek_name.clone());
        }
    }
}

/// Total samples to every caller edge on a script stack, once however often recursion repeats
/// it; self samples to the edge into the leaf, unless the kernel was working under it. Script
/// stacks start at a call from C++; native and thread stacks have no call edges.
fn add_to_edges(tally: &mut Tally, frames: &[DecodedFrame], samples: u64) {
    if frames.iter().any(|f| matches!(f.kind, FuncKind::Native | FuncKind::Thread)) {
        return;
    }
    let script = frames.iter().position(|f| f.kind == FuncKind::Kernel).unwrap_or(frames.len());
    let (frames, kernel) = frames.split_at(script);
    let callers = std::iter::once(None).chain(frames.iter().map(|f| Some(f.frame.name.as_str())));
    let mut seen = HashSet::new();
    for (i, (caller, f)) in callers.zip(frames).enumerate() {
        let edge = (caller, f.frame.name.as_str());
        let row = tally.edge((caller.map(str::to_owned), f.frame.name.clone()));
        if seen.insert(edge) {
            row.total_samples += samples;
        }
        if i + 1 == frames.len() && kernel.is_empty() {
            row.self_samples += samples;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(name: &str, inlined: bool) -> DecodedFrame {
        DecodedFrame {
            frame: StackFrame { inlined, ..StackFrame::named(name) },
            kind: FuncKind::Native,
            zeek_name: None,
        }
    }

    /// A call inlined into the leaf's function is that function's self time; it has no row.
    #[test]
    fn inlined_calls_are_their_machine_frames_time_in_the_rows() {
        let mut tally = Tally::default();
        // The leaf as `decode` expands it, and the whole stack as `splice` unwinds it.
        let leaf = [native("zeek::Run", false), native("std::vector::operator[]", true)];
        let unwound = [native("main", false), native("zeek::Run", false), native("std::vector::operator[]", true)];
        add_to_functions(&mut tally, &leaf, 3);
        add_native_totals(&mut tally, &unwound, &leaf, 3);
        let (rows, _) = tally.into_rows(|samples| samples as f64);
        let shown: Vec<(&str, f64, f64)> =
            rows.iter().map(|r| (r.name.as_str(), r.self_seconds, r.total_seconds)).collect();
        assert_eq!(shown, [("main", 0.0, 3.0), ("zeek::Run", 3.0, 3.0)]);
    }
}
