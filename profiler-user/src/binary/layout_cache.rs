//! What DWARF said about a binary, kept on disk so that the same binary is read once per host:
//! a restart storm, a cluster of workers or `record` in a loop would otherwise walk hundreds
//! of megabytes of debug information each time.
//!
//! An entry is keyed by the binary (its build-id, else its file identity) and by the file its
//! debug information came from (its identity: a debug file installed, upgraded or removed since
//! is a new key). It holds the offsets found (so the cross-check against the version table is
//! made again, the same way) or why DWARF was unreadable. An entry written by another
//! zeek-probe version, for other wanted fields, or unreadable is ignored and rewritten.
//!
//! Where: the host's cache directory (`cache_dir`). Writing an entry removes those no lookup
//! will ask for again (`evict`): the directory stays small however many binaries, debug files
//! and zeek-probe versions come and go.
use std::{
    collections::HashMap,
    fs,
    hash::{DefaultHasher, Hash, Hasher},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{
    dwarf::{DwarfOffsets, Field},
    file_id::FileId,
};
use crate::cache_dir;

/// Bumped whenever an entry's meaning changes.
const FORMAT: u32 = 1;

/// An entry's file name: this, its binary's key, `-`, a hash of its debug file's identity and
/// wanted fields, and `ENTRY_SUFFIX`.
const ENTRY_PREFIX: &str = "layout-";
const ENTRY_SUFFIX: &str = ".json";

/// Entries kept per binary, the newest: each is for another debug file (installed, upgraded,
/// removed: only the one there now is looked up) or another zeek-probe's fields. A few, for
/// hosts that run two zeek-probe versions or a binary with and without its debug file.
const PER_BINARY: usize = 4;

/// Entries kept in all, the newest: a sensor runs a few Zeek builds, not hundreds.
const ENTRIES: usize = 256;

/// What was read for the wanted fields, as `inspect` uses it.
pub type DwarfResult = Result<DwarfOffsets, String>;

/// How the cache served one lookup, for `check` to say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheUse {
    /// Turned off, or no place to keep it.
    Off,
    /// Read from the entry at this path.
    Hit(PathBuf),
    /// Read from DWARF and kept at this path.
    Stored(PathBuf),
    /// Read from DWARF; keeping it failed (why).
    NotStored(String),
}

pub struct LayoutCache {
    dir: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    format: u32,
    zeek_probe: String,
    wanted: Vec<(String, String)>,
    dwarf_file: PathBuf,
    offsets: Vec<(String, String, u32)>,
    error: Option<String>,
}

impl LayoutCache {
    /// The cache where this process should keep it (see the module's comment).
    pub fn from_env() -> Self {
        Self { dir: cache_dir::from_env() }
    }

    pub fn at(dir: &Path) -> Self {
        Self { dir: Some(dir.to_owned()) }
    }

    /// The DWARF result for `binary_key` with debug information in `source`, from the cache
    /// or else from `read` (then kept).
    pub fn dwarf(
        &self,
        binary_key: &str,
        source: &Path,
        wanted: &[Field],
        read: impl FnOnce() -> DwarfResult,
    ) -> (DwarfResult, CacheUse) {
        let Some(path) = self.entry_path(binary_key, source, wanted) else { return (read(), CacheUse::Off) };
        if let Some(found) = load(&path, wanted) {
            return (found, CacheUse::Hit(path));
        }
        let result = read();
        let kept = match store(&path, wanted, &result) {
            Ok(()) => {
                evict(&path);
                CacheUse::Stored(path)
            }
            Err(err) => CacheUse::NotStored(format!("cannot write {}: {err}", path.display())),
        };
        (result, kept)
    }

    fn entry_path(&self, binary_key: &str, source: &Path, wanted: &[Field]) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let source_id = FileId::of(source).ok()?;
        let mut hasher = DefaultHasher::new();
        (source_id.dev, source_id.ino, source_id.size, source_id.mtime_ns, wanted).hash(&mut hasher);
        let safe_key: String = binary_key.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        Some(dir.join(format!("{ENTRY_PREFIX}{safe_key}-{:016x}{ENTRY_SUFFIX}", hasher.finish())))
    }
}

/// Removes, once `kept` is written, the entries beyond its binary's newest `PER_BINARY` and
/// beyond the newest `ENTRIES` in all (`kept` always stays). Nothing else in the directory is
/// touched; a removal that fails (another zeek-probe's at the same time) costs nothing.
fn evict(kept: &Path) {
    let (mut per_binary, mut total) = (HashMap::<String, usize>::new(), 0);
    for (path, key) in cache_dir::entries_newest_first(kept, ENTRY_PREFIX, ENTRY_SUFFIX) {
        let Some((binary, _source)) = key.rsplit_once('-') else { continue };
        let of_binary = per_binary.entry(binary.to_owned()).or_default();
        if path != kept && (*of_binary >= PER_BINARY || total >= ENTRIES) {
            let _ = fs::remove_file(path);
        } else {
            *of_binary += 1;
            total += 1;
        }
    }
}

/// The cache key of a binary: its build-id, else its file identity.
pub fn binary_key(build_id: Option<&[u8]>, path: &Path) -> Option<String> {
    match build_id.filter(|id| id.len() > 1) {
        Some(id) => Some(id.iter().map(|b| format!("{b:02x}")).collect()),
        None => FileId::of(path).ok().map(|id| format!("file-{}-{}-{}-{}", id.dev, id.ino, id.size, id.mtime_ns)),
    }
}

fn wanted_names(wanted: &[Field]) -> Vec<(String, String)> {
    wanted.iter().map(|(class, member)| ((*class).to_owned(), (*member).to_owned())).collect()
}

/// The entry at `path` if it is whole, of this version and for these fields.
fn load(path: &Path, wanted: &[Field]) -> Option<DwarfResult> {
    let entry: Entry = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    if entry.format != FORMAT || entry.zeek_probe != env!("CARGO_PKG_VERSION") || entry.wanted != wanted_names(wanted) {
        return None;
    }
    if let Some(error) = entry.error {
        return Some(Err(error));
    }
    let mut values = std::collections::HashMap::new();
    for (class, member, offset) in entry.offsets {
        // Only wanted fields were stored; anything else means the entry is not ours.
        let field = wanted.iter().find(|(c, m)| *c == class && *m == member)?;
        values.insert(*field, offset);
    }
    Some(Ok(DwarfOffsets::from_values(entry.dwarf_file, values)))
}

/// Keeps the entry, whole or not at all.
fn store(path: &Path, wanted: &[Field], result: &DwarfResult) -> std::io::Result<()> {
    let (dwarf_file, offsets, error) = match result {
        Ok(found) => (
            found.file.clone(),
            found.values().map(|((class, member), offset)| (class.to_owned(), member.to_owned(), offset)).collect(),
            None,
        ),
        Err(error) => (PathBuf::new(), Vec::new(), Some(error.clone())),
    };
    let entry = Entry {
        format: FORMAT,
        zeek_probe: env!("CARGO_PKG_VERSION").to_owned(),
        wanted: wanted_names(wanted),
        dwarf_file,
        offsets,
        error,
    };
    cache_dir::write_whole(path, &serde_json::to_vec(&entry).map_err(std::io::Error::other)?)
}

#[cfg(test)]
mod tests {
    use std::{cell::Cell, collections::HashMap};

    use super::*;

    const WANTED: [Field; 2] = [("zeek::Func", "name"), ("zeek::Func", "kind")];

    fn offsets(file: &Path) -> DwarfOffsets {
        DwarfOffsets::from_values(file.to_owned(), HashMap::from([(WANTED[0], 72), (WANTED[1], 56)]))
    }

    /// Looks `source` up, counting how often DWARF had to be read.
    fn lookup(cache: &LayoutCache, source: &Path, reads: &Cell<u32>) -> (DwarfResult, CacheUse) {
        cache.dwarf("58f68c79", source, &WANTED, || {
            reads.set(reads.get() + 1);
            Ok(offsets(source))
        })
    }

    #[test]
    fn the_second_lookup_reads_no_dwarf_and_gets_the_same_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("zeek.debug");
        fs::write(&source, b"debug").unwrap();
        let cache = LayoutCache::at(&dir.path().join("cache"));
        let reads = Cell::new(0);
        let (first, used) = lookup(&cache, &source, &reads);
        assert!(matches!(used, CacheUse::Stored(_)), "{used:?}");
        let (second, used) = lookup(&cache, &source, &reads);
        assert!(matches!(used, CacheUse::Hit(_)), "{used:?}");
        assert_eq!(reads.get(), 1);
        let (first, second) = (first.unwrap(), second.unwrap());
        for field in WANTED {
            assert_eq!(first.get(field), second.get(field));
        }
        assert_eq!(second.file, source);
    }

    #[test]
    fn a_changed_debug_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("zeek.debug");
        fs::write(&source, b"debug").unwrap();
        let cache = LayoutCache::at(dir.path());
        let reads = Cell::new(0);
        assert!(lookup(&cache, &source, &reads).0.is_ok());
        fs::write(&source, b"another debug file").unwrap();
        let (_, used) = lookup(&cache, &source, &reads);
        assert!(matches!(used, CacheUse::Stored(_)), "{used:?}");
        assert_eq!(reads.get(), 2);
    }

    #[test]
    fn a_corrupt_entry_is_ignored_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("zeek");
        fs::write(&source, b"binary").unwrap();
        let cache = LayoutCache::at(dir.path());
        let reads = Cell::new(0);
        let (_, CacheUse::Stored(entry)) = lookup(&cache, &source, &reads) else { panic!("not stored") };
        fs::write(&entry, b"{\"format\": 1, \"zeek_probe\": tru").unwrap();
        let (again, used) = lookup(&cache, &source, &reads);
        assert_eq!(used, CacheUse::Stored(entry.clone()));
        assert_eq!(again.unwrap().get(WANTED[0]), Some(72));
        let (_, used) = lookup(&cache, &source, &reads);
        assert_eq!(used, CacheUse::Hit(entry));
        assert_eq!(reads.get(), 2);
    }

    #[test]
    fn an_unreadable_dwarf_is_kept_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("zeek");
        fs::write(&source, b"binary").unwrap();
        let cache = LayoutCache::at(dir.path());
        let read_error = || Err("zeek: unreadable debug information".to_owned());
        assert!(cache.dwarf("key", &source, &WANTED, read_error).0.is_err());
        let (again, used) = cache.dwarf("key", &source, &WANTED, || panic!("read again"));
        assert!(matches!(used, CacheUse::Hit(_)));
        assert_eq!(again.unwrap_err(), "zeek: unreadable debug information");
    }

    #[test]
    fn an_unwritable_cache_still_gives_the_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("zeek");
        fs::write(&source, b"binary").unwrap();
        // A file where the cache directory should be.
        let cache = LayoutCache::at(&source);
        let (found, used) = lookup(&cache, &source, &Cell::new(0));
        assert!(matches!(used, CacheUse::NotStored(_)), "{used:?}");
        assert_eq!(found.unwrap().get(WANTED[1]), Some(56));
    }

    /// Writing an entry removes its binary's entries beyond the newest `PER_BINARY` (debug
    /// files replaced since) and the oldest beyond `ENTRIES` in all; never the entry written,
    /// nor any other file of the directory.
    #[test]
    fn writing_an_entry_removes_the_replaced_and_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let aged = |name: &str, seconds: u64| {
            let path = dir.path().join(name);
            fs::write(&path, b"{}").unwrap();
            let file = fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(seconds)).unwrap();
            path
        };
        // The binary `lookup` keys by, with six debug files before: 1 to 6 hours old.
        let replaced: Vec<PathBuf> =
            (1..=6).map(|hours| aged(&format!("layout-58f68c79-{hours:016x}.json"), hours * 3600)).collect();
        // As many other binaries' as are kept in all, older, the first the newest.
        let others: Vec<PathBuf> =
            (1..=ENTRIES as u64).map(|i| aged(&format!("layout-{i:040x}-{:016x}.json", 0), 86_400 + i)).collect();
        let unrelated = aged("kernel-symbols", 10 * 86_400);
        let source = dir.path().join("zeek.debug");
        fs::write(&source, b"debug").unwrap();

        let (_, CacheUse::Stored(written)) = lookup(&LayoutCache::at(dir.path()), &source, &Cell::new(0)) else {
            panic!("not stored")
        };
        assert!(written.exists() && unrelated.exists());
        let kept: Vec<bool> = replaced.iter().map(|path| path.exists()).collect();
        assert_eq!(kept, [true, true, true, false, false, false], "the entry written and its binary's 3 newest");
        let kept = others.iter().take_while(|path| path.exists()).count();
        assert_eq!(kept, ENTRIES - PER_BINARY, "then the newest of the others");
        assert!(others[kept..].iter().all(|path| !path.exists()));
    }

    #[test]
    fn a_binary_is_keyed_by_build_id_else_by_file_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zeek");
        fs::write(&path, b"binary").unwrap();
        assert_eq!(binary_key(Some(&[0x58, 0xf6, 0x8c]), &path).unwrap(), "58f68c");
        assert!(binary_key(None, &path).unwrap().starts_with("file-"));
    }
}
