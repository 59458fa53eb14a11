//! The probes' own health counters, per target process: key of the `STATS` map (value: u64).

/// Key of the `STATS` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StatKey {
    pub pid: u32,
    /// A `ProbeStat` discriminant.
    pub stat: u32,
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]` plain-old-data without padding.
unsafe impl aya::Pod for StatKey {}

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeStat {
    /// A user-memory read failed (unmapped or paged-out address).
    ReadFailed = 0,
    /// A function object failed validation (vtable, kind, flavor or name length).
    InvalidFunc = 1,
    /// A count could not be stored because its map was full.
    MapFull = 2,
    /// A caller could not be resolved and was counted as unresolved.
    CallerUnresolved = 3,
    /// A sample found a global of Zeek's executable not yet paged in: taken before Zeek's
    /// initialisers ran (the dynamic loader's start-up, seen by `record` only). Not a failure.
    BeforeInit = 4,
    /// A native stack record found the ring buffer full and was dropped (its sample is still
    /// counted, named by its leaf).
    NativeStackDropped = 5,
    /// A sample was lost: the tail call to the program that counts it failed.
    SampleLost = 6,
    /// A sample of a thread other than the main one had no stack copied: its FS base could not
    /// be read or does not top its stack (not a glibc thread, or one on another stack). It is
    /// still counted, named by its thread.
    ThreadStackEndUnknown = 7,
}

impl ProbeStat {
    pub const ALL: [ProbeStat; 8] = [
        Self::ReadFailed,
        Self::InvalidFunc,
        Self::MapFull,
        Self::CallerUnresolved,
        Self::BeforeInit,
        Self::NativeStackDropped,
        Self::SampleLost,
        Self::ThreadStackEndUnknown,
    ];

    /// Label value used in metrics and reports.
    pub const fn label(self) -> &'static str {
        match self {
            Self::ReadFailed => "read_failed",
            Self::InvalidFunc => "invalid_func",
            Self::MapFull => "map_full",
            Self::CallerUnresolved => "caller_unresolved",
            Self::BeforeInit => "before_init",
            Self::NativeStackDropped => "native_stack_dropped",
            Self::SampleLost => "sample_lost",
            Self::ThreadStackEndUnknown => "thread_stack_end_unknown",
        }
    }
}

impl TryFrom<u32> for ProbeStat {
    type Error = u32;

    fn try_from(v: u32) -> Result<Self, u32> {
        Self::ALL.into_iter().find(|s| *s as u32 == v).ok_or(v)
    }
}
