//! Reading the target's memory. Every pointer comes from the target and may be stale or
//! garbage: reads go through `bpf_probe_read_user`, which fails instead of faulting, and every
//! failure is counted.

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_probe_read_user, generated::bpf_probe_read_user as probe_read_user_raw};
use profiler_common::{
    ProbeStat,
    maps::NAME_MAX,
    name_hash::{NAME_WORDS, name_hash},
};

use crate::maps::bump;

/// Names longer than this are not function names but garbage lengths.
const MAX_SANE_NAME_LEN: u64 = 4096;

/// Reads a `T` at `addr`, a pointer read from the target; a failure is counted as `ReadFailed`.
#[inline(always)]
pub fn read<T>(addr: u64) -> Option<T> {
    if addr < 4096 {
        return None;
    }
    read_counting::<T>(addr, ProbeStat::ReadFailed)
}

/// Reads a global of the target's executable (its address is known, not read). This can only
/// fail while the global's page has never been touched: the process is still in the dynamic
/// loader, before Zeek's initialisers ran, and the sample is native code, named as such. So it
/// is counted apart, as `BeforeInit`, not as a failed read.
#[inline(always)]
pub fn read_global<T>(addr: u64) -> Option<T> {
    read_counting::<T>(addr, ProbeStat::BeforeInit)
}

#[inline(always)]
fn read_counting<T>(addr: u64, failure: ProbeStat) -> Option<T> {
    // SAFETY: bpf_probe_read_user copies from user memory without faulting.
    match unsafe { bpf_probe_read_user(addr as *const T) } {
        Ok(v) => Some(v),
        Err(_) => {
            bump(failure);
            None
        }
    }
}

/// A libstdc++ `std::string` (`_GLIBCXX_USE_CXX11_ABI=1`): data pointer, then length.
pub struct StdString {
    pub data: u64,
    pub len: u64,
}

#[inline(always)]
pub fn read_std_string(addr: u64) -> Option<StdString> {
    let [data, len] = read::<[u64; 2]>(addr)?;
    if len == 0 || len > MAX_SANE_NAME_LEN {
        bump(ProbeStat::InvalidFunc);
        return None;
    }
    Some(StdString { data, len })
}

/// Copies up to `NAME_MAX` bytes of `s` into `dst`; returns how many.
#[inline(always)]
pub fn copy_string_prefix(s: &StdString, dst: *mut u8) -> Option<u32> {
    let n = if s.len < NAME_MAX as u64 { s.len as u32 } else { NAME_MAX as u32 };
    // SAFETY: `dst` has room for NAME_MAX bytes and n <= NAME_MAX.
    let rc = unsafe { probe_read_user_raw(dst as *mut c_void, n, s.data as *const c_void) };
    if rc != 0 {
        bump(ProbeStat::ReadFailed);
        return None;
    }
    Some(n)
}

/// libstdc++ keeps strings of up to 15 bytes inline, in a buffer 16 bytes into the string.
const SSO_BUFFER: u64 = 16;
const SSO_MAX: u64 = 15;

/// The name hash of the `std::string` at `addr` (see `profiler_common::name_hash`). One read
/// fetches the header and the inline buffer: short names need no second read.
#[inline(always)]
pub fn hash_std_string(addr: u64) -> Option<u64> {
    let [data, len, inline0, inline1] = read::<[u64; 4]>(addr)?;
    if len == 0 || len > MAX_SANE_NAME_LEN {
        bump(ProbeStat::InvalidFunc);
        return None;
    }
    let mut buffer = core::mem::MaybeUninit::<[u64; NAME_WORDS]>::uninit();
    let words = zeroed_words(&mut buffer);
    if data == addr + SSO_BUFFER && len <= SSO_MAX {
        // Bytes past the length may be left over from older contents: mask them.
        words[0] = inline0 & low_bytes_mask(len);
        words[1] = if len > 8 { inline1 & low_bytes_mask(len - 8) } else { 0 };
    } else {
        copy_string_prefix(&StdString { data, len }, words.as_mut_ptr() as *mut u8)?;
    }
    Some(name_hash(len, words))
}

/// `buffer` zeroed word by word, in place: LLVM would otherwise call `memset`, a byte loop
/// that the verifier walks once per byte (fatal inside the sampler's frame loop). Returned by
/// reference: a buffer returned by value was copied by another `memset` of its 128 bytes
/// (LLVM knew them zero), ~640 instructions verified at each of the sampler's 7 name hashes,
/// a quarter of the verifier's work on the three sampler programs.
#[inline(always)]
fn zeroed_words(buffer: &mut core::mem::MaybeUninit<[u64; NAME_WORDS]>) -> &mut [u64; NAME_WORDS] {
    let first = buffer.as_mut_ptr() as *mut u64;
    for i in 0..NAME_WORDS {
        // SAFETY: i < NAME_WORDS, inside the array; volatile keeps it from becoming a memset.
        unsafe { core::ptr::write_volatile(first.add(i), 0) };
    }
    // SAFETY: every word was written above.
    unsafe { buffer.assume_init_mut() }
}

/// A mask of the low `n` bytes of a u64 (all of them for n >= 8).
#[inline(always)]
fn low_bytes_mask(n: u64) -> u64 {
    if n >= 8 { u64::MAX } else { (1u64 << (n * 8)) - 1 }
}
