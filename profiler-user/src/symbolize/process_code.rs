//! What names one process's native code, owned: its executable's symbols and DWARF, where the
//! executable is loaded, and its libraries. A session holds it; the thread that symbolises
//! ahead of the report (`SymbolPrefetch`) holds a copy. `NativeCode` is the borrowed view both
//! name addresses through.
use std::sync::Arc;

use super::{KernelSymbols, LibrarySymbols, NativeCode, SourceLines};
use crate::{binary::symbols::LazyNativeSymbols, target::mappings::Mapping};

#[derive(Debug, Clone)]
pub struct ProcessCode {
    /// The executable's functions at link-time addresses, shared by its every process...
    pub natives: Arc<LazyNativeSymbols>,
    /// ...and its DWARF, where it has some and source lines are wanted.
    pub lines: Option<Arc<SourceLines>>,
    /// Runtime minus link-time addresses of the executable.
    pub bias: u64,
    /// Its libraries' symbols (and DWARF), read as samples land in them, or ahead.
    pub libraries: Arc<LibrarySymbols>,
}

impl ProcessCode {
    /// Keeps what was read of the executable's and its libraries' compile units for the next
    /// process that names their addresses (`SourceLines::keep_read_units`).
    pub fn keep_read_units(&self) -> std::io::Result<()> {
        let executable = self.lines.as_deref().map_or(Ok(()), SourceLines::keep_read_units);
        executable.and(self.libraries.keep_read_units())
    }

    /// The view that names addresses, with the process's `mappings` as last read.
    pub fn native_code<'a>(&'a self, mappings: &'a [Mapping], kernel: &'a KernelSymbols) -> NativeCode<'a> {
        NativeCode {
            natives: &self.natives,
            lines: self.lines.as_deref(),
            bias: self.bias,
            mappings,
            libraries: &self.libraries,
            kernel,
        }
    }
}
