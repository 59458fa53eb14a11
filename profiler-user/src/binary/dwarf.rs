//! Member offsets from DWARF, the first source of layouts: Zeek's default build type
//! (RelWithDebInfo) has it, in the binary or in a separate debug file found by build-id or
//! `.gnu_debuglink`. The version table is the fallback, and is checked against it.
use std::{
    borrow::Cow,
    collections::HashMap,
    fs::File,
    path::{Path, PathBuf},
};

use gimli::{AttributeValue, DwTag, EndianSlice, RunTimeEndian, SectionId, constants};
use object::{Object, ObjectSection, ReadCache};

use super::layout_fields::LAYOUT_FIELDS;

/// A class's member, or the class's size when `member` is empty.
pub type Field = (&'static str, &'static str);

/// Everything the layout needs, by qualified class name.
fn wanted() -> impl Iterator<Item = &'static Field> {
    LAYOUT_FIELDS.iter().map(|field| &field.dwarf)
}

#[derive(Debug, thiserror::Error)]
pub enum DwarfError {
    #[error("cannot read {path}")]
    Open { path: PathBuf, source: std::io::Error },
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

    /// Offsets given directly (tests).
    pub fn from_values(file: PathBuf, values: HashMap<Field, u32>) -> Self {
        Self { file, values }
    }
}

/// Reads the offsets from `binary`'s own DWARF or its separate debug file; `None` when there
/// is no debug information anywhere.
pub fn read(binary: &Path) -> Result<Option<DwarfOffsets>, DwarfError> {
    let open = |path: &Path| File::open(path).map_err(|source| DwarfError::Open { path: path.to_owned(), source });
    let cache = ReadCache::new(open(binary)?);
    let parse_err = |path: &Path, e: object::Error| DwarfError::Parse { path: path.to_owned(), source: Box::new(e) };
    let file = object::File::parse(&cache).map_err(|e| parse_err(binary, e))?;
    if file.section_by_name(".debug_info").is_some() {
        return offsets_in(&file, binary).map(Some);
    }
    let Some(debug_file) = separate_debug_file(&file, binary) else { return Ok(None) };
    let cache = ReadCache::new(open(&debug_file)?);
    let debug = object::File::parse(&cache).map_err(|e| parse_err(&debug_file, e))?;
    offsets_in(&debug, &debug_file).map(Some)
}

/// Where distributions put debug information: `/usr/lib/debug/.build-id/xx/rest.debug`, or the
/// `.gnu_debuglink` name next to the binary, in its `.debug/`, or under `/usr/lib/debug`.
fn separate_debug_file<'a, R: object::ReadRef<'a>>(file: &object::File<'a, R>, binary: &Path) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(Some(id)) = file.build_id()
        && id.len() > 1
    {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        candidates.push(PathBuf::from(format!("/usr/lib/debug/.build-id/{}/{}.debug", &hex[..2], &hex[2..])));
    }
    if let Ok(Some((name, _crc))) = file.gnu_debuglink() {
        let name = String::from_utf8_lossy(name).into_owned();
        let dir = binary.parent().unwrap_or(Path::new("/"));
        candidates.push(dir.join(&name));
        candidates.push(dir.join(".debug").join(&name));
        candidates.push(Path::new("/usr/lib/debug").join(dir.strip_prefix("/").unwrap_or(dir)).join(&name));
    }
    candidates.into_iter().find(|c| c.is_file() && c != binary)
}

fn offsets_in<'a, R: object::ReadRef<'a>>(file: &object::File<'a, R>, path: &Path) -> Result<DwarfOffsets, DwarfError> {
    let parse_err = |e: gimli::Error| DwarfError::Parse { path: path.to_owned(), source: Box::new(e) };
    let endian = if file.is_little_endian() { RunTimeEndian::Little } else { RunTimeEndian::Big };
    let sections = gimli::DwarfSections::load(|id: SectionId| -> Result<Cow<'a, [u8]>, gimli::Error> {
        Ok(file.section_by_name(id.name()).and_then(|s| s.uncompressed_data().ok()).unwrap_or(Cow::Borrowed(&[])))
    })
    .map_err(parse_err)?;
    let dwarf = sections.borrow(|section| EndianSlice::new(section, endian));

    let mut values = HashMap::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(parse_err)? {
        let unit = dwarf.unit(header).map_err(parse_err)?;
        collect_unit(&dwarf, &unit, &mut values).map_err(parse_err)?;
        if values.len() == LAYOUT_FIELDS.len() {
            break;
        }
    }
    Ok(DwarfOffsets { file: path.to_owned(), values })
}

type Reader<'a> = EndianSlice<'a, RunTimeEndian>;

/// Walks one unit's DIE tree, keeping the enclosing namespaces and classes, and records the
/// wanted members of complete class definitions.
fn collect_unit(
    dwarf: &gimli::Dwarf<Reader<'_>>,
    unit: &gimli::Unit<Reader<'_>>,
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
                if let Some(field) = wanted().find(|(c, m)| *c == class && m.is_empty())
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
            if let Some(field) = wanted().find(|(c, m)| *c == class && *m == member)
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
