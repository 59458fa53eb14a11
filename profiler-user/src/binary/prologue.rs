//! What the kernel does with the instruction a uprobe replaces, which decides what a probe hit
//! costs (zeek-abi.md §8): a 5-byte nop is rewritten into a call, a push is emulated, anything
//! else is single-stepped out of line, an order of magnitude slower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CostClass {
    /// `nopl 0x0(%rax,%rax,1)`: rewritten to a call, ~0.5 µs per hit.
    Nop5,
    /// `push %reg`: emulated, ~1 µs per hit.
    Emulated,
    /// Anything else: single-stepped, 7–13 µs per hit.
    SingleStepped,
}

impl CostClass {
    /// Classifies the instruction starting at `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        match bytes {
            [0x0f, 0x1f, 0x44, 0x00, 0x00, ..] => Self::Nop5,
            // push %rax..%rdi, and push %r8..%r15 with a REX.B prefix.
            [0x50..=0x57, ..] | [0x41, 0x50..=0x57, ..] => Self::Emulated,
            _ => Self::SingleStepped,
        }
    }

    pub const fn cost(self) -> &'static str {
        match self {
            Self::Nop5 => "~0.5 µs per hit (nop rewritten to a call)",
            Self::Emulated => "~1 µs per hit (emulated)",
            Self::SingleStepped => "7–13 µs per hit (single-stepped)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_prologues() {
        assert_eq!(CostClass::of(&[0x41, 0x57, 0x41, 0x56]), CostClass::Emulated); // push %r15
        assert_eq!(CostClass::of(&[0x55, 0x48, 0x89, 0xe5]), CostClass::Emulated); // push %rbp
        assert_eq!(CostClass::of(&[0x0f, 0x1f, 0x44, 0x00, 0x00]), CostClass::Nop5);
        assert_eq!(CostClass::of(&[0x48, 0x83, 0xec, 0x28]), CostClass::SingleStepped); // sub $0x28,%rsp
        assert_eq!(CostClass::of(&[0xf3, 0x0f, 0x1e, 0xfa]), CostClass::SingleStepped); // endbr64
    }
}
