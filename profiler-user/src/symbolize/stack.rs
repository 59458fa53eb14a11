//! Sampled stacks → frames people read: script functions by name (lambdas by where they are
//! defined), native code by demangled symbol (the executable's, a library's), other threads by
//! thread name, and under any of them the kernel functions the sample interrupted.
use std::collections::HashMap;

use profiler_common::{StackKind, StackTrace};
use serde::Serialize;

use super::{
    FuncKind, FunctionNames, KernelSymbols, LibrarySymbols, SourceFrame, SourceLines, UNRESOLVED,
    kernel_symbols::KERNEL_UNNAMED, native_lines::Effort,
};
use crate::{
    binary::symbols::NativeSymbols,
    target::mappings::{self, Mapping},
};

/// Root of every native stack, so native time adds up in one place of a flame graph.
pub const NATIVE_ROOT: &str = "[native]";
/// An inlined call DWARF does not name.
pub const INLINED_UNNAMED: &str = "[inlined]";
/// Leaf under an event whose C++ dispatch (no script body) was sampled.
pub const DISPATCH_LEAF: &str = "[dispatch]";
/// The native functions every script call runs through (zeek-abi.md §1), as demangled: one
/// script frame of `call_stack` per frame of these.
const INVOKES: [&str; 2] = ["zeek::detail::ScriptFunc::Invoke", "zeek::detail::BuiltinFunc::Invoke"];

/// A sample's full stack: native frames with the script frames spliced in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplicedStack {
    pub frames: Vec<DecodedFrame>,
    /// The native `Invoke` frames and the script frames were not as many (a sample caught
    /// between entering `Invoke` and pushing onto `call_stack`, or popping and returning).
    pub mismatched: bool,
}
/// One frame of a sampled stack, as people read it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct StackFrame {
    /// Script function/event/hook/BIF name, `lambda@file:line`, a demangled native function,
    /// or a thread name.
    pub name: String,
    /// Source file of a script function, or of the line `at_line` of a native frame.
    pub file: Option<String>,
    /// First line in `file` of a script function (0 when unknown, and for native frames).
    pub line: u32,
    /// The line a native frame runs in `file`, from DWARF: the sampled one in the leaf, the
    /// call into the next frame in the others (0 when unknown).
    #[serde(skip_serializing_if = "is_zero")]
    pub at_line: u32,
    /// A call DWARF says was inlined into the frame above it: it has no machine frame of its own.
    #[serde(skip_serializing_if = "is_false")]
    pub inlined: bool,
}

impl StackFrame {
    /// A frame that is only a name.
    pub fn named(name: impl Into<String>) -> Self {
        Self { name: name.into(), file: None, line: 0, at_line: 0, inlined: false }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One decoded frame: the frame people read, and what the profile's rows add up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedFrame {
    pub frame: StackFrame,
    pub kind: FuncKind,
    /// Zeek's own name where the shown one differs (lambdas).
    pub zeek_name: Option<String>,
}

/// A frame that is only a name: native code, a thread, the kernel.
fn frame(name: String, kind: FuncKind) -> DecodedFrame {
    DecodedFrame { frame: StackFrame::named(name), kind, zeek_name: None }
}

/// What names one process's native code.
#[derive(Clone, Copy)]
pub struct NativeCode<'a> {
    /// The executable's functions, at link-time addresses: runtime minus `bias`.
    pub natives: &'a NativeSymbols,
    /// The executable's DWARF, where it has some: the calls inlined at an address, and lines.
    pub lines: Option<&'a SourceLines>,
    pub bias: u64,
    /// The process's mappings, to find the library of any other address...
    pub mappings: &'a [Mapping],
    /// ...and those libraries' functions.
    pub libraries: &'a LibrarySymbols,
    pub kernel: &'a KernelSymbols,
}

impl NativeCode<'_> {
    /// Resolves the source lines at the runtime addresses `ips` ahead of the decoder naming
    /// them: each file's compile units parsed side by side (`SourceLines::prefetch`), and with
    /// every core to use, the libraries' beside the executable's (a compressed debug file,
    /// such as libc's, is decompressed meanwhile).
    pub fn prefetch_lines(&self, ips: impl IntoIterator<Item = u64>, effort: Effort) {
        let (mut executable, mut libraries) = (Vec::new(), Vec::new());
        for ip in ips {
            let address = ip.wrapping_sub(self.bias);
            if self.natives.covers(address) {
                executable.push(address);
            } else if let Some(mapping) = mappings::mapping_of(self.mappings, ip) {
                libraries.push((mapping, ip));
            }
        }
        let in_executable = || {
            if let Some(lines) = self.lines {
                lines.prefetch(executable, effort);
            }
        };
        match effort {
            Effort::AllCores => std::thread::scope(|scope| {
                scope.spawn(|| self.libraries.prefetch_lines(libraries, effort));
                in_executable();
            }),
            Effort::Background { .. } => {
                in_executable();
                self.libraries.prefetch_lines(libraries, effort);
            }
        }
    }
}

#[cfg(test)]
impl<'a> NativeCode<'a> {
    /// The executable's symbols alone, loaded at its link-time addresses: no DWARF, no mappings.
    pub fn symbols_only(natives: &'a NativeSymbols, libraries: &'a LibrarySymbols, kernel: &'a KernelSymbols) -> Self {
        Self { natives, lines: None, bias: 0, mappings: &[], libraries, kernel }
    }
}

/// Decodes the stacks of one process, caching native symbol lookups.
pub struct StackDecoder<'a> {
    funcs: &'a FunctionNames,
    code: NativeCode<'a>,
    /// Per address, its frames: the function, then the calls inlined into it.
    native_frames: HashMap<u64, Vec<StackFrame>>,
    kernel_names: HashMap<u64, String>,
}

impl<'a> StackDecoder<'a> {
    pub fn new(funcs: &'a FunctionNames, code: NativeCode<'a>) -> Self {
        Self { funcs, code, native_frames: HashMap::new(), kernel_names: HashMap::new() }
    }

    /// Frames root first; `None` for a malformed trace. Native code is named by its leaf
    /// alone (`splice` gives the full stack where it was unwound).
    pub fn decode(&mut self, trace: &StackTrace) -> Option<Vec<DecodedFrame>> {
        let mut user_ips: &[u64] = &[];
        let mut frames: Vec<DecodedFrame> = match StackKind::try_from(trace.kind).ok()? {
            StackKind::Script => trace.frames().iter().map(|h| self.script_frame(*h)).collect(),
            StackKind::EventDispatch => {
                vec![self.script_frame(trace.leaf), frame(DISPATCH_LEAF.to_owned(), FuncKind::Native)]
            }
            StackKind::Native => {
                user_ips = std::slice::from_ref(&trace.leaf);
                vec![frame(NATIVE_ROOT.to_owned(), FuncKind::Native)]
            }
            StackKind::Thread => {
                // 0: the sampler could not read where it was.
                user_ips = if trace.leaf != 0 { std::slice::from_ref(&trace.leaf) } else { &[] };
                vec![thread_frame(trace)]
            }
        };
        frames.extend(self.native_frames(user_ips, trace.kernel_frames()));
        Some(frames)
    }

    /// The full stack of a sample whose native stack was unwound: `native` are the user-space
    /// frame addresses root first (the leaf's instruction pointer last, return addresses above
    /// it already minus one), the script frames `trace` holds are spliced in under the
    /// `Invoke` frames, and the kernel's frames go under the leaf. Another thread than the
    /// main one has no script frames: its native stack stands under the thread's name.
    /// `None` for a malformed trace.
    pub fn splice(&mut self, trace: &StackTrace, native: &[u64]) -> Option<SplicedStack> {
        let script: Vec<DecodedFrame> = match StackKind::try_from(trace.kind).ok()? {
            StackKind::Script => trace.frames().iter().map(|h| self.script_frame(*h)).collect(),
            // The event being dispatched, under the native frames that dispatch it.
            StackKind::EventDispatch => vec![self.script_frame(trace.leaf)],
            StackKind::Native | StackKind::Thread => Vec::new(),
        };
        let native: Vec<DecodedFrame> = native.iter().flat_map(|address| self.native_at(*address)).collect();
        let mut spliced = splice_script_frames(native, script);
        if trace.kind == StackKind::Thread as u32 {
            spliced.frames.insert(0, thread_frame(trace));
        }
        spliced.frames.extend(self.native_frames(&[], trace.kernel_frames()));
        Some(spliced)
    }

    /// Native frames root first: the user-space ones (root first, the leaf last), then the
    /// kernel's (given innermost first, as the kernel's unwinder returns them).
    fn native_frames(&mut self, user_ips: &[u64], kernel_ips: &[u64]) -> Vec<DecodedFrame> {
        let mut frames: Vec<DecodedFrame> = user_ips.iter().flat_map(|ip| self.native_at(*ip)).collect();
        if kernel_ips.is_empty() {
            return frames;
        }
        if self.code.kernel.is_empty() {
            frames.push(frame(KERNEL_UNNAMED.to_owned(), FuncKind::Kernel));
            return frames;
        }
        for (depth, ip) in kernel_ips.iter().enumerate().rev() {
            // Above the innermost frame, return addresses: the call is the byte before.
            let address = if depth == 0 { *ip } else { ip.wrapping_sub(1) };
            let kernel = self.code.kernel;
            let name = self.kernel_names.entry(address).or_insert_with(|| kernel.frame_name(address)).clone();
            frames.push(frame(name, FuncKind::Kernel));
        }
        frames
    }

    fn script_frame(&self, hash: u64) -> DecodedFrame {
        match self.funcs.resolve(hash) {
            Some(f) => DecodedFrame {
                frame: StackFrame { file: f.file.clone(), line: f.line, ..StackFrame::named(f.name.clone()) },
                kind: f.kind,
                zeek_name: f.zeek_name.clone(),
            },
            None => DecodedFrame {
                frame: StackFrame::named(UNRESOLVED.to_owned()),
                kind: FuncKind::Function,
                zeek_name: None,
            },
        }
    }

    /// The frames at a native address: its function, then the calls inlined into it there.
    fn native_at(&mut self, ip: u64) -> Vec<DecodedFrame> {
        let code = self.code;
        let frames = self.native_frames.entry(ip).or_insert_with(|| {
            let address = ip.wrapping_sub(code.bias);
            if let Some(function) = code.natives.lookup(address) {
                let chain = code.lines.map(|lines| lines.frames(address)).unwrap_or_default();
                return inlined_chain(function, &chain);
            }
            let Some(mapping) = mappings::mapping_of(code.mappings, ip) else {
                return vec![StackFrame::named(format!("{ip:#x}"))];
            };
            if let Some(function) = code.libraries.lookup(mapping, ip) {
                return inlined_chain(function.name, &function.chain);
            }
            vec![StackFrame::named(match mappings::file_name(mapping) {
                library if library.starts_with('[') => library.to_owned(),
                library => format!("[{library}]"),
            })]
        });
        frames.iter().map(|f| DecodedFrame { frame: f.clone(), kind: FuncKind::Native, zeek_name: None }).collect()
    }
}

/// A thread other than the main one, by its name (`comm`).
fn thread_frame(trace: &StackTrace) -> DecodedFrame {
    let end = trace.comm.iter().position(|b| *b == 0).unwrap_or(trace.comm.len());
    let comm = String::from_utf8_lossy(&trace.comm[..end]);
    frame(format!("[thread] {comm}"), FuncKind::Thread)
}

/// The frame of the function named `symbol`, then the calls DWARF's `chain` (outermost first,
/// the function itself first) says are inlined at the address, each with its file and line.
/// The function keeps its symbol's name, which the rows and the `Invoke` matching go by.
fn inlined_chain(symbol: String, chain: &[SourceFrame]) -> Vec<StackFrame> {
    let at = |f: &SourceFrame, name: String, inlined: bool| StackFrame {
        name,
        file: f.file.clone(),
        line: 0,
        at_line: f.line,
        inlined,
    };
    let Some((function, inlined)) = chain.split_first() else { return vec![StackFrame::named(symbol)] };
    std::iter::once(at(function, symbol, false))
        .chain(inlined.iter().map(|f| at(f, f.function.clone().unwrap_or_else(|| INLINED_UNNAMED.to_owned()), true)))
        .collect()
}

/// Whether a native frame is one of the `Invoke`s.
fn is_invoke(frame: &DecodedFrame) -> bool {
    let name = frame.frame.name.strip_suffix(" const").unwrap_or(&frame.frame.name);
    frame.kind == FuncKind::Native && !frame.frame.inlined && INVOKES.contains(&name)
}

/// Puts each script frame (outermost first) under the native `Invoke` frame that runs it,
/// pairing them outermost with outermost, above the calls inlined into that `Invoke` (they run
/// the script function's body). Script frames left over go under the innermost `Invoke` (or,
/// with none, under the native leaf); `Invoke` frames left over get none.
fn splice_script_frames(native: Vec<DecodedFrame>, script: Vec<DecodedFrame>) -> SplicedStack {
    let invokes = native.iter().filter(|f| is_invoke(f)).count();
    let mismatched = invokes != script.len();
    let mut script = script.into_iter();
    let mut frames = Vec::with_capacity(native.len() + script.len());
    let mut seen = 0;
    for f in native {
        let invoke = is_invoke(&f);
        frames.push(f);
        if invoke {
            seen += 1;
            if seen == invokes {
                frames.extend(script.by_ref());
            } else {
                frames.extend(script.next());
            }
        }
    }
    frames.extend(script);
    SplicedStack { frames, mismatched }
}

#[cfg(test)]
mod tests {
    use profiler_common::{maps::CALLER_UNRESOLVED, name_hash::name_hash_bytes};

    use super::*;
    use crate::symbolize::function_names::func_info;

    fn trace(kind: StackKind, frames: &[u64], leaf: u64) -> StackTrace {
        let mut t = StackTrace::zeroed();
        t.kind = kind as u32;
        t.depth = frames.len() as u32;
        t.frames[..frames.len()].copy_from_slice(frames);
        t.leaf = leaf;
        t
    }

    fn in_kernel(mut t: StackTrace, innermost_first: &[u64]) -> StackTrace {
        t.kernel_depth = innermost_first.len() as u32;
        t.kernel_frames[..innermost_first.len()].copy_from_slice(innermost_first);
        t
    }

    fn names(frames: Vec<DecodedFrame>) -> Vec<String> {
        frames.into_iter().map(|f| f.frame.name).collect()
    }

    /// Native code naming nothing but by mapping, and `kernel` for the kernel.
    fn decoding<T>(
        funcs: &FunctionNames,
        mappings: &[Mapping],
        kernel: &KernelSymbols,
        test: impl FnOnce(StackDecoder) -> T,
    ) -> T {
        let (natives, libraries) = (NativeSymbols::default(), LibrarySymbols::new(0));
        test(StackDecoder::new(
            funcs,
            NativeCode { natives: &natives, lines: None, bias: 0, mappings, libraries: &libraries, kernel },
        ))
    }

    #[test]
    fn script_stacks_name_lambdas_by_location() {
        let (ev, lambda) = (name_hash_bytes(b"new_connection"), name_hash_bytes(b"lambda_123"));
        let infos = HashMap::from([
            (ev, func_info("new_connection", 0, 1, "/z/base/conn.zeek", 10)),
            (lambda, func_info("lambda_123", 0, 0, "/z/site/packages/pkg/main.zeek", 42)),
        ]);
        let funcs = FunctionNames::new(&infos, [ev, lambda]);
        let frames = decoding(&funcs, &[], &KernelSymbols::default(), |mut decoder| {
            decoder.decode(&trace(StackKind::Script, &[ev, lambda, CALLER_UNRESOLVED], 0)).unwrap()
        });
        let shown: Vec<&str> = frames.iter().map(|f| f.frame.name.as_str()).collect();
        assert_eq!(shown, ["new_connection", "lambda@pkg/main.zeek:42", UNRESOLVED]);
        assert_eq!(frames[0].kind, FuncKind::Event);
        assert_eq!(frames[1].frame.file.as_deref(), Some("/z/site/packages/pkg/main.zeek"));
        assert_eq!(frames[1].zeek_name.as_deref(), Some("lambda_123"));
    }

    #[test]
    fn dispatch_native_and_thread_stacks() {
        let ev = name_hash_bytes(b"dns_request");
        let funcs = FunctionNames::new(&HashMap::from([(ev, func_info("dns_request", 0, 1, "", 0))]), [ev]);
        // A library that cannot be read is named by its file.
        let libc = [Mapping { start: 0x7000, end: 0x8000, offset: 0, path: "/no/such/libc.so.6".into() }];
        decoding(&funcs, &libc, &KernelSymbols::default(), |mut decoder| {
            let dispatch = decoder.decode(&trace(StackKind::EventDispatch, &[], ev)).unwrap();
            assert_eq!(names(dispatch), ["dns_request", DISPATCH_LEAF]);
            let native = decoder.decode(&trace(StackKind::Native, &[], 0x1234)).unwrap();
            assert_eq!(names(native), [NATIVE_ROOT, "0x1234"]);
            let in_libc = decoder.decode(&trace(StackKind::Native, &[], 0x7100)).unwrap();
            assert_eq!(names(in_libc), [NATIVE_ROOT, "[libc.so.6]"]);
            let mut thread = trace(StackKind::Thread, &[], 0);
            thread.comm[..8].copy_from_slice(b"zk.conn/");
            assert_eq!(names(decoder.decode(&thread).unwrap()), ["[thread] zk.conn/"]);
            let mut bad = trace(StackKind::Script, &[], 0);
            bad.kind = 9;
            assert!(decoder.decode(&bad).is_none());
        });
    }

    #[test]
    fn kernel_frames_go_under_every_kind_of_stack_outermost_first() {
        let ev = name_hash_bytes(b"zeek_init");
        let funcs = FunctionNames::new(&HashMap::from([(ev, func_info("zeek_init", 0, 1, "", 0))]), [ev]);
        let kernel = KernelSymbols::parse(
            "ffffffff81000000 T entry_SYSCALL_64\nffffffff81001000 t do_syscall_64\nffffffff81002000 t read_zero\n",
        );
        // Innermost first, as bpf_get_stack gives them; the callers' are return addresses.
        let syscall = [0xffffffff81002010, 0xffffffff81001040, 0xffffffff81000020];
        let kinds = |frames: &[DecodedFrame]| frames.iter().map(|f| f.kind).collect::<Vec<_>>();
        decoding(&funcs, &[], &kernel, |mut decoder| {
            let native = decoder.decode(&in_kernel(trace(StackKind::Native, &[], 0x1234), &syscall)).unwrap();
            assert_eq!(kinds(&native)[2..], [FuncKind::Kernel; 3]);
            assert_eq!(
                names(native),
                [NATIVE_ROOT, "0x1234", "[k] entry_SYSCALL_64", "[k] do_syscall_64", "[k] read_zero"]
            );
            let script = decoder.decode(&in_kernel(trace(StackKind::Script, &[ev], 0), &syscall[..1])).unwrap();
            assert_eq!(names(script), ["zeek_init", "[k] read_zero"]);
            let mut thread = in_kernel(trace(StackKind::Thread, &[], 0), &syscall[1..]);
            thread.comm[..3].copy_from_slice(b"caf");
            assert_eq!(
                names(decoder.decode(&thread).unwrap()),
                ["[thread] caf", "[k] entry_SYSCALL_64", "[k] do_syscall_64"]
            );
        });
        // A return address just past a call at a function's end names the caller, not the next.
        decoding(&funcs, &[], &kernel, |mut decoder| {
            let t = in_kernel(trace(StackKind::Native, &[], 0x1234), &[0xffffffff81002010, 0xffffffff81001000]);
            assert_eq!(names(decoder.decode(&t).unwrap())[2], "[k] entry_SYSCALL_64");
        });
        // Hidden kernel addresses: one frame says the kernel was working.
        decoding(&funcs, &[], &KernelSymbols::default(), |mut decoder| {
            let t = in_kernel(trace(StackKind::Native, &[], 0x1234), &syscall);
            assert_eq!(names(decoder.decode(&t).unwrap()), [NATIVE_ROOT, "0x1234", KERNEL_UNNAMED]);
        });
    }

    fn native(name: &str) -> DecodedFrame {
        frame(name.to_owned(), FuncKind::Native)
    }

    fn script(name: &str) -> DecodedFrame {
        frame(name.to_owned(), FuncKind::Function)
    }

    const SCRIPT_INVOKE: &str = "zeek::detail::ScriptFunc::Invoke";
    const BIF_INVOKE: &str = "zeek::detail::BuiltinFunc::Invoke";

    #[test]
    fn each_script_frame_goes_under_the_invoke_that_runs_it() {
        let stack = [
            "main",
            "zeek::run_state::detail::run_loop",
            "zeek::EventMgr::Drain",
            SCRIPT_INVOKE,
            "zeek::detail::StmtList::Exec",
            SCRIPT_INVOKE,
            "zeek::detail::CallExpr::Eval",
            BIF_INVOKE,
            "zeek::BifFunc::fmt_bif",
            "memcpy",
        ];
        let spliced = splice_script_frames(
            stack.iter().map(|n| native(n)).collect(),
            ["new_connection", "helper", "fmt"].iter().map(|n| script(n)).collect(),
        );
        assert!(!spliced.mismatched);
        assert_eq!(
            names(spliced.frames),
            [
                "main",
                "zeek::run_state::detail::run_loop",
                "zeek::EventMgr::Drain",
                SCRIPT_INVOKE,
                "new_connection",
                "zeek::detail::StmtList::Exec",
                SCRIPT_INVOKE,
                "helper",
                "zeek::detail::CallExpr::Eval",
                BIF_INVOKE,
                "fmt",
                "zeek::BifFunc::fmt_bif",
                "memcpy",
            ]
        );
    }

    /// The calls inlined into `Invoke` run the script function's body: they go under its
    /// script frame. An inlined frame named like `Invoke` is not one.
    #[test]
    fn script_frames_go_right_under_their_invoke_above_the_calls_inlined_into_it() {
        let inlined = |name: &str| DecodedFrame {
            frame: StackFrame { inlined: true, ..StackFrame::named(name) },
            ..native(name)
        };
        let stack = vec![
            native("main"),
            native(SCRIPT_INVOKE),
            inlined("zeek::detail::StmtList::Exec"),
            native("zeek::detail::CallExpr::Eval"),
            inlined(SCRIPT_INVOKE),
            native("memcpy"),
        ];
        let spliced = splice_script_frames(stack, vec![script("new_connection")]);
        assert!(!spliced.mismatched);
        assert_eq!(
            names(spliced.frames),
            [
                "main",
                SCRIPT_INVOKE,
                "new_connection",
                "zeek::detail::StmtList::Exec",
                "zeek::detail::CallExpr::Eval",
                SCRIPT_INVOKE,
                "memcpy",
            ]
        );
    }

    /// DWARF's chain at an address: the function under its symbol's name with the line it
    /// calls from, then each inlined call marked so; without DWARF, the symbol alone.
    #[test]
    fn a_native_frame_expands_into_the_calls_inlined_there() {
        let at = |function: &str, line| SourceFrame {
            function: Some(function.to_owned()),
            file: Some("/src/zeek/Conn.cc".to_owned()),
            line,
        };
        let chain = [at("zeek::Connection::NextPacket", 10), at("zeek::Connection::Deliver", 20), at("zeek::Step", 30)];
        let frames = inlined_chain("zeek::Connection::NextPacket".to_owned(), &chain);
        let shown: Vec<(&str, u32, bool)> = frames.iter().map(|f| (f.name.as_str(), f.at_line, f.inlined)).collect();
        assert_eq!(
            shown,
            [
                ("zeek::Connection::NextPacket", 10, false),
                ("zeek::Connection::Deliver", 20, true),
                ("zeek::Step", 30, true)
            ]
        );
        assert!(frames.iter().all(|f| f.file.as_deref() == Some("/src/zeek/Conn.cc") && f.line == 0));
        assert_eq!(inlined_chain("main".to_owned(), &[]), [StackFrame::named("main")]);
        let unnamed = SourceFrame { function: None, file: None, line: 0 };
        assert_eq!(inlined_chain("main".to_owned(), &[at("main", 1), unnamed])[1].name, INLINED_UNNAMED);
    }

    #[test]
    fn a_sample_caught_mid_call_keeps_every_frame_and_says_so() {
        // Inside the inner Invoke before it pushed its call: one Invoke too many.
        let natives = || [SCRIPT_INVOKE, "Exec", SCRIPT_INVOKE, "push_back"].iter().map(|n| native(n)).collect();
        let spliced = splice_script_frames(natives(), vec![script("outer")]);
        assert!(spliced.mismatched);
        assert_eq!(names(spliced.frames), [SCRIPT_INVOKE, "outer", "Exec", SCRIPT_INVOKE, "push_back"]);
        // More script frames than Invokes: the rest under the innermost Invoke.
        let spliced = splice_script_frames(natives(), ["a", "b", "c"].iter().map(|n| script(n)).collect());
        assert!(spliced.mismatched);
        assert_eq!(names(spliced.frames), [SCRIPT_INVOKE, "a", "Exec", SCRIPT_INVOKE, "b", "c", "push_back"]);
        // No Invoke at all: the script frames under the native leaf.
        let spliced = splice_script_frames(vec![native("main"), native("poll")], vec![script("a")]);
        assert!(spliced.mismatched);
        assert_eq!(names(spliced.frames), ["main", "poll", "a"]);
        // Native code alone, nothing to splice: not a mismatch.
        let spliced = splice_script_frames(vec![native("main"), native("poll")], vec![]);
        assert!(!spliced.mismatched);
    }

    #[test]
    fn splice_names_native_addresses_and_puts_kernel_frames_under_the_leaf() {
        let ev = name_hash_bytes(b"zeek_init");
        let funcs = FunctionNames::new(&HashMap::from([(ev, func_info("zeek_init", 0, 1, "", 0))]), [ev]);
        let kernel = KernelSymbols::parse("ffffffff81000000 T entry_SYSCALL_64\nffffffff81002000 t read_zero\n");
        let libc = [Mapping { start: 0x7000, end: 0x8000, offset: 0, path: "/no/such/libc.so.6".into() }];
        decoding(&funcs, &libc, &kernel, |mut decoder| {
            let t = in_kernel(trace(StackKind::Script, &[ev], 0), &[0xffffffff81002010, 0xffffffff81000020]);
            let spliced = decoder.splice(&t, &[0x1000, 0x7100]).unwrap();
            // No Invoke named (no symbols here): the script frame under the native leaf.
            assert!(spliced.mismatched);
            assert_eq!(
                names(spliced.frames),
                ["0x1000", "[libc.so.6]", "zeek_init", "[k] entry_SYSCALL_64", "[k] read_zero"]
            );
            // Another thread: its native stack under its name, the kernel's under the leaf.
            let mut thread = in_kernel(trace(StackKind::Thread, &[], 0), &[0xffffffff81002010]);
            thread.comm[..5].copy_from_slice(b"zk.x/");
            let spliced = decoder.splice(&thread, &[0x7100, 0x1000]).unwrap();
            assert!(!spliced.mismatched);
            assert_eq!(names(spliced.frames), ["[thread] zk.x/", "[libc.so.6]", "0x1000", "[k] read_zero"]);
        });
    }
}
