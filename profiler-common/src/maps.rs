//! Keys and values of the BPF maps that carry counts from the kernel to user space.

/// Longest source file name the BPF side copies.
pub const FILE_MAX: usize = 128;

/// Longest function name the BPF side copies. Longer names are truncated when shown; their
/// hash still covers the full length, so they stay distinct from their own prefixes.
pub const NAME_MAX: usize = 128;

/// `Func::kind` of script functions, events and hooks.
pub const FUNC_KIND_SCRIPT: u8 = 0;
/// `Func::kind` of built-in functions.
pub const FUNC_KIND_BIF: u8 = 1;
/// `FuncType::flavor` of plain functions (lambdas and `when` closures among them).
pub const FLAVOR_FUNCTION: u8 = 0;
/// `FuncType::flavor` of events.
pub const FLAVOR_EVENT: u8 = 1;
/// `FuncType::flavor` of hooks.
pub const FLAVOR_HOOK: u8 = 2;

/// Caller hash for calls made from C++ (the event loop, `EventHandler::Call`): no parent frame.
pub const CALLER_NATIVE: u64 = 0;
/// Caller hash when the parent frame's function failed validation.
pub const CALLER_UNRESOLVED: u64 = 2;

/// One caller→callee edge of one process: key of the `CALLS` map (value: u64 count).
/// Functions are identified by the hash of their name, not their address: lambdas get a new
/// function object per evaluation and freed objects' addresses are reused.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CallKey {
    pub pid: u32,
    pub _pad: u32,
    pub callee: u64,
    pub caller: u64,
}

/// What the BPF side learnt about a function the first time it saw its name hash: value of the
/// `FUNCS` map, keyed by name hash. Names are stored here because the function object may be
/// gone (lambdas, exited processes) by the time user space reads the counts.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuncInfo {
    /// Full length of the name in the target (may exceed `NAME_MAX`).
    pub name_len: u32,
    /// `Func::kind`: `FUNC_KIND_SCRIPT` or `FUNC_KIND_BIF`.
    pub kind: u8,
    /// `FuncType::flavor`: `FLAVOR_FUNCTION`, `FLAVOR_EVENT` or `FLAVOR_HOOK`.
    pub flavor: u8,
    pub _pad: [u8; 2],
    /// First line of the definition (0 when unknown).
    pub line: u32,
    pub name: [u8; NAME_MAX],
    /// Source file of the definition, NUL-terminated (empty for BIFs and when unknown).
    pub file: [u8; FILE_MAX],
}

impl FuncInfo {
    pub const fn zeroed() -> Self {
        Self { name_len: 0, kind: 0, flavor: 0, _pad: [0; 2], line: 0, name: [0; NAME_MAX], file: [0; FILE_MAX] }
    }

    /// The source file, if one was recorded.
    pub fn file_bytes(&self) -> &[u8] {
        let end = self.file.iter().position(|b| *b == 0).unwrap_or(FILE_MAX);
        &self.file[..end]
    }

    /// The copied part of the name.
    pub fn name_bytes(&self) -> &[u8] {
        let n = if (self.name_len as usize) < NAME_MAX { self.name_len as usize } else { NAME_MAX };
        &self.name[..n]
    }
}

/// A function object of one process: key of the `FUNC_HASHES` cache (value: its name hash).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FuncPtrKey {
    pub pid: u32,
    pub _pad: u32,
    pub func: u64,
}

/// Writes to one log stream of one process: key of the `LOG_WRITES` map (value: u64 count).
/// The stream is the `Log::ID` enum ordinal; its name is read from the `EnumType` in user space.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LogKey {
    pub pid: u32,
    pub _pad: u32,
    /// Address of the `EnumType` the ordinal belongs to (`Log::ID`).
    pub enum_type: u64,
    pub ordinal: i64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are `#[repr(C)]` plain-old-data with explicit padding.
    unsafe impl aya::Pod for super::CallKey {}
    unsafe impl aya::Pod for super::FuncInfo {}
    unsafe impl aya::Pod for super::LogKey {}
    unsafe impl aya::Pod for super::FuncPtrKey {}
}
