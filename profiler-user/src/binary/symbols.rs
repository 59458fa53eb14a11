//! Zeek's symbols the probes use (zeek-abi.md §1) and a name → address index over an ELF's
//! `.symtab`, or its `.dynsym` when stripped. Zeek links with `-rdynamic`, so everything named
//! here is in `.dynsym` even when the binary is stripped.
use std::{collections::HashSet, sync::LazyLock};

use super::name_arena::{NameArena, NameRef};

pub const SCRIPT_FUNC_INVOKE: &str =
    "_ZNK4zeek6detail10ScriptFunc6InvokeEPSt6vectorINS_12IntrusivePtrINS_3ValEEESaIS5_EEPNS0_5FrameE";
/// `ScriptFunc::Invoke` as libc++ mangles it (`std::__1::vector`): a build zeek-probe cannot read.
pub const LIBCXX_SCRIPT_FUNC_INVOKE: &str = "_ZNK4zeek6detail10ScriptFunc6InvokeEPNSt3__16vector";
pub const BUILTIN_FUNC_INVOKE: &str =
    "_ZNK4zeek6detail11BuiltinFunc6InvokeEPSt6vectorINS_12IntrusivePtrINS_3ValEEESaIS5_EEPNS0_5FrameE";
pub const LOG_MANAGER_WRITE: &str = "_ZN4zeek7logging7Manager5WriteEPNS_7EnumValEPNS_9RecordValE";
pub const CALL_STACK: &str = "_ZN4zeek6detail10call_stackE";
pub const EVENT_MGR: &str = "_ZN4zeek9event_mgrE";
/// `EventHandler::Call(Args*, bool no_remote, double ts)`, up to 8.0.
pub const EVENT_HANDLER_CALL_3: &str = "_ZN4zeek12EventHandler4CallEPSt6vectorINS_12IntrusivePtrINS_3ValEEESaIS4_EEbd";
/// `EventHandler::Call(Args*)`, from 8.1 on.
pub const EVENT_HANDLER_CALL_1: &str = "_ZN4zeek12EventHandler4CallEPSt6vectorINS_12IntrusivePtrINS_3ValEEESaIS4_EE";
/// A global outside any namespace, so not mangled.
pub const FRAME_STACK: &str = "g_frame_stack";
pub const FRAME_VTABLE: &str = "_ZTVN4zeek6detail5FrameE";
pub const SCRIPT_FUNC_VTABLE: &str = "_ZTVN4zeek6detail10ScriptFuncE";
pub const BUILTIN_FUNC_VTABLE: &str = "_ZTVN4zeek6detail11BuiltinFuncE";

/// Where a vptr points inside a vtable symbol (past offset-to-top and the typeinfo pointer).
pub const VTABLE_VPTR_OFFSET: u64 = 16;

/// A function or object symbol: link-time address and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol {
    pub address: u64,
    pub size: u64,
    pub is_function: bool,
    /// Weak: an inline function or template instance, emitted in every unit that uses it.
    pub is_weak: bool,
}

/// Defined symbols in table order. Looked up by name by a scan: an inspection asks for a
/// dozen names, and hashing every name of a Zeek binary's tables was half of a warm `check`.
#[derive(Debug, Default)]
pub struct SymbolIndex {
    names: NameArena,
    symbols: Vec<(NameRef, Symbol)>,
}

impl SymbolIndex {
    /// An index of `symbols`, sized for them up front.
    pub fn of(symbols: &[(&str, Symbol)]) -> Self {
        let mut index = Self { symbols: Vec::with_capacity(symbols.len()), ..Self::default() };
        for (name, symbol) in symbols {
            index.insert(name, *symbol);
        }
        index
    }

    /// Adds `symbol` under `name`, even if another has that name (two files' `static`
    /// functions of one name are two functions).
    pub fn insert(&mut self, name: &str, symbol: Symbol) {
        if let Some(at) = self.names.push(name) {
            self.symbols.push((at, symbol));
        }
    }

    /// Adds `other`'s symbols whose names this index does not have (a debug file's locals
    /// beside the stripped file's `.dynsym`, which the debug file's `.symtab` repeats).
    pub fn extend(&mut self, other: SymbolIndex) {
        let known: HashSet<&str> = self.iter().map(|(name, _)| name).collect();
        let added: Vec<(&str, Symbol)> = other.iter().filter(|(name, _)| !known.contains(name)).collect();
        drop(known);
        for (name, symbol) in added {
            self.insert(name, symbol);
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&str, Symbol)> {
        self.symbols.iter().map(|(name, symbol)| (self.names.get(*name), *symbol))
    }

    /// The first symbol named `name`.
    pub fn get(&self, name: &str) -> Option<Symbol> {
        self.symbols.iter().find(|(at, _)| self.names.is(*at, name)).map(|(_, symbol)| *symbol)
    }

    pub fn address(&self, name: &str) -> Option<u64> {
        self.get(name).map(|s| s.address)
    }

    /// The first symbol whose name starts with `prefix` (names are sorted for determinism).
    pub fn find_prefix(&self, prefix: &str) -> Option<&str> {
        self.iter().map(|(name, _)| name).filter(|n| n.starts_with(prefix)).min()
    }

    /// The lowest out-of-line member function of `class` (qualified: `zeek::detail::Frame`).
    /// It is compiled in the class's own source file, whose compile unit has the class's full
    /// DWARF definition: GCC emits a class with a vtable only where its key function is.
    pub fn out_of_line_member(&self, class: &str) -> Option<u64> {
        let nested: String = class.split("::").map(|part| format!("{}{part}", part.len())).collect();
        // Plain and const member functions.
        let prefixes = [format!("_ZN{nested}"), format!("_ZNK{nested}")];
        self.iter()
            .filter(|(name, s)| s.is_function && !s.is_weak && prefixes.iter().any(|p| member_of(name, p)))
            .map(|(_, s)| s.address)
            .min()
    }

    /// Functions sorted by address, for naming instruction pointers. A function symbol without
    /// a size (assembly entry points: ld.so's `_start`, where a new process's first sample
    /// lands) reaches to the next function, at most [`SIZELESS_REACH`] bytes, as perf extends
    /// them; one that shares its address with a sized symbol adds nothing. Of the names of one
    /// function (glibc gives `clock_gettime` five), an address is named by the largest, then
    /// one that is not a compat version (`pthread_create@GLIBC_2.2.5`: the call went to the
    /// default, `pthread_create@@GLIBC_2.34`, as perf names it), then the last in name order.
    pub fn functions(&self) -> NativeSymbols {
        let mut functions: Vec<(u64, u64, &str)> =
            self.iter().filter(|(_, s)| s.is_function).map(|(name, s)| (s.address, s.size, name)).collect();
        functions.sort_unstable();
        prefer_default_versions(&mut functions);
        let starts: Vec<u64> = functions.iter().map(|(start, _, _)| *start).collect();
        let sized_at = |address: u64| {
            let at = starts.partition_point(|s| *s < address)..starts.partition_point(|s| *s <= address);
            functions[at].iter().any(|(_, size, _)| *size > 0)
        };
        let mut native = NativeSymbols::default();
        for (start, size, name) in &functions {
            let size = match *size {
                0 if sized_at(*start) => continue,
                0 => {
                    let next = starts[starts.partition_point(|s| s <= start)..].first();
                    next.map_or(SIZELESS_REACH, |next| (next - start).min(SIZELESS_REACH))
                }
                size => size,
            };
            if let Some(at) = native.names.push(name) {
                native.functions.push((*start, size, at));
            }
        }
        native
    }
}

/// Of the names of one function (`functions`, sorted), the last, which names it, is made the
/// last that is not a compat version, if there is one. Few functions have more than one name.
fn prefer_default_versions(functions: &mut [(u64, u64, &str)]) {
    let mut begin = 0;
    while let Some(&(start, size, _)) = functions.get(begin) {
        let names = functions[begin..].iter().take_while(|(s, z, _)| (*s, *z) == (start, size)).count();
        let end = begin + names;
        if names > 1
            && is_compat_version(functions[end - 1].2)
            && let Some(named) = functions[begin..end].iter().rposition(|(_, _, name)| !is_compat_version(name))
        {
            functions[begin + named..end].rotate_left(1);
        }
        begin = end;
    }
}

/// Whether `name` is a symbol's compat version (`name@VERSION`, kept for programs linked against
/// an older library), not its default (`name@@VERSION`) nor a PLT stub's (`name@plt`).
fn is_compat_version(name: &str) -> bool {
    name.split_once('@').is_some_and(|(_, version)| !version.starts_with('@')) && !name.ends_with(PLT_SUFFIX)
}

/// How far a function symbol without a size reaches at most: entry stubs are short, and a
/// stray label must not name the rest of a file's code.
const SIZELESS_REACH: u64 = 4096;

/// Whether `name` mangles a member of the nested name `prefix` (not of a longer one that
/// merely starts like it: `_ZN4zeek3ValE…` is `Val`'s, `_ZN4zeek6ValMgr…` is not).
fn member_of(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit() || c == 'C' || c == 'D'))
}

/// A binary's `NativeSymbols`, made from its symbols when first asked for: sorting a real
/// Zeek's 36,000 functions takes ~5 ms, which `record`'s command waited for in the inspection,
/// while only naming its samples needs them (the prefetch thread asks first, as it runs).
pub type LazyNativeSymbols = LazyLock<NativeSymbols, Box<dyn FnOnce() -> NativeSymbols + Send>>;

impl SymbolIndex {
    /// Its functions (`functions`), sorted when first looked at.
    pub fn functions_later(self) -> LazyNativeSymbols {
        LazyLock::new(Box::new(move || self.functions()))
    }
}

/// Function symbols by address: link-time address → demangled name.
#[derive(Debug, Clone, Default)]
pub struct NativeSymbols {
    names: NameArena,
    /// Start, size and name, by start.
    functions: Vec<(u64, u64, NameRef)>,
}

impl NativeSymbols {
    /// The function containing the link-time `address`, demangled.
    pub fn lookup(&self, address: u64) -> Option<String> {
        self.containing(address).map(|name| demangle(self.names.get(name)))
    }

    /// Whether a function contains the link-time `address` (no name is demangled).
    pub fn covers(&self, address: u64) -> bool {
        self.containing(address).is_some()
    }

    fn containing(&self, address: u64) -> Option<NameRef> {
        let i = self.functions.partition_point(|(start, _, _)| *start <= address).checked_sub(1)?;
        let (start, size, name) = self.functions[i];
        (address < start + size).then_some(name)
    }
}

/// The suffix of a PLT stub's name (`memcpy@plt`), after the function it calls.
pub const PLT_SUFFIX: &str = "@plt";

/// `zeek::Connection::NextPacket(...)` style, without argument lists (they make flame graph
/// frames unreadable and split one function into several by overload set). A PLT stub keeps
/// its suffix after the demangled name.
pub fn demangle(name: &str) -> String {
    if let Some(called) = name.strip_suffix(PLT_SUFFIX) {
        return demangle(called) + PLT_SUFFIX;
    }
    let options = cpp_demangle::DemangleOptions::new().no_params().no_return_type();
    cpp_demangle::Symbol::new(name).ok().and_then(|s| s.demangle(&options).ok()).unwrap_or_else(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_addresses_inside_functions_only() {
        let mut index = SymbolIndex::default();
        index.insert(
            "_ZN4zeek10Connection10NextPacketEdb",
            Symbol { address: 0x1000, size: 0x100, is_function: true, is_weak: false },
        );
        index.insert("main", Symbol { address: 0x2000, size: 0x10, is_function: true, is_weak: false });
        index.insert("_ZN4zeek9event_mgrE", Symbol { address: 0x1050, size: 0x80, is_function: false, is_weak: false });
        let functions = index.functions();
        assert_eq!(functions.lookup(0x1080).as_deref(), Some("zeek::Connection::NextPacket"));
        assert_eq!(functions.lookup(0x2008).as_deref(), Some("main"));
        assert_eq!(functions.lookup(0x1100), None, "past the end of NextPacket");
        assert_eq!(functions.lookup(0x10), None);
        assert!(functions.covers(0x1080) && !functions.covers(0x1100) && !functions.covers(0x10));
    }

    /// glibc's names of one function: the default version's names it, not the compat one's
    /// (last in name order) nor an internal alias.
    #[test]
    fn a_function_is_named_by_its_default_version_not_a_compat_one() {
        let mut index = SymbolIndex::default();
        let function = |address| Symbol { address, size: 106, is_function: true, is_weak: false };
        for name in ["__clock_gettime_2", "__GI___clock_gettime", "clock_gettime@@GLIBC_2.17", "__clock_gettime"] {
            index.insert(name, function(0xcf420));
        }
        index.insert("clock_gettime@GLIBC_2.2.5", function(0xcf420));
        index.insert("isupper@plt", function(0x2000));
        let functions = index.functions();
        assert_eq!(functions.lookup(0xcf420 + 8).as_deref(), Some("clock_gettime@@GLIBC_2.17"));
        assert_eq!(functions.lookup(0x2008).as_deref(), Some("isupper@plt"));
        assert!(is_compat_version("pthread_create@GLIBC_2.2.5"));
        assert!(!is_compat_version("pthread_create@@GLIBC_2.34") && !is_compat_version("isupper@plt"));
    }

    #[test]
    fn a_sizeless_function_reaches_to_the_next_one() {
        let mut index = SymbolIndex::default();
        let function = |address, size| Symbol { address, size, is_function: true, is_weak: false };
        // ld.so's entry point and the label after it, as its debug file has them.
        index.insert("_start", function(0x1ab70, 0));
        index.insert("_dl_start_user", function(0x1ab78, 0));
        index.insert("_dl_start", function(0x1b770, 0x746));
        // A label at a sized function's address, and one far from anything after it.
        index.insert("alias_label", function(0x1b770, 0));
        index.insert("last_label", function(0x40000, 0));
        let functions = index.functions();
        assert_eq!(functions.lookup(0x1ab70).as_deref(), Some("_start"));
        assert_eq!(functions.lookup(0x1ab77).as_deref(), Some("_start"));
        assert_eq!(functions.lookup(0x1ab80).as_deref(), Some("_dl_start_user"));
        assert_eq!(functions.lookup(0x1b76f).as_deref(), Some("_dl_start_user"), "up to the next function");
        assert_eq!(functions.lookup(0x1b780).as_deref(), Some("_dl_start"));
        assert_eq!(functions.lookup(0x40000 + 4095).as_deref(), Some("last_label"));
        assert_eq!(functions.lookup(0x40000 + 4096).as_deref(), None, "at most SIZELESS_REACH");
    }

    /// Two files' `static` functions of one name both name their code; a lookup by name finds
    /// the first; a debug file adds only the names the stripped file lacks.
    #[test]
    fn same_named_functions_each_name_their_code_and_a_debug_file_adds_what_is_missing() {
        let function = |address| Symbol { address, size: 0x10, is_function: true, is_weak: false };
        let mut stripped = SymbolIndex::default();
        stripped.insert("exported", function(0x1000));
        let mut debug = SymbolIndex::default();
        debug.insert("exported", function(0x1000));
        debug.insert("helper", function(0x2000));
        debug.insert("helper", function(0x3000));
        stripped.extend(debug);
        assert_eq!(stripped.address("helper"), Some(0x2000));
        assert_eq!(stripped.address("helpe"), None);
        assert_eq!(stripped.symbols.len(), 3, "exported once");
        let functions = stripped.functions();
        for (address, name) in [(0x1008, "exported"), (0x2008, "helper"), (0x3008, "helper")] {
            assert_eq!(functions.lookup(address).as_deref(), Some(name));
        }
    }

    #[test]
    fn plt_stubs_keep_their_suffix_after_the_demangled_name() {
        assert_eq!(demangle("_ZN4zeek10Connection10NextPacketEdb@plt"), "zeek::Connection::NextPacket@plt");
        assert_eq!(demangle("calloc@plt"), "calloc@plt");
    }

    #[test]
    fn finds_a_classs_out_of_line_members_only() {
        let mut index = SymbolIndex::default();
        let function = |address, is_weak| Symbol { address, size: 8, is_function: true, is_weak };
        // Frame::~Frame() and Frame::GetElement(int) const, out of line.
        index.insert("_ZN4zeek6detail5FrameD2Ev", function(0x3000, false));
        index.insert("_ZNK4zeek6detail5Frame10GetElementEi", function(0x2000, false));
        // An inline member, emitted wherever it is used; and a class whose name starts the same.
        index.insert("_ZN4zeek6detail5Frame5ResetEi", function(0x1000, true));
        index.insert("_ZN4zeek6detail9FrameLessC2Ev", function(0x500, false));
        assert_eq!(index.out_of_line_member("zeek::detail::Frame"), Some(0x2000));
        assert_eq!(index.out_of_line_member("zeek::Val"), None);
    }
}
