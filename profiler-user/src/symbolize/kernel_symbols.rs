//! Kernel instruction pointers → kernel function names, from /proc/kallsyms. The kernel's text
//! does not move while zeek-probe runs, so the table is read once and shared by every target;
//! what of it stays put for the whole boot is kept from one run to the next
//! (`kernel_symbol_cache`). With `kernel.kptr_restrict` (or without root) kallsyms lists every
//! address as zero: kernel frames are then shown as one `[kernel]` frame, and zeek-probe says
//! why once.
use std::{fs, ops::Range, sync::OnceLock};

use super::kernel_symbol_cache;
use crate::output;

/// How kernel frames are named: `[k] do_syscall_64`.
pub const KERNEL_PREFIX: &str = "[k] ";
/// The one frame shown for kernel code that cannot be named.
pub const KERNEL_UNNAMED: &str = "[kernel]";

/// Whether a decoded frame's name is a kernel frame's.
pub fn is_kernel_frame(name: &str) -> bool {
    name.starts_with(KERNEL_PREFIX) || name == KERNEL_UNNAMED
}

/// Kernel text symbols by address.
#[derive(Debug, Default)]
pub struct KernelSymbols {
    /// kallsyms as read: ~200,000 names, kept where they are rather than each allocated.
    text: String,
    /// Start address, and where in `text` the name is (a module's followed by a tab and
    /// `[module]`), sorted by address.
    functions: Vec<(u64, Range<u32>)>,
    /// The address ranges (sorted) this table names, when it holds only what the boot's cache
    /// keeps: other addresses are named from kallsyms as listed now. `None`: all of them.
    covers: Option<Vec<Range<u64>>>,
}

impl KernelSymbols {
    /// The running kernel's symbols, read on first use: this boot's cache, else kallsyms; empty
    /// (with a note) when hidden.
    pub fn shared() -> &'static Self {
        static CACHED: OnceLock<Option<KernelSymbols>> = OnceLock::new();
        let cached = CACHED.get_or_init(|| {
            let cached = kernel_symbol_cache::load();
            if cached.is_none() && !Self::listed().is_empty() {
                kernel_symbol_cache::store(Self::listed());
            }
            cached
        });
        cached.as_ref().unwrap_or_else(Self::listed)
    }

    /// The whole table as /proc/kallsyms lists it, read once.
    fn listed() -> &'static Self {
        static LISTED: OnceLock<KernelSymbols> = OnceLock::new();
        LISTED.get_or_init(|| {
            let symbols = fs::read_to_string("/proc/kallsyms").map(Self::parse).unwrap_or_default();
            if symbols.functions.is_empty() {
                output::note(format!(
                    "/proc/kallsyms shows no kernel addresses (kernel.kptr_restrict, or not root): kernel frames are shown as {KERNEL_UNNAMED}"
                ));
            }
            symbols
        })
    }

    /// Parses kallsyms text (`ffffffff81000000 T _stext`, `… t name\t[module]`), keeping text
    /// symbols. All-zero addresses (hidden) give an empty table.
    pub fn parse(text: impl Into<String>) -> Self {
        let text: String = text.into();
        let base = text.as_ptr() as usize;
        let mut functions: Vec<(u64, Range<u32>)> = text
            .lines()
            .filter_map(|line| {
                let (address, rest) = line.split_once(' ')?;
                let (kind, name) = rest.split_once(' ')?;
                let address = u64::from_str_radix(address, 16).ok()?;
                if address == 0 || !matches!(kind, "T" | "t" | "W" | "w") {
                    return None;
                }
                let name = name.trim_end();
                let start = u32::try_from(name.as_ptr() as usize - base).ok()?;
                Some((address, start..start.checked_add(u32::try_from(name.len()).ok()?)?))
            })
            .collect();
        // Of symbols at one address, the report names the last: as with names sorted.
        functions.sort_unstable_by(|(a, x), (b, y)| a.cmp(b).then_with(|| name_in(&text, x).cmp(name_in(&text, y))));
        Self { text, functions, covers: None }
    }

    /// This table, naming only the addresses in `covers` (sorted) itself.
    pub(super) fn covering(self, covers: Vec<Range<u64>>) -> Self {
        Self { covers: Some(covers), ..self }
    }

    /// Whether this table names `address` itself.
    pub(super) fn covers(&self, address: u64) -> bool {
        self.covers.as_ref().is_none_or(|covers| in_ranges(covers, address))
    }

    /// The symbols, by address; a module's name followed by a tab and `[module]`.
    pub(super) fn symbols(&self) -> impl Iterator<Item = (u64, &str)> {
        self.functions.iter().map(|(address, name)| (*address, name_in(&self.text, name)))
    }

    /// The frame name of the kernel function containing `address`: kallsyms has no sizes, so
    /// the nearest symbol at or below it.
    pub fn frame_name(&self, address: u64) -> String {
        if !self.covers(address) {
            return Self::listed().frame_name(address);
        }
        let i = self.functions.partition_point(|(start, _)| *start <= address);
        match i.checked_sub(1).map(|i| &self.functions[i]) {
            // A module's symbol: `name [module]`.
            Some((_, name)) => format!("{KERNEL_PREFIX}{}", name_in(&self.text, name).replace('\t', " ")),
            None => KERNEL_UNNAMED.to_owned(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }
}

/// Whether `address` is in one of `ranges` (sorted by start, apart).
pub(super) fn in_ranges(ranges: &[Range<u64>], address: u64) -> bool {
    let i = ranges.partition_point(|range| range.start <= address);
    i.checked_sub(1).is_some_and(|i| ranges[i].contains(&address))
}

fn name_in<'a>(text: &'a str, range: &Range<u32>) -> &'a str {
    text.get(range.start as usize..range.end as usize).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KALLSYMS: &str = "\
ffffffff81000000 T _stext
ffffffff81001000 t do_syscall_64
ffffffff81002000 D some_data
ffffffff81003000 W weak_fn
ffffffffc0001000 t nf_hook_slow\t[nf_tables]
";

    #[test]
    fn names_addresses_by_the_symbol_at_or_below_them() {
        let k = KernelSymbols::parse(KALLSYMS);
        assert_eq!(k.frame_name(0xffffffff81001234), "[k] do_syscall_64");
        // Data symbols are not functions: the text symbol below stands.
        assert_eq!(k.frame_name(0xffffffff81002100), "[k] do_syscall_64");
        assert_eq!(k.frame_name(0xffffffff81003000), "[k] weak_fn");
        assert_eq!(k.frame_name(0xffffffffc0001010), "[k] nf_hook_slow [nf_tables]");
        assert_eq!(k.frame_name(0x1000), KERNEL_UNNAMED);
    }

    #[test]
    fn hidden_addresses_give_no_names() {
        let k = KernelSymbols::parse("0000000000000000 T _stext\n0000000000000000 t do_syscall_64\n");
        assert!(k.is_empty());
        assert_eq!(k.frame_name(0xffffffff81001234), KERNEL_UNNAMED);
    }

    #[test]
    fn the_running_kernels_symbols_name_its_syscall_entry() {
        // As root on a kernel without kptr_restrict (CI), the real table names real code.
        let k = KernelSymbols::shared();
        if k.is_empty() {
            assert!(
                unsafe { libc::geteuid() } != 0
                    || fs::read_to_string("/proc/sys/kernel/kptr_restrict").is_ok_and(|r| r.trim() != "0")
            );
            return;
        }
        let text = fs::read_to_string("/proc/kallsyms").unwrap();
        let entry = text.lines().find(|l| l.ends_with(" do_syscall_64")).expect("do_syscall_64 in kallsyms");
        let address = u64::from_str_radix(entry.split_whitespace().next().unwrap(), 16).unwrap();
        assert_eq!(k.frame_name(address + 1), "[k] do_syscall_64");
    }
}
