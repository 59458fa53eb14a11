//! One process's unwinder: a module per file it maps (from /proc/PID/maps) and the vDSO, each
//! with its file's shared unwind data, placed at the process's load bias. Libraries loaded later
//! (plugins) are picked up when an address falls outside every known module.
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use framehop::{
    Module, Unwinder,
    x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64},
};
use profiler_common::native_stacks::NativeStackHeader;

use super::{
    MAX_NATIVE_DEPTH,
    binary_unwind_data::{BinaryCache, MappedSection},
    table::NativeFrames,
};
use crate::target::mappings::{self, Mapping};

/// Re-reading /proc/PID/maps for an unknown address happens at most this often (a start-up
/// maps the libraries within milliseconds of the first samples; plugins load later).
const MAPS_REREAD: Duration = Duration::from_millis(100);

/// The end of the first page, where no code is ever mapped (vm.mmap_min_addr keeps it unmapped;
/// a kernel allowing page zero still loads no file there).
const PAGE_ZERO_END: u64 = 4096;

pub struct ProcessUnwinder {
    pid: u32,
    unwinder: UnwinderX86_64<MappedSection>,
    cache: CacheX86_64,
    /// Start → end of each module added.
    modules: BTreeMap<u64, u64>,
    maps_read: Option<Instant>,
}

impl ProcessUnwinder {
    pub fn new(pid: u32) -> Self {
        Self {
            pid,
            unwinder: UnwinderX86_64::new(),
            cache: CacheX86_64::new(),
            modules: BTreeMap::new(),
            maps_read: None,
        }
    }

    fn knows(&self, address: u64) -> bool {
        self.modules.range(..=address).next_back().is_some_and(|(_, end)| address < *end)
    }

    /// Adds the modules of files mapped since the maps were last read; whether it added any.
    fn read_maps(&mut self, binaries: &mut BinaryCache) -> bool {
        if self.maps_read.is_some_and(|at| at.elapsed() < MAPS_REREAD) {
            return false;
        }
        let mut added = false;
        self.maps_read = Some(Instant::now());
        let maps = mappings::read(self.pid);
        for maps in images(&maps) {
            let path = maps[0].path.as_str();
            let start = maps.iter().map(|m| m.start).min().unwrap_or(0);
            let end = maps.iter().map(|m| m.end).max().unwrap_or(0);
            if self.modules.get(&start) == Some(&end) {
                continue;
            }
            let Some(data) = binaries.get(self.pid, path) else { continue };
            // The load bias: where the first loadable segment's page is mapped, minus its
            // link-time page address.
            let page = !4095u64;
            let Some(first) = maps.iter().find(|m| m.offset == data.first_load_offset & page) else { continue };
            let bias = first.start.wrapping_sub(data.first_load_vaddr & page);
            if self.modules.remove(&start).is_some() {
                self.unwinder.remove_module(start);
            }
            self.unwinder.add_module(Module::new(path.to_owned(), start..end, bias, data.section_info()));
            self.modules.insert(start, end);
            added = true;
        }
        added
    }

    /// Unwinds one record (its registers, and its stack bytes copied from `sp` up) as far as
    /// its unwind data and stack bytes go. The frames' addresses come root first, each the
    /// address to name: a return address minus one, so a call at a function's end names the
    /// caller. (Whether it reached `main` is told by name: the unwinder also ends "cleanly" at
    /// a frame it falls back to frame pointers for.)
    pub fn unwind(&mut self, header: &NativeStackHeader, stack: &[u8], binaries: &mut BinaryCache) -> NativeFrames {
        let mut frames = self.walk(header, stack);
        // The walk stops at the first address of a file not known yet: its root-most frame.
        if frames.first().is_some_and(|address| !self.knows(*address)) && self.read_maps(binaries) {
            frames = self.walk(header, stack);
        }
        // A "return address" in the first page is a value the walk took for one where there
        // is none: at a new process's entry point the stack's top word is argc.
        let roots_in_page_zero = frames.iter().take_while(|address| **address < PAGE_ZERO_END).count();
        frames.drain(..roots_in_page_zero);
        frames
    }

    /// The frames of one record with the modules known so far.
    fn walk(&mut self, header: &NativeStackHeader, stack: &[u8]) -> NativeFrames {
        let sp = header.sp;
        let mut read_stack = |address: u64| {
            let offset = usize::try_from(address.checked_sub(sp).ok_or(())?).map_err(|_| ())?;
            let bytes = stack.get(offset..offset.checked_add(8).ok_or(())?).ok_or(())?;
            Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| ())?))
        };
        let regs = UnwindRegsX86_64::new(header.ip, sp, header.bp);
        let mut frames = self.unwinder.iter_frames(header.ip, regs, &mut self.cache, &mut read_stack);
        let mut innermost_first = Vec::new();
        while let Ok(Some(frame)) = frames.next() {
            if innermost_first.len() == MAX_NATIVE_DEPTH {
                break;
            }
            innermost_first.push(frame.address_for_lookup());
        }
        innermost_first.reverse();
        innermost_first
    }
}

/// The images of files (and the vDSO) among `maps`, each its mappings in address order: the
/// loader maps a file's segments one after the other, the first at offset 0. A file mapped
/// again elsewhere (read whole by `mmap`, as zeek-probe reads its own libraries) is an image of
/// its own; taken for one with the loader's, it made a module spanning both, placed at the
/// wrong bias.
fn images(maps: &[Mapping]) -> Vec<Vec<&Mapping>> {
    let mut images: Vec<Vec<&Mapping>> = Vec::new();
    for m in maps.iter().filter(|m| m.path.starts_with('/') || m.path == mappings::VDSO) {
        match images.last_mut() {
            Some(image) if m.offset != 0 && image[0].path == m.path => image.push(m),
            _ => images.push(vec![m]),
        }
    }
    images
}

#[cfg(test)]
mod tests {
    use profiler_common::native_stacks::{THREAD_STACK_SPAN_MAX, USER_STACK_MAX};

    use super::*;
    use crate::symbolize::LibrarySymbols;

    /// The end of the (anonymous) mapping holding `address`, from /proc/self/maps.
    fn mapping_end(address: u64) -> u64 {
        mapping_around(address).end
    }

    /// The mapping holding `address`, file-backed or not, from /proc/self/maps.
    fn mapping_around(address: u64) -> std::ops::Range<u64> {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .filter_map(|l| l.split_whitespace().next()?.split_once('-'))
            .map(|(s, e)| (u64::from_str_radix(s, 16).unwrap(), u64::from_str_radix(e, 16).unwrap()))
            .map(|(s, e)| s..e)
            .find(|range| range.contains(&address))
            .unwrap()
    }

    /// This thread's registers and a copy of its stack from `sp` up to `stack_end(sp)` (at
    /// most `USER_STACK_MAX` bytes), as the sampler sends them.
    #[inline(never)]
    fn capture(stack_end: impl Fn(u64) -> u64) -> (NativeStackHeader, Vec<u8>) {
        let (ip, sp, bp): (u64, u64, u64);
        // SAFETY: reads three registers, writes nothing. What is above `sp` (this frame's
        // return address and saved registers, the callers' frames) stays as it is while it
        // is copied below.
        unsafe {
            std::arch::asm!("lea {ip}, [rip]", "mov {sp}, rsp", "mov {bp}, rbp",
                ip = out(reg) ip, sp = out(reg) sp, bp = out(reg) bp)
        };
        let len = (stack_end(sp) - sp).min(USER_STACK_MAX as u64) as usize;
        // SAFETY: the callers give an end inside this thread's stack mapping.
        let stack = unsafe { std::slice::from_raw_parts(sp as *const u8, len) }.to_vec();
        (NativeStackHeader { ip, sp, bp, stack_len: len as u32, ..Default::default() }, stack)
    }

    /// Unwinds this test's own thread from a copy of its stack: a real `.eh_frame` walk from
    /// registers and bytes, as the sampler sends them.
    #[test]
    fn unwinds_a_copy_of_this_threads_stack_through_its_callers() {
        let (header, stack) = capture(mapping_end);
        let mut unwinder = ProcessUnwinder::new(std::process::id());
        let unwound = unwinder.unwind(&header, &stack, &mut BinaryCache::default());
        // The test harness's frames are above ours, down from the thread's start.
        assert!(unwound.len() >= 5, "{unwound:?}");
        let files = mappings::read(std::process::id());
        assert!(unwound.iter().all(|a| mappings::mapping_of(&files, *a).is_some()), "{unwound:?}");
        // The innermost frame is the captured instruction pointer itself.
        assert_eq!(unwound.last(), Some(&header.ip));
    }

    /// The loader's segments of a library are one image; the same file mapped again whole
    /// (zeek-probe reads its own libraries so) is another, and the vDSO is one.
    #[test]
    fn a_file_mapped_twice_is_two_images() {
        let map =
            |start: u64, offset: u64, path: &str| Mapping { start, end: start + 0x1000, offset, path: path.to_owned() };
        let libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
        let maps = [
            map(0x7f00_0000_0000, 0, libc),
            map(0x7f00_0002_8000, 0x28000, libc),
            map(0x7f00_001b_d000, 0x1bd000, libc),
            map(0x7f00_1000_0000, 0, "/usr/lib/x86_64-linux-gnu/libm.so.6"),
            map(0x7f10_0000_0000, 0, libc),
            map(0x7fff_f7fc_0000, 0, mappings::VDSO),
        ];
        let starts: Vec<Vec<u64>> = images(&maps).iter().map(|i| i.iter().map(|m| m.start).collect()).collect();
        assert_eq!(
            starts,
            [
                vec![0x7f00_0000_0000, 0x7f00_0002_8000, 0x7f00_001b_d000],
                vec![0x7f00_1000_0000],
                vec![0x7f10_0000_0000],
                vec![0x7fff_f7fc_0000]
            ]
        );
    }

    /// A sample in the vDSO (`clock_gettime`, which Zeek calls for the time) unwinds through
    /// the vDSO's own `.eh_frame` to its caller: here a call into it made from this test's
    /// frame, caught at the vDSO function's first instruction, the return address on top of
    /// the stack.
    #[test]
    fn a_sample_in_the_vdso_unwinds_to_its_caller() {
        let pid = std::process::id();
        let (header, stack) = capture(mapping_end);
        let files = mappings::read(pid);
        let vdso = files.iter().find(|m| m.path == mappings::VDSO).expect("the vDSO is mapped");
        let image = mappings::own_vdso().expect("the vDSO read");
        let entry = image.symbols().get("__vdso_clock_gettime").expect("the vDSO exports clock_gettime").address;
        let called: Vec<u8> = header.ip.to_le_bytes().into_iter().chain(stack).collect();
        let in_vdso = NativeStackHeader {
            ip: vdso.start + entry,
            sp: header.sp - 8,
            bp: header.bp,
            stack_len: called.len() as u32,
            ..Default::default()
        };
        let unwound = ProcessUnwinder::new(pid).unwind(&in_vdso, &called, &mut BinaryCache::default());
        let through: Vec<u64> = ProcessUnwinder::new(pid).unwind(&header, &called[8..], &mut BinaryCache::default());
        assert_eq!(unwound.last(), Some(&in_vdso.ip), "{unwound:x?}");
        assert!(unwound.len() >= 6, "{unwound:x?}");
        // The caller, named by its return address less one, then the frames above it as an
        // unwind from the caller finds them, to the thread's start.
        assert_eq!(unwound[unwound.len() - 2], header.ip - 1, "{unwound:x?}");
        assert_eq!(unwound[..unwound.len() - 2], through[..through.len() - 1], "{unwound:x?} against {through:x?}");
    }

    /// A process stopped at its first instruction (ld.so's `_start`, after execve) has argc
    /// where a return address would be: the frames are the entry point alone.
    #[test]
    fn a_process_at_its_entry_point_has_the_entry_point_alone() {
        use object::{Object, read::elf::ElfFile64};
        let files = mappings::read(std::process::id());
        let ld_so = files.iter().find(|m| m.path.contains("/ld-linux") && m.offset == 0).expect("ld.so is mapped");
        let bytes = std::fs::read(&ld_so.path).unwrap();
        let entry = ElfFile64::<object::Endianness>::parse(&*bytes).unwrap().entry();
        // argc 4, argv[0..4], the null ending argv: the top of a new process's stack.
        let stack: Vec<u8> = [4u64, 0x7ffd_0000_1000, 0x7ffd_0000_1010, 0x7ffd_0000_1020, 0x7ffd_0000_1030, 0]
            .iter()
            .flat_map(|word| word.to_le_bytes())
            .collect();
        let ip = ld_so.start + entry;
        let header =
            NativeStackHeader { ip, sp: 0x7ffd_0000_0000, stack_len: stack.len() as u32, ..Default::default() };
        let unwound = ProcessUnwinder::new(std::process::id()).unwind(&header, &stack, &mut BinaryCache::default());
        assert_eq!(unwound, [ip]);
    }

    /// The kernel's FS base of the calling thread (`task_struct->thread.fsbase`, what the
    /// sampler reads).
    fn fs_base() -> u64 {
        // From <asm/prctl.h>; the libc crate does not export it.
        const ARCH_GET_FS: libc::c_long = 0x1003;
        let mut base = 0u64;
        // SAFETY: ARCH_GET_FS writes one u64 to the address given.
        let rc = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_GET_FS, &mut base as *mut u64) };
        assert_eq!(rc, 0, "arch_prctl(ARCH_GET_FS)");
        base
    }

    /// What the sampler relies on for threads other than the main one: glibc's
    /// `pthread_create` puts the thread pointer at the top of the mapping of the thread's
    /// stack, so [sp, fs_base) is that stack, and a copy of it unwinds to libc's thread start.
    #[test]
    fn a_threads_stack_up_to_its_fs_base_unwinds_to_the_threads_start_in_libc() {
        let pid = std::process::id();
        // The maps are read while the thread runs: its stack goes when it ends.
        let (header, stack, fs_base, of_sp, files) = std::thread::spawn(move || {
            let fs_base = fs_base();
            let (header, stack) = capture(|_| fs_base);
            (header, stack, fs_base, mapping_around(header.sp), mappings::read(pid))
        })
        .join()
        .unwrap();
        let span = fs_base - header.sp;
        assert!(fs_base > header.sp && span <= THREAD_STACK_SPAN_MAX, "sp {:#x} fs_base {fs_base:#x}", header.sp);
        assert!(of_sp.contains(&(fs_base - 1)), "fs_base {fs_base:#x} outside {of_sp:x?}, the stack's");
        let unwound = ProcessUnwinder::new(pid).unwind(&header, &stack, &mut BinaryCache::default());
        let root = *unwound.first().expect("frames");
        let libc = mappings::mapping_of(&files, root).filter(|m| m.path.contains("/libc.so"));
        let libc = libc.unwrap_or_else(|| panic!("the root frame {root:#x} is not in libc: {unwound:x?}"));
        let name = LibrarySymbols::new(pid).lookup(libc, root).map(|f| f.name);
        assert!(matches!(name.as_deref(), Some("clone3" | "clone" | "start_thread")), "{name:?}");
    }
}
