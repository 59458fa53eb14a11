//! Native stacks: for a sample the sampler also copies the top of the user stack and the
//! registers an unwinder starts from into a ring buffer (`names::NATIVE_STACKS`), for
//! user space to unwind with the target's `.eh_frame` (Zeek's release builds have no frame
//! pointers, so the kernel cannot walk them). Each record names the `SAMPLES` key it was
//! counted under, so user space can join the two.

/// Most user stack bytes one record carries (from the stack pointer up): the record is
/// assembled in a per-CPU map, whose values the kernel limits to 32 KiB. The BPF side copies
/// `min(this, NATIVE_STACK_BYTES global, stack end − sp)`.
pub const USER_STACK_MAX: usize = 32 * 1024 - HEADER_BYTES;

/// A thread other than the main one has its stack copied only when its thread pointer (FS
/// base) is above its stack pointer by at most this much: with glibc on x86-64 a thread's
/// `struct pthread` tops the mapping its stack is in, so [sp, fs_base) is that one stack.
/// Further apart, sp is on some other stack (or fs_base is not glibc's) and nothing is copied.
pub const THREAD_STACK_SPAN_MAX: u64 = 1 << 30;

/// What precedes the stack bytes of a record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NativeStackHeader {
    pub pid: u32,
    pub tid: u32,
    /// The `SampleKey::stack` (script-side stack hash) the sample was counted under.
    pub stack: u64,
    /// The interrupted user registers (the user ones also when the kernel was interrupted).
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    /// Stack bytes that follow the header, copied from `sp` up.
    pub stack_len: u32,
    pub _pad: u32,
}

pub const HEADER_BYTES: usize = core::mem::size_of::<NativeStackHeader>();

/// One record as the BPF side assembles it; only `HEADER_BYTES + stack_len` bytes are sent.
#[repr(C)]
pub struct NativeStackRecord {
    pub header: NativeStackHeader,
    pub stack: [u8; USER_STACK_MAX],
}

impl NativeStackHeader {
    /// Splits a record from the ring into its header and its stack bytes; `None` when it is
    /// shorter than it says.
    pub fn parse(record: &[u8]) -> Option<(Self, &[u8])> {
        let head = record.get(..HEADER_BYTES)?;
        let u32_at = |at: usize| u32::from_ne_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let u64_at = |at: usize| (u64::from(u32_at(at + 4)) << 32) | u64::from(u32_at(at));
        let header = Self {
            pid: u32_at(0),
            tid: u32_at(4),
            stack: u64_at(8),
            ip: u64_at(16),
            sp: u64_at(24),
            bp: u64_at(32),
            stack_len: u32_at(40),
            _pad: 0,
        };
        let len = header.stack_len as usize;
        if len > USER_STACK_MAX {
            return None;
        }
        let stack = record.get(HEADER_BYTES..HEADER_BYTES + len)?;
        Some((header, stack))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(header: &NativeStackHeader, stack: &[u8]) -> [u8; HEADER_BYTES + 16] {
        let mut out = [0u8; HEADER_BYTES + 16];
        // SAFETY: the header is plain old data of exactly HEADER_BYTES bytes.
        let raw =
            unsafe { core::slice::from_raw_parts((header as *const NativeStackHeader).cast::<u8>(), HEADER_BYTES) };
        out[..HEADER_BYTES].copy_from_slice(raw);
        out[HEADER_BYTES..HEADER_BYTES + stack.len()].copy_from_slice(stack);
        out
    }

    #[test]
    fn a_record_parses_into_what_the_bpf_side_wrote() {
        let header = NativeStackHeader {
            pid: 7,
            tid: 9,
            stack: 0x1122_3344_5566_7788,
            ip: 0x5555_0000_1234,
            sp: 0x7ffd_0000_1000,
            bp: 3,
            stack_len: 16,
            _pad: 0,
        };
        let record = bytes(&header, &[0xab; 16]);
        let (parsed, stack) = NativeStackHeader::parse(&record).unwrap();
        assert_eq!(parsed, header);
        assert_eq!(stack, &[0xab; 16]);
    }

    #[test]
    fn a_record_shorter_than_it_says_is_refused() {
        let header = NativeStackHeader { stack_len: 17, ..Default::default() };
        assert!(NativeStackHeader::parse(&bytes(&header, &[])).is_none());
        assert!(NativeStackHeader::parse(&[0; HEADER_BYTES - 1]).is_none());
        let huge = NativeStackHeader { stack_len: USER_STACK_MAX as u32 + 1, ..Default::default() };
        assert!(NativeStackHeader::parse(&bytes(&huge, &[])).is_none());
    }
}
