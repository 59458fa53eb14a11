//! The chain of calls inlined at an address, read from its compile unit by walking down to it:
//! the function whose ranges hold the address is looked for among the unit's top-level DIEs
//! (and its namespaces'), each other DIE skipped whole (GCC's `DW_AT_sibling` jumps over a
//! class's members, a declaration's parameters); then only that function's subtree is read.
//! `addr2line` reads every DIE of the unit to index all its functions first: for a real
//! Zeek's units, megabytes each, 2-3 times the work when a report wants a few addresses of
//! them. What was read of a unit is kept (`ParsedUnit`): its later addresses are found in it,
//! or by reading on from where the last lookup stopped.
//!
//! The chains are `addr2line`'s, the same names, files and lines (its rules are followed
//! here, and tested against it): where the walk finds no function (one nested where it does
//! not look), the caller asks `addr2line`.
use std::{borrow::Cow, collections::HashMap, ops::Range};

use gimli::{AttributeValue, DebuggingInformationEntry, EntriesTreeNode, Reader as _, Unit, UnitOffset};

use super::native_lines::{Dwarf, Reader, SourceFrame};

/// How many `DW_AT_abstract_origin`/`DW_AT_specification` links a name is followed through,
/// as `addr2line` does.
const NAME_LINKS: usize = 16;

/// One compile unit, parsed as far as its addresses need.
pub(super) struct UnitChains<'a> {
    dwarf: &'a Dwarf,
    parsed: ParsedUnit,
}

/// A compile unit as far as it has been read, kept between lookups: a running command's
/// samples land in the same units again (a third of a trivial real Zeek run's units were
/// parsed twice or more). Its DIEs and line table are read in one order, each until every
/// address asked for is found; what was read answers later addresses, and reading goes on
/// from where it stopped for the others: a unit is read at most once (but for the namespace
/// pass, which starts over when it must look further).
pub(super) struct ParsedUnit {
    unit: Unit<Reader>,
    /// File paths by index in the line table, rendered on first use.
    files: HashMap<u64, Option<String>>,
    demangled: HashMap<String, String>,
    /// The ranges of the subprograms read, in the order `functions_at` reads them: the
    /// top-level ones, then (once every top-level one is read) those in namespaces.
    functions: Vec<FunctionSpan>,
    /// The next top-level DIE to read; `None` once all are.
    next_top_level: Option<UnitOffset>,
    /// How many of `functions` are top-level ones, once all are.
    top_level: usize,
    /// Whether the namespace pass read to its end.
    namespaces_read: bool,
    /// The line table's rows read, as address spans and their (file index, line), in order.
    rows: Vec<RowSpan>,
    /// Where reading the line table stopped; `None` once read to its end (or none).
    rows_left: Option<Box<RowsLeft>>,
}

/// The rest of a line table, and its last row read (address, file index, line) if its
/// sequence goes on: it holds the addresses from its own up to the next row's.
struct RowsLeft {
    rows: gimli::LineRows<Reader, gimli::IncompleteLineProgram<Reader>, usize>,
    previous: Option<(u64, u64, u32)>,
    /// How many rows of the table were read (`UnitIndex::rows_read`).
    read: u64,
    /// Rows whose spans were kept by an earlier process (`UnitChains::from_index`): read again
    /// without being kept twice, to stand where it stopped.
    known: u64,
}

/// What was read of a unit, without the unit: where its subprograms and line rows are and where
/// reading stopped. It outlives the process (`kept_units_file`): in the same file, a later
/// process's lookups start from it as from a `ParsedUnit`.
/// A subprogram's range and its DIE.
pub(super) type FunctionSpan = (Range<u64>, UnitOffset);
/// A line-table row's addresses and its (file index, line).
pub(super) type RowSpan = (Range<u64>, (u64, u32));

/// Borrowed from a `ParsedUnit` to be written, owned when read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UnitIndex<'a> {
    pub functions: Cow<'a, [FunctionSpan]>,
    pub next_top_level: Option<UnitOffset>,
    pub top_level: usize,
    pub namespaces_read: bool,
    pub rows: Cow<'a, [RowSpan]>,
    /// How many line-table rows were read; `None` once the table was read to its end.
    pub rows_read: Option<u64>,
}

impl UnitIndex<'_> {
    /// How many spans it holds (as `ParsedUnit::spans`).
    pub(super) fn spans(&self) -> usize {
        self.functions.len() + self.rows.len()
    }
}

impl ParsedUnit {
    fn new(unit: Unit<Reader>) -> Result<Self, gimli::Error> {
        // The root's first child, where the top-level DIEs start.
        let mut entries = unit.entries();
        let first_child = if entries.next_entry()? && entries.current().is_some_and(|root| root.has_children()) {
            entries.next_entry()?;
            entries.current().map(|child| child.offset())
        } else {
            None
        };
        let rows_left = unit
            .line_program
            .clone()
            .map(|program| Box::new(RowsLeft { rows: program.rows(), previous: None, read: 0, known: 0 }));
        Ok(Self {
            unit,
            files: HashMap::new(),
            demangled: HashMap::new(),
            functions: Vec::new(),
            next_top_level: first_child,
            top_level: 0,
            namespaces_read: false,
            rows: Vec::new(),
            rows_left,
        })
    }

    /// How many spans it keeps: what its memory grows with.
    pub(super) fn spans(&self) -> usize {
        self.functions.len() + self.rows.len()
    }

    /// What was read of it, to outlive the process.
    pub(super) fn index(&self) -> UnitIndex<'_> {
        UnitIndex {
            functions: Cow::Borrowed(&self.functions),
            next_top_level: self.next_top_level,
            top_level: self.top_level,
            namespaces_read: self.namespaces_read,
            rows: Cow::Borrowed(&self.rows),
            // Restored and not read on yet, it stands where the earlier process stopped.
            rows_read: self.rows_left.as_ref().map(|left| left.read.max(left.known)),
        }
    }
}

/// A subprogram met by a walk: the addresses its ranges hold have their function, and its
/// ranges are noted in `met`, in walk order.
fn meet_subprogram(
    dwarf: &Dwarf,
    unit: &Unit<Reader>,
    entry: &DebuggingInformationEntry<Reader>,
    found: &mut Found<UnitOffset>,
    met: &mut Vec<FunctionSpan>,
) -> Result<(), gimli::Error> {
    let mut ranges = dwarf.die_ranges(unit, entry)?;
    while let Some(range) = ranges.next()? {
        found.fill(range.begin..range.end, entry.offset());
        met.push((range.begin..range.end, entry.offset()));
    }
    Ok(())
}

/// Gives each of `found`'s addresses the value of the first of `spans` that holds it.
fn answer<T: Copy>(spans: &[(Range<u64>, T)], found: &mut Found<T>) {
    for (range, value) in spans {
        if found.missing == 0 {
            break;
        }
        found.fill(range.clone(), *value);
    }
}

/// One level of the chain before it is named: its function's name still as DWARF has it.
#[derive(Clone)]
struct Level {
    name: Option<Reader>,
    /// Where in it the next level (or the address) is: a file index and a line.
    call_file: Option<u64>,
    call_line: u32,
}

impl<'a> UnitChains<'a> {
    /// The unit at `offset` in `.debug_info`.
    pub(super) fn new(dwarf: &'a Dwarf, offset: usize) -> Result<Self, gimli::Error> {
        let header = dwarf.debug_info.header_from_offset(gimli::DebugInfoOffset(offset))?;
        let parsed = ParsedUnit::new(dwarf.unit(header)?)?;
        Ok(Self { dwarf, parsed })
    }

    /// Goes on with a unit of `dwarf` read before.
    pub(super) fn resume(dwarf: &'a Dwarf, parsed: ParsedUnit) -> Self {
        Self { dwarf, parsed }
    }

    /// Goes on with the unit at `offset`, read by an earlier process as far as `index` says.
    /// Its line table, if it must be read further, is read again from its start (its rows
    /// known from `index` are not kept twice).
    pub(super) fn from_index(dwarf: &'a Dwarf, offset: usize, index: UnitIndex<'_>) -> Result<Self, gimli::Error> {
        let Self { dwarf, mut parsed } = Self::new(dwarf, offset)?;
        parsed.functions = index.functions.into_owned();
        parsed.next_top_level = index.next_top_level;
        parsed.top_level = index.top_level;
        parsed.namespaces_read = index.namespaces_read;
        parsed.rows = index.rows.into_owned();
        match index.rows_read {
            Some(read) => {
                if let Some(left) = parsed.rows_left.as_mut() {
                    left.known = read;
                }
            }
            None => parsed.rows_left = None,
        }
        Ok(Self { dwarf, parsed })
    }

    /// What has been read of the unit, to resume later.
    pub(super) fn into_parsed(self) -> ParsedUnit {
        self.parsed
    }

    /// The chains at `addresses` (sorted, each once), each outermost first (as
    /// `native_lines::SourceLines::frames` gives it); `None` for one the walk finds no
    /// function for. The unit's DIEs and line table are read only until every address is found.
    pub(super) fn chains(&mut self, addresses: &[u64]) -> Result<Vec<Option<Vec<SourceFrame>>>, gimli::Error> {
        let functions = self.functions_at(addresses)?;
        let rows = self.rows_at(addresses)?;
        // A function's subtree is walked once for all its addresses (samples land on a hot
        // function's instructions again and again).
        let mut by_function: HashMap<UnitOffset, Vec<usize>> = HashMap::new();
        for (i, function) in functions.iter().enumerate() {
            if let Some(function) = function {
                by_function.entry(*function).or_default().push(i);
            }
        }
        let mut chains = vec![None; addresses.len()];
        for (function, indices) in by_function {
            let held: Vec<(u64, Option<(u64, u32)>)> = indices.iter().map(|i| (addresses[*i], rows[*i])).collect();
            for (i, chain) in indices.into_iter().zip(self.chains_in(function, &held)?) {
                chains[i] = Some(chain);
            }
        }
        Ok(chains)
    }

    /// The file index and line of the line-table row that holds each of `addresses` (sorted),
    /// as `addr2line` finds it: the last row at or before it (of rows at one address, the
    /// last) in a sequence that holds it. The table is read on until every address is found.
    fn rows_at(&mut self, addresses: &[u64]) -> Result<Vec<Option<(u64, u32)>>, gimli::Error> {
        let mut found = Found::new(addresses);
        let parsed = &mut self.parsed;
        answer(&parsed.rows, &mut found);
        while found.missing > 0
            && let Some(left) = parsed.rows_left.as_mut()
        {
            let Some((_, row)) = left.rows.next_row()? else {
                parsed.rows_left = None;
                break;
            };
            left.read += 1;
            if let Some((start, file, line)) = left.previous
                && start < row.address()
                && left.read > left.known
            {
                found.fill(start..row.address(), (file, line));
                parsed.rows.push((start..row.address(), (file, line)));
            }
            left.previous = (!row.end_sequence())
                .then(|| (row.address(), row.file_index(), row.line().map_or(0, |l| l.get()) as u32));
        }
        Ok(found.values)
    }

    /// The chains at `addresses` in `function`, each with its line-table row (file index,
    /// line), in the order given.
    fn chains_in(
        &mut self,
        function: UnitOffset,
        addresses: &[(u64, Option<(u64, u32)>)],
    ) -> Result<Vec<Vec<SourceFrame>>, gimli::Error> {
        let mut tree = self.parsed.unit.entries_tree(Some(function))?;
        let root = tree.root()?;
        let outermost = Level { name: self.name_of(root.entry())?, call_file: None, call_line: 0 };
        let mut levels = vec![vec![outermost]; addresses.len()];
        let at: Vec<u64> = addresses.iter().map(|(address, _)| *address).collect();
        self.inlined_at(root, &at, &(0..at.len()).collect::<Vec<_>>(), &mut levels)?;
        let mut chains = Vec::with_capacity(addresses.len());
        for ((_, row), levels) in addresses.iter().zip(levels) {
            chains.push(self.named(&levels, *row)?);
        }
        Ok(chains)
    }

    /// The frames of a chain's `levels` at an address whose line-table row (file index, line)
    /// is `row`.
    fn named(&mut self, levels: &[Level], row: Option<(u64, u32)>) -> Result<Vec<SourceFrame>, gimli::Error> {
        // The innermost level runs the line the line table gives; each outer one the line of
        // the call inlined into it.
        let (file, line) = match row {
            Some((file_index, line)) => (self.file(file_index)?, line),
            None => (None, 0),
        };
        let mut frames = Vec::with_capacity(levels.len());
        for (i, level) in levels.iter().enumerate() {
            let (file, line) = match levels.get(i + 1) {
                Some(inner) => (inner.call_file.map(|index| self.file(index)).transpose()?.flatten(), inner.call_line),
                None => (file.clone(), line),
            };
            let function = level.name.as_ref().map(|name| self.demangle(name)).transpose()?;
            frames.push(SourceFrame { function, file, line });
        }
        Ok(frames)
    }

    /// The subprogram whose ranges hold each of `addresses` (sorted): among the unit's
    /// top-level DIEs first, then among its namespaces' (the first in that order, should two).
    /// A C++ unit's namespaces hold the declarations of every header it includes, `std`'s
    /// alone thousands of DIEs, and the out-of-line definitions of member functions (most of
    /// Zeek's code) are top-level DIEs: looked for before the namespaces are walked, most
    /// addresses are found stepping over each namespace whole (GCC's `DW_AT_sibling`). What
    /// earlier lookups read answers first; reading goes on from where they stopped.
    fn functions_at(&mut self, addresses: &[u64]) -> Result<Vec<Option<UnitOffset>>, gimli::Error> {
        let mut found = Found::new(addresses);
        answer(&self.parsed.functions, &mut found);
        self.read_top_level(&mut found)?;
        if found.missing > 0 && self.parsed.next_top_level.is_none() && !self.parsed.namespaces_read {
            // The namespaces read before did not hold them all: read from the first again.
            let mut met = std::mem::take(&mut self.parsed.functions);
            met.truncate(self.parsed.top_level);
            let walked = self.parsed.unit.entries_tree(None).and_then(|mut tree| {
                let root = tree.root()?;
                self.functions_under(root, &mut found, &mut met, false)
            });
            self.parsed.functions = met;
            walked?;
            self.parsed.namespaces_read = found.missing > 0;
        }
        Ok(found.values)
    }

    /// Reads the unit's top-level subprograms on from where reading stopped, until every
    /// address has its function or every one is read.
    fn read_top_level(&mut self, found: &mut Found<UnitOffset>) -> Result<(), gimli::Error> {
        let Some(next) = self.parsed.next_top_level else { return Ok(()) };
        let parsed = &mut self.parsed;
        let mut entries = parsed.unit.entries_at_offset(next)?;
        entries.next_entry()?;
        while let Some(entry) = entries.current() {
            if found.missing == 0 {
                parsed.next_top_level = Some(entry.offset());
                return Ok(());
            }
            if entry.tag == gimli::DW_TAG_subprogram {
                meet_subprogram(self.dwarf, &parsed.unit, entry, found, &mut parsed.functions)?;
            }
            if entries.next_sibling()?.is_none() {
                break;
            }
        }
        parsed.next_top_level = None;
        parsed.top_level = parsed.functions.len();
        Ok(())
    }

    /// Walks `node`'s children until every address has its function, noting the ranges of the
    /// subprograms in namespaces in `met` (`in_namespace`: `node` is one).
    fn functions_under(
        &self,
        node: EntriesTreeNode<Reader>,
        found: &mut Found<UnitOffset>,
        met: &mut Vec<FunctionSpan>,
        in_namespace: bool,
    ) -> Result<(), gimli::Error> {
        let mut children = node.children();
        while found.missing > 0
            && let Some(child) = children.next()?
        {
            match child.entry().tag {
                gimli::DW_TAG_subprogram if in_namespace => {
                    meet_subprogram(self.dwarf, &self.parsed.unit, child.entry(), found, met)?
                }
                gimli::DW_TAG_namespace => self.functions_under(child, found, met, true)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Descends from `node` into the inlined call whose ranges hold each of the `active`
    /// addresses (indices into `addresses`), if any, and on into the calls inlined into it
    /// (through lexical blocks too; not into nested functions), each level found pushed onto
    /// the address's `levels`. Each address takes the first such call in the order of the
    /// DIEs, as when looked up alone. Returns the addresses found below `node`.
    fn inlined_at(
        &self,
        node: EntriesTreeNode<Reader>,
        addresses: &[u64],
        active: &[usize],
        levels: &mut [Vec<Level>],
    ) -> Result<Vec<usize>, gimli::Error> {
        let mut active = active.to_vec();
        let mut found = Vec::new();
        let mut children = node.children();
        while !active.is_empty()
            && let Some(child) = children.next()?
        {
            let inside = match child.entry().tag {
                gimli::DW_TAG_subprogram => continue,
                gimli::DW_TAG_inlined_subroutine => {
                    let held = self.held(child.entry(), addresses, &active)?;
                    if !held.is_empty() {
                        let level = self.inlined_level(child.entry())?;
                        for i in &held {
                            levels[*i].push(level.clone());
                        }
                        self.inlined_at(child, addresses, &held, levels)?;
                    }
                    held
                }
                _ => self.inlined_at(child, addresses, &active, levels)?,
            };
            active.retain(|i| !inside.contains(i));
            found.extend(inside);
        }
        Ok(found)
    }

    /// Which of the `active` addresses `entry`'s ranges hold.
    fn held(
        &self,
        entry: &DebuggingInformationEntry<Reader>,
        addresses: &[u64],
        active: &[usize],
    ) -> Result<Vec<usize>, gimli::Error> {
        let mut ranges = Vec::new();
        let mut entry_ranges = self.dwarf.die_ranges(&self.parsed.unit, entry)?;
        while let Some(range) = entry_ranges.next()? {
            ranges.push(range.begin..range.end);
        }
        Ok(active.iter().copied().filter(|i| ranges.iter().any(|range| range.contains(&addresses[*i]))).collect())
    }

    /// An inlined call: its name, and where it was called from (a call file of index 0 means
    /// none before DWARF 5, as `addr2line` reads it).
    fn inlined_level(&self, entry: &DebuggingInformationEntry<Reader>) -> Result<Level, gimli::Error> {
        let mut level = Level { name: self.name_of(entry)?, call_file: None, call_line: 0 };
        for attr in entry.attrs() {
            match attr.name() {
                gimli::DW_AT_call_file => {
                    if let AttributeValue::FileIndex(index) = attr.value()
                        && (index > 0 || self.parsed.unit.header.version() >= 5)
                    {
                        level.call_file = Some(index);
                    }
                }
                gimli::DW_AT_call_line => level.call_line = attr.udata_value().unwrap_or(0) as u32,
                _ => {}
            }
        }
        Ok(level)
    }

    /// A function's or inlined call's name, by `addr2line`'s rules: its linkage name, else
    /// its name, else (seen before either) the name of what it refers to, in attribute order.
    fn name_of(&self, entry: &DebuggingInformationEntry<Reader>) -> Result<Option<Reader>, gimli::Error> {
        let mut name = None;
        for attr in entry.attrs() {
            match attr.name() {
                gimli::DW_AT_linkage_name | gimli::DW_AT_MIPS_linkage_name => {
                    if let Ok(value) = self.dwarf.attr_string(&self.parsed.unit, attr.value()) {
                        name = Some(value);
                    }
                }
                gimli::DW_AT_name if name.is_none() => {
                    name = self.dwarf.attr_string(&self.parsed.unit, attr.value()).ok()
                }
                gimli::DW_AT_abstract_origin | gimli::DW_AT_specification if name.is_none() => {
                    name = referred_name(self.dwarf, &self.parsed.unit, attr.value(), NAME_LINKS)?;
                }
                _ => {}
            }
        }
        Ok(name)
    }

    /// The path of the line table's file `index`, as `addr2line` renders it: the unit's
    /// directory, the file's directory, its name (each absolute one starting over).
    fn file(&mut self, index: u64) -> Result<Option<String>, gimli::Error> {
        if let Some(path) = self.parsed.files.get(&index) {
            return Ok(path.clone());
        }
        let path = match self.parsed.unit.line_program.as_ref().map(|program| program.header()) {
            Some(header) => match header.file(index) {
                Some(file) => {
                    let mut path = match &self.parsed.unit.comp_dir {
                        Some(dir) => dir.to_string_lossy()?.into_owned(),
                        None => String::new(),
                    };
                    if file.directory_index() != 0
                        && let Some(directory) = file.directory(header)
                    {
                        path_push(&mut path, &self.dwarf.attr_string(&self.parsed.unit, directory)?.to_string_lossy()?);
                    }
                    path_push(
                        &mut path,
                        &self.dwarf.attr_string(&self.parsed.unit, file.path_name())?.to_string_lossy()?,
                    );
                    Some(path)
                }
                // DWARF 4 has no file 0; `addr2line` names it "".
                None if index == 0 => Some(String::new()),
                None => None,
            },
            None => None,
        };
        self.parsed.files.insert(index, path.clone());
        Ok(path)
    }

    /// Demangled once per unit: its rows repeat the same few functions.
    fn demangle(&mut self, raw: &Reader) -> Result<String, gimli::Error> {
        let raw: Cow<'_, str> = raw.to_string_lossy()?;
        if let Some(name) = self.parsed.demangled.get(raw.as_ref()) {
            return Ok(name.clone());
        }
        let name = crate::binary::symbols::demangle(&raw);
        self.parsed.demangled.insert(raw.into_owned(), name.clone());
        Ok(name)
    }
}

/// The name of the DIE `value` refers to, by `addr2line`'s rules for a referred DIE: its
/// linkage name at once, else its name, else what it refers to in turn. A reference into
/// another unit is not followed (GCC writes none without LTO; `addr2line` made of one unit
/// could not follow it either); one into the `dwz` file is, within the unit it falls in.
fn referred_name(
    dwarf: &Dwarf,
    unit: &Unit<Reader>,
    value: AttributeValue<Reader>,
    links: usize,
) -> Result<Option<Reader>, gimli::Error> {
    if links == 0 {
        return Ok(None);
    }
    match value {
        AttributeValue::UnitRef(offset) => entry_name(dwarf, unit, offset, links),
        AttributeValue::DebugInfoRefSup(offset) => {
            let Some(sup) = dwarf.sup() else { return Ok(None) };
            let Some((sup_unit, offset)) = unit_holding(sup, offset)? else { return Ok(None) };
            entry_name(sup, &sup_unit, offset, links)
        }
        _ => Ok(None),
    }
}

fn entry_name(
    dwarf: &Dwarf,
    unit: &Unit<Reader>,
    offset: UnitOffset,
    links: usize,
) -> Result<Option<Reader>, gimli::Error> {
    let entry = unit.entry(offset)?;
    let (mut name, mut next) = (None, None);
    for attr in entry.attrs() {
        match attr.name() {
            gimli::DW_AT_linkage_name | gimli::DW_AT_MIPS_linkage_name => {
                if let Ok(value) = dwarf.attr_string(unit, attr.value()) {
                    return Ok(Some(value));
                }
            }
            gimli::DW_AT_name => {
                if let Ok(value) = dwarf.attr_string(unit, attr.value()) {
                    name = Some(value);
                }
            }
            gimli::DW_AT_abstract_origin | gimli::DW_AT_specification => next = Some(attr.value()),
            _ => {}
        }
    }
    match (name, next) {
        (Some(name), _) => Ok(Some(name)),
        (None, Some(next)) => referred_name(dwarf, unit, next, links - 1),
        (None, None) => Ok(None),
    }
}

/// The unit of `dwarf` that holds `.debug_info` offset `offset`, and the offset within it.
fn unit_holding(
    dwarf: &Dwarf,
    offset: gimli::DebugInfoOffset,
) -> Result<Option<(Unit<Reader>, UnitOffset)>, gimli::Error> {
    let mut headers = dwarf.units();
    while let Some(header) = headers.next()? {
        if let Some(within) = offset.to_unit_offset(&header) {
            return Ok(Some((dwarf.unit(header)?, within)));
        }
    }
    Ok(None)
}

/// What was found for each of some sorted addresses, the first find kept.
struct Found<'a, T> {
    addresses: &'a [u64],
    values: Vec<Option<T>>,
    /// How many have nothing yet.
    missing: usize,
}

impl<'a, T: Copy> Found<'a, T> {
    fn new(addresses: &'a [u64]) -> Self {
        Self { addresses, values: vec![None; addresses.len()], missing: addresses.len() }
    }

    /// Gives `value` to the addresses in `range` that have nothing yet (an empty range holds
    /// none).
    fn fill(&mut self, range: std::ops::Range<u64>, value: T) {
        let first = self.addresses.partition_point(|a| *a < range.start);
        let held = self.addresses[first..].iter().take_while(|a| range.contains(a)).count();
        for slot in self.values[first..first + held].iter_mut().filter(|slot| slot.is_none()) {
            *slot = Some(value);
            self.missing -= 1;
        }
    }
}

/// `addr2line`'s join: an absolute part replaces what is there.
fn path_push(path: &mut String, part: &str) {
    let absolute = |p: &str| p.starts_with('/') || p.starts_with('\\') || matches!(p.get(1..3), Some(":/" | ":\\"));
    if absolute(part) {
        *path = part.to_owned();
    } else {
        let separator = if path.starts_with('\\') || path.get(1..3) == Some(":\\") { '\\' } else { '/' };
        if !path.is_empty() && !path.ends_with(separator) {
            path.push(separator);
        }
        path.push_str(part);
    }
}
