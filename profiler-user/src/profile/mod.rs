//! The symbolised result for one target: what `record` reports and `attach` exports.
//!
//! `model` is the result itself; the rest are the steps that build it from one map snapshot:
//! the functions to name, then `calls` and `samples` add up per function and per caller edge
//! (`tally`), `dispatches` measures long event dispatches, `logs` counts writes per stream, `rollups` sums self time per file and package,
//! and `health` reads the probes' own counters. `window` cuts a span of time out of two
//! snapshots, for a profile of just that span.
mod calls;
mod dispatches;
mod health;
mod logs;
mod model;
mod rollups;
mod samples;
mod tally;
pub mod window;

pub use dispatches::dispatch_line;
pub use model::{
    CallerEdge, ComponentTime, DispatchHistogram, FunctionStats, LongDispatchRow, LongDispatches, NativeStackShare,
    ProbeHealth, Profile, SampledStack, Sampling, SourceTime, StackShare, StreamWrites, TargetSummary,
};
pub use rollups::package_of;
pub use samples::SampleContext;

pub use crate::symbolize::StackFrame;
use crate::{
    probes::MapSnapshot,
    symbolize::{FunctionNames, LogStreamNames, StackDecoder},
};

impl Profile {
    /// Folds the snapshot's entries for `target.pid` into named, sorted rows.
    pub fn build(
        target: TargetSummary,
        snapshot: &MapSnapshot,
        streams: &LogStreamNames,
        sampling: Option<SampleContext>,
    ) -> Self {
        let pid = target.pid;
        let names = shown_functions(snapshot, pid);
        let mut probe_health = health::probe_health(snapshot, pid);
        let mut tally = tally::Tally::default();
        probe_health.unnamed_calls = calls::count_calls(snapshot, pid, &names, &mut tally);
        let sampled = sampling.as_ref().map(|ctx| samples::count_samples(snapshot, pid, &names, ctx, &mut tally));
        let long_dispatches = sampling.as_ref().filter(|_| target.long_dispatches_unavailable.is_none()).map(|ctx| {
            let mut decoder = StackDecoder::new(&names, ctx.code);
            dispatches::long_dispatches(snapshot, pid, ctx.hz, &names, &mut decoder)
        });

        // One sample stands for 1 / hz CPU seconds; without sampling there are none to convert.
        let hz = sampled.as_ref().map_or(1, |s| s.sampling.hz.max(1)) as f64;
        let seconds = |samples: u64| samples as f64 / hz;
        let (functions, callers) = tally.into_rows(seconds);
        let (sampling, leaf_samples, components) = match sampled {
            Some(s) => {
                probe_health.unnamed_samples = s.unnamed;
                probe_health.mismatched_stacks = s.mismatched;
                (Some(s.sampling), s.leaf_samples, s.components)
            }
            None => (None, Default::default(), Default::default()),
        };
        let rollups = rollups::roll_up(leaf_samples, seconds);

        Self {
            target,
            functions,
            callers,
            log_writes: logs::log_writes(snapshot, pid, streams),
            files: rollups.files,
            packages: rollups.packages,
            components: rollups::components(components, seconds),
            sampling,
            long_dispatches,
            probe_health,
        }
    }
}

/// The functions `pid`'s calls and samples name, and only those (`FUNCS` is shared by every
/// target).
fn shown_functions(snapshot: &MapSnapshot, pid: u32) -> FunctionNames {
    let called = snapshot.calls.iter().filter(|(k, _)| k.pid == pid).flat_map(|(k, _)| [k.callee, k.caller]);
    let sampled_stacks =
        snapshot.samples.iter().filter(|(k, _)| k.pid == pid).filter_map(|(k, _)| snapshot.stacks.get(&k.stack));
    let on_stacks = sampled_stacks.flat_map(|t| t.frames().iter().copied().chain([t.leaf]));
    FunctionNames::new(&snapshot.funcs, called.chain(on_stacks).chain(dispatches::named_hashes(snapshot, pid)))
}

#[cfg(test)]
mod tests {
    use profiler_common::{
        CallKey, FuncInfo, LogKey, ProbeStat, SampleKey, StackKind, StackTrace, StatKey,
        maps::{CALLER_NATIVE, CALLER_UNRESOLVED},
        name_hash::name_hash_bytes,
    };

    use super::*;
    use crate::{
        binary::symbols::NativeSymbols,
        symbolize::{FuncKind, KernelSymbols, LibrarySymbols, NativeCode, UNRESOLVED, function_names::func_info},
    };

    fn info(name: &str, kind: u8, flavor: u8) -> FuncInfo {
        func_info(name, kind, flavor, "", 0)
    }

    fn target(pid: u32) -> TargetSummary {
        TargetSummary {
            pid,
            node: "worker-1".into(),
            zeek_version: "8.2.2".into(),
            abi: "8.2".into(),
            layout_source: crate::binary::LayoutSource::Table,
            binary: "/usr/bin/zeek".into(),
            calls_counted: true,
            uprobe_links: crate::probes::uprobe_multi::UprobeLinkKind::Multi,
            sample_hz: None,
            zam: false,
            long_dispatches_unavailable: None,
            cpu_seconds: None,
        }
    }

    fn stack(frames: &[u64]) -> StackTrace {
        let mut t = StackTrace::zeroed();
        t.kind = StackKind::Script as u32;
        t.depth = frames.len() as u32;
        t.frames[..frames.len()].copy_from_slice(frames);
        t
    }

    #[test]
    fn folds_edges_into_functions_and_keeps_other_pids_out() {
        let (ev, f, bif) = (name_hash_bytes(b"new_connection"), name_hash_bytes(b"set_conn"), name_hash_bytes(b"fmt"));
        let mut snap = MapSnapshot::default();
        snap.funcs.insert(ev, info("new_connection", 0, 1));
        snap.funcs.insert(f, info("set_conn", 0, 0));
        snap.funcs.insert(bif, info("fmt", 1, 0));
        snap.calls = vec![
            (CallKey { pid: 7, _pad: 0, callee: ev, caller: CALLER_NATIVE }, 10),
            (CallKey { pid: 7, _pad: 0, callee: f, caller: ev }, 10),
            (CallKey { pid: 7, _pad: 0, callee: bif, caller: f }, 20),
            (CallKey { pid: 7, _pad: 0, callee: bif, caller: CALLER_UNRESOLVED }, 1),
            (CallKey { pid: 8, _pad: 0, callee: bif, caller: f }, 99),
        ];
        snap.log_writes = vec![(LogKey { pid: 7, _pad: 0, enum_type: 0x1000, ordinal: 3 }, 5)];
        snap.stats = vec![(StatKey { pid: 7, stat: ProbeStat::MapFull as u32 }, 2)];
        let p = Profile::build(target(7), &snap, &LogStreamNames::default(), None);
        let fmt = p.functions.iter().find(|f| f.name == "fmt").unwrap();
        assert_eq!((fmt.kind, fmt.calls), (FuncKind::Bif, Some(21)));
        assert_eq!(p.functions.len(), 3);
        let edge = |caller: Option<&str>, callee: &str| {
            p.callers.iter().find(|e| e.caller.as_deref() == caller && e.callee == callee).map(|e| e.calls)
        };
        assert_eq!(edge(None, "new_connection"), Some(Some(10)));
        assert_eq!(edge(Some(UNRESOLVED), "fmt"), Some(Some(1)));
        assert_eq!(p.log_writes, vec![StreamWrites { stream: "Log::ID#3".into(), writes: 5 }]);
        assert_eq!(p.probe_health.map_full, 2);
        assert!(p.sampling.is_none());
    }

    #[test]
    fn calls_without_a_decodable_name_are_counted_as_unnamed() {
        let snap = MapSnapshot {
            calls: vec![(CallKey { pid: 1, _pad: 0, callee: 12345, caller: CALLER_NATIVE }, 4)],
            ..Default::default()
        };
        let p = Profile::build(target(1), &snap, &LogStreamNames::default(), None);
        assert!(p.functions.is_empty());
        assert_eq!(p.probe_health.unnamed_calls, 4);
    }

    #[test]
    fn samples_give_self_and_total_time_with_recursion_counted_once() {
        let (ev, fib) = (name_hash_bytes(b"zeek_init"), name_hash_bytes(b"fib"));
        let mut snap = MapSnapshot::default();
        snap.funcs.insert(ev, info("zeek_init", 0, 1));
        snap.funcs.insert(fib, func_info("fib", 0, 0, "/z/site/packages/math/fib.zeek", 0));
        // 30 samples in fib (recursing), 10 in zeek_init itself.
        snap.stacks.insert(1, stack(&[ev, fib, fib, fib]));
        snap.stacks.insert(2, stack(&[ev]));
        snap.samples = vec![
            (SampleKey { pid: 3, _pad: 0, stack: 1 }, 30),
            (SampleKey { pid: 3, _pad: 0, stack: 2 }, 10),
            (SampleKey { pid: 3, _pad: 0, stack: 99 }, 1),
        ];
        let (natives, libraries, kernel) = (NativeSymbols::default(), LibrarySymbols::new(0), KernelSymbols::default());
        let code = NativeCode::symbols_only(&natives, &libraries, &kernel);
        let ctx = SampleContext { hz: 10, code, native_stacks: false, thread_stacks: false };
        let p = Profile::build(target(3), &snap, &LogStreamNames::default(), Some(ctx));
        let f = |name: &str| p.functions.iter().find(|f| f.name == name).unwrap();
        assert_eq!((f("fib").self_seconds, f("fib").total_seconds), (3.0, 3.0), "recursion counted once");
        assert_eq!((f("zeek_init").self_seconds, f("zeek_init").total_seconds), (1.0, 4.0));
        let edge = p.callers.iter().find(|e| e.caller.as_deref() == Some("fib") && e.callee == "fib").unwrap();
        assert_eq!((edge.self_seconds, edge.total_seconds), (3.0, 3.0));
        assert_eq!(p.packages, vec![SourceTime { source: "math".into(), self_seconds: 3.0 }]);
        assert_eq!(p.probe_health.unnamed_samples, 1);
        let sampling = p.sampling.unwrap();
        assert_eq!(sampling.stacks.iter().map(|s| s.samples).sum::<u64>(), 40);
    }

    /// Unwound native stacks change the stacks shown, not the script rows: functions and caller
    /// edges add up the script-side stack whether or not a sample's native stack was unwound.
    /// The native callers unwound get rows of inclusive time.
    #[test]
    fn native_stacks_are_spliced_into_the_stacks_and_leave_the_rows_as_they_were() {
        use crate::binary::symbols::{SCRIPT_FUNC_INVOKE, Symbol, SymbolIndex};
        let (ev, fib) = (name_hash_bytes(b"zeek_init"), name_hash_bytes(b"fib"));
        let mut snap = MapSnapshot::default();
        snap.funcs.insert(ev, info("zeek_init", 0, 1));
        snap.funcs.insert(fib, info("fib", 0, 0));
        snap.stacks.insert(1, stack(&[ev, fib]));
        snap.stacks.insert(2, stack(&[ev]));
        snap.samples =
            vec![(SampleKey { pid: 3, _pad: 0, stack: 1 }, 30), (SampleKey { pid: 3, _pad: 0, stack: 2 }, 10)];
        let mut symbols = SymbolIndex::default();
        let function = |address, size| Symbol { address, size, is_function: true, is_weak: false };
        symbols.insert("main", function(0x1000, 0x100));
        symbols.insert(SCRIPT_FUNC_INVOKE, function(0x2000, 0x100));
        symbols.insert("_ZN4zeek6detail8StmtList4ExecEv", function(0x3000, 0x100));
        let (natives, libraries, kernel) = (symbols.functions(), LibrarySymbols::new(0), KernelSymbols::default());
        let code = NativeCode::symbols_only(&natives, &libraries, &kernel);
        let profile = |snap: &MapSnapshot| {
            let ctx = SampleContext { hz: 10, code, native_stacks: true, thread_stacks: true };
            Profile::build(target(3), snap, &LogStreamNames::default(), Some(ctx))
        };
        let by_leaf = profile(&snap);
        // 20 of the 30 samples in fib unwound: 15 as far as fib's Invoke, 5 caught before it.
        for _ in 0..15 {
            snap.native_stacks.add(3, 1, vec![0x1010, 0x2010, 0x3010, 0x2020, 0x3020]);
        }
        for _ in 0..5 {
            snap.native_stacks.add(3, 1, vec![0x1010, 0x2010, 0x3010]);
        }
        let unwound = profile(&snap);
        let rows = |p: &Profile, kind: Option<FuncKind>| {
            let of_kind =
                |f: &&FunctionStats| kind.is_none_or(|k| f.kind == k) && (kind.is_some() || f.kind != FuncKind::Native);
            let f: Vec<_> =
                p.functions.iter().filter(of_kind).map(|f| (f.name.clone(), f.self_seconds, f.total_seconds)).collect();
            let e: Vec<_> = p.callers.iter().map(|e| (e.caller.clone(), e.callee.clone(), e.total_seconds)).collect();
            (f, e)
        };
        assert_eq!(rows(&unwound, None), rows(&by_leaf, None));
        assert!(rows(&by_leaf, Some(FuncKind::Native)).0.is_empty());
        let natives = rows(&unwound, Some(FuncKind::Native)).0;
        for name in ["main", "zeek::detail::ScriptFunc::Invoke", "zeek::detail::StmtList::Exec"] {
            assert!(natives.contains(&(name.to_owned(), 0.0, 2.0)), "{name}: 20 samples inclusive: {natives:?}");
        }
        let sampling = unwound.sampling.unwrap();
        let main_thread = StackShare { samples: 40, unwound: 20, to_root: 20 };
        let expected =
            NativeStackShare { enabled: true, thread_stacks: true, main_thread, threads: StackShare::default() };
        assert_eq!(sampling.native_stacks, expected);
        assert_eq!(unwound.probe_health.mismatched_stacks, 5);
        let shown = |samples| {
            let s = sampling.stacks.iter().find(|s| s.samples == samples).unwrap();
            s.frames.iter().map(|f| f.name.as_str()).collect::<Vec<_>>()
        };
        let invoke = "zeek::detail::ScriptFunc::Invoke";
        let exec = "zeek::detail::StmtList::Exec";
        assert_eq!(shown(15), ["main", invoke, "zeek_init", exec, invoke, "fib", exec]);
        assert_eq!(shown(5), ["main", invoke, "zeek_init", "fib", exec], "the rest under the innermost Invoke");
        // By their leaf: the 10 in fib not unwound, and zeek_init's 10 (no native record).
        assert_eq!(sampling.stacks.iter().filter(|s| s.samples == 10).count(), 2);
        assert_eq!(sampling.stacks.iter().map(|s| s.samples).sum::<u64>(), 40);
    }

    /// Another thread's unwound stack stands alone under its name and places it by its code;
    /// its samples without a stack keep the name, and its component by the name. The sampled
    /// instruction pointer names the function the thread spends its time in, stack or not.
    #[test]
    fn thread_stacks_stand_under_the_threads_name_and_give_their_components() {
        use crate::binary::symbols::{Symbol, SymbolIndex};
        let mut snap = MapSnapshot::default();
        let mut writer = StackTrace::zeroed();
        writer.kind = StackKind::Thread as u32;
        writer.comm[..9].copy_from_slice(b"zk.conn/A");
        snap.stacks.insert(1, writer);
        let mut writing = writer;
        writing.leaf = 0x2020;
        snap.stacks.insert(2, writing);
        snap.samples =
            vec![(SampleKey { pid: 3, _pad: 0, stack: 1 }, 30), (SampleKey { pid: 3, _pad: 0, stack: 2 }, 8)];
        let mut symbols = SymbolIndex::default();
        let function = |address, size| Symbol { address, size, is_function: true, is_weak: false };
        symbols.insert("start_thread", function(0x1000, 0x100));
        symbols.insert("_ZN4zeek7logging6writer6detail5Ascii7DoWriteEv", function(0x2000, 0x100));
        let (natives, libraries, kernel) = (symbols.functions(), LibrarySymbols::new(0), KernelSymbols::default());
        let code = NativeCode::symbols_only(&natives, &libraries, &kernel);
        // 20 of the 30 unwound: 15 to the thread's start, 5 cut short (no start_thread).
        for _ in 0..15 {
            snap.native_stacks.add(3, 1, vec![0x1010, 0x2010]);
        }
        for _ in 0..5 {
            snap.native_stacks.add(3, 1, vec![0x2010]);
        }
        let ctx = SampleContext { hz: 10, code, native_stacks: true, thread_stacks: true };
        let p = Profile::build(target(3), &snap, &LogStreamNames::default(), Some(ctx));
        let sampling = p.sampling.as_ref().unwrap();
        let n = sampling.native_stacks;
        assert_eq!(n.threads, StackShare { samples: 38, unwound: 20, to_root: 15 });
        assert_eq!(n.main_thread, StackShare::default());
        let shown = |samples| {
            let s = sampling.stacks.iter().find(|s| s.samples == samples).unwrap();
            s.frames.iter().map(|f| f.name.as_str()).collect::<Vec<_>>()
        };
        let write = "zeek::logging::writer::detail::Ascii::DoWrite";
        assert_eq!(shown(15), ["[thread] zk.conn/A", "start_thread", write]);
        assert_eq!(shown(13), ["[thread] zk.conn/A", write], "5 cut short, 8 by their instruction pointer");
        assert_eq!(shown(10), ["[thread] zk.conn/A"], "no stack, no instruction pointer: by its name");
        let self_seconds = |name: &str| p.functions.iter().find(|f| f.name == name).map(|f| f.self_seconds);
        assert_eq!(self_seconds(write), Some(0.8));
        assert_eq!(self_seconds("[thread] zk.conn/A"), Some(3.0), "the 30 of the trace without one");
        let component = |name: &str| p.components.iter().find(|c| c.component == name).map(|c| c.seconds);
        assert_eq!(component("log_writer/ascii"), Some(2.8), "from the 20 stacks and the 8 leaves");
        assert_eq!(component("threading"), Some(1.8), "from the name, of the 18 without a stack");
        let summary = serde_json::to_value(n).unwrap();
        assert_eq!(summary["to_main"], 0, "{summary}");
        assert_eq!(summary["threads"]["to_root"], 15, "{summary}");
    }

    #[test]
    fn kernel_time_under_a_script_is_the_kernels_self_time_and_no_call_edge() {
        let (ev, bif) = (name_hash_bytes(b"zeek_init"), name_hash_bytes(b"write_file"));
        let mut snap = MapSnapshot::default();
        snap.funcs.insert(ev, info("zeek_init", 0, 1));
        snap.funcs.insert(bif, info("write_file", 1, 0));
        let mut in_kernel = stack(&[ev, bif]);
        in_kernel.kernel_depth = 2;
        in_kernel.kernel_frames[..2].copy_from_slice(&[0xffffffff81002010, 0xffffffff81001040]);
        snap.stacks.insert(1, in_kernel);
        snap.stacks.insert(2, stack(&[ev, bif]));
        snap.samples =
            vec![(SampleKey { pid: 3, _pad: 0, stack: 1 }, 20), (SampleKey { pid: 3, _pad: 0, stack: 2 }, 10)];
        let (natives, libraries) = (NativeSymbols::default(), LibrarySymbols::new(0));
        let kernel = KernelSymbols::parse("ffffffff81001000 t do_syscall_64\nffffffff81002000 t vfs_write\n");
        let code = NativeCode::symbols_only(&natives, &libraries, &kernel);
        let p = Profile::build(
            target(3),
            &snap,
            &LogStreamNames::default(),
            Some(SampleContext { hz: 10, code, native_stacks: false, thread_stacks: false }),
        );
        let f = |name: &str| p.functions.iter().find(|f| f.name == name).unwrap();
        assert_eq!((f("write_file").self_seconds, f("write_file").total_seconds), (1.0, 3.0));
        assert_eq!((f("[k] vfs_write").kind, f("[k] vfs_write").self_seconds), (FuncKind::Kernel, 2.0));
        assert_eq!((f("[k] do_syscall_64").self_seconds, f("[k] do_syscall_64").total_seconds), (0.0, 2.0));
        let edge = p.callers.iter().find(|e| e.callee == "write_file").unwrap();
        assert_eq!((edge.self_seconds, edge.total_seconds), (1.0, 3.0), "the kernel's time is below the edge");
        assert!(p.callers.iter().all(|e| !e.callee.starts_with("[k]")), "no call edges into the kernel");
    }
}
