//! What was read of a debug file's compile units (`UnitIndex`: where their subprograms and
//! line rows are, and where reading stopped), kept on disk so that the next `record` of the
//! same binary starts where the last one stopped. A trivial real Zeek run's samples land in
//! ~90 units of its 360 MB debug file, mostly the same ones from one run to the next; finding
//! their addresses' subprograms and line rows was two thirds of resolving its source lines
//! (~40 of ~60 ms of CPU, half of it after the command's exit), ~3 ms from what was kept.
//!
//! An entry is keyed by the debug file's identity (a file installed, upgraded or rebuilt since
//! is another), in the host's cache directory (`cache_dir`); one written by another zeek-probe
//! version, or that does not read whole, is ignored (and replaced by the next `record`).
//! Writing one removes all but the newest `ENTRIES`: a host profiles a few binaries.
//!
//! A unit's spans are written as varints, each relative to the one before (most rows follow
//! on from the last: a few bytes each, not 32), and decoded only when a lookup takes the
//! unit. A process that read on from the entry appends the units it read further or first
//! (a run of the same binary mostly reads what the last one did, and a few units more: tens
//! of KB, not the whole entry's MBs); a unit's last record is the one that counts. The entry
//! is written whole, its units not taken as they were read, when it is new, when more than
//! half of it would be records superseded, or when it ends in a torn write (its records up
//! to there still count). Appends from two processes do not interleave (one `write` each,
//! `O_APPEND`), and a damaged record's unit is read again from the DWARF.
use std::{
    borrow::Cow,
    collections::HashMap,
    fs,
    hash::{DefaultHasher, Hash, Hasher},
    io::{self, Read as _, Write as _},
    ops::Range,
    path::{Path, PathBuf},
    sync::Arc,
};

use gimli::UnitOffset;
use prost::encoding::{decode_varint, encode_varint};

use super::inlined_chain::UnitIndex;
use crate::{binary::FileId, cache_dir};

/// An entry's file name: this, a hash of its debug file's identity, `ENTRY_SUFFIX`.
const ENTRY_PREFIX: &str = "units-";
const ENTRY_SUFFIX: &str = ".bin";

/// Entries kept, the newest: one per debug file (a binary's own, libc's...).
const ENTRIES: usize = 16;

/// What an entry is, its first bytes (then the versions: `header`).
const MAGIC: &[u8] = b"zeek-probe kept units\n";
/// Bumped whenever an entry's layout or meaning changes.
const FORMAT: u32 = 3;

/// A unit's record: its offset, spans and length (`put_unit`), then its bytes.
const RECORD_HEADER: usize = 24;

/// The entry of one debug file.
pub(super) struct KeptUnitsFile {
    path: PathBuf,
}

/// The units of an entry as read, each decoded when taken (`take`).
#[derive(Default)]
pub(super) struct EarlierUnits {
    bytes: Arc<[u8]>,
    /// Each unit's bytes in `bytes` and how many spans they hold, by offset in `.debug_info`.
    units: HashMap<usize, (Range<usize>, usize)>,
    /// Units taken and put back unread (a prefetch stopped before it reached them).
    put_back: HashMap<usize, UnitIndex<'static>>,
    /// Where the units taken were in `bytes`, and how many spans they held.
    taken: HashMap<usize, (Range<usize>, usize)>,
    /// Bytes of records a later record of the same unit superseded.
    superseded: usize,
    /// Whether the entry was read to its end (not torn, not missing): records may be appended.
    appendable: bool,
}

impl KeptUnitsFile {
    /// The entry of the DWARF in `dwarf_file`, in this host's cache directory; `None` without
    /// one (`ZEEK_PROBE_CACHE=off`) or when the file cannot be looked at.
    pub fn of(dwarf_file: &Path) -> Option<Self> {
        Self::in_dir(&cache_dir::from_env()?, dwarf_file)
    }

    pub fn in_dir(dir: &Path, dwarf_file: &Path) -> Option<Self> {
        let id = FileId::of(dwarf_file).ok()?;
        let mut hasher = DefaultHasher::new();
        id.hash(&mut hasher);
        Some(Self { path: dir.join(format!("{ENTRY_PREFIX}{:016x}{ENTRY_SUFFIX}", hasher.finish())) })
    }

    /// The units kept: none when there is no entry or it is not whole and this version's.
    pub fn load(&self) -> EarlierUnits {
        fs::read(&self.path).ok().and_then(|bytes| EarlierUnits::parse(bytes.into())).unwrap_or_default()
    }

    /// Appends the units of `read_here` that were read further than `earlier` kept them, or
    /// first read. `false`, and nothing written, when the entry is to be written whole
    /// instead (`store`): it is not there or not this version's, it ends in a torn write, or
    /// more than half of it would be superseded records.
    pub fn append<'a>(
        &self,
        read_here: impl IntoIterator<Item = (usize, UnitIndex<'a>)>,
        earlier: &EarlierUnits,
    ) -> io::Result<bool> {
        if !earlier.appendable {
            return Ok(false);
        }
        let (mut records, mut unit_bytes, mut superseded) = (Vec::new(), Vec::new(), earlier.superseded);
        for (unit, index) in
            read_here.into_iter().filter(|(unit, index)| earlier.as_read(*unit, index.spans()).is_none())
        {
            put_encoded(&mut records, &mut unit_bytes, unit, &index);
            superseded += earlier.taken.get(&unit).map_or(0, |(range, _)| RECORD_HEADER + range.len());
        }
        if superseded * 2 > earlier.bytes.len() + records.len() {
            return Ok(false);
        }
        // Not created: an entry removed meanwhile is written whole, header first.
        let mut file = match fs::OpenOptions::new().read(true).append(true).open(&self.path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            opened => opened?,
        };
        // Replaced meanwhile by another zeek-probe's entry: whole, then, in this one's format.
        let header = header();
        let mut on_disk = vec![0; header.len()];
        if file.read_exact(&mut on_disk).is_err() || on_disk != header {
            return Ok(false);
        }
        file.write_all(&records)?;
        Ok(true)
    }

    /// Keeps `read_here` and the `earlier` units not taken, whole or not at all, and removes
    /// the oldest entries.
    pub fn store<'a>(
        &self,
        read_here: impl IntoIterator<Item = (usize, UnitIndex<'a>)>,
        earlier: &EarlierUnits,
        earlier_kept: impl Fn(usize) -> bool,
    ) -> io::Result<()> {
        let mut out = header();
        let mut unit_bytes = Vec::new();
        let mut put_index = |out: &mut Vec<u8>, unit: usize, index: &UnitIndex| {
            // Read from the entry and not read on: as it was (encoding is most of writing).
            match earlier.as_read(unit, index.spans()) {
                Some(bytes) => put_unit(out, unit, index.spans(), bytes),
                None => put_encoded(out, &mut unit_bytes, unit, index),
            }
        };
        for (unit, index) in read_here {
            put_index(&mut out, unit, &index);
        }
        for (unit, index) in earlier.put_back.iter().filter(|(unit, _)| earlier_kept(**unit)) {
            put_index(&mut out, *unit, index);
        }
        for (unit, (range, spans)) in earlier.units.iter().filter(|(unit, _)| earlier_kept(**unit)) {
            put_unit(&mut out, *unit, *spans, &earlier.bytes[range.clone()]);
        }
        cache_dir::write_whole(&self.path, &out)?;
        evict(&self.path);
        Ok(())
    }
}

impl EarlierUnits {
    /// The units of an entry of this zeek-probe: each unit's last record, up to a torn one
    /// (each unit's bytes are checked when decoded).
    fn parse(bytes: Arc<[u8]>) -> Option<Self> {
        let mut input = Input(bytes.strip_prefix(header().as_slice())?);
        let (mut units, mut superseded) = (HashMap::new(), 0);
        while !input.0.is_empty() {
            let Some((unit, spans, len)) = input.record_header() else { break };
            let start = bytes.len() - input.0.len();
            if input.take(len).is_none() {
                break;
            }
            if let Some((earlier, _)) = units.insert(unit, (start..start + len, spans)) {
                superseded += RECORD_HEADER + earlier.len();
            }
        }
        let appendable = input.0.is_empty();
        Some(Self { bytes, units, put_back: HashMap::new(), taken: HashMap::new(), superseded, appendable })
    }

    /// The unit at `unit`, decoded, if it was kept and decodes whole.
    pub fn take(&mut self, unit: usize) -> Option<UnitIndex<'static>> {
        if let Some(index) = self.put_back.remove(&unit) {
            return Some(index);
        }
        let (range, spans) = self.units.remove(&unit)?;
        self.taken.insert(unit, (range.clone(), spans));
        decode(&self.bytes[range])
    }

    /// The bytes the unit taken at `unit` was read from, if it still holds `spans` spans.
    fn as_read(&self, unit: usize, spans: usize) -> Option<&[u8]> {
        let (range, read) = self.taken.get(&unit)?;
        (*read == spans).then(|| &self.bytes[range.clone()])
    }

    /// Gives back a unit taken and not read.
    pub fn put_back(&mut self, unit: usize, index: UnitIndex<'static>) {
        self.put_back.insert(unit, index);
    }

    /// How many spans the units not taken hold in all.
    pub fn spans(&self) -> usize {
        self.units().map(|(_, spans)| spans).sum()
    }

    /// The units not taken, with how many spans each holds.
    pub fn units(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let put_back = self.put_back.iter().map(|(unit, index)| (*unit, index.spans()));
        self.units.iter().map(|(unit, (_, spans))| (*unit, *spans)).chain(put_back)
    }
}

/// An entry's first bytes: what it is, the version of its layout, and zeek-probe's.
fn header() -> Vec<u8> {
    let mut header = Vec::from(MAGIC);
    header.extend_from_slice(&FORMAT.to_le_bytes());
    let version = env!("CARGO_PKG_VERSION").as_bytes();
    header.extend_from_slice(&(version.len() as u32).to_le_bytes());
    header.extend_from_slice(version);
    header
}

/// `index`'s record, encoded in `scratch` first.
fn put_encoded(out: &mut Vec<u8>, scratch: &mut Vec<u8>, unit: usize, index: &UnitIndex) {
    scratch.clear();
    encode(index, scratch);
    put_unit(out, unit, index.spans(), scratch);
}

fn put_unit(out: &mut Vec<u8>, unit: usize, spans: usize, bytes: &[u8]) {
    for value in [unit as u64, spans as u64, bytes.len() as u64] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.extend_from_slice(bytes);
}

/// A unit's index as varints: its reading state, then its functions and its rows, each span
/// relative to the end of the one before.
fn encode(index: &UnitIndex, out: &mut Vec<u8>) {
    encode_varint(index.next_top_level.map_or(0, |o| o.0 as u64 + 1), out);
    encode_varint(index.top_level as u64, out);
    encode_varint(u64::from(index.namespaces_read), out);
    encode_varint(index.rows_read.map_or(0, |n| n + 1), out);
    encode_varint(index.functions.len() as u64, out);
    let (mut end, mut die) = (0u64, 0u64);
    for (range, offset) in index.functions.iter() {
        put_span(out, &mut end, range);
        encode_varint(zigzag((offset.0 as u64).wrapping_sub(die)), out);
        die = offset.0 as u64;
    }
    encode_varint(index.rows.len() as u64, out);
    let (mut end, mut line) = (0u64, 0u32);
    for (range, (file, row_line)) in index.rows.iter() {
        put_span(out, &mut end, range);
        encode_varint(*file, out);
        encode_varint(zigzag((i64::from(*row_line) - i64::from(line)) as u64), out);
        line = *row_line;
    }
}

fn decode(bytes: &[u8]) -> Option<UnitIndex<'static>> {
    let mut input = Input(bytes);
    let next_top_level = input.varint()?.checked_sub(1).map(|o| usize::try_from(o).map(UnitOffset)).transpose().ok()?;
    let top_level = usize::try_from(input.varint()?).ok()?;
    let namespaces_read = input.varint()? != 0;
    let rows_read = input.varint()?.checked_sub(1);
    let (mut end, mut die) = (0u64, 0u64);
    let functions = (0..input.count()?)
        .map(|_| {
            let range = input.span(&mut end)?;
            die = die.wrapping_add(unzigzag(input.varint()?));
            Some((range, UnitOffset(usize::try_from(die).ok()?)))
        })
        .collect::<Option<Vec<_>>>()?;
    let (mut end, mut line) = (0u64, 0u32);
    let rows = (0..input.count()?)
        .map(|_| {
            let range = input.span(&mut end)?;
            let file = input.varint()?;
            line = u32::try_from(i64::from(line) + unzigzag(input.varint()?) as i64).ok()?;
            Some((range, (file, line)))
        })
        .collect::<Option<Vec<_>>>()?;
    input.0.is_empty().then_some(UnitIndex {
        functions: Cow::Owned(functions),
        next_top_level,
        top_level,
        namespaces_read,
        rows: Cow::Owned(rows),
        rows_read,
    })
}

/// A span as its start relative to the end before (zigzag: code ranges are not in order) and
/// its length.
fn put_span(out: &mut Vec<u8>, end: &mut u64, range: &Range<u64>) {
    encode_varint(zigzag(range.start.wrapping_sub(*end)), out);
    encode_varint(range.end.wrapping_sub(range.start), out);
    *end = range.end;
}

/// A difference (two's complement) as a small number whatever its sign.
fn zigzag(difference: u64) -> u64 {
    (difference << 1) ^ ((difference as i64 >> 63) as u64)
}

fn unzigzag(value: u64) -> u64 {
    (value >> 1) ^ (value & 1).wrapping_neg()
}

/// The bytes of an entry not read yet.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (taken, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(taken)
    }

    /// A record's unit, spans and length (`put_unit`).
    fn record_header(&mut self) -> Option<(usize, usize, usize)> {
        let mut next = || usize::try_from(u64::from_le_bytes(self.take(8)?.try_into().ok()?)).ok();
        Some((next()?, next()?, next()?))
    }

    fn varint(&mut self) -> Option<u64> {
        decode_varint(&mut self.0).ok()
    }

    fn span(&mut self, end: &mut u64) -> Option<Range<u64>> {
        let start = end.wrapping_add(unzigzag(self.varint()?));
        *end = start.checked_add(self.varint()?)?;
        Some(start..*end)
    }

    /// A number of items that follow, each at least a byte: no more than the bytes left.
    fn count(&mut self) -> Option<usize> {
        let count = usize::try_from(self.varint()?).ok()?;
        (count <= self.0.len()).then_some(count)
    }
}

/// Removes, once `kept` is written, the entries beyond the newest `ENTRIES` (`kept` stays).
/// Nothing else in the directory is touched; a removal that fails costs nothing.
fn evict(kept: &Path) {
    for (path, _) in cache_dir::entries_newest_first(kept, ENTRY_PREFIX, ENTRY_SUFFIX).into_iter().skip(ENTRIES) {
        let _ = fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(seed: u64) -> UnitIndex<'static> {
        UnitIndex {
            functions: Cow::Owned(vec![
                (seed..seed + 16, UnitOffset(11)),
                (0..40, UnitOffset(400)),
                (seed + 32..seed + 40, UnitOffset(12)),
            ]),
            next_top_level: if seed.is_multiple_of(2) { Some(UnitOffset(512)) } else { None },
            top_level: 2,
            namespaces_read: seed.is_multiple_of(3),
            rows: Cow::Owned(vec![
                (seed..seed + 4, (1, 10)),
                (seed + 4..seed + 9, (2, 4_000_000)),
                (0..3, (7, 0)),
                (u64::MAX - 9..u64::MAX, (1, u32::MAX)),
            ]),
            rows_read: if seed.is_multiple_of(2) { None } else { Some(77) },
        }
    }

    fn read_back(file: &KeptUnitsFile, units: &[usize]) -> Vec<Option<UnitIndex<'static>>> {
        let mut earlier = file.load();
        units.iter().map(|unit| earlier.take(*unit)).collect()
    }

    /// An entry reads back as written, for the same debug file only, the units a process did
    /// not take written back as they were; one cut short, or of another version, reads as none.
    #[test]
    fn an_entry_reads_back_as_written_and_a_damaged_one_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let (debug, other) = (dir.path().join("zeek.debug"), dir.path().join("libc.debug"));
        fs::write(&debug, b"one").unwrap();
        fs::write(&other, b"two").unwrap();
        let file = KeptUnitsFile::in_dir(dir.path(), &debug).unwrap();
        assert_eq!(file.load().units().count(), 0, "nothing kept yet");
        let (first, second) = (index(0x40_0000), index(0x41_0001));
        file.store([(0x1000, first.clone()), (0x9_0000, second.clone())], &EarlierUnits::default(), |_| true).unwrap();
        assert_eq!(read_back(&file, &[0x1000, 0x9_0000, 7]), [Some(first.clone()), Some(second.clone()), None]);
        assert_eq!(file.load().spans(), first.spans() + second.spans());

        // A process took the first unit and read on; the second goes back as it was, and a
        // third taken and put back unread too; a fourth is left out.
        let mut earlier = file.load();
        let mut read_on = earlier.take(0x1000).unwrap();
        read_on.rows.to_mut().push((1..2, (3, 4)));
        file.store([(0x1000, read_on.clone()), (0x5000, index(6)), (0x6000, index(8))], &earlier, |_| true).unwrap();
        // Taken and not read on: one put back, one kept as this process's (both as they were).
        let mut earlier = file.load();
        let unread = earlier.take(0x5000).unwrap();
        earlier.put_back(0x5000, unread);
        let kept_as_read = earlier.take(0x9_0000).unwrap();
        assert_eq!(earlier.spans(), read_on.spans() + 2 * index(6).spans());
        file.store([(0x9_0000, kept_as_read)], &earlier, |unit| unit != 0x6000).unwrap();
        let units = [0x1000, 0x9_0000, 0x5000, 0x6000];
        assert_eq!(read_back(&file, &units), [Some(read_on), Some(second), Some(index(6)), None]);
        assert_eq!(KeptUnitsFile::in_dir(dir.path(), &other).unwrap().load().units().count(), 0, "another file's");

        // Torn in its last record (0x1000, the unit not taken, written after the rest): the
        // records before it count, and the entry is written whole next time.
        let bytes = fs::read(&file.path).unwrap();
        fs::write(&file.path, &bytes[..bytes.len() - 3]).unwrap();
        assert_eq!(read_back(&file, &units), [None, Some(index(0x41_0001)), Some(index(6)), None], "torn");
        assert!(!file.append([(0x7000, index(9))], &file.load()).unwrap(), "a torn entry is not appended to");
        let mut other_version = bytes.clone();
        other_version[MAGIC.len()] ^= 0xff;
        fs::write(&file.path, other_version).unwrap();
        assert_eq!(file.load().units().count(), 0, "another format");

        // The debug file rewritten: another entry.
        fs::write(&debug, b"rebuilt").unwrap();
        assert_eq!(KeptUnitsFile::in_dir(dir.path(), &debug).unwrap().load().units().count(), 0);
    }

    fn record_len(index: &UnitIndex) -> usize {
        let mut bytes = Vec::new();
        encode(index, &mut bytes);
        RECORD_HEADER + bytes.len()
    }

    /// A process appends the units it read further or first, not the entry's others; a unit's
    /// last record is the one read. The entry is written whole instead once more than half of
    /// it would be superseded, or when it is gone or another version's.
    #[test]
    fn what_a_process_read_further_is_appended_and_its_last_record_read() {
        let dir = tempfile::tempdir().unwrap();
        let debug = dir.path().join("zeek.debug");
        fs::write(&debug, b"one").unwrap();
        let file = KeptUnitsFile::in_dir(dir.path(), &debug).unwrap();
        assert!(!file.append([(0x1000, index(0))], &file.load()).unwrap(), "no entry yet: written whole");
        file.store([(0x1000, index(0)), (0x2000, index(1))], &EarlierUnits::default(), |_| true).unwrap();
        let whole = fs::metadata(&file.path).unwrap().len() as usize;

        // Read on in one unit, only looked up in another, a third read first.
        let mut earlier = file.load();
        let mut read_on = earlier.take(0x1000).unwrap();
        read_on.rows.to_mut().push((1..2, (3, 4)));
        let as_read = earlier.take(0x2000).unwrap();
        let read_here = [(0x1000, read_on.clone()), (0x2000, as_read), (0x3000, index(2))];
        assert!(file.append(read_here, &earlier).unwrap());
        let appended = fs::metadata(&file.path).unwrap().len() as usize - whole;
        assert_eq!(appended, record_len(&read_on) + record_len(&index(2)), "the unit as read is not appended");
        let units = [0x1000, 0x2000, 0x3000];
        assert_eq!(read_back(&file, &units), [Some(read_on.clone()), Some(index(1)), Some(index(2))]);

        // The same unit read further run after run: appended until more than half would be
        // superseded, then the entry is to be written whole.
        let mut appends = 0;
        let (earlier, last) = loop {
            let mut earlier = file.load();
            let mut unit = earlier.take(0x3000).unwrap();
            unit.rows.to_mut().push((appends..appends + 1, (1, 1)));
            if !file.append([(0x3000, unit.clone())], &earlier).unwrap() {
                break (earlier, unit);
            }
            appends += 1;
            assert!(appends < 100, "never written whole");
        };
        assert!(appends > 1, "appended {appends} times");
        assert!(earlier.superseded * 2 <= earlier.bytes.len(), "at most half superseded after the last append");
        let superseding_last = earlier.superseded + RECORD_HEADER + earlier.taken[&0x3000].0.len();
        assert!(superseding_last * 2 > earlier.bytes.len() + record_len(&last), "more than half with the next");
        file.store([(0x3000, last.clone())], &earlier, |_| true).unwrap();
        assert_eq!(read_back(&file, &units), [Some(read_on), Some(index(1)), Some(last)]);
        assert_eq!(file.load().superseded, 0, "written whole");

        // Gone meanwhile, or replaced by another version's: not appended to.
        let earlier = file.load();
        let other_version = fs::read(&file.path)
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, b)| if i == MAGIC.len() { !b } else { *b })
            .collect::<Vec<u8>>();
        fs::write(&file.path, other_version).unwrap();
        assert!(!file.append([(0x4000, index(3))], &earlier).unwrap(), "another version's");
        fs::remove_file(&file.path).unwrap();
        assert!(!file.append([(0x4000, index(3))], &earlier).unwrap(), "gone");
        assert!(!file.path.exists(), "not created by an append");
    }

    /// Writing an entry keeps the newest `ENTRIES` and leaves other files alone.
    #[test]
    fn writing_an_entry_removes_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("layout-x.json"), b"{}").unwrap();
        for n in 0..ENTRIES + 3 {
            let debug = dir.path().join(format!("debug-{n}"));
            fs::write(&debug, n.to_string()).unwrap();
            let file = KeptUnitsFile::in_dir(dir.path(), &debug).unwrap();
            file.store([(0, index(0))], &EarlierUnits::default(), |_| true).unwrap();
        }
        let names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names.iter().filter(|n| n.starts_with(ENTRY_PREFIX)).count(), ENTRIES, "{names:?}");
        assert!(names.contains(&"layout-x.json".to_owned()));
    }
}
