//! The kernel's symbols of this boot, kept in the cache directory (`cache_dir`): kallsyms is
//! ~120,000 lines the kernel formats anew for each reader (~30 ms of its time, ~10 of ours to
//! parse), which every `record` paid beside its command.
//!
//! Only what stays put while the machine runs with the same modules is kept: the kernel
//! image's text (`_stext`..`_etext`) and each loaded module's text from its first symbol to its
//! last (one allocation each: nothing else is mapped in between). An address elsewhere (a BPF
//! program, an ftrace trampoline, past a module's last symbol) is named from kallsyms, read
//! then (`KernelSymbols::frame_name`). The entry is this boot's (its boot id) with these modules
//! (names, sizes, addresses) and this zeek-probe's: any other is ignored and replaced, as is one
//! that does not read whole. It is used only while kallsyms shows addresses to the reader.
use std::{
    collections::{HashMap, HashSet},
    fs,
    io::Read as _,
    ops::Range,
    path::Path,
};

use super::{KernelSymbols, kernel_symbols::in_ranges};
use crate::cache_dir;

const FILE: &str = "kernel-symbols";
/// Bumped whenever the entry's meaning changes.
const FORMAT: u32 = 1;

/// What an entry must have been made under.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Boot {
    /// /proc/sys/kernel/random/boot_id: new at every boot (and so is the kernel's KASLR slide).
    id: String,
    /// `name:size:address` of each loaded module, as /proc/modules lists them.
    modules: String,
}

impl Boot {
    fn current() -> Option<Self> {
        let id = cache_dir::boot_id()?;
        // A kernel built without modules has no /proc/modules.
        let listed = fs::read_to_string("/proc/modules").unwrap_or_default();
        // name size refcount dependencies state address: the refcount and state change meanwhile.
        let modules: Vec<String> = listed
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                Some(format!("{}:{}:{}", fields.first()?, fields.get(1)?, fields.get(5)?))
            })
            .collect();
        Some(Self { id, modules: modules.join(" ") })
    }

    fn module_names(&self) -> impl Iterator<Item = &str> {
        self.modules.split(' ').filter_map(|module| module.split(':').next()).filter(|name| !name.is_empty())
    }
}

/// This boot's entry, if there is one that reads whole, and only while kallsyms shows this
/// process addresses (`kernel.kptr_restrict` may have been raised since it was kept).
pub fn load() -> Option<KernelSymbols> {
    if !kallsyms_shows_addresses() {
        return None;
    }
    load_from(&cache_dir::from_env()?.join(FILE), &Boot::current()?)
}

/// Whether kallsyms' first line has a non-zero address (the kernel formats only that line).
fn kallsyms_shows_addresses() -> bool {
    let mut first = [0u8; 16];
    let read = fs::File::open("/proc/kallsyms").and_then(|mut file| file.read_exact(&mut first));
    read.is_ok() && first.iter().any(|digit| !matches!(digit, b'0'))
}

/// Keeps what of `listed` (kallsyms as read now) lasts the boot. Failing costs only the time
/// the next run would have saved.
pub fn store(listed: &KernelSymbols) {
    if let (Some(dir), Some(boot)) = (cache_dir::from_env(), Boot::current()) {
        let _ = cache_dir::write_whole(&dir.join(FILE), entry(&boot, listed).as_bytes());
    }
}

fn header(boot: &Boot) -> String {
    format!(
        "zeek-probe kernel symbols {FORMAT} {}\nboot {}\nmodules {}\n",
        env!("CARGO_PKG_VERSION"),
        boot.id,
        boot.modules
    )
}

/// The entry's text: the header, the ranges it covers and how many symbols are in them, a
/// blank line, then those symbols as kallsyms lists them (`ffffffff81001000 t do_syscall_64`).
fn entry(boot: &Boot, listed: &KernelSymbols) -> String {
    let covers = lasting_text(boot, listed);
    let ranges: Vec<String> = covers.iter().map(|r| format!("{:x}-{:x}", r.start, r.end)).collect();
    let kept: Vec<(u64, &str)> = listed.symbols().filter(|(address, _)| in_ranges(&covers, *address)).collect();
    let mut text = header(boot) + &format!("covers {}\nsymbols {}\n\n", ranges.join(" "), kept.len());
    for (address, name) in kept {
        text += &format!("{address:016x} t {name}\n");
    }
    text
}

/// The address ranges of `listed` that last the boot: the image's text and each loaded
/// module's from its first symbol to its last, sorted. One pass over the symbols (sorted by
/// address): a host has ~100 modules.
fn lasting_text(boot: &Boot, listed: &KernelSymbols) -> Vec<Range<u64>> {
    let loaded: HashSet<&str> = boot.module_names().collect();
    let (mut start, mut end) = (None, None);
    let mut modules: HashMap<&str, Range<u64>> = HashMap::new();
    for (address, name) in listed.symbols() {
        match name.rsplit_once("\t[").and_then(|(_, module)| module.strip_suffix(']')) {
            Some(module) if loaded.contains(module) => {
                modules.entry(module).or_insert(address..address).end = address + 1;
            }
            Some(_) => {}
            None if name == "_stext" => start = start.or(Some(address)),
            None if name == "_etext" => end = end.or(Some(address)),
            None => {}
        }
    }
    let mut covers: Vec<Range<u64>> = modules.into_values().collect();
    if let (Some(start), Some(end)) = (start, end) {
        covers.push(start..end);
    }
    covers.sort_unstable_by_key(|r| r.start);
    covers
}

/// The entry at `path` if it was made under `boot` by this zeek-probe and reads whole.
fn load_from(path: &Path, boot: &Boot) -> Option<KernelSymbols> {
    let mut text = fs::read_to_string(path).ok()?;
    let (head, _) = text.split_once("\n\n")?;
    let (covers, count) = head.strip_prefix(&header(boot))?.split_once('\n')?;
    let covers = parse_ranges(covers.strip_prefix("covers ")?)?;
    let count: usize = count.strip_prefix("symbols ")?.parse().ok()?;
    let head_len = head.len() + 2;
    text.drain(..head_len);
    let symbols = KernelSymbols::parse(text);
    // As many as were written (not cut short), and each in the ranges.
    let whole = count > 0
        && symbols.symbols().count() == count
        && symbols.symbols().all(|(address, _)| in_ranges(&covers, address));
    whole.then(|| symbols.covering(covers))
}

/// `start-end` hexadecimal ranges separated by spaces, sorted and apart; `None` otherwise.
fn parse_ranges(line: &str) -> Option<Vec<Range<u64>>> {
    let ranges = line
        .split(' ')
        .map(|range| {
            let (start, end) = range.split_once('-')?;
            let range = u64::from_str_radix(start, 16).ok()?..u64::from_str_radix(end, 16).ok()?;
            (range.start < range.end).then_some(range)
        })
        .collect::<Option<Vec<_>>>()?;
    ranges.windows(2).all(|pair| pair[0].end <= pair[1].start).then_some(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KALLSYMS: &str = "\
ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81001000 t do_syscall_64
ffffffff81002000 D some_data
ffffffff81003000 T vfs_read
ffffffff82000000 T _etext
ffffffffc0001000 t nf_hook_slow\t[nf_tables]
ffffffffc0002000 t nft_do_chain\t[nf_tables]
ffffffffc0100000 t bpf_prog_6deef7357e7b4530_cpu_sample\t[bpf]
ffffffffc0200000 t ftrace_trampoline\t[__builtin__ftrace]
";

    fn boot() -> Boot {
        Boot {
            id: "27392f76-043a-414f-8760-e0593bf7c6b9".into(),
            modules: "nf_tables:356352:0xffffffffc0001000".into(),
        }
    }

    fn stored(boot: &Boot) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        fs::write(&path, entry(boot, &KernelSymbols::parse(KALLSYMS))).unwrap();
        (dir, path)
    }

    #[test]
    fn the_image_and_module_text_are_kept_and_named_as_kallsyms_names_them() {
        let (_dir, path) = stored(&boot());
        let listed = KernelSymbols::parse(KALLSYMS);
        let cached = load_from(&path, &boot()).expect("the entry loads under the boot it was made in");
        for address in
            [0xffffffff81000000, 0xffffffff81001234, 0xffffffff81002100, 0xffffffff81ffffff, 0xffffffffc0001010]
        {
            assert!(cached.covers(address), "{address:x} is covered");
            assert_eq!(cached.frame_name(address), listed.frame_name(address), "{address:x}");
        }
        assert_eq!(cached.frame_name(0xffffffffc0002000), "[k] nft_do_chain [nf_tables]");
        // Past the image, past a module's last symbol, a BPF program, a trampoline: kallsyms
        // as listed then names them.
        for address in [0xffffffff82000000, 0xffffffffc0002001, 0xffffffffc0100010, 0xffffffffc0200000, 0x1000] {
            assert!(!cached.covers(address), "{address:x} is not covered");
        }
        assert!(cached.symbols().all(|(_, name)| !name.contains("[bpf]") && !name.contains("ftrace")));
    }

    #[test]
    fn another_boot_other_modules_or_a_damaged_entry_are_not_used() {
        let (_dir, path) = stored(&boot());
        let rebooted = Boot { id: "d3e1c0a2-0000-4000-8000-000000000000".into(), ..boot() };
        assert!(load_from(&path, &rebooted).is_none(), "another boot");
        let reloaded = Boot { modules: "nf_tables:356352:0xffffffffc0400000".into(), ..boot() };
        assert!(load_from(&path, &reloaded).is_none(), "a module loaded elsewhere");
        let whole = fs::read_to_string(&path).unwrap();
        for damaged in [
            whole.replace("zeek-probe kernel symbols 1", "zeek-probe kernel symbols 0"),
            whole.replace("covers ", "covers zz-"),
            whole.replace("ffffffff81001000 t do_syscall_64", "ffffffff90000000 t do_syscall_64"),
            whole[..whole.find("\n\n").unwrap() + 2].to_owned(),
            whole[..whole.len() / 3].to_owned(),
            String::new(),
        ] {
            fs::write(&path, &damaged).unwrap();
            assert!(load_from(&path, &boot()).is_none(), "{damaged:?}");
        }
    }

    /// On the running kernel (root without kptr_restrict, as in CI): the entry made from the
    /// real kallsyms names each of its symbols as kallsyms does, and covers the syscall entry.
    #[test]
    fn the_running_kernels_entry_names_as_its_kallsyms() {
        let listed = KernelSymbols::parse(fs::read_to_string("/proc/kallsyms").unwrap_or_default());
        if listed.is_empty() {
            // SAFETY: geteuid cannot fail.
            let root = unsafe { libc::geteuid() } == 0;
            let restricted = fs::read_to_string("/proc/sys/kernel/kptr_restrict").is_ok_and(|r| r.trim() != "0");
            assert!(!root || restricted, "root without kptr_restrict sees kallsyms' addresses");
            return;
        }
        assert!(kallsyms_shows_addresses());
        let boot = Boot::current().expect("this boot's id");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        fs::write(&path, entry(&boot, &listed)).unwrap();
        let cached = load_from(&path, &boot).expect("the entry loads");
        let (syscall, _) = listed.symbols().find(|(_, name)| *name == "do_syscall_64").expect("do_syscall_64");
        assert!(cached.covers(syscall + 1));
        let covered: Vec<u64> = listed.symbols().map(|(a, _)| a).filter(|a| cached.covers(*a)).step_by(7).collect();
        assert!(covered.len() * 7 * 2 > listed.symbols().count(), "most of the kernel's text is covered");
        for address in covered {
            assert_eq!(cached.frame_name(address + 1), listed.frame_name(address + 1), "{address:x}");
        }
    }
}
