//! Reading an ELF file lazily: Zeek binaries with DWARF are hundreds of megabytes, and only
//! headers, symbol tables and a few instruction bytes are needed. The file is mapped: what is
//! read is paged in from the page cache, without a read call or a copy per symbol name.
use std::{
    fs::{self, File},
    os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use memmap2::Mmap;
use object::{Object, ObjectKind, ObjectSection, ObjectSegment, ObjectSymbol, ObjectSymbolTable, SymbolKind};

use super::symbols::{PLT_SUFFIX, Symbol, SymbolIndex};

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("cannot open {path}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{path} is {kind}, not an executable file: give the path of a zeek binary")]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{path} is not an ELF executable")]
    Parse { path: PathBuf, source: object::Error },
    #[error("{path} has no loadable segment")]
    NoLoadSegment { path: PathBuf },
    #[error("{path}: address {address:#x} is not in a loadable segment")]
    AddressNotMapped { path: PathBuf, address: u64 },
}

/// What a file that is not a regular one is, to say so.
fn check_regular(metadata: &fs::Metadata) -> Result<(), &'static str> {
    let t = metadata.file_type();
    if t.is_file() {
        Ok(())
    } else if t.is_dir() {
        Err("a directory")
    } else if t.is_fifo() {
        Err("a FIFO")
    } else if t.is_socket() {
        Err("a socket")
    } else if t.is_char_device() || t.is_block_device() {
        Err("a device")
    } else {
        Err("a special file")
    }
}

/// A loadable segment: `size` bytes of the file at `offset`, at link-time `address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    pub address: u64,
    pub offset: u64,
    pub size: u64,
}

impl LoadSegment {
    /// The link-time address of file offset `offset`, if this segment holds it.
    pub fn address_of(&self, offset: u64) -> Option<u64> {
        (self.offset..self.offset + self.size).contains(&offset).then(|| self.address + (offset - self.offset))
    }
}

/// Where distributions install the debug file of build-id `id`.
fn by_build_id(id: &[u8]) -> Option<PathBuf> {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    (hex.len() > 2).then(|| PathBuf::from(format!("/usr/lib/debug/.build-id/{}/{}.debug", &hex[..2], &hex[2..])))
}

pub struct ElfFile {
    path: PathBuf,
    image: Image,
}

/// A file mapped, or an image copied out of memory (the vDSO has no file).
enum Image {
    Mapped(Mmap),
    Copied(Vec<u8>),
}

impl ElfFile {
    /// Opens a regular file only: a FIFO or a device would block or be changed by reading.
    pub fn open(path: &Path) -> Result<Self, ElfError> {
        let open_err = |source| ElfError::Open { path: path.to_path_buf(), source };
        let not_a_file = |kind| ElfError::NotAFile { path: path.to_path_buf(), kind };
        check_regular(&fs::metadata(path).map_err(open_err)?).map_err(not_a_file)?;
        // Non-blocking, should it have been swapped for a FIFO since: then refused below.
        let file = File::options().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(open_err)?;
        check_regular(&file.metadata().map_err(open_err)?).map_err(not_a_file)?;
        // SAFETY: a private read-only mapping. Binaries and debug files are replaced by rename
        // (package upgrades, `make install`), which leaves this inode intact; one truncated in
        // place while we read it would end zeek-probe with SIGBUS, never the target.
        let map = unsafe { Mmap::map(&file) }.map_err(open_err)?;
        let elf = Self { path: path.to_path_buf(), image: Image::Mapped(map) };
        elf.parse()?;
        Ok(elf)
    }

    /// An ELF image read from memory, named `path` in messages.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, ElfError> {
        let elf = Self { path: path.to_path_buf(), image: Image::Copied(bytes) };
        elf.parse()?;
        Ok(elf)
    }

    fn parse(&self) -> Result<object::File<'_>, ElfError> {
        object::File::parse(self.data()).map_err(|source| ElfError::Parse { path: self.path.clone(), source })
    }

    /// The whole file image.
    pub fn data(&self) -> &[u8] {
        match &self.image {
            Image::Mapped(map) => map,
            Image::Copied(bytes) => bytes,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn parsed(&self) -> object::File<'_> {
        // `open` already parsed the same bytes successfully.
        self.parse().expect("ELF parsed at open")
    }

    pub fn is_x86_64(&self) -> bool {
        self.parsed().architecture() == object::Architecture::X86_64
    }

    /// A separate debug-information file (`objcopy --only-keep-debug`): its sections keep
    /// their headers, but the code in `.text` is gone (SHT_NOBITS).
    pub fn is_debug_info_only(&self) -> bool {
        self.parsed().section_by_name(".text").is_some_and(|text| text.file_range().is_none())
    }

    /// ET_DYN: a position-independent executable, loaded at a random base.
    /// The GNU build-id note, if the linker wrote one.
    pub fn build_id(&self) -> Option<Vec<u8>> {
        self.parsed().build_id().ok().flatten().map(<[u8]>::to_vec)
    }

    pub fn is_pie(&self) -> bool {
        self.parsed().kind() == ObjectKind::Dynamic
    }

    /// Defined function and data symbols from `.symtab`, or from `.dynsym` where the file has
    /// no `.symtab` or one that names nothing (stripped). A `.symtab` has every symbol
    /// `.dynsym` defines, and locals.
    pub fn symbols(&self) -> SymbolIndex {
        let file = self.parsed();
        // A `.symtab` that names nothing (a tool stripped it but kept the section) would hide
        // the `.dynsym` a stripped file still has.
        let symtab_names = file.symbol_table().is_some_and(|table| table.symbols().any(|sym| named(&sym).is_some()));
        let table = if symtab_names { file.symbols() } else { file.dynamic_symbols() };
        let mut found = Vec::new();
        for sym in table {
            if let Some(name) = named(&sym) {
                let is_function = sym.kind() == SymbolKind::Text;
                found.push((
                    name,
                    Symbol { address: sym.address(), size: sym.size(), is_function, is_weak: sym.is_weak() },
                ));
            }
        }
        let mut index = SymbolIndex::of(&found);
        self.add_plt_stubs(&mut index);
        index
    }

    /// The PLT's stubs as functions named `name@plt`, as perf and objdump name them: a call
    /// into another library samples there first, and no symbol covers a stub. x86-64 layout:
    /// 16-byte stubs in `.plt.sec` (IBT builds), or in `.plt` after the lazy resolver's 16
    /// bytes, stub `i` jumping through `.got.plt` slot `3 + i` (the first three are the
    /// dynamic linker's); a `.rela.plt` entry names the function its slot is for.
    fn add_plt_stubs(&self, index: &mut SymbolIndex) {
        const STUB: u64 = 16;
        const RELA: usize = 24;
        const RESERVED_SLOTS: u64 = 3;
        let file = self.parsed();
        let sections =
            (file.section_by_name(".rela.plt"), file.section_by_name(".got.plt"), file.dynamic_symbol_table());
        let (Some(relocations), Some(got), Some(dynsym)) = sections else { return };
        let (stubs, first) = match file.section_by_name(".plt.sec") {
            Some(sec) => (sec, 0),
            None => match file.section_by_name(".plt") {
                Some(plt) => (plt, STUB),
                None => return,
            },
        };
        let Ok(entries) = relocations.data() else { return };
        for entry in entries.chunks_exact(RELA) {
            let field = |at: usize| u64::from_le_bytes(entry[at..at + 8].try_into().unwrap_or_default());
            let (slot, info) = (field(0), field(8));
            let Some(stub) = (slot.wrapping_sub(got.address()) / 8).checked_sub(RESERVED_SLOTS) else { continue };
            let address = stubs.address() + first + stub * STUB;
            if slot < got.address() || address + STUB > stubs.address() + stubs.size() {
                continue;
            }
            let Ok(symbol) = dynsym.symbol_by_index(object::SymbolIndex((info >> 32) as usize)) else { continue };
            if let Ok(name) = symbol.name()
                && !name.is_empty()
            {
                index.insert(
                    &format!("{name}{PLT_SUFFIX}"),
                    Symbol { address, size: STUB, is_function: true, is_weak: false },
                );
            }
        }
    }

    /// Link-time address and file offset of the lowest loadable segment.
    pub fn first_load_segment(&self) -> Result<(u64, u64), ElfError> {
        self.parsed()
            .segments()
            .min_by_key(|s| s.address())
            .map(|s| (s.address(), s.file_range().0))
            .ok_or_else(|| ElfError::NoLoadSegment { path: self.path.clone() })
    }

    /// The file offset of a link-time address: what the kernel's uprobe API takes.
    pub fn file_offset(&self, address: u64) -> Result<u64, ElfError> {
        self.parsed()
            .segments()
            .find(|s| (s.address()..s.address() + s.file_range().1).contains(&address))
            .map(|s| address - s.address() + s.file_range().0)
            .ok_or_else(|| ElfError::AddressNotMapped { path: self.path.clone(), address })
    }

    /// The loadable segments: where each part of the file is at link time, to turn a mapped
    /// file offset (from a process's mappings) into a link-time address.
    pub fn load_segments(&self) -> Vec<LoadSegment> {
        self.parsed()
            .segments()
            .map(|s| {
                let (offset, size) = s.file_range();
                LoadSegment { address: s.address(), offset, size }
            })
            .collect()
    }

    /// Where distributions put debug information: `/usr/lib/debug/.build-id/xx/rest.debug`, or
    /// the `.gnu_debuglink` name next to the file, in its `.debug/`, or under `/usr/lib/debug`.
    pub fn separate_debug_file(&self) -> Option<PathBuf> {
        let file = self.parsed();
        let mut candidates = Vec::new();
        if let Ok(Some(id)) = file.build_id() {
            candidates.extend(by_build_id(id));
        }
        if let Ok(Some((name, _crc))) = file.gnu_debuglink() {
            let name = String::from_utf8_lossy(name).into_owned();
            let dir = self.path.parent().unwrap_or(Path::new("/"));
            candidates.push(dir.join(&name));
            candidates.push(dir.join(".debug").join(&name));
            candidates.push(Path::new("/usr/lib/debug").join(dir.strip_prefix("/").unwrap_or(dir)).join(&name));
        }
        candidates.into_iter().find(|c| c.is_file() && *c != self.path)
    }

    /// The file `dwz` moved the DWARF this one shares with others into (`.gnu_debugaltlink`,
    /// as Debian's `-dbgsym` packages have it): its path, absolute or relative to this file's
    /// directory, else found by its build-id under `/usr/lib/debug/.build-id`.
    pub fn dwz_file(&self) -> Option<PathBuf> {
        let file = self.parsed();
        let (name, id) = file.gnu_debugaltlink().ok().flatten()?;
        let name = PathBuf::from(String::from_utf8_lossy(name).into_owned());
        let beside = self.path.parent().unwrap_or(Path::new("/")).join(name);
        [Some(beside), by_build_id(id)].into_iter().flatten().find(|c| c.is_file() && *c != self.path)
    }

    /// `len` bytes of the file image at a link-time address (instruction bytes).
    pub fn bytes_at(&self, address: u64, len: u64) -> Result<Vec<u8>, ElfError> {
        let file = self.parsed();
        file.segments()
            .find_map(|s| s.data_range(address, len).ok().flatten())
            .map(<[u8]>::to_vec)
            .ok_or_else(|| ElfError::AddressNotMapped { path: self.path.clone(), address })
    }
}

/// The name of a symbol that defines code or data at an address, if it is one.
fn named<'data>(sym: &impl ObjectSymbol<'data>) -> Option<&'data str> {
    let defines = !sym.is_undefined() && sym.address() != 0;
    let kind = matches!(sym.kind(), SymbolKind::Text | SymbolKind::Data | SymbolKind::Unknown);
    sym.name().ok().filter(|name| defines && kind && !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{symbolize::native_lines::tests::run, target::mappings};

    /// A binary stripped but for a `.symtab` that names nothing is named from its `.dynsym`,
    /// as a stripped one without `.symtab` is.
    #[test]
    fn an_empty_symtab_leaves_the_dynsym_names() {
        let dir = tempfile::tempdir().unwrap();
        let (source, built) = (dir.path().join("e.c"), dir.path().join("e"));
        fs::write(&source, "int f(void) { return 1; }\nint main(void) { return f(); }\n").unwrap();
        run("gcc", &["-rdynamic".as_ref(), "-o".as_ref(), built.as_os_str(), source.as_os_str()]);
        let symbol = |file: &Path| ElfFile::open(file).unwrap().symbols().get("f").map(|s| s.address);
        let address = symbol(&built).expect("f in the built binary");
        for (flavour, strip) in
            [("no .symtab", &["--strip-all"][..]), ("an empty .symtab", &["--strip-all", "--add-symbol", "nothing=0"])]
        {
            let stripped = dir.path().join(flavour.replace(' ', "-"));
            let mut args: Vec<&std::ffi::OsStr> = strip.iter().map(|a| a.as_ref()).collect();
            args.extend([built.as_os_str(), stripped.as_os_str()]);
            run("objcopy", &args);
            assert_eq!(symbol(&stripped), Some(address), "f named from .dynsym with {flavour}");
        }
    }

    /// The C library this test runs on calls some of its own functions through its PLT: the
    /// stub is a function named after what it calls, where objdump (binutils) puts it too.
    #[test]
    fn plt_stubs_are_named_after_what_they_call() {
        let maps = mappings::read(std::process::id());
        let libc = maps.iter().find(|m| m.path.contains("/libc.so")).expect("libc mapped");
        let elf = ElfFile::open(libc.path.as_ref()).unwrap();
        let symbols = elf.symbols();
        let stub = symbols.get("calloc@plt").expect("a stub for calloc");
        let objdump =
            std::process::Command::new("objdump").args(["-d", "-j", ".plt"]).arg(&libc.path).output().unwrap();
        let listing = String::from_utf8_lossy(&objdump.stdout);
        let theirs = listing.lines().find_map(|l| l.strip_suffix(" <calloc@plt>:"));
        assert_eq!(theirs.and_then(|a| u64::from_str_radix(a, 16).ok()), Some(stub.address), "objdump's calloc@plt");
        assert_eq!(symbols.functions().lookup(stub.address + 4).as_deref(), Some("calloc@plt"));
    }
}
