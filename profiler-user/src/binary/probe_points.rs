//! Where each probe goes: the function's file offset, stepped past an `endbr64` so that the
//! kernel can emulate the probed instruction instead of single-stepping it (zeek-abi.md §8).
use super::{
    BinaryError,
    elf::ElfFile,
    prologue::CostClass,
    symbols::{self, SymbolIndex},
};

const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbePointKind {
    ScriptFuncInvoke,
    BuiltinFuncInvoke,
    LogManagerWrite,
}

impl ProbePointKind {
    pub const fn symbol(self) -> &'static str {
        match self {
            Self::ScriptFuncInvoke => symbols::SCRIPT_FUNC_INVOKE,
            Self::BuiltinFuncInvoke => symbols::BUILTIN_FUNC_INVOKE,
            Self::LogManagerWrite => symbols::LOG_MANAGER_WRITE,
        }
    }

    /// A short name for people: what `c++filt` would show, abbreviated.
    pub const fn display(self) -> &'static str {
        match self {
            Self::ScriptFuncInvoke => "zeek::detail::ScriptFunc::Invoke",
            Self::BuiltinFuncInvoke => "zeek::detail::BuiltinFunc::Invoke",
            Self::LogManagerWrite => "zeek::logging::Manager::Write",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbePoint {
    pub kind: ProbePointKind,
    /// Link-time address of the function.
    pub address: u64,
    /// File offset of the probed instruction (function start, or past `endbr64`).
    pub file_offset: u64,
    /// Bytes skipped at the function start (4 for `endbr64`, else 0).
    pub skipped: u64,
    /// The first bytes of the probed instruction, in hex.
    pub instruction_bytes: String,
    /// What a hit costs, from the probed instruction.
    pub cost: CostClass,
}

/// Places every probe point the binary has. Both `Invoke`s are required; a binary without
/// `logging::Manager::Write` is still probed, without log counts.
pub fn place(elf: &ElfFile, symbols: &SymbolIndex, shown_as: &std::path::Path) -> Result<Vec<ProbePoint>, BinaryError> {
    let mut points = Vec::new();
    for kind in [ProbePointKind::ScriptFuncInvoke, ProbePointKind::BuiltinFuncInvoke, ProbePointKind::LogManagerWrite] {
        let Some(address) = symbols.address(kind.symbol()) else {
            if kind == ProbePointKind::LogManagerWrite {
                continue;
            }
            return Err(BinaryError::NotZeek { path: shown_as.to_path_buf(), missing: kind.display() });
        };
        let prologue = elf.bytes_at(address, 12)?;
        let skipped = if prologue.starts_with(&ENDBR64) { 4 } else { 0 };
        let probed = &prologue[skipped as usize..];
        let cost = CostClass::of(probed);
        let instruction_bytes = probed.iter().take(4).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
        let file_offset = elf.file_offset(address + skipped)?;
        points.push(ProbePoint { kind, address, file_offset, skipped, instruction_bytes, cost });
    }
    Ok(points)
}
