//! A function's kind label from `Func::kind` and `FuncType::flavor`.
use std::fmt;

use profiler_common::maps::{FLAVOR_EVENT, FLAVOR_FUNCTION, FLAVOR_HOOK, FUNC_KIND_BIF, FUNC_KIND_SCRIPT};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FuncKind {
    Function,
    Event,
    Hook,
    Bif,
    /// Zeek's C++ outside scripts (sampled only).
    Native,
    /// A thread other than Zeek's main thread (sampled only).
    Thread,
    /// The kernel, working for the thread (a syscall, a page fault, an interrupt; sampled only).
    Kernel,
}

impl FuncKind {
    /// From `Func::kind` and `FuncType::flavor` as the BPF side recorded them.
    pub fn from_raw(kind: u8, flavor: u8) -> Option<Self> {
        match (kind, flavor) {
            (FUNC_KIND_BIF, _) => Some(Self::Bif),
            (FUNC_KIND_SCRIPT, FLAVOR_FUNCTION) => Some(Self::Function),
            (FUNC_KIND_SCRIPT, FLAVOR_EVENT) => Some(Self::Event),
            (FUNC_KIND_SCRIPT, FLAVOR_HOOK) => Some(Self::Hook),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Function => "function",
            Self::Event => "event",
            Self::Hook => "hook",
            Self::Bif => "bif",
            Self::Native => "native",
            Self::Thread => "thread",
            Self::Kernel => "kernel",
        }
    }
}

impl fmt::Display for FuncKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_kind() {
        assert_eq!(FuncKind::from_raw(0, 0), Some(FuncKind::Function));
        assert_eq!(FuncKind::from_raw(0, 1), Some(FuncKind::Event));
        assert_eq!(FuncKind::from_raw(0, 2), Some(FuncKind::Hook));
        // BIFs have function flavor, but the kind decides.
        assert_eq!(FuncKind::from_raw(1, 0), Some(FuncKind::Bif));
        assert_eq!(FuncKind::from_raw(2, 0), None);
        assert_eq!(FuncKind::from_raw(0, 3), None);
    }
}
