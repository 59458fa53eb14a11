//! Member offsets from DWARF, the first source of layouts: Zeek's default build type
//! (RelWithDebInfo) has it, in the binary or in a separate debug file found by build-id or
//! `.gnu_debuglink`. The version table is the fallback, and is checked against it.
//!
//! A RelWithDebInfo Zeek carries ~360 MB of DWARF, of which a handful of compile units define
//! the classes wanted. The file is mapped (`ElfFile`: nothing is copied), and the units are walked in the
//! order most likely to hold them: first those `.debug_aranges` names for an out-of-line member
//! function of each wanted class (GCC defines a class with a vtable in full only in the unit of
//! its key function), then the rest, stopping as soon as every wanted field is found.
use std::{
    borrow::Cow,
    collections::HashMap,
    path::{Path, PathBuf},
};

use gimli::{AttributeValue, DebugInfoOffset, DwTag, EndianSlice, RunTimeEndian, SectionId, constants};
use object::{Object, ObjectSection};

use super::{
    elf::{ElfError, ElfFile},
    symbols::SymbolIndex,
};

/// A class's member, or the class's size when `member` is empty.
pub type Field = (&'static str, &'static str);

#[derive(Debug, thiserror::Error)]
pub enum DwarfError {
    #[error(transparent)]
    Open(#[from] ElfError),
    #[error("{path}: unreadable debug information")]
    Parse { path: PathBuf, source: Box<dyn std::error::Error + Send + Sync> },
}

/// Offsets found in DWARF, and the file they came from.
#[derive(Debug, Clone)]
pub struct DwarfOffsets {
    pub file: PathBuf,
    values: HashMap<Field, u32>,
}

impl DwarfOffsets {
    pub fn get(&self, field: Field) -> Option<u32> {
        self.values.get(&field).copied()
    }

    /// Every offset found, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = (Field, u32)> + '_ {
        self.values.iter().map(|(field, offset)| (*field, *offset))
    }

    /// Offsets given directly (tests).
    pub fn from_values(file: PathBuf, values: HashMap<Field, u32>) -> Self {
        Self { file, values }
    }
}

/// Where `binary`'s debug information is: the binary itself, or its separate debug file;
/// `None` when there is none anywhere.
pub fn source(binary: &ElfFile) -> Option<PathBuf> {
    let file = binary.parsed();
    if file.section_by_name(".debug_info").is_some() {
        return Some(binary.path().to_owned());
    }
    binary.separate_debug_file()
}

/// Reads the `wanted` fields from `source` (found by `source`), which is `binary` itself or its
/// separate debug file. `hints` are link-time addresses of code whose compile units probably
/// define the wanted classes: they are walked first.
pub fn read(binary: &ElfFile, source: &Path, wanted: &[Field], hints: &[u64]) -> Result<DwarfOffsets, DwarfError> {
    if source == binary.path() {
        return offsets_in(&binary.parsed(), source, wanted, hints);
    }
    let debug = ElfFile::open(source)?;
    offsets_in(&debug.parsed(), source, wanted, hints)
}

fn offsets_in<'a, R: object::ReadRef<'a>>(
    file: &object::File<'a, R>,
    path: &Path,
    wanted: &[Field],
    hints: &[u64],
) -> Result<DwarfOffsets, DwarfError> {
    let parse_err = |e: gimli::Error| DwarfError::Parse { path: path.to_owned(), source: Box::new(e) };
    let endian = if file.is_little_endian() { RunTimeEndian::Little } else { RunTimeEndian::Big };
    // Borrowed from the mapping, except sections stored compressed.
    let sections = gimli::DwarfSections::load(|id: SectionId| -> Result<Cow<'a, [u8]>, gimli::Error> {
        Ok(file.section_by_name(id.name()).and_then(|s| s.uncompressed_data().ok()).unwrap_or(Cow::Borrowed(&[])))
    })
    .map_err(parse_err)?;
    let dwarf = sections.borrow(|section| EndianSlice::new(section, endian));

    let mut values = HashMap::new();
    let hinted = units_covering(&dwarf, hints).map_err(parse_err)?;
    let mut walk = |header| -> Result<bool, gimli::Error> {
        let unit = dwarf.unit(header)?;
        collect_unit(&dwarf, &unit, wanted, &mut values)?;
        Ok(wanted.iter().all(|field| values.contains_key(field)))
    };
    let mut complete = wanted.is_empty();
    for offset in &hinted {
        if complete {
            break;
        }
        complete = walk(dwarf.debug_info.header_from_offset(*offset).map_err(parse_err)?).map_err(parse_err)?;
    }
    let mut units = dwarf.units();
    while !complete && let Some(header) = units.next().map_err(parse_err)? {
        // `units()` walks `.debug_info`, where unit offsets are section offsets.
        if hinted.contains(&DebugInfoOffset(header.offset().0)) {
            continue;
        }
        complete = walk(header).map_err(parse_err)?;
    }
    Ok(DwarfOffsets { file: path.to_owned(), values })
}

/// Where to look first for `wanted`: an out-of-line member function of each wanted class.
pub fn unit_hints(wanted: &[Field], symbols: &SymbolIndex) -> Vec<u64> {
    let mut classes: Vec<&str> = wanted.iter().map(|(class, _)| *class).collect();
    classes.sort_unstable();
    classes.dedup();
    classes.into_iter().filter_map(|class| symbols.out_of_line_member(class)).collect()
}

/// The compile units whose code covers `addresses`, in their order, each once.
fn units_covering(dwarf: &gimli::Dwarf<Reader<'_>>, addresses: &[u64]) -> Result<Vec<DebugInfoOffset>, gimli::Error> {
    let mut found: Vec<(usize, DebugInfoOffset)> = Vec::new();
    let mut headers = dwarf.debug_aranges.headers();
    while let Some(header) = headers.next()? {
        let mut entries = header.entries();
        while let Some(entry) = entries.next()? {
            let range = entry.range();
            for (rank, address) in addresses.iter().enumerate() {
                if (range.begin..range.end).contains(address) {
                    found.push((rank, header.debug_info_offset()));
                }
            }
        }
    }
    found.sort_by_key(|(rank, _)| *rank);
    let mut units: Vec<DebugInfoOffset> = Vec::new();
    for (_, offset) in found {
        if !units.contains(&offset) {
            units.push(offset);
        }
    }
    Ok(units)
}

type Reader<'a> = EndianSlice<'a, RunTimeEndian>;

/// Walks one unit's DIE tree, keeping the enclosing namespaces and classes, and records the
/// wanted members of complete class definitions.
fn collect_unit(
    dwarf: &gimli::Dwarf<Reader<'_>>,
    unit: &gimli::Unit<Reader<'_>>,
    wanted: &[Field],
    values: &mut HashMap<Field, u32>,
) -> Result<(), gimli::Error> {
    // (depth, scope name or None for a scope that does not name anything we want)
    let mut scopes: Vec<(isize, Option<String>)> = Vec::new();
    let mut entries = unit.entries();
    while let Some(entry) = entries.next_dfs()? {
        let depth = entry.depth();
        while scopes.last().is_some_and(|(d, _)| *d >= depth) {
            scopes.pop();
        }
        let tag = entry.tag();
        let name = || -> Option<String> {
            let attr = entry.attr_value(constants::DW_AT_name)?;
            let s = dwarf.attr_string(unit, attr).ok()?;
            Some(s.to_string_lossy().into_owned())
        };
        let qualified = |scopes: &[(isize, Option<String>)], last: &str| {
            let mut parts: Vec<&str> = scopes.iter().filter_map(|(_, n)| n.as_deref()).collect();
            parts.push(last);
            parts.join("::")
        };
        if is_scope(tag) {
            let declaration =
                matches!(entry.attr_value(constants::DW_AT_declaration), Some(AttributeValue::Flag(true)));
            let own = name();
            if let (Some(own), false) = (&own, declaration) {
                let class = qualified(&scopes, own);
                if let Some(field) = wanted.iter().find(|(c, m)| *c == class && m.is_empty())
                    && let Some(size) = entry.attr_value(constants::DW_AT_byte_size).and_then(|v| v.udata_value())
                {
                    values.entry(*field).or_insert(size as u32);
                }
            }
            // A declaration's members are not listed; its name still scopes nested types.
            scopes.push((depth, own));
        } else if tag == constants::DW_TAG_member
            && let Some(member) = name()
        {
            let class = qualified(&scopes, "");
            let class = class.trim_end_matches("::");
            if let Some(field) = wanted.iter().find(|(c, m)| *c == class && *m == member)
                && let Some(offset) =
                    entry.attr_value(constants::DW_AT_data_member_location).and_then(|v| v.udata_value())
            {
                values.entry(*field).or_insert(offset as u32);
            }
        } else {
            scopes.push((depth, None));
        }
    }
    Ok(())
}

fn is_scope(tag: DwTag) -> bool {
    matches!(tag, constants::DW_TAG_namespace | constants::DW_TAG_class_type | constants::DW_TAG_structure_type)
}
