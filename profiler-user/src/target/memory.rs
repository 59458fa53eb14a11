//! Reading (never writing) the target's memory through /proc/PID/mem. Every value read is
//! untrusted: lengths and counts are bounded, strings checked to be printable.
use std::{fs::File, io, os::unix::fs::FileExt};

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("cannot open the memory of PID {pid}")]
    Open { pid: u32, source: io::Error },
    #[error("cannot read {len} bytes at {address:#x} in PID {pid}")]
    Read { pid: u32, address: u64, len: usize, source: io::Error },
    #[error("implausible value at {address:#x} in PID {pid}: {what}")]
    Implausible { pid: u32, address: u64, what: String },
}

/// Longest string read from the target (names, paths).
pub const MAX_STRING: u64 = 4096;

pub struct TargetMemory {
    pid: u32,
    mem: File,
}

impl TargetMemory {
    pub fn open(pid: u32) -> Result<Self, MemoryError> {
        let mem = File::open(format!("/proc/{pid}/mem")).map_err(|source| MemoryError::Open { pid, source })?;
        Ok(Self { pid, mem })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn read_bytes(&self, address: u64, len: usize) -> Result<Vec<u8>, MemoryError> {
        let mut buf = vec![0; len];
        self.mem.read_exact_at(&mut buf, address).map_err(|source| MemoryError::Read {
            pid: self.pid,
            address,
            len,
            source,
        })?;
        Ok(buf)
    }

    pub fn read_u64(&self, address: u64) -> Result<u64, MemoryError> {
        let b = self.read_bytes(address, 8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    pub fn read_i64(&self, address: u64) -> Result<i64, MemoryError> {
        Ok(self.read_u64(address)? as i64)
    }

    /// A libstdc++ `std::string` (data pointer, length) holding printable text.
    pub fn read_std_string(&self, address: u64) -> Result<String, MemoryError> {
        let data = self.read_u64(address)?;
        let len = self.read_u64(address + 8)?;
        if len > MAX_STRING {
            return Err(self.implausible(address, format!("std::string of length {len}")));
        }
        let bytes = self.read_bytes(data, len as usize)?;
        printable(&bytes).ok_or_else(|| self.implausible(address, "std::string with unprintable bytes".into()))
    }

    pub fn implausible(&self, address: u64, what: String) -> MemoryError {
        MemoryError::Implausible { pid: self.pid, address, what }
    }
}

/// `bytes` as a string if it is non-empty printable UTF-8 (what Zeek identifiers are).
pub fn printable(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    (!s.is_empty() && s.chars().all(|c| !c.is_control())).then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_std_string_layout() {
        // A libstdc++-shaped string in our own memory: data pointer, then length.
        let text = b"Conn::LOG";
        let header: [u64; 2] = [text.as_ptr() as u64, text.len() as u64];
        let mem = TargetMemory::open(std::process::id()).unwrap();
        assert_eq!(mem.read_std_string(header.as_ptr() as u64).unwrap(), "Conn::LOG");
    }

    #[test]
    fn rejects_unprintable_and_huge_strings() {
        let text = b"bad\x01name";
        let header: [u64; 2] = [text.as_ptr() as u64, text.len() as u64];
        let mem = TargetMemory::open(std::process::id()).unwrap();
        assert!(matches!(mem.read_std_string(header.as_ptr() as u64), Err(MemoryError::Implausible { .. })));
        let huge: [u64; 2] = [text.as_ptr() as u64, 1 << 40];
        assert!(matches!(mem.read_std_string(huge.as_ptr() as u64), Err(MemoryError::Implausible { .. })));
    }

    #[test]
    fn unmapped_reads_fail_cleanly() {
        let mem = TargetMemory::open(std::process::id()).unwrap();
        assert!(matches!(mem.read_u64(8), Err(MemoryError::Read { .. })));
    }
}
