//! Native addresses → the functions inlined there and their source lines, from an ELF's DWARF
//! (the binary's own, or its separate debug file). A real Zeek's debug file is hundreds of
//! megabytes: nothing of it is read until the first sampled address is asked for (at report
//! time, not at attach), the file is mapped rather than read, only the compile units holding
//! sampled addresses are parsed (by `addr2line`), and each distinct address is resolved once.
use std::{
    borrow::Cow,
    collections::HashMap,
    fmt,
    ops::{Deref, Range},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use gimli::{EndianReader, RunTimeEndian, SectionId};
use object::{Object as _, ObjectSection as _};

use crate::{binary::elf::ElfFile, output};

/// One level of the inlined chain at an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFrame {
    /// Demangled like the symbols (`binary::symbols::demangle`); `None` when DWARF names none.
    pub function: Option<String>,
    pub file: Option<String>,
    /// 0 when unknown.
    pub line: u32,
}

/// The DWARF of one ELF: the file mapped from the start, its DWARF parsed on first use.
pub struct SourceLines {
    /// The file that has the DWARF.
    path: PathBuf,
    state: Mutex<State>,
}

enum State {
    /// Mapped, not read yet.
    Mapped(Arc<ElfFile>),
    /// Opening or parsing failed (said once): every address resolves to nothing.
    Unreadable,
    Open(Box<Resolver>),
}

struct Resolver {
    context: addr2line::Context<Reader>,
    /// Link-time address → its chain, outermost first (empty: DWARF does not cover it).
    resolved: HashMap<u64, Arc<[SourceFrame]>>,
    /// Addresses whose lookup failed on bad DWARF.
    failed: u64,
}

impl SourceLines {
    /// Maps `path` now, reading nothing of it: the file may only be reachable through the
    /// process it was found for (`/proc/PID/root/...`), which is gone when `record` reports.
    pub fn new(path: &Path) -> Self {
        let state = match ElfFile::open(path) {
            Ok(elf) => State::Mapped(Arc::new(elf)),
            Err(err) => {
                unreadable(&format!("{:#}", anyhow::Error::from(err)));
                State::Unreadable
            }
        };
        Self { path: path.to_owned(), state: Mutex::new(state) }
    }

    /// The chain of functions at the link-time `address`, outermost first: the function the
    /// code belongs to, then each call inlined into it down to the innermost, each with the
    /// line being run in it (for all but the innermost, the line of the inlined call). Empty
    /// where DWARF does not cover the address, or cannot be read.
    pub fn frames(&self, address: u64) -> Arc<[SourceFrame]> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let State::Mapped(elf) = &*state {
            *state = match Resolver::open(elf, &self.path) {
                Ok(resolver) => State::Open(Box::new(resolver)),
                Err(reason) => {
                    unreadable(&reason);
                    State::Unreadable
                }
            };
        }
        match &mut *state {
            State::Open(resolver) => resolver.frames(address),
            State::Mapped(_) | State::Unreadable => Arc::from([]),
        }
    }

    /// How many looked-up addresses had debug information that could not be read.
    pub fn failed_lookups(&self) -> u64 {
        match &*self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            State::Open(resolver) => resolver.failed,
            State::Mapped(_) | State::Unreadable => 0,
        }
    }
}

/// Says, once per file, why its DWARF is not used.
fn unreadable(reason: &str) {
    output::note(format!("warning: {reason}; native frames are named by their symbols only"));
}

impl fmt::Debug for SourceLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceLines").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Resolver {
    /// Why not, in a message that names `path`.
    fn open(elf: &Arc<ElfFile>, path: &Path) -> Result<Self, String> {
        let endian = if elf.parsed().is_little_endian() { RunTimeEndian::Little } else { RunTimeEndian::Big };
        let unreadable = |err: gimli::Error| format!("{}: unreadable debug information ({err})", path.display());
        let dwarf = gimli::Dwarf::load(|id| section(elf, id).map(|bytes| EndianReader::new(bytes, endian)))
            .map_err(unreadable)?;
        let context = addr2line::Context::from_dwarf(dwarf).map_err(unreadable)?;
        Ok(Self { context, resolved: HashMap::new(), failed: 0 })
    }

    fn frames(&mut self, address: u64) -> Arc<[SourceFrame]> {
        if let Some(frames) = self.resolved.get(&address) {
            return frames.clone();
        }
        let frames: Arc<[SourceFrame]> = match chain(&self.context, address) {
            Ok(frames) => frames.into(),
            Err(_) => {
                self.failed += 1;
                Arc::from([])
            }
        };
        self.resolved.insert(address, frames.clone());
        frames
    }
}

/// `addr2line`'s frames at `address` (innermost first), outermost first.
fn chain(context: &addr2line::Context<Reader>, address: u64) -> Result<Vec<SourceFrame>, gimli::Error> {
    let mut iter = context.find_frames(address).skip_all_loads()?;
    let mut frames = Vec::new();
    while let Some(frame) = iter.next()? {
        let function = match &frame.function {
            Some(name) => Some(crate::binary::symbols::demangle(&name.raw_name()?)),
            None => None,
        };
        let (file, line) = frame.location.map_or((None, 0), |at| (at.file.map(str::to_owned), at.line.unwrap_or(0)));
        frames.push(SourceFrame { function, file, line });
    }
    frames.reverse();
    Ok(frames)
}

/// The bytes of one DWARF section, borrowed from the mapped file where stored plain; empty
/// when the file has none.
fn section(elf: &Arc<ElfFile>, id: SectionId) -> Result<SectionBytes, gimli::Error> {
    let file = elf.parsed();
    let Some(section) = file.section_by_name(id.name()) else { return Ok(SectionBytes::Owned(Arc::from([]))) };
    let stored_plain = section.compressed_file_range().is_ok_and(|r| r.format == object::CompressionFormat::None);
    if stored_plain && let Some((offset, size)) = section.file_range() {
        let range = usize::try_from(offset).ok().zip(usize::try_from(offset + size).ok());
        if let Some((start, end)) = range.filter(|(_, end)| *end <= elf.data().len()) {
            return Ok(SectionBytes::Mapped(elf.clone(), start..end));
        }
    }
    match section.uncompressed_data() {
        Ok(Cow::Borrowed(bytes)) => Ok(SectionBytes::Owned(Arc::from(bytes))),
        Ok(Cow::Owned(bytes)) => Ok(SectionBytes::Owned(Arc::from(bytes))),
        // Compressed in a way `object` is not built to read: the section is left out.
        Err(_) => Ok(SectionBytes::Owned(Arc::from([]))),
    }
}

type Reader = EndianReader<RunTimeEndian, SectionBytes>;

/// A section's bytes that keep the mapping they are in alive, as gimli's owning reader needs.
#[derive(Clone)]
enum SectionBytes {
    Mapped(Arc<ElfFile>, Range<usize>),
    /// Decompressed, or empty.
    Owned(Arc<[u8]>),
}

impl Deref for SectionBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(elf, range) => &elf.data()[range.clone()],
            Self::Owned(bytes) => bytes,
        }
    }
}

impl fmt::Debug for SectionBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SectionBytes({} bytes)", self.len())
    }
}

// SAFETY: the bytes are a mapping or an `Arc`'s allocation, which stay where they are for as
// long as the `Arc` this value holds; moving or cloning the value does not move them.
unsafe impl stable_deref_trait::StableDeref for SectionBytes {}
// SAFETY: a clone holds the same `Arc`, so it derefs to the same bytes.
unsafe impl stable_deref_trait::CloneStableDeref for SectionBytes {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::mappings;

    /// This test binary's ELF, and the link-time address of one of its functions.
    fn own_link_time_address(function: usize) -> (PathBuf, u64) {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let ip = function as u64;
        let maps = mappings::read(std::process::id());
        let mapping = maps.iter().find(|m| (m.start..m.end).contains(&ip)).expect("mapped");
        let segments = ElfFile::open(&exe).unwrap().load_segments();
        let address = segments.iter().find_map(|s| s.address_of(ip - mapping.start + mapping.offset)).unwrap();
        (exe, address)
    }

    #[inline(always)]
    fn inlined_callee(x: u64) -> u64 {
        std::hint::black_box(x).wrapping_mul(31) ^ 7
    }

    #[inline(never)]
    fn caller_of_an_inlined_callee(x: u64) -> u64 {
        inlined_callee(std::hint::black_box(x)) + 1
    }

    /// This test binary, built with debug information as `cargo test` builds: inside a
    /// function, some address is in the call inlined into it, which comes after it with its
    /// own file and line; the function itself is named as its symbol is.
    #[test]
    fn resolves_a_function_and_the_call_inlined_into_it() {
        assert_eq!(caller_of_an_inlined_callee(1), (31 ^ 7) + 1);
        let (exe, start) = own_link_time_address(caller_of_an_inlined_callee as *const () as usize);
        let lines = SourceLines::new(&exe);
        let functions = ElfFile::open(&exe).unwrap().symbols().functions();
        let at_start = lines.frames(start);
        let outermost = at_start.first().unwrap_or_else(|| panic!("{start:#x} resolved"));
        assert_eq!(outermost.function, functions.lookup(start), "{at_start:?}");
        assert!(outermost.function.as_deref().is_some_and(|f| f.contains("caller_of_an_inlined_callee")));
        assert!(outermost.file.as_deref().is_some_and(|f| f.ends_with("native_lines.rs")), "{at_start:?}");
        assert!(outermost.line > 0, "{at_start:?}");
        assert!(Arc::ptr_eq(&at_start, &lines.frames(start)), "resolved once");

        let inlined = (start..start + 256)
            .map(|address| lines.frames(address))
            .find(|frames| frames.len() == 2)
            .unwrap_or_else(|| panic!("an address in the inlined call"));
        assert_eq!(inlined[0].function, outermost.function);
        assert!(inlined[1].function.as_deref().is_some_and(|f| f.contains("inlined_callee")), "{inlined:?}");
        assert!(inlined[1].file.as_deref().is_some_and(|f| f.ends_with("native_lines.rs")), "{inlined:?}");
        assert!(inlined[0].line > 0 && inlined[1].line > 0, "{inlined:?}");
        assert!(lines.frames(u64::MAX - 16).is_empty(), "an address no unit covers");
        assert_eq!(lines.failed_lookups(), 0);
    }

    /// A file that is not ELF, or is gone, or whose DWARF is garbage, is said once and
    /// resolves nothing.
    #[test]
    fn an_unreadable_debug_file_resolves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let not_elf = dir.path().join("zeek.debug");
        std::fs::write(&not_elf, b"\x7fELF\x02\x01\x01 not really").unwrap();
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, [0xff_u8; 4096]).unwrap();
        let bad_dwarf = dir.path().join("bad-dwarf.debug");
        let added = std::process::Command::new("objcopy")
            .arg(format!("--add-section=.debug_info={}", garbage.display()))
            .arg(format!("--add-section=.debug_abbrev={}", garbage.display()))
            .arg(format!("--add-section=.debug_aranges={}", garbage.display()))
            .arg("/bin/true")
            .arg(&bad_dwarf)
            .status()
            .expect("objcopy (binutils) runs");
        assert!(added.success());
        for path in [not_elf, dir.path().join("gone.debug")] {
            let lines = SourceLines::new(&path);
            assert!(lines.frames(0x1000).is_empty());
            assert!(matches!(*lines.state.lock().unwrap(), State::Unreadable), "{path:?}");
        }
        let lines = SourceLines::new(&bad_dwarf);
        assert!((0x1000..0x1100).all(|address| lines.frames(address).is_empty()));
        let said = matches!(*lines.state.lock().unwrap(), State::Unreadable);
        assert!(said || lines.failed_lookups() > 0, "garbage DWARF noticed");
    }
}
