//! The target's memory map (/proc/PID/maps): where its executable and libraries are loaded.
use std::{
    fs::{self, File},
    os::unix::fs::FileExt as _,
    path::Path,
    sync::{Arc, LazyLock},
};

use crate::binary::ElfFile;

/// The vDSO's name in /proc/PID/maps.
pub const VDSO: &str = "[vdso]";

/// One file-backed mapping (or the vDSO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// File offset mapped at `start`.
    pub offset: u64,
    pub path: String,
}

/// Parses the text of /proc/PID/maps, keeping file-backed mappings.
pub fn parse(maps: &str) -> Vec<Mapping> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let _perms = fields.next()?;
            let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
            let path = fields.nth(2)?;
            // Files, and the vDSO (clock_gettime and friends run there).
            if !path.starts_with('/') && path != "[vdso]" {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                offset,
                path: path.to_owned(),
            })
        })
        .collect()
}

/// The file-backed mappings of `pid`, empty once it is gone.
pub fn read(pid: u32) -> Vec<Mapping> {
    fs::read_to_string(format!("/proc/{pid}/maps")).map(|m| parse(&m)).unwrap_or_default()
}

/// The vDSO, which has no file: copied once out of zeek-probe's own memory, since every 64-bit
/// process of this kernel maps the same image; its symbols and its unwind tables share it.
pub fn own_vdso() -> Option<Arc<ElfFile>> {
    static OWN_VDSO: LazyLock<Option<Arc<ElfFile>>> = LazyLock::new(|| {
        let own = read(std::process::id());
        let mapping = own.iter().find(|m| m.path == VDSO)?;
        let mut image = vec![0; usize::try_from(mapping.end.checked_sub(mapping.start)?).ok()?];
        File::open("/proc/self/mem").ok()?.read_exact_at(&mut image, mapping.start).ok()?;
        ElfFile::from_bytes(Path::new(VDSO), image).ok().map(Arc::new)
    });
    OWN_VDSO.clone()
}

/// Where the main thread's call frames end: at `start_stack` (/proc/PID/stat), where the
/// kernel put `argc` under the arguments, environment and auxiliary vector (kilobytes that an
/// unwinder never needs), within `[stack]` of /proc/PID/maps.
pub fn main_stack_end(pid: u32) -> Option<u64> {
    let end = stack_end(&fs::read_to_string(format!("/proc/{pid}/maps")).ok()?)?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `argc` and the word above it, for an unwinder reading the outermost frame's end.
    let frames_end = start_stack(&stat).map_or(end, |start| start.saturating_add(16));
    Some(frames_end.min(end))
}

/// Field 28 of /proc/PID/stat.
fn start_stack(stat: &str) -> Option<u64> {
    super::process::stat_fields(stat)?.nth(25)?.parse().ok()
}

fn stack_end(maps: &str) -> Option<u64> {
    let line = maps.lines().find(|line| line.ends_with(" [stack]"))?;
    let (_, end) = line.split_whitespace().next()?.split_once('-')?;
    u64::from_str_radix(end, 16).ok()
}

/// The mapping an address is in.
pub fn mapping_of(mappings: &[Mapping], address: u64) -> Option<&Mapping> {
    mappings.iter().find(|m| (m.start..m.end).contains(&address))
}

/// Where this process's own code at `address` is in the file it is mapped from.
pub fn own_file_offset(address: u64) -> Option<u64> {
    let maps = read(std::process::id());
    let mapping = mapping_of(&maps, address)?;
    Some(address - mapping.start + mapping.offset)
}

/// The file name of a mapping (`libc.so.6`, `[vdso]`).
pub fn file_name(mapping: &Mapping) -> &str {
    mapping.path.rsplit('/').next().unwrap_or(&mapping.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\\
55d0c0000000-55d0c0010000 r--p 00000000 fd:00 123 /usr/local/zeek/bin/zeek
55d0c0010000-55d0c0200000 r-xp 00010000 fd:00 123 /usr/local/zeek/bin/zeek
7f0000000000-7f0000020000 r-xp 00028000 fd:00 456 /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0 [vdso]
7f0000100000-7f0000101000 rw-p 00000000 00:00 0
";

    #[test]
    fn the_main_stack_ends_where_its_mapping_does() {
        assert_eq!(stack_end(MAPS), Some(0x7ffd00021000));
        assert_eq!(stack_end("7f0000100000-7f0000101000 rw-p 00000000 00:00 0\n"), None);
        let own = main_stack_end(std::process::id()).unwrap();
        let own_end = stack_end(&fs::read_to_string("/proc/self/maps").unwrap()).unwrap();
        assert!(own <= own_end && own + 64 * 1024 > own_end, "{own:#x} under {own_end:#x}: the environment above");
        let stat = "12 (a b) S 1 12 12 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 5 100 200 18446744073709551615 1 1 140728644824208 0";
        assert_eq!(start_stack(stat), Some(140728644824208));
    }

    #[test]
    fn keeps_file_backed_mappings() {
        let m = parse(MAPS);
        assert_eq!(m.len(), 4);
        assert_eq!(
            m[1],
            Mapping {
                start: 0x55d0c0010000,
                end: 0x55d0c0200000,
                offset: 0x10000,
                path: "/usr/local/zeek/bin/zeek".into()
            }
        );
    }

    #[test]
    fn names_the_library_of_an_address() {
        let m = parse(MAPS);
        let library_of = |address| mapping_of(&m, address).map(file_name);
        assert_eq!(library_of(0x7f0000000100), Some("libc.so.6"));
        assert_eq!(library_of(0x7ffd00000100), None);
        assert_eq!(library_of(0x7ffd00100100), Some("[vdso]"));
    }
}
