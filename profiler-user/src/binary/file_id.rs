//! Which executable file a process runs, as the kernel knows it: device and inode (a path can
//! be replaced by an upgrade while the old file still runs), plus size and mtime so that a file
//! rewritten in place is not mistaken for the one inspected before.
use std::{fs, io, os::unix::fs::MetadataExt, path::Path};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
}

impl FileId {
    pub fn of(path: &Path) -> io::Result<Self> {
        let m = fs::metadata(path)?;
        Ok(Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_file_is_another_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zeek");
        fs::write(&path, b"one").unwrap();
        let first = FileId::of(&path).unwrap();
        assert_eq!(first, FileId::of(&path).unwrap());
        fs::write(&path, b"longer").unwrap();
        assert_ne!(first, FileId::of(&path).unwrap());
    }
}
