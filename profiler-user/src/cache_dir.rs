//! Where zeek-probe keeps what it learnt about this host between runs: the binaries' layouts
//! (`binary::layout_cache`), the kernel's symbols of this boot
//! (`symbolize::kernel_symbol_cache`) and what else holds until the next boot (`for_this_boot`).
//!
//! `$CACHE_DIRECTORY` (systemd's `CacheDirectory=`), else `/var/cache/zeek-probe` for root,
//! else `$XDG_CACHE_HOME/zeek-probe` or `~/.cache/zeek-probe`. `ZEEK_PROBE_CACHE=off` turns it
//! off. A cache that cannot be written costs nothing but the time saved.
use std::{
    cmp::Reverse,
    env,
    fmt::Display,
    fs,
    io::{self, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    str::FromStr,
    time::SystemTime,
};

/// The cache directory this process should use; `None` when turned off or there is none.
pub fn from_env() -> Option<PathBuf> {
    if env::var_os("ZEEK_PROBE_CACHE").is_some_and(|v| v == "off") {
        return None;
    }
    let systemd = env::var_os("CACHE_DIRECTORY")
        .and_then(|dirs| env::split_paths(&dirs).next())
        .filter(|d| !d.as_os_str().is_empty());
    let per_user = || {
        env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
            .map(|base| base.join("zeek-probe"))
    };
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    systemd.or_else(|| if root { Some(PathBuf::from("/var/cache/zeek-probe")) } else { per_user() })
}

/// This boot's id (/proc/sys/kernel/random/boot_id): new at every boot.
pub fn boot_id() -> Option<String> {
    Some(fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?.trim().to_owned())
}

/// A fact about the running kernel (`None` included: it lacks it), kept as `name` in the cache
/// directory for as long as this boot lasts: read from there, else found by `find` and kept.
pub fn for_this_boot<T: FromStr + Display>(name: &str, find: impl FnOnce() -> Option<T>) -> Option<T> {
    match (from_env(), boot_id()) {
        (Some(dir), Some(boot)) => kept_for_boot(&dir.join(name), &boot, find),
        _ => find(),
    }
}

fn kept_for_boot<T: FromStr + Display>(path: &Path, boot: &str, find: impl FnOnce() -> Option<T>) -> Option<T> {
    let header = format!("boot {boot}\n");
    let kept = fs::read_to_string(path).ok().and_then(|text| match text.strip_prefix(&header)?.strip_suffix('\n')? {
        "none" => Some(None),
        value => value.parse().ok().map(Some),
    });
    if let Some(kept) = kept {
        return kept;
    }
    let found = find();
    let value = found.as_ref().map_or_else(|| "none".to_owned(), ToString::to_string);
    // Not kept: found again next time.
    let _ = write_whole(path, format!("{header}{value}\n").as_bytes());
    found
}

/// The entries in `kept`'s directory whose names are `prefix`, a key, `suffix`: `kept` first,
/// then the newest first, each with its key. What a cache removes when it has written `kept`
/// is decided from this order; nothing else in the directory is listed.
pub fn entries_newest_first(kept: &Path, prefix: &str, suffix: &str) -> Vec<(PathBuf, String)> {
    let Some(listing) = kept.parent().and_then(|dir| fs::read_dir(dir).ok()) else { return Vec::new() };
    let mut entries: Vec<(bool, Reverse<SystemTime>, PathBuf, String)> = listing
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let key = name.strip_prefix(prefix)?.strip_suffix(suffix)?.to_owned();
            let modified = entry.metadata().ok()?.modified().ok()?;
            let path = entry.path();
            Some((path != kept, Reverse(modified), path, key))
        })
        .collect();
    entries.sort_unstable();
    entries.into_iter().map(|(_, _, path, key)| (path, key)).collect()
}

/// Writes `bytes` to `path` whole or not at all (a temporary file renamed over it), readable
/// by its owner alone (the kernel's symbols give its address layout away).
pub fn write_whole(path: &Path, bytes: &[u8]) -> io::Result<()> {
    fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    // Per process: two zeek-probes filling the same entry each rename a whole file over it.
    let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_written_file_is_whole_and_its_owners_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/entry");
        write_whole(&path, b"first").unwrap();
        write_whole(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // No temporary file is left beside it.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_boots_fact_is_found_once_per_boot_and_kept_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let (path, finds) = (dir.path().join("fact"), std::cell::Cell::new(0));
        let finds = &finds;
        let find = |value: Option<u32>| {
            move || {
                finds.set(finds.get() + 1);
                value
            }
        };
        assert_eq!(kept_for_boot(&path, "boot-a", find(Some(2744))), Some(2744));
        assert_eq!(kept_for_boot(&path, "boot-a", find(Some(1))), Some(2744), "kept for this boot");
        assert_eq!(finds.get(), 1);
        assert_eq!(kept_for_boot(&path, "boot-b", find(None)), None, "another boot finds it again");
        assert_eq!(kept_for_boot(&path, "boot-b", find(Some(1))), None, "a missing fact is kept too");
        assert_eq!(finds.get(), 2);
        fs::write(&path, "boot boot-b\nnot a number\n").unwrap();
        assert_eq!(kept_for_boot(&path, "boot-b", find(Some(7))), Some(7), "a damaged entry is found again");
        assert_eq!(kept_for_boot(&path, "boot-b", find(Some(1))), Some(7));
        assert_eq!(finds.get(), 3);
    }
}
