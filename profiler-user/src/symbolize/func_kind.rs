//! A function's kind label from `Func::kind` and `FuncType::flavor`.
use std::fmt;

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
}

impl FuncKind {
    /// `kind`: 0 script, 1 built-in; `flavor`: 0 function, 1 event, 2 hook.
    pub fn from_raw(kind: u8, flavor: u8) -> Option<Self> {
        match (kind, flavor) {
            (1, _) => Some(Self::Bif),
            (0, 0) => Some(Self::Function),
            (0, 1) => Some(Self::Event),
            (0, 2) => Some(Self::Hook),
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
