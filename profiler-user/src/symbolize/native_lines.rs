//! Native addresses → the functions inlined there and their source lines, from an ELF's DWARF
//! (the binary's own, or its separate debug file). A real Zeek's debug file is hundreds of
//! megabytes: nothing of it is read until the first sampled address is asked for (at report
//! time, not at attach), the file is mapped rather than read, only the compile units holding
//! sampled addresses are read, each only as far as its addresses need (`inlined_chain`; all of
//! it, by `addr2line`, where that walk finds no function) and on from there for the addresses
//! that come later (`KeptUnits`; `record` keeps that for its next run of the same binary,
//! `kept_units_file`), and each distinct address is resolved once.
use std::{
    borrow::Cow,
    collections::{HashMap, hash_map},
    fmt,
    num::NonZeroUsize,
    ops::{Deref, Range},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
};

use gimli::{EndianReader, RunTimeEndian, SectionId};
use object::{Object as _, ObjectSection as _};

use super::{
    inlined_chain::{ParsedUnit, UnitChains, UnitIndex},
    kept_units_file::{EarlierUnits, KeptUnitsFile},
    lock,
};
use crate::{binary::elf::ElfFile, output};

/// What a `prefetch` may take of the machine.
#[derive(Debug, Clone, Copy)]
pub enum Effort<'a> {
    /// A thread per core: a report waits for it.
    AllCores,
    /// One thread, while the profiled command runs, until `stop` is set (looked at between
    /// compile units: what is resolved by then is kept).
    Background { stop: &'a AtomicBool },
}

impl Effort<'_> {
    fn threads(self) -> usize {
        match self {
            Self::AllCores => thread::available_parallelism().map_or(1, NonZeroUsize::get),
            Self::Background { .. } => 1,
        }
    }

    fn stopped(self) -> bool {
        match self {
            Self::AllCores => false,
            Self::Background { stop } => stop.load(Ordering::Relaxed),
        }
    }
}

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
    /// It could not be opened, for this reason, not said yet: said when lines are first
    /// asked for, not when a run that never asks (`--source-lines off`, a target that exited
    /// while it was being inspected) merely found the file.
    Unopened(String),
    /// Opening or parsing failed (said once): every address resolves to nothing.
    Unreadable,
    Open(Box<Resolver>),
}

struct Resolver {
    path: PathBuf,
    sections: DebugSections,
    /// The DWARF of the `dwz` file holding what `elf` shares with other files, where it has
    /// one: read once, the supplementary file of every unit's context.
    sup: Option<Arc<Dwarf>>,
    endian: RunTimeEndian,
    units: Units,
    /// Link-time address → its chain, outermost first (empty: DWARF does not cover it).
    resolved: HashMap<u64, Arc<[SourceFrame]>>,
    /// Units as far as they were read, for the next addresses in them.
    parsed: KeptUnits,
    /// Addresses whose lookup failed on bad DWARF (the first one said).
    failed: u64,
}

/// How addresses find their compile unit.
enum Units {
    /// By `.debug_aranges` (GCC writes it): only the units of sampled addresses are ever
    /// parsed, each as far as its addresses need (`UnitChains`). (An `addr2line` context of
    /// the whole file parses every unit's abbreviations and line header up front: 80 MB for a
    /// real Zeek's.)
    ByRange { ranges: Vec<UnitRange>, dwarf: Box<Dwarf> },
    /// Without `.debug_aranges`, one context of the whole file.
    Whole(Box<addr2line::Context<Reader>>),
}

/// How many spans (a subprogram's range, a line-table row's) the units kept between lookups
/// hold in all, 24 bytes each (~25 MB at most; a trivial real Zeek run's report keeps ~200,000):
/// past it, units are read for their lookup and dropped, as before they were kept.
const PARSED_SPANS: usize = 1 << 20;

/// Units as far as they were read (`ParsedUnit`), by offset in `.debug_info`, for the next
/// addresses in them: up to `PARSED_SPANS` spans in all, then no more are kept. Those an
/// earlier process read (`kept_units_file`) are taken as it left them.
#[derive(Default)]
struct KeptUnits {
    by_offset: HashMap<usize, ParsedUnit>,
    spans: usize,
    /// Units an earlier process read, not taken by this one yet.
    earlier: EarlierUnits,
    /// Where those were kept, and what this process read goes.
    file: Option<KeptUnitsFile>,
    /// The spans `earlier` held when read: no more in all at the end means nothing new.
    spans_read: usize,
}

/// A unit as far as it was read before: by this process, or by an earlier one.
enum ReadBefore {
    Here(Box<ParsedUnit>),
    Earlier(UnitIndex<'static>),
}

impl KeptUnits {
    /// What earlier processes read of the DWARF in `dwarf_file`, to go on from.
    fn from_file(dwarf_file: &Path) -> Self {
        let file = KeptUnitsFile::of(dwarf_file);
        let earlier = file.as_ref().map(KeptUnitsFile::load).unwrap_or_default();
        let spans_read = earlier.spans();
        Self { earlier, file, spans_read, ..Self::default() }
    }

    /// The unit at `unit` as far as it was read before, if it was kept.
    fn take(&mut self, unit: usize) -> Option<ReadBefore> {
        match self.by_offset.remove(&unit) {
            Some(parsed) => {
                self.spans -= parsed.spans();
                Some(ReadBefore::Here(Box::new(parsed)))
            }
            None => self.earlier.take(unit).map(ReadBefore::Earlier),
        }
    }

    /// Keeps what was read of the unit at `unit`, if the budget allows.
    fn keep(&mut self, unit: usize, parsed: Option<ParsedUnit>) {
        if let Some(parsed) = parsed
            && self.spans + parsed.spans() <= PARSED_SPANS
        {
            self.spans += parsed.spans();
            self.by_offset.insert(unit, parsed);
        }
    }

    /// Puts back a unit taken but not read.
    fn put_back(&mut self, unit: usize, before: Option<ReadBefore>) {
        match before {
            Some(ReadBefore::Here(parsed)) => self.keep(unit, Some(*parsed)),
            Some(ReadBefore::Earlier(index)) => self.earlier.put_back(unit, index),
            None => {}
        }
    }

    /// Keeps what this process read in the file, if it read anything new: appended to what
    /// earlier ones read while that fits in `PARSED_SPANS` spans, else the file written whole:
    /// this one's units first, then the earlier ones' it did not take, up to that many.
    fn store(&self) -> std::io::Result<()> {
        let Some(file) = &self.file else { return Ok(()) };
        let spans = self.spans + self.earlier.spans();
        if spans <= self.spans_read {
            return Ok(());
        }
        let read_here = || self.by_offset.iter().map(|(unit, parsed)| (*unit, parsed.index()));
        if spans <= PARSED_SPANS && file.append(read_here(), &self.earlier)? {
            return Ok(());
        }
        let mut room = PARSED_SPANS.saturating_sub(self.spans);
        let earlier_kept: std::collections::HashSet<usize> = self
            .earlier
            .units()
            .filter(|(_, spans)| {
                let fits = *spans <= room;
                room -= if fits { *spans } else { 0 };
                fits
            })
            .map(|(unit, _)| unit)
            .collect();
        file.store(read_here(), &self.earlier, |unit| earlier_kept.contains(&unit))
    }
}

/// Code addresses `begin..end` are compiled in the unit at `unit` in `.debug_info`.
#[derive(Debug, Clone, Copy)]
struct UnitRange {
    begin: u64,
    end: u64,
    unit: usize,
}

impl SourceLines {
    /// Maps `path` now, reading nothing of it: the file may only be reachable through the
    /// process it was found for (`/proc/PID/root/...`), which is gone when `record` reports.
    pub fn new(path: &Path) -> Self {
        let state = match ElfFile::open(path) {
            Ok(elf) => State::Mapped(Arc::new(elf)),
            Err(err) => State::Unopened(format!("{:#}", anyhow::Error::from(err))),
        };
        Self { path: path.to_owned(), state: Mutex::new(state) }
    }

    /// The chain of functions at the link-time `address`, outermost first: the function the
    /// code belongs to, then each call inlined into it down to the innermost, each with the
    /// line being run in it (for all but the innermost, the line of the inlined call). Empty
    /// where DWARF does not cover the address, or cannot be read.
    pub fn frames(&self, address: u64) -> Arc<[SourceFrame]> {
        match &mut *self.opened() {
            State::Open(resolver) => resolver.frames(address),
            State::Mapped(_) | State::Unopened(_) | State::Unreadable => Arc::from([]),
        }
    }

    /// Resolves `addresses` ahead of `frames`, which then finds them resolved: the compile
    /// units they fall in are parsed side by side (`Effort`). A report's addresses fall in
    /// tens to hundreds of units, each megabytes of DWARF in a C++ program like Zeek.
    pub fn prefetch(&self, addresses: impl IntoIterator<Item = u64>, effort: Effort) {
        if let State::Open(resolver) = &mut *self.opened() {
            resolver.prefetch(addresses, effort);
        }
    }

    /// The state, the file's DWARF opened on first use.
    fn opened(&self) -> MutexGuard<'_, State> {
        let mut state = lock(&self.state);
        let opened = match &*state {
            State::Mapped(elf) => Some(Resolver::open(elf, &self.path)),
            State::Unopened(reason) => Some(Err(reason.clone())),
            State::Unreadable | State::Open(_) => None,
        };
        match opened {
            Some(Ok(resolver)) => *state = State::Open(Box::new(resolver)),
            Some(Err(reason)) => {
                unreadable(&reason);
                *state = State::Unreadable;
            }
            None => {}
        }
        state
    }

    /// Keeps what was read of its compile units for the next process that reads this file
    /// (`kept_units_file`), if anything new was; nothing when its DWARF was never opened.
    pub fn keep_read_units(&self) -> std::io::Result<()> {
        match &*lock(&self.state) {
            State::Open(resolver) => resolver.parsed.store(),
            State::Mapped(_) | State::Unopened(_) | State::Unreadable => Ok(()),
        }
    }

    /// How many addresses are resolved already.
    #[cfg(test)]
    pub(crate) fn resolved(&self) -> usize {
        match &*lock(&self.state) {
            State::Open(resolver) => resolver.resolved.len(),
            State::Mapped(_) | State::Unopened(_) | State::Unreadable => 0,
        }
    }

    /// How many looked-up addresses had debug information that could not be read.
    #[cfg(test)]
    fn failed_lookups(&self) -> u64 {
        match &*lock(&self.state) {
            State::Open(resolver) => resolver.failed,
            State::Mapped(_) | State::Unopened(_) | State::Unreadable => 0,
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
        let sup = match elf.dwz_file().and_then(|path| ElfFile::open(&path).ok()) {
            Some(dwz) => {
                let dwz = DebugSections::read(&Arc::new(dwz));
                Some(Arc::new(load_dwarf(&dwz, None, endian, None).map_err(unreadable)?))
            }
            None => None,
        };
        let sections = DebugSections::read(elf);
        let aranges = sections.get(SectionId::DebugAranges);
        let (units, parsed) = if aranges.is_empty() {
            let dwarf = load_dwarf(&sections, sup.as_ref(), endian, None).map_err(unreadable)?;
            (Units::Whole(Box::new(addr2line::Context::from_dwarf(dwarf).map_err(unreadable)?)), KeptUnits::default())
        } else {
            let ranges = unit_ranges(EndianReader::new(aranges, endian)).map_err(unreadable)?;
            let dwarf = load_dwarf(&sections, sup.as_ref(), endian, None).map_err(unreadable)?;
            (Units::ByRange { ranges, dwarf: Box::new(dwarf) }, KeptUnits::from_file(path))
        };
        Ok(Self { path: path.to_owned(), sections, sup, endian, units, resolved: HashMap::new(), parsed, failed: 0 })
    }

    fn frames(&mut self, address: u64) -> Arc<[SourceFrame]> {
        if let Some(frames) = self.resolved.get(&address) {
            return frames.clone();
        }
        let chain = self.chain(address);
        self.keep(address, chain)
    }

    /// Keeps the chain found at `address`; one that could not be read is said (the first of
    /// the file) and resolves to nothing.
    fn keep(&mut self, address: u64, chain: Result<Vec<SourceFrame>, gimli::Error>) -> Arc<[SourceFrame]> {
        let frames: Arc<[SourceFrame]> = match chain {
            Ok(frames) => frames.into(),
            Err(err) => {
                if self.failed == 0 {
                    output::note(format!(
                        "warning: {}: unreadable debug information at {address:#x} ({err}); such addresses are named by their symbols only",
                        self.path.display()
                    ));
                }
                self.failed += 1;
                Arc::from([])
            }
        };
        self.resolved.insert(address, frames.clone());
        frames
    }

    fn chain(&mut self, address: u64) -> Result<Vec<SourceFrame>, gimli::Error> {
        let (ranges, dwarf) = match &self.units {
            Units::Whole(context) => return chain(context, address),
            Units::ByRange { ranges, dwarf } => (ranges, dwarf),
        };
        let Some(unit) = unit_of(ranges, address) else { return Ok(Vec::new()) };
        let in_unit =
            UnitSources { dwarf, sections: &self.sections, sup: self.sup.as_ref(), endian: self.endian, unit };
        let (mut resolved, parsed) = in_unit.resolve(&[address], self.parsed.take(unit));
        self.parsed.keep(unit, parsed);
        resolved.pop().map_or(Ok(Vec::new()), |(_, chain)| chain)
    }

    /// Resolves the addresses not resolved yet, their units on the threads `effort` gives
    /// (each thread takes a unit, reads it on from where earlier lookups left it, resolves its
    /// addresses and takes the next; what was read of each is kept after, `KeptUnits`).
    /// Without `.debug_aranges` there is one context of the whole file: nothing to share out.
    fn prefetch(&mut self, addresses: impl IntoIterator<Item = u64>, effort: Effort) {
        let Units::ByRange { ranges, dwarf } = &self.units else { return };
        let mut by_unit: HashMap<usize, Vec<u64>> = HashMap::new();
        for address in addresses {
            if let hash_map::Entry::Vacant(unresolved) = self.resolved.entry(address) {
                match unit_of(ranges, address) {
                    Some(unit) => by_unit.entry(unit).or_default().push(address),
                    // No unit's code: nothing to resolve.
                    None => drop(unresolved.insert(Arc::from([]))),
                }
            }
        }
        let units: Vec<(usize, Vec<u64>, Mutex<Option<ReadBefore>>)> = by_unit
            .into_iter()
            .map(|(unit, mut addresses)| {
                addresses.sort_unstable();
                addresses.dedup();
                (unit, addresses, Mutex::new(self.parsed.take(unit)))
            })
            .collect();
        let next = AtomicUsize::new(0);
        let (sections, sup, endian) = (&self.sections, self.sup.as_ref(), self.endian);
        let resolve_units = || {
            let (mut resolved, mut parsed) = (Vec::new(), Vec::new());
            while !effort.stopped()
                && let Some((unit, addresses, before)) = units.get(next.fetch_add(1, Ordering::Relaxed))
            {
                let in_unit = UnitSources { dwarf, sections, sup, endian, unit: *unit };
                let (chains, now) = in_unit.resolve(addresses, lock(before).take());
                resolved.extend(chains);
                parsed.push((*unit, now));
            }
            (resolved, parsed)
        };
        let threads = effort.threads().min(units.len());
        // One thread is this one: its priority is the caller's (`SymbolPrefetch` raises it).
        let done: Vec<_> = if threads <= 1 {
            vec![resolve_units()]
        } else {
            thread::scope(|scope| {
                let workers: Vec<_> = (0..threads).map(|_| scope.spawn(resolve_units)).collect();
                workers.into_iter().map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
            })
        };
        for (resolved, parsed) in done {
            for (address, chain) in resolved {
                self.keep(address, chain);
            }
            for (unit, parsed) in parsed {
                self.parsed.keep(unit, parsed);
            }
        }
        // Units not reached before a stop: what was read of them before is kept still.
        for (unit, _, before) in units {
            let before = before.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.parsed.put_back(unit, before);
        }
    }
}

/// The compile unit (its offset in `.debug_info`) whose code holds `address`.
fn unit_of(ranges: &[UnitRange], address: u64) -> Option<usize> {
    let i = ranges.partition_point(|r| r.begin <= address);
    i.checked_sub(1).map(|i| ranges[i]).filter(|r| address < r.end).map(|r| r.unit)
}

/// `.debug_aranges`: which compile unit each code range is in, sorted by address.
fn unit_ranges(aranges: Reader) -> Result<Vec<UnitRange>, gimli::Error> {
    let mut ranges = Vec::new();
    let mut headers = gimli::DebugAranges::from(aranges).headers();
    while let Some(header) = headers.next()? {
        let unit = header.debug_info_offset().0;
        let mut entries = header.entries();
        while let Some(entry) = entries.next()? {
            let range = entry.range();
            if range.begin < range.end {
                ranges.push(UnitRange { begin: range.begin, end: range.end, unit });
            }
        }
    }
    ranges.sort_unstable_by_key(|r| r.begin);
    Ok(ranges)
}

/// An address and its chain, or why DWARF could not say it.
type AddressChain = (u64, Result<Vec<SourceFrame>, gimli::Error>);

/// What resolves addresses of the compile unit at `unit` (its offset in `.debug_info`).
struct UnitSources<'a> {
    dwarf: &'a Dwarf,
    sections: &'a DebugSections,
    sup: Option<&'a Arc<Dwarf>>,
    endian: RunTimeEndian,
    unit: usize,
}

impl UnitSources<'_> {
    /// The chains at `addresses` (sorted, each once), all in the unit: walked to
    /// (`UnitChains`), or, where the walk finds no function or fails, from an `addr2line`
    /// context of the unit (made once).
    fn resolve(&self, addresses: &[u64], before: Option<ReadBefore>) -> (Vec<AddressChain>, Option<ParsedUnit>) {
        let walk = match before {
            Some(ReadBefore::Here(parsed)) => Ok(UnitChains::resume(self.dwarf, *parsed)),
            Some(ReadBefore::Earlier(index)) => UnitChains::from_index(self.dwarf, self.unit, index),
            None => UnitChains::new(self.dwarf, self.unit),
        };
        let (walked, parsed) = match walk {
            Ok(mut walk) => (walk.chains(addresses), Some(walk.into_parsed())),
            Err(err) => (Err(err), None),
        };
        let walked = walked.unwrap_or_else(|_| vec![None; addresses.len()]);
        let mut context = None;
        let mut resolved = Vec::with_capacity(addresses.len());
        for (&address, walked) in addresses.iter().zip(walked) {
            let found = match walked {
                Some(frames) => Ok(frames),
                None => context
                    .get_or_insert_with(|| unit_context(self.sections, self.sup, self.endian, self.unit))
                    .as_ref()
                    .map_err(|e| *e)
                    .and_then(|context| chain(context, address)),
            };
            resolved.push((address, found));
        }
        (resolved, parsed)
    }
}

/// An `addr2line` context of the compile unit at `unit` alone: `.debug_info` cut to it (its
/// references within itself are relative to it), every other section whole.
fn unit_context(
    sections: &DebugSections,
    sup: Option<&Arc<Dwarf>>,
    endian: RunTimeEndian,
    unit: usize,
) -> Result<addr2line::Context<Reader>, gimli::Error> {
    let info = sections.get(SectionId::DebugInfo);
    let header = gimli::DebugInfo::from(EndianReader::new(info.clone(), endian))
        .header_from_offset(gimli::DebugInfoOffset(unit))?;
    let end = unit.checked_add(header.length_including_self()).filter(|end| *end <= info.len());
    let unit_info = end.map(|end| info.sub(unit..end)).ok_or(gimli::Error::UnexpectedEof(gimli::ReaderOffsetId(0)))?;
    addr2line::Context::from_dwarf(load_dwarf(sections, sup, endian, Some(unit_info))?)
}

/// `elf`'s DWARF, `.debug_info` cut to one unit's bytes when given, with `sup` as its
/// supplementary DWARF: `dwz` leaves references into that one (`DW_FORM_GNU_ref_alt`), e.g. to
/// the abstract instances of inlined functions.
fn load_dwarf(
    sections: &DebugSections,
    sup: Option<&Arc<Dwarf>>,
    endian: RunTimeEndian,
    unit_info: Option<SectionBytes>,
) -> Result<Dwarf, gimli::Error> {
    let mut dwarf = gimli::Dwarf::load(|id| {
        let bytes = match (id, &unit_info) {
            (SectionId::DebugInfo, Some(unit_info)) => unit_info.clone(),
            // The ranges were looked up already; a unit cut out has other offsets.
            (SectionId::DebugAranges, Some(_)) => SectionBytes::Owned(Arc::from([])),
            _ => sections.get(id),
        };
        Ok::<_, gimli::Error>(EndianReader::new(bytes, endian))
    })?;
    dwarf.sup = sup.cloned();
    Ok(dwarf)
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

/// The DWARF sections `addr2line` reads. Not variables' locations nor macros: in a
/// compressed file the largest sections, which would be decompressed for nothing.
const READ: [SectionId; 11] = [
    SectionId::DebugAbbrev,
    SectionId::DebugAddr,
    SectionId::DebugAranges,
    SectionId::DebugInfo,
    SectionId::DebugLine,
    SectionId::DebugLineStr,
    SectionId::DebugRanges,
    SectionId::DebugRngLists,
    SectionId::DebugStr,
    SectionId::DebugStrOffsets,
    SectionId::DebugTypes,
];

/// One ELF's DWARF sections, each read once: every unit's context is made of the same ones,
/// and a section stored compressed (Debian's debug files) would otherwise be decompressed
/// whole again for every unit a sample lands in.
struct DebugSections {
    read: HashMap<SectionId, SectionBytes>,
}

impl DebugSections {
    /// `elf`'s sections of `READ`: mapped where stored plain, decompressed where not.
    fn read(elf: &Arc<ElfFile>) -> Self {
        Self { read: READ.iter().map(|id| (*id, section(elf, *id))).collect() }
    }

    /// The section's bytes; empty for one not read.
    fn get(&self, id: SectionId) -> SectionBytes {
        self.read.get(&id).cloned().unwrap_or_else(|| SectionBytes::Owned(Arc::from([])))
    }
}

/// The bytes of one DWARF section, borrowed from the mapped file where stored plain; empty
/// when the file has none.
fn section(elf: &Arc<ElfFile>, id: SectionId) -> SectionBytes {
    let file = elf.parsed();
    let Some(section) = file.section_by_name(id.name()) else { return SectionBytes::Owned(Arc::from([])) };
    let stored_plain = section.compressed_file_range().is_ok_and(|r| r.format == object::CompressionFormat::None);
    if stored_plain && let Some((offset, size)) = section.file_range() {
        let end = offset.checked_add(size).and_then(|end| usize::try_from(end).ok());
        let range = usize::try_from(offset).ok().zip(end);
        if let Some((start, end)) = range.filter(|(_, end)| *end <= elf.data().len()) {
            return SectionBytes::Mapped(elf.clone(), start..end);
        }
    }
    match section.uncompressed_data() {
        Ok(Cow::Borrowed(bytes)) => SectionBytes::Owned(Arc::from(bytes)),
        Ok(Cow::Owned(bytes)) => SectionBytes::Owned(Arc::from(bytes)),
        // Compressed in a way `object` is not built to read, or cut short: left out.
        Err(_) => SectionBytes::Owned(Arc::from([])),
    }
}

pub(super) type Reader = EndianReader<RunTimeEndian, SectionBytes>;
pub(super) type Dwarf = gimli::Dwarf<Reader>;

/// A section's bytes that keep the mapping they are in alive, as gimli's owning reader needs.
#[derive(Clone)]
pub(super) enum SectionBytes {
    Mapped(Arc<ElfFile>, Range<usize>),
    /// Decompressed, or empty.
    Owned(Arc<[u8]>),
}

impl SectionBytes {
    /// `range` of these bytes, as bytes of their own (`range` within them).
    fn sub(&self, range: Range<usize>) -> Self {
        match self {
            Self::Mapped(elf, within) => {
                Self::Mapped(elf.clone(), within.start + range.start..within.start + range.end)
            }
            Self::Owned(bytes) => Self::Owned(Arc::from(&bytes[range])),
        }
    }
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
pub(crate) mod tests {
    use super::*;
    use crate::{binary::dwarf, target::mappings};

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
    /// own file and line; the function itself is named as its symbol is. Found through
    /// `.debug_aranges`, and without it (a copy of the binary that has none).
    #[test]
    fn resolves_a_function_and_the_call_inlined_into_it() {
        assert_eq!(caller_of_an_inlined_callee(1), (31 ^ 7) + 1);
        let (exe, start) = own_link_time_address(caller_of_an_inlined_callee as *const () as usize);
        let functions = ElfFile::open(&exe).unwrap().symbols().functions();
        let dir = tempfile::tempdir().unwrap();
        let without_aranges = dir.path().join("no-aranges");
        run(
            "objcopy",
            &["--remove-section".as_ref(), ".debug_aranges".as_ref(), exe.as_ref(), without_aranges.as_ref()],
        );
        for file in [exe, without_aranges] {
            let lines = SourceLines::new(&file);
            let at_start = lines.frames(start);
            let outermost = at_start.first().unwrap_or_else(|| panic!("{start:#x} resolved in {file:?}"));
            assert_eq!(outermost.function, functions.lookup(start), "{at_start:?}");
            assert!(outermost.function.as_deref().is_some_and(|f| f.contains("caller_of_an_inlined_callee")));
            assert!(outermost.file.as_deref().is_some_and(|f| f.ends_with("native_lines.rs")), "{at_start:?}");
            assert!(outermost.line > 0, "{at_start:?}");
            assert!(Arc::ptr_eq(&at_start, &lines.frames(start)), "resolved once");

            let inlined = (start..start + 256)
                .map(|address| lines.frames(address))
                .find(|frames| frames.len() == 2)
                .unwrap_or_else(|| panic!("an address in the inlined call in {file:?}"));
            assert_eq!(inlined[0].function, outermost.function);
            assert!(inlined[1].function.as_deref().is_some_and(|f| f.contains("inlined_callee")), "{inlined:?}");
            assert!(inlined[1].file.as_deref().is_some_and(|f| f.ends_with("native_lines.rs")), "{inlined:?}");
            assert!(inlined[0].line > 0 && inlined[1].line > 0, "{inlined:?}");
            assert!(lines.frames(u64::MAX - 16).is_empty(), "an address no unit covers");
            assert_eq!(lines.failed_lookups(), 0);
        }
    }

    /// Addresses in two compile units (this crate's, and the standard library's), prefetched
    /// side by side, resolve as they do looked up one by one.
    #[test]
    fn prefetched_addresses_resolve_as_looked_up_one_by_one() {
        let (exe, ours) = own_link_time_address(caller_of_an_inlined_callee as *const () as usize);
        let (_, std) = own_link_time_address(std::process::id as *const () as usize);
        let addresses: Vec<u64> = (ours..ours + 64).chain(std..std + 64).collect();
        let prefetched = SourceLines::new(&exe);
        prefetched.prefetch(addresses.iter().copied(), Effort::AllCores);
        assert_eq!(prefetched.resolved(), addresses.len(), "every address resolved ahead");
        let one_by_one = SourceLines::new(&exe);
        for start in [ours, std] {
            assert!(!one_by_one.frames(start).is_empty(), "{start:#x} is covered by DWARF");
        }
        for address in addresses {
            assert_eq!(prefetched.frames(address), one_by_one.frames(address), "at {address:#x}");
        }
        assert_eq!(prefetched.failed_lookups(), 0);
    }

    /// This test binary (built by LLVM: namespaces everywhere, no `DW_AT_sibling`) and the
    /// real Zeek's debug file (GCC) where `cargo xtask setup` installed it (under CI=true it
    /// must have).
    fn test_binaries() -> Vec<PathBuf> {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let zeek = ElfFile::open(Path::new("/usr/local/zeek/bin/zeek")).ok().and_then(|zeek| dwarf::source(&zeek));
        if std::env::var_os("CI").is_some_and(|v| v == "true") {
            assert!(zeek.is_some(), "the real Zeek and its debug file, installed by cargo xtask setup");
        }
        std::iter::once(exe).chain(zeek).collect()
    }

    /// `file`'s DWARF, and addresses spread over its units (sorted, each once, by unit).
    fn units_sampled(file: &Path) -> (DebugSections, Dwarf, Vec<(usize, Vec<u64>)>) {
        let elf = Arc::new(ElfFile::open(file).unwrap());
        let sections = DebugSections::read(&elf);
        let endian = RunTimeEndian::Little;
        let ranges = unit_ranges(EndianReader::new(sections.get(SectionId::DebugAranges), endian)).unwrap();
        let dwarf = load_dwarf(&sections, None, endian, None).unwrap();
        let mut by_unit: HashMap<usize, Vec<u64>> = HashMap::new();
        // Not the code of functions the linker dropped, moved to address 0, where both
        // answer arbitrarily (they overlap): no sample lands in an ELF's first page.
        let code = ranges.iter().filter(|r| r.begin >= 0x1000);
        for (i, range) in code.enumerate().filter(|(i, _)| i % (ranges.len() / 150).max(1) == 0) {
            let step = ((range.end - range.begin) / 7).max(1);
            by_unit
                .entry(range.unit)
                .or_default()
                .extend((0..7).map(|k| range.begin + (k * step + i as u64) % (range.end - range.begin)));
        }
        let units = by_unit
            .into_iter()
            .map(|(unit, mut addresses)| {
                addresses.sort_unstable();
                addresses.dedup();
                (unit, addresses)
            })
            .collect();
        (sections, dwarf, units)
    }

    /// The walk down a unit (`UnitChains`) gives `addr2line`'s chains, at addresses spread over
    /// every unit of the test binaries. It finds the function of nearly every address that
    /// has one.
    #[test]
    fn walked_chains_are_addr2lines() {
        for file in test_binaries() {
            let (sections, dwarf, units) = units_sampled(&file);
            let (mut compared, mut walked) = (0, 0);
            for (unit, addresses) in units {
                let context = unit_context(&sections, None, RunTimeEndian::Little, unit).unwrap();
                let walks = UnitChains::new(&dwarf, unit).unwrap().chains(&addresses).unwrap();
                for (address, walk) in addresses.into_iter().zip(walks) {
                    // addr2line made of one unit cannot follow a reference into another.
                    let Ok(expected) = chain(&context, address) else { continue };
                    compared += 1;
                    if let Some(frames) = walk {
                        walked += 1;
                        assert_eq!(frames, expected, "{}: at {address:#x}", file.display());
                    } else {
                        assert!(
                            expected.is_empty() || expected[0].function.is_none(),
                            "{}: {address:#x}: {expected:?}",
                            file.display()
                        );
                    }
                }
            }
            assert!(compared > 100 && walked * 10 >= compared * 9, "{}: {walked} of {compared} walked", file.display());
        }
    }

    /// A unit read in steps, what was read kept between them, answers as one read at once:
    /// one address, then every other one, then all (some found in what the steps before read,
    /// some by reading on), over every unit of the test binaries. What was read is kept as the
    /// prefetch keeps it (`ParsedUnit`) and as a later process finds it (`UnitIndex`, through
    /// its file): from either, a step answers the same and reads on to the same place.
    #[test]
    fn units_read_in_steps_answer_as_read_at_once() {
        let dir = tempfile::tempdir().unwrap();
        for file in test_binaries() {
            let (_, dwarf, units) = units_sampled(&file);
            let kept_file = KeptUnitsFile::in_dir(dir.path(), &file).unwrap();
            let mut resumed = 0;
            for (unit, addresses) in units {
                let at_once = UnitChains::new(&dwarf, unit).unwrap().chains(&addresses).unwrap();
                let every_other: Vec<u64> = addresses.iter().copied().step_by(2).collect();
                let mut parsed: Option<ParsedUnit> = None;
                for step in [&addresses[addresses.len() / 2..][..1], &every_other, &addresses] {
                    let mut walks = match parsed.take() {
                        Some(parsed) => {
                            resumed += 1;
                            kept_file.store([(unit, parsed.index())], &EarlierUnits::default(), |_| true).unwrap();
                            let index = kept_file.load().take(unit).expect("the unit kept");
                            vec![
                                UnitChains::resume(&dwarf, parsed),
                                UnitChains::from_index(&dwarf, unit, index).unwrap(),
                            ]
                        }
                        None => vec![UnitChains::new(&dwarf, unit).unwrap()],
                    };
                    for walk in &mut walks {
                        let chains = walk.chains(step).unwrap();
                        for (address, chain) in step.iter().zip(chains) {
                            let i = addresses.binary_search(address).unwrap();
                            assert_eq!(chain, at_once[i], "{}: at {address:#x}", file.display());
                        }
                    }
                    let mut read = walks.into_iter().map(UnitChains::into_parsed);
                    parsed = read.next();
                    if let Some(from_index) = read.next() {
                        let here = parsed.as_ref().map(ParsedUnit::index);
                        assert_eq!(Some(from_index.index()), here, "{}: unit {unit:#x} read on alike", file.display());
                    }
                }
            }
            assert!(resumed > 100, "{}: {resumed} steps resumed", file.display());
        }
    }

    /// Runs `program`, which must succeed.
    pub(crate) fn run(program: &str, args: &[&std::ffi::OsStr]) {
        let status = std::process::Command::new(program).args(args).status();
        assert!(status.unwrap_or_else(|e| panic!("{program} runs: {e}")).success(), "{program} {args:?}");
    }

    /// Builds `source` (C) with `-g -O2` into `binary`.
    fn gcc(source: &Path, binary: &Path) {
        run("gcc", &["-g".as_ref(), "-O2".as_ref(), "-o".as_ref(), binary.as_os_str(), source.as_os_str()]);
    }

    /// What `file`'s DWARF resolves at each address of `function`, a symbol of `built`.
    fn frames_over(file: &Path, built: &Path, function: &str) -> Vec<Vec<SourceFrame>> {
        let symbol = ElfFile::open(built).unwrap().symbols().get(function).expect("the function's symbol");
        let lines = SourceLines::new(file);
        (symbol.address..symbol.address + symbol.size.max(1)).map(|a| lines.frames(a).to_vec()).collect()
    }

    /// Debian's debug packages (`libc6-dbg`, the `-dbgsym` ones) store their DWARF compressed
    /// (`SHF_COMPRESSED`): a program's lines read the same from copies compressed with zlib
    /// and with zstd as from the plain file.
    #[test]
    fn reads_debug_sections_stored_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("compressed.c");
        std::fs::write(
            &source,
            "static inline __attribute__((always_inline)) int callee(int x) { return (x * 31) ^ 7; }\n\
             __attribute__((noinline)) int caller(int x) { return callee(x) + 1; }\n\
             int main(int argc, char **argv) { (void)argv; return caller(argc); }\n",
        )
        .unwrap();
        let plain = dir.path().join("plain");
        gcc(&source, &plain);
        let expected = frames_over(&plain, &plain, "caller");
        assert!(expected.iter().any(|frames| frames.len() == 2), "the inlined call is seen: {expected:?}");
        for format in ["zlib", "zstd"] {
            let compressed = dir.path().join(format);
            let flag = format!("--compress-debug-sections={format}");
            run("objcopy", &[flag.as_ref(), plain.as_os_str(), compressed.as_os_str()]);
            let elf = ElfFile::open(&compressed).unwrap();
            let info = elf.parsed().section_by_name(".debug_info").map(|s| s.compressed_file_range().unwrap().format);
            assert!(info.is_some_and(|f| f != object::CompressionFormat::None), "{format}: stored compressed");
            assert_eq!(frames_over(&compressed, &plain, "caller"), expected, "{format}");

            // Each unit's context is made of the same sections: decompressed once, shared.
            assert!(elf.parsed().section_by_name(".debug_loclists").is_some(), "{format}: gcc -O2 wrote them");
            let sections = DebugSections::read(&Arc::new(elf));
            let info = sections.get(SectionId::DebugInfo);
            assert!(!info.is_empty(), "{format}");
            assert_eq!(info.as_ptr(), sections.get(SectionId::DebugInfo).as_ptr(), "{format}: decompressed once");
            // Variables' locations, which addr2line never reads, are not decompressed at all.
            assert!(sections.get(SectionId::DebugLocLists).is_empty(), "{format}");
        }
    }

    /// Debian's `-dbgsym` files have been through `dwz`, which moves what several files share
    /// (types, the abstract instances of inlined functions) into one file of its own that each
    /// refers to by `.gnu_debugaltlink`: an inlined call is named through it as in the file
    /// before `dwz`.
    #[test]
    fn names_inlined_calls_through_the_dwz_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("shared.h"),
            "struct point { int x, y; };\n\
             static inline __attribute__((always_inline)) int mix(struct point p) { return (p.x * 31) ^ p.y; }\n",
        )
        .unwrap();
        let (mut plain, mut shrunk) = (Vec::new(), Vec::new());
        for name in ["one", "two"] {
            let source = dir.path().join(format!("{name}.c"));
            std::fs::write(
                &source,
                format!(
                    "#include \"shared.h\"\n\
                     __attribute__((noinline)) int caller_{name}(int x) {{ struct point p = {{ x, 7 }}; return mix(p) + 1; }}\n\
                     int main(int argc, char **argv) {{ (void)argv; return caller_{name}(argc); }}\n"
                ),
            )
            .unwrap();
            let binary = dir.path().join(name);
            gcc(&source, &binary);
            let copy = dir.path().join(format!("{name}.plain"));
            std::fs::copy(&binary, &copy).unwrap();
            plain.push(copy);
            shrunk.push(binary);
        }
        let common = dir.path().join("common.debug");
        let (m, common) = ("-m".as_ref(), common.as_os_str());
        run("dwz", &[m, common, "-M".as_ref(), common, shrunk[0].as_os_str(), shrunk[1].as_os_str()]);
        assert_eq!(ElfFile::open(&shrunk[0]).unwrap().dwz_file().as_deref(), Some(Path::new(common)), "linked");
        let expected = frames_over(&plain[0], &plain[0], "caller_one");
        let inlined = expected.iter().find(|frames| frames.len() == 2).expect("the inlined call is seen");
        assert_eq!(inlined[1].function.as_deref(), Some("mix"), "{inlined:?}");
        assert_eq!(frames_over(&shrunk[0], &plain[0], "caller_one"), expected);
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
        let sections = [".debug_info", ".debug_abbrev", ".debug_aranges"]
            .map(|name| format!("--add-section={name}={}", garbage.display()));
        let mut args: Vec<&std::ffi::OsStr> = sections.iter().map(|a| a.as_ref()).collect();
        args.extend([std::ffi::OsStr::new("/bin/true"), bad_dwarf.as_os_str()]);
        run("objcopy", &args);
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
