//! Zeek's symbols the probes use (zeek-abi.md §1) and a name → address index over an ELF's
//! `.dynsym` and `.symtab`. Zeek links with `-rdynamic`, so everything named here is in
//! `.dynsym` even when the binary is stripped.
use std::collections::HashMap;

pub const SCRIPT_FUNC_INVOKE: &str =
    "_ZNK4zeek6detail10ScriptFunc6InvokeEPSt6vectorINS_12IntrusivePtrINS_3ValEEESaIS5_EEPNS0_5FrameE";
pub const BUILTIN_FUNC_INVOKE: &str =
    "_ZNK4zeek6detail11BuiltinFunc6InvokeEPSt6vectorINS_12IntrusivePtrINS_3ValEEESaIS5_EEPNS0_5FrameE";
pub const LOG_MANAGER_WRITE: &str = "_ZN4zeek7logging7Manager5WriteEPNS_7EnumValEPNS_9RecordValE";
pub const SCRIPT_FUNC_VTABLE: &str = "_ZTVN4zeek6detail10ScriptFuncE";
pub const BUILTIN_FUNC_VTABLE: &str = "_ZTVN4zeek6detail11BuiltinFuncE";

/// Where a vptr points inside a vtable symbol (past offset-to-top and the typeinfo pointer).
pub const VTABLE_VPTR_OFFSET: u64 = 16;

/// A function or object symbol: link-time address and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol {
    pub address: u64,
    pub size: u64,
}

#[derive(Debug, Default)]
pub struct SymbolIndex {
    by_name: HashMap<String, Symbol>,
}

impl SymbolIndex {
    pub fn insert(&mut self, name: &str, symbol: Symbol) {
        // .dynsym is read first; a .symtab duplicate adds nothing.
        self.by_name.entry(name.to_owned()).or_insert(symbol);
    }

    pub fn get(&self, name: &str) -> Option<Symbol> {
        self.by_name.get(name).copied()
    }

    pub fn address(&self, name: &str) -> Option<u64> {
        self.get(name).map(|s| s.address)
    }

    /// The first symbol whose name starts with `prefix` (names are sorted for determinism).
    pub fn find_prefix(&self, prefix: &str) -> Option<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).filter(|n| n.starts_with(prefix)).collect();
        names.sort_unstable();
        names.first().copied()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}
