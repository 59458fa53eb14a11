//! The unwind data of one ELF file (an executable or a shared library): its `.eh_frame` and
//! `.eh_frame_hdr` (and `.text`, which lets the unwinder handle prologues and epilogues), mapped
//! from the file, not read: the real Zeek is 377 MB, its unwind tables a few MB, and only the
//! pages an unwind touches become resident. One per file, shared by every process running it;
//! the vDSO's (which has no file) is one image for every process.
use std::{
    collections::HashMap,
    ops::{Deref, Range},
    path::Path,
    sync::{Arc, LazyLock},
};

use framehop::ExplicitModuleSectionInfo;
use object::{Object, ObjectSection, ObjectSegment};

use crate::{
    binary::ElfFile,
    target::mappings::{VDSO, own_vdso},
};

/// A section's bytes inside the file's image.
#[derive(Clone)]
pub struct MappedSection {
    elf: Arc<ElfFile>,
    bytes: Range<usize>,
}

impl Deref for MappedSection {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.elf.data()[self.bytes.clone()]
    }
}

/// A section's link-time addresses and where its bytes are in the file.
#[derive(Debug, Clone)]
struct SectionPlace {
    svma: Range<u64>,
    bytes: Range<usize>,
}

pub struct BinaryUnwindData {
    elf: Arc<ElfFile>,
    text: Option<SectionPlace>,
    eh_frame: Option<SectionPlace>,
    eh_frame_hdr: Option<SectionPlace>,
    got: Option<Range<u64>>,
    /// File offset and link-time address of the first loadable segment: where the load bias
    /// of a process's mapping of the file is read from.
    pub first_load_offset: u64,
    pub first_load_vaddr: u64,
}

impl BinaryUnwindData {
    /// `None` for a file that is not an ELF with `.eh_frame`.
    pub fn open(path: &Path) -> Option<Self> {
        Self::of(Arc::new(ElfFile::open(path).ok()?))
    }

    /// The vDSO's, copied once from zeek-probe's own: samples in `clock_gettime` unwind
    /// through it to its caller.
    pub fn vdso() -> Option<Arc<Self>> {
        static VDSO_DATA: LazyLock<Option<Arc<BinaryUnwindData>>> =
            LazyLock::new(|| Some(Arc::new(BinaryUnwindData::of(own_vdso()?)?)));
        VDSO_DATA.clone()
    }

    fn of(elf: Arc<ElfFile>) -> Option<Self> {
        let image_len = elf.data().len();
        let parsed = elf.parsed();
        let place = |name: &str| {
            let section = parsed.section_by_name(name)?;
            let (offset, size) = section.file_range()?;
            let (start, size) = (usize::try_from(offset).ok()?, usize::try_from(size).ok()?);
            (start.checked_add(size)? <= image_len).then(|| SectionPlace {
                svma: section.address()..section.address() + section.size(),
                bytes: start..start + size,
            })
        };
        let eh_frame = place(".eh_frame")?;
        let segment = parsed.segments().next()?;
        let (text, eh_frame_hdr) = (place(".text"), place(".eh_frame_hdr"));
        let got = parsed.section_by_name(".got").map(|s| s.address()..s.address() + s.size());
        let (first_load_offset, first_load_vaddr) = (segment.file_range().0, segment.address());
        drop(parsed);
        Some(Self { text, eh_frame_hdr, got, eh_frame: Some(eh_frame), first_load_offset, first_load_vaddr, elf })
    }

    fn section(&self, place: &Option<SectionPlace>) -> Option<MappedSection> {
        place.as_ref().map(|p| MappedSection { elf: Arc::clone(&self.elf), bytes: p.bytes.clone() })
    }

    /// What the unwinder needs of the file, for a module of one process.
    pub fn section_info(&self) -> ExplicitModuleSectionInfo<MappedSection> {
        let svma = |place: &Option<SectionPlace>| place.as_ref().map(|p| p.svma.clone());
        ExplicitModuleSectionInfo {
            // ELF: link-time addresses are relative to 0.
            base_svma: 0,
            text_svma: svma(&self.text),
            text: self.section(&self.text),
            stubs_svma: None,
            stub_helper_svma: None,
            got_svma: self.got.clone(),
            unwind_info: None,
            eh_frame_svma: svma(&self.eh_frame),
            eh_frame: self.section(&self.eh_frame),
            eh_frame_hdr_svma: svma(&self.eh_frame_hdr),
            eh_frame_hdr: self.section(&self.eh_frame_hdr),
            debug_frame: None,
            text_segment_svma: None,
            text_segment: None,
        }
    }
}

/// Unwind data per file path, opened once (also a file that has none, remembered as such).
#[derive(Default)]
pub struct BinaryCache {
    by_path: HashMap<String, Option<Arc<BinaryUnwindData>>>,
}

impl BinaryCache {
    /// The unwind data of `path` as process `pid` maps it: opened through the process's root
    /// (its mount namespace), else as seen from here.
    pub fn get(&mut self, pid: u32, path: &str) -> Option<Arc<BinaryUnwindData>> {
        if path == VDSO {
            return BinaryUnwindData::vdso();
        }
        let open = || {
            BinaryUnwindData::open(Path::new(&format!("/proc/{pid}/root{path}")))
                .or_else(|| BinaryUnwindData::open(Path::new(path)))
                .map(Arc::new)
        };
        self.by_path.entry(path.to_owned()).or_insert_with(open).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_executable_has_unwind_data_and_a_file_without_it_has_none() {
        let exe = std::env::current_exe().unwrap();
        let data = BinaryUnwindData::open(&exe).expect("a Rust test binary has .eh_frame");
        let info = data.section_info();
        assert!(info.eh_frame.as_ref().is_some_and(|s| !s.is_empty()));
        assert!(info.eh_frame_svma.is_some() && info.text_svma.is_some());
        let mut cache = BinaryCache::default();
        let pid = std::process::id();
        assert!(cache.get(pid, exe.to_str().unwrap()).is_some());
        assert!(cache.get(pid, "/proc/self/status").is_none());
        assert!(cache.get(pid, "/no/such/file").is_none());
    }
}
