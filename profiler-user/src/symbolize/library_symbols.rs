//! Instruction pointers in a target's shared libraries → demangled function names, from each
//! library's own symbol tables (`.dynsym`, `.symtab`) and, where it is installed, its separate
//! debug file (by build-id or `.gnu_debuglink`): that one has the local symbols a stripped
//! library lacks (libc's `__memset_avx2_unaligned_erms` is in no `.dynsym`). A library is read
//! the first time one of its addresses is named, and kept for the session's later profiles.
//! Every session naming the same file shares one copy: a sensor's dozen workers map the same
//! libbroker and libcrypto, whose symbol tables are megabytes each.
//! The vDSO has no file: every 64-bit process of this kernel maps the same image, so it is
//! read from zeek-probe's own.
use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, LazyLock, Mutex, Weak},
};

use super::{SourceFrame, SourceLines, lock, native_lines::Effort};
use crate::{
    binary::{ElfFile, FileId, dwarf, elf::LoadSegment, symbols::NativeSymbols},
    target::mappings::{Mapping, VDSO, own_vdso},
};

/// One library's functions and where its file offsets are at link time.
#[derive(Debug)]
struct Library {
    functions: NativeSymbols,
    segments: Vec<LoadSegment>,
    /// Its DWARF (its own or its debug file's), for the calls inlined at an address.
    lines: Option<SourceLines>,
}

/// A library's function at an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryFunction {
    /// Its symbol's name, demangled.
    pub name: String,
    /// DWARF's chain at the address (`SourceLines::frames`); empty without DWARF.
    pub chain: Arc<[SourceFrame]>,
}

impl Library {
    /// The library at `path`, shared with every session that has it already.
    fn shared(path: &str) -> Option<Arc<Self>> {
        /// Libraries some session holds, by file identity; an entry dies with its last session.
        static LOADED: LazyLock<Mutex<HashMap<FileId, Weak<Library>>>> = LazyLock::new(Mutex::default);
        let file = FileId::of(path.as_ref()).ok()?;
        if let Some(library) = lock(&LOADED).get(&file).and_then(Weak::upgrade) {
            return Some(library);
        }
        // Read outside the lock: a large debug file takes a while, and other sessions go on.
        let library = Arc::new(Self::of(&ElfFile::open(path.as_ref()).ok()?)?);
        let mut loaded = lock(&LOADED);
        loaded.retain(|_, l| l.strong_count() > 0);
        let kept = loaded.entry(file).or_default();
        match kept.upgrade() {
            Some(first) => Some(first),
            None => {
                *kept = Arc::downgrade(&library);
                Some(library)
            }
        }
    }

    fn vdso() -> Option<Arc<Self>> {
        static VDSO_LIBRARY: LazyLock<Option<Arc<Library>>> =
            LazyLock::new(|| Some(Arc::new(Library::of(&*own_vdso()?)?)));
        VDSO_LIBRARY.clone()
    }

    fn of(elf: &ElfFile) -> Option<Self> {
        let mut index = elf.symbols();
        if let Some(debug) = elf.separate_debug_file().and_then(|p| ElfFile::open(&p).ok()) {
            index.extend(debug.symbols());
        }
        let lines = dwarf::source(elf).map(|path| SourceLines::new(&path));
        Some(Self { functions: index.functions(), segments: elf.load_segments(), lines })
    }

    /// The link-time address of file offset `offset`.
    fn address_of(&self, offset: u64) -> Option<u64> {
        self.segments.iter().find_map(|s| s.address_of(offset))
    }

    /// The function at file offset `offset`.
    fn function_at(&self, offset: u64, source_lines: bool) -> Option<LibraryFunction> {
        let address = self.address_of(offset)?;
        let name = self.functions.lookup(address)?;
        let lines = self.lines.as_ref().filter(|_| source_lines);
        let chain = lines.map(|lines| lines.frames(address)).unwrap_or_default();
        Some(LibraryFunction { name, chain })
    }
}

/// The libraries of one process, by the path its mappings show.
#[derive(Debug)]
pub struct LibrarySymbols {
    /// Where the process's files are seen from here (its mount namespace).
    root: String,
    /// The executable's path, as its mappings show it: named by `binary::symbols` already.
    executable: Option<String>,
    /// `None` for a library that cannot be read (gone, not ELF): asked once.
    libraries: Mutex<HashMap<String, Option<Arc<Library>>>>,
    /// Whether lookups give DWARF's inlined chain (which parses the library's DWARF).
    source_lines: bool,
}

impl LibrarySymbols {
    pub fn new(pid: u32) -> Self {
        Self { root: format!("/proc/{pid}/root"), executable: None, libraries: Mutex::default(), source_lines: true }
    }

    /// Names by symbols alone when `source_lines` is false: no DWARF is parsed.
    pub fn with_source_lines(mut self, source_lines: bool) -> Self {
        self.source_lines = source_lines;
        self
    }

    /// Never reads `executable`: an address of it that its own symbols do not name (a PLT
    /// stub) would read them again, and a real Zeek's with its 360 MB debug file.
    pub fn skipping(mut self, executable: &Path) -> Self {
        self.executable = Some(executable.to_string_lossy().into_owned());
        self
    }

    /// The function at `ip` in the library `mapping` maps, if its symbols name it.
    pub fn lookup(&self, mapping: &Mapping, ip: u64) -> Option<LibraryFunction> {
        let (library, offset) = self.library_at(mapping, ip)?;
        library.function_at(offset, self.source_lines)
    }

    /// Resolves the source lines at `ips` (each with the mapping it is in) ahead of `lookup`,
    /// each library's compile units side by side (`SourceLines::prefetch`).
    pub fn prefetch_lines<'m>(&self, ips: impl IntoIterator<Item = (&'m Mapping, u64)>, effort: Effort) {
        if !self.source_lines {
            return;
        }
        let mut by_library: HashMap<*const Library, (Arc<Library>, Vec<u64>)> = HashMap::new();
        for (mapping, ip) in ips {
            let Some((library, offset)) = self.library_at(mapping, ip) else { continue };
            if let Some(address) = library.address_of(offset) {
                by_library.entry(Arc::as_ptr(&library)).or_insert_with(|| (library, Vec::new())).1.push(address);
            }
        }
        for (library, addresses) in by_library.into_values() {
            if let Some(lines) = &library.lines {
                lines.prefetch(addresses, effort);
            }
        }
    }

    /// The library `mapping` maps, and the file offset of `ip` in it; `None` for the
    /// executable and for what is no file (the heap, the stack).
    fn library_at(&self, mapping: &Mapping, ip: u64) -> Option<(Arc<Library>, u64)> {
        if !mapping.path.starts_with('/') && mapping.path != VDSO {
            return None;
        }
        if self.executable.as_deref() == Some(mapping.path.as_str()) {
            return None;
        }
        let offset = ip.checked_sub(mapping.start)? + mapping.offset;
        Some((self.library(&mapping.path)?, offset))
    }

    /// Reads every library of `mappings` not read yet (but the executable).
    pub fn read_mapped(&self, mappings: &[Mapping]) {
        for mapping in mappings {
            if self.executable.as_deref() != Some(mapping.path.as_str()) && !self.is_read(&mapping.path) {
                self.library(&mapping.path);
            }
        }
    }

    /// Keeps what was read of each library's compile units for the next process
    /// (`SourceLines::keep_read_units`); the first failure is returned, after all were tried.
    pub fn keep_read_units(&self) -> std::io::Result<()> {
        let libraries: Vec<Arc<Library>> = lock(&self.libraries).values().flatten().cloned().collect();
        let kept = libraries.iter().filter_map(|library| library.lines.as_ref()).map(SourceLines::keep_read_units);
        kept.fold(Ok(()), Result::and)
    }

    /// Whether the library at `path` was read (or found unreadable) already.
    pub fn is_read(&self, path: &str) -> bool {
        lock(&self.libraries).contains_key(path)
    }

    fn library(&self, path: &str) -> Option<Arc<Library>> {
        lock(&self.libraries)
            .entry(path.to_owned())
            .or_insert_with(|| {
                if path == VDSO {
                    return Library::vdso();
                }
                // Through the process's root while it lives; the same path once it is gone
                // (`record` names its samples after the command ended).
                Library::shared(&format!("{}{path}", self.root)).or_else(|| Library::shared(path))
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::mappings;

    /// The C library zeek-probe itself runs on, as this process maps it: its exported `getpid`
    /// is named, and with libc's debug file installed the local variant `memset` resolved to.
    #[test]
    fn names_functions_in_a_mapped_library_from_its_own_symbols() {
        let maps = mappings::read(std::process::id());
        let mapping_of = |ip: u64| maps.iter().find(|m| (m.start..m.end).contains(&ip)).expect("libc mapped");
        let libraries = LibrarySymbols::new(std::process::id());
        let getpid = libc::getpid as *const () as usize as u64;
        let mapping = mapping_of(getpid);
        let name = libraries.lookup(mapping, getpid + 1).map(|f| f.name);
        assert!(name.as_deref().is_some_and(|n| n.ends_with("getpid")), "{name:?} in {mapping:?}");
        assert_eq!(libraries.lookup(mapping, mapping.start.saturating_sub(1)), None);

        let memset = libc::memset as *const () as usize as u64;
        let mapping = mapping_of(memset);
        let has_debug_file = ElfFile::open(mapping.path.as_ref()).unwrap().separate_debug_file().is_some();
        let name = libraries.lookup(mapping, memset).map(|f| f.name).unwrap_or_default();
        if has_debug_file {
            assert!(name.starts_with("__memset_"), "memset's IFUNC variant named from the debug file: {name}");
        } else {
            assert!(name.is_empty() || name.contains("memset"), "{name}");
        }
        let heap = Mapping { start: 0x1000, end: 0x2000, offset: 0, path: "[heap]".into() };
        assert_eq!(libraries.lookup(&heap, 0x1100), None);
        let libc = mapping_of(getpid);
        let skipping = LibrarySymbols::new(std::process::id()).skipping(libc.path.as_ref());
        assert_eq!(skipping.lookup(libc, getpid + 1), None, "the executable is not read as a library");
    }

    /// Two sessions of processes mapping the same libc hold one copy of its symbols.
    #[test]
    fn sessions_share_one_copy_of_a_library() {
        let maps = mappings::read(std::process::id());
        let libc = maps.iter().find(|m| m.path.contains("/libc.so")).expect("libc mapped");
        let (first, second) = (LibrarySymbols::new(std::process::id()), LibrarySymbols::new(std::process::id()));
        let one = first.library(&libc.path).expect("libc read");
        let other = second.library(&libc.path).expect("libc read");
        assert!(Arc::ptr_eq(&one, &other), "one copy of {}", libc.path);
    }

    /// The vDSO, as any process maps it: `clock_gettime` runs there.
    #[test]
    fn names_functions_in_the_vdso() {
        let image = own_vdso().expect("the vDSO mapped and read");
        let symbol = image.symbols().get("__vdso_clock_gettime").expect("the vDSO exports clock_gettime");
        let segment = image.load_segments()[0];
        // Where the symbol is at run time, in a mapping elsewhere (another process's).
        let elsewhere = Mapping { start: 0x7fff_0000_0000, end: 0x7fff_0001_0000, offset: 0, path: VDSO.into() };
        let ip = elsewhere.start + symbol.address - segment.address + segment.offset + 4;
        let name = LibrarySymbols::new(std::process::id()).lookup(&elsewhere, ip).map(|f| f.name);
        assert!(name.as_deref().is_some_and(|n| n.ends_with("clock_gettime")), "{name:?}");
    }
}
