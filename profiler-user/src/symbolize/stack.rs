//! Sampled stacks → frames people read: script functions by name (lambdas by where they are
//! defined), native code by demangled symbol, other threads by thread name.
use std::collections::{HashMap, hash_map::Entry};

use profiler_common::{StackKind, StackTrace};
use serde::Serialize;

use super::{FuncKind, FunctionNames, UNRESOLVED};
use crate::{
    binary::symbols::NativeSymbols,
    target::mappings::{self, Mapping},
};

/// Root of every native stack, so native time adds up in one place of a flame graph.
pub const NATIVE_ROOT: &str = "[native]";
/// Leaf under an event whose C++ dispatch (no script body) was sampled.
pub const DISPATCH_LEAF: &str = "[dispatch]";
/// One frame of a sampled stack, as people read it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct StackFrame {
    /// Script function/event/hook/BIF name, `lambda@file:line`, a demangled native function,
    /// or a thread name.
    pub name: String,
    /// Source file of a script function, where known.
    pub file: Option<String>,
    /// First line in `file` (0 when unknown).
    pub line: u32,
}

/// One decoded frame: the frame people read, and what the profile's rows add up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedFrame {
    pub frame: StackFrame,
    pub kind: FuncKind,
    /// Zeek's own name where the shown one differs (lambdas).
    pub zeek_name: Option<String>,
}

/// Decodes the stacks of one process, caching native symbol lookups.
pub struct StackDecoder<'a> {
    funcs: &'a FunctionNames,
    natives: &'a NativeSymbols,
    bias: u64,
    mappings: &'a [Mapping],
    native_names: HashMap<u64, String>,
}

impl<'a> StackDecoder<'a> {
    /// `natives` and `bias` name addresses in the executable; `mappings` name the library of
    /// any other address.
    pub fn new(funcs: &'a FunctionNames, natives: &'a NativeSymbols, bias: u64, mappings: &'a [Mapping]) -> Self {
        Self { funcs, natives, bias, mappings, native_names: HashMap::new() }
    }

    /// Frames root first; `None` for a malformed trace.
    pub fn decode(&mut self, trace: &StackTrace) -> Option<Vec<DecodedFrame>> {
        let frame = |name: String, kind| DecodedFrame {
            frame: StackFrame { name, file: None, line: 0 },
            kind,
            zeek_name: None,
        };
        Some(match StackKind::try_from(trace.kind).ok()? {
            StackKind::Script => trace.frames().iter().map(|h| self.script_frame(*h)).collect(),
            StackKind::EventDispatch => {
                vec![self.script_frame(trace.leaf), frame(DISPATCH_LEAF.to_owned(), FuncKind::Native)]
            }
            StackKind::Native => {
                vec![
                    frame(NATIVE_ROOT.to_owned(), FuncKind::Native),
                    frame(self.native_name(trace.leaf), FuncKind::Native),
                ]
            }
            StackKind::Thread => {
                let end = trace.comm.iter().position(|b| *b == 0).unwrap_or(trace.comm.len());
                let comm = String::from_utf8_lossy(&trace.comm[..end]).into_owned();
                vec![frame(format!("[thread] {comm}"), FuncKind::Thread)]
            }
        })
    }

    fn script_frame(&self, hash: u64) -> DecodedFrame {
        match self.funcs.resolve(hash) {
            Some(f) => DecodedFrame {
                frame: StackFrame { name: f.name.clone(), file: f.file.clone(), line: f.line },
                kind: f.kind,
                zeek_name: f.zeek_name.clone(),
            },
            None => DecodedFrame {
                frame: StackFrame { name: UNRESOLVED.to_owned(), file: None, line: 0 },
                kind: FuncKind::Function,
                zeek_name: None,
            },
        }
    }

    fn native_name(&mut self, ip: u64) -> String {
        match self.native_names.entry(ip) {
            Entry::Occupied(name) => name.get().clone(),
            Entry::Vacant(slot) => {
                let name =
                    self.natives.lookup(ip.wrapping_sub(self.bias)).unwrap_or_else(|| {
                        match mappings::library_of(self.mappings, ip) {
                            Some(library) if library.starts_with('[') => library.to_owned(),
                            Some(library) => format!("[{library}]"),
                            None => format!("{ip:#x}"),
                        }
                    });
                slot.insert(name).clone()
            }
        }
    }
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

    #[test]
    fn script_stacks_name_lambdas_by_location() {
        let (ev, lambda) = (name_hash_bytes(b"new_connection"), name_hash_bytes(b"lambda_123"));
        let infos = HashMap::from([
            (ev, func_info("new_connection", 0, 1, "/z/base/conn.zeek", 10)),
            (lambda, func_info("lambda_123", 0, 0, "/z/site/packages/pkg/main.zeek", 42)),
        ]);
        let funcs = FunctionNames::new(&infos, [ev, lambda]);
        let natives = NativeSymbols::default();
        let mut decoder = StackDecoder::new(&funcs, &natives, 0, &[]);
        let frames = decoder.decode(&trace(StackKind::Script, &[ev, lambda, CALLER_UNRESOLVED], 0)).unwrap();
        let names: Vec<&str> = frames.iter().map(|f| f.frame.name.as_str()).collect();
        assert_eq!(names, ["new_connection", "lambda@pkg/main.zeek:42", UNRESOLVED]);
        assert_eq!(frames[0].kind, FuncKind::Event);
        assert_eq!(frames[1].frame.file.as_deref(), Some("/z/site/packages/pkg/main.zeek"));
        assert_eq!(frames[1].zeek_name.as_deref(), Some("lambda_123"));
    }

    #[test]
    fn dispatch_native_and_thread_stacks() {
        let ev = name_hash_bytes(b"dns_request");
        let funcs = FunctionNames::new(&HashMap::from([(ev, func_info("dns_request", 0, 1, "", 0))]), [ev]);
        let natives = NativeSymbols::default();
        let libc = [Mapping { start: 0x7000, end: 0x8000, offset: 0, path: "/lib/libc.so.6".into() }];
        let mut decoder = StackDecoder::new(&funcs, &natives, 0, &libc);
        let names = |frames: Vec<DecodedFrame>| frames.into_iter().map(|f| f.frame.name).collect::<Vec<_>>();
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
    }
}
