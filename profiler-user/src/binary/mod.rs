//! What a Zeek executable is, read from the file alone: its symbols, its version and ABI, the
//! object layouts the probes rely on, and where exactly each probe goes.
pub mod abi_evidence;
pub mod dwarf;
pub mod elf;
pub mod file_id;
pub mod layout;
pub mod layout_cache;
pub mod layout_fields;
pub mod name_arena;
pub mod probe_points;
pub mod prologue;
pub mod symbols;
pub mod version;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

pub use elf::{ElfError, ElfFile};
pub use file_id::FileId;
pub use layout::{AbiLayout, LayoutSource, Mismatch, RuntimeAddresses};
pub use layout_cache::LayoutCache;
pub use probe_points::{ProbePoint, ProbePointKind};
pub use version::ZeekVersion;

use crate::symbolize::SourceLines;

/// A Zeek executable, inspected and ready to be probed.
#[derive(Debug, Clone)]
pub struct ZeekBinary {
    pub version: ZeekVersion,
    pub layout: AbiLayout,
    /// The offsets DWARF gave, if any (from the binary or a separate debug file).
    pub dwarf: Option<dwarf::DwarfOffsets>,
    /// Table offsets DWARF contradicted (DWARF was used).
    pub layout_mismatches: Vec<Mismatch>,
    /// Why DWARF could not be used, when it was there but unreadable.
    pub dwarf_error: Option<String>,
    /// Whether the DWARF result came from the layout cache or was kept there.
    pub layout_cache: layout_cache::CacheUse,
    /// What the binary's other symbols say about the ABI the version symbol names.
    pub abi_evidence: Vec<abi_evidence::Evidence>,
    pub probe_points: Vec<ProbePoint>,
    /// Link-time addresses of the vtables (`vtable symbol + 16` is what a vptr holds).
    pub script_func_vtable: Option<u64>,
    pub builtin_func_vtable: Option<u64>,
    pub frame_vtable: Option<u64>,
    /// Link-time addresses of `zeek::detail::call_stack`, `zeek::event_mgr` and (where Zeek
    /// still maintains it) `g_frame_stack`.
    pub call_stack: Option<u64>,
    pub event_mgr: Option<u64>,
    pub frame_stack: Option<u64>,
    /// Function symbols, to name native instruction pointers.
    pub native_symbols: Arc<symbols::LazyNativeSymbols>,
    /// The DWARF (the binary's or its debug file's), to expand native frames into the calls
    /// inlined there and give them lines: opened on the first address asked for, not here.
    pub source_lines: Option<Arc<SourceLines>>,
    /// Position-independent: runtime addresses are link-time addresses plus a load bias.
    pub is_pie: bool,
    /// First loadable segment: its link-time address and file offset, to find the load bias.
    pub first_load_vaddr: u64,
    pub first_load_offset: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error(
        "{path} is not Zeek: it has no {missing} symbol (another program, or a Zeek build without its exported symbols)"
    )]
    NotZeek { path: PathBuf, missing: &'static str },
    #[error("{path}: {detail}")]
    Unsupported { path: PathBuf, detail: String },
    #[error(
        "{path} is a debug-information file, not an executable (its code was left out, as by objcopy --only-keep-debug): give the zeek executable it belongs to, whose .gnu_debuglink finds it"
    )]
    DebugInfoOnly { path: PathBuf },
}

impl ZeekBinary {
    /// Whether the sampler can measure long event dispatches in this Zeek, and if not, why.
    pub fn long_dispatches(&self) -> Result<(), &'static str> {
        match (self.layout.event_mgr_current, self.layout.event_mgr_dispatched, self.event_mgr) {
            (None, _, _) => Err("Zeek < 7.2"),
            (_, None, _) => Err("no EventMgr dispatch counter in this layout"),
            (_, _, None) => Err("no zeek::event_mgr symbol"),
            _ => Ok(()),
        }
    }

    /// This binary's addresses in a process that loaded it with `bias`; `sample` decides
    /// whether the sampler reads that process's script stack.
    pub fn runtime_addresses(&self, bias: u64, sample: bool) -> RuntimeAddresses {
        let at = |link_time: Option<u64>| link_time.map_or(0, |a| a.wrapping_add(bias));
        let vptr = |vtable: Option<u64>| vtable.map_or(0, |a| a.wrapping_add(bias) + symbols::VTABLE_VPTR_OFFSET);
        RuntimeAddresses {
            script_func_vptr: vptr(self.script_func_vtable),
            builtin_func_vptr: vptr(self.builtin_func_vtable),
            frame_vptr: vptr(self.frame_vtable),
            call_stack: if sample { at(self.call_stack) } else { 0 },
            event_mgr: at(self.event_mgr),
            frame_stack: at(self.frame_stack),
        }
    }

    /// Sorts the function table now (`native_symbols` is made on first use): what a
    /// long-running exporter keeps is then that table alone, not the whole symbol index it is
    /// made from (~10 MiB more resident for a real Zeek's).
    pub fn sort_functions_now(&self) {
        std::sync::LazyLock::force(&self.native_symbols);
    }

    /// Reads `path` and decides whether, and how, it can be probed. Messages name it as
    /// `shown_as` (a process's executable is read through /proc/PID/root/...).
    pub fn inspect(path: &Path, shown_as: &Path) -> Result<Self, BinaryError> {
        let elf = ElfFile::open(path)?;
        if elf.is_debug_info_only() {
            return Err(BinaryError::DebugInfoOnly { path: shown_as.to_path_buf() });
        }
        if !elf.is_x86_64() {
            return Err(BinaryError::Unsupported {
                path: shown_as.to_path_buf(),
                detail: "only x86-64 Zeek builds are supported (the probes read x86-64 registers)".into(),
            });
        }
        let symbols = elf.symbols();
        if symbols.address(symbols::SCRIPT_FUNC_INVOKE).is_none()
            && symbols.find_prefix(symbols::LIBCXX_SCRIPT_FUNC_INVOKE).is_some()
        {
            return Err(BinaryError::Unsupported {
                path: shown_as.to_path_buf(),
                detail: "built with libc++; zeek-probe reads libstdc++'s std::string and std::vector (build Zeek with GCC or -stdlib=libstdc++)".into(),
            });
        }
        if symbols.address(symbols::SCRIPT_FUNC_INVOKE).is_none() {
            return Err(BinaryError::NotZeek { path: shown_as.to_path_buf(), missing: "ScriptFunc::Invoke" });
        }
        let version = symbols
            .find_prefix(version::VERSION_SYMBOL_PREFIX)
            .and_then(ZeekVersion::from_symbol)
            .ok_or_else(|| BinaryError::NotZeek { path: shown_as.to_path_buf(), missing: "zeek_version_*" })?;
        let mut layout = AbiLayout::for_version(&version)
            .map_err(|detail| BinaryError::Unsupported { path: shown_as.to_path_buf(), detail })?;
        let wanted = layout.dwarf_fields();
        let debug_source = dwarf::source(&elf);
        let (dwarf, dwarf_error, layout_cache) = dwarf_offsets(&elf, debug_source.as_deref(), &wanted, &symbols);
        let layout_mismatches = dwarf.as_ref().map(|offsets| layout.apply_dwarf(offsets)).unwrap_or_default();
        let probe_points = probe_points::place(&elf, &symbols, shown_as)?;
        let (first_load_vaddr, first_load_offset) = elf.first_load_segment()?;
        let frame_stack = symbols.address(symbols::FRAME_STACK).filter(|_| layout.frame_stack_maintained);
        let abi_evidence = abi_evidence::collect(&version, &symbols);
        Ok(Self {
            version,
            layout,
            dwarf,
            layout_mismatches,
            dwarf_error,
            layout_cache,
            abi_evidence,
            probe_points,
            script_func_vtable: symbols.address(symbols::SCRIPT_FUNC_VTABLE),
            builtin_func_vtable: symbols.address(symbols::BUILTIN_FUNC_VTABLE),
            frame_vtable: symbols.address(symbols::FRAME_VTABLE),
            call_stack: symbols.address(symbols::CALL_STACK),
            event_mgr: symbols.address(symbols::EVENT_MGR),
            frame_stack,
            native_symbols: Arc::new(symbols.functions_later()),
            source_lines: debug_source.map(|path| Arc::new(SourceLines::new(&path))),
            is_pie: elf.is_pie(),
            first_load_vaddr,
            first_load_offset,
        })
    }
}

/// The `wanted` offsets from the binary's DWARF (through the layout cache), why DWARF was
/// unreadable, and how the cache served.
fn dwarf_offsets(
    elf: &ElfFile,
    source: Option<&Path>,
    wanted: &[dwarf::Field],
    symbols: &symbols::SymbolIndex,
) -> (Option<dwarf::DwarfOffsets>, Option<String>, layout_cache::CacheUse) {
    let Some(source) = source else { return (None, None, layout_cache::CacheUse::Off) };
    let read = || {
        let hints = dwarf::unit_hints(wanted, symbols);
        dwarf::read(elf, source, wanted, &hints).map_err(|err| format!("{:#}", anyhow::Error::from(err)))
    };
    let (found, used) = match layout_cache::binary_key(elf.build_id().as_deref(), elf.path()) {
        Some(key) => LayoutCache::from_env().dwarf(&key, source, wanted, read),
        None => (read(), layout_cache::CacheUse::Off),
    };
    match found {
        Ok(offsets) => (Some(offsets), None, used),
        Err(err) => (None, Some(err), used),
    }
}
