//! CPU samples: what the sampler saw on a target thread, kept as counts per distinct stack.

/// Deepest script stack kept; deeper stacks keep their innermost frames.
pub const MAX_STACK_DEPTH: usize = 64;
/// Deepest kernel stack kept. Syscalls, page faults and interrupts on-CPU are 5–25 frames
/// deep; deeper ones keep their innermost frames (the kernel's unwinder returns those first).
pub const MAX_KERNEL_DEPTH: usize = 32;

/// What a sampled stack describes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackKind {
    /// The main thread inside script code: `frames` are function name hashes.
    Script = 0,
    /// The main thread outside scripts: `leaf` is the user-space instruction pointer.
    Native = 1,
    /// The main thread dispatching an event outside its script bodies: `leaf` is the
    /// event name's hash.
    EventDispatch = 2,
    /// Another thread (logging writers, I/O): named by `comm`; `leaf` is its user-space
    /// instruction pointer (0 if unreadable).
    Thread = 3,
}

impl TryFrom<u32> for StackKind {
    type Error = u32;

    fn try_from(v: u32) -> Result<Self, u32> {
        match v {
            0 => Ok(Self::Script),
            1 => Ok(Self::Native),
            2 => Ok(Self::EventDispatch),
            3 => Ok(Self::Thread),
            other => Err(other),
        }
    }
}

/// Samples of one stack of one process: key of the `SAMPLES` map (value: u64 count).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SampleKey {
    pub pid: u32,
    pub _pad: u32,
    /// Hash of the `StackTrace`, key of the `STACKS` map.
    pub stack: u64,
}

/// A distinct stack: value of the `STACKS` map, recorded the first time it is sampled.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackTrace {
    /// A `StackKind`.
    pub kind: u32,
    /// Used entries of `frames`.
    pub depth: u32,
    /// Native and Thread: user instruction pointer. EventDispatch: event name hash. Otherwise 0.
    pub leaf: u64,
    /// Thread name (Thread kind).
    pub comm: [u8; 16],
    /// Function name hashes, outermost first; `CALLER_UNRESOLVED` for an unreadable frame.
    pub frames: [u64; MAX_STACK_DEPTH],
    /// Used entries of `kernel_frames`: 0 when the sample interrupted user mode.
    pub kernel_depth: u32,
    /// 1 when `frames[0]` is a leftover entry of an exception thrown through a BIF, found
    /// reused by a live call further up only after it was read (the sampler cannot take a
    /// frame back cheaply): `frames()` leaves it out.
    pub leftover_outermost: u32,
    /// Kernel instruction pointers when the sample interrupted the kernel, innermost first
    /// (as the kernel's unwinder gives them): the kernel code the thread was in, under
    /// (leaf-ward of) whatever stack the other fields describe, of any kind.
    pub kernel_frames: [u64; MAX_KERNEL_DEPTH],
}

impl StackTrace {
    pub const fn zeroed() -> Self {
        Self {
            kind: 0,
            depth: 0,
            leaf: 0,
            comm: [0; 16],
            frames: [0; MAX_STACK_DEPTH],
            kernel_depth: 0,
            leftover_outermost: 0,
            kernel_frames: [0; MAX_KERNEL_DEPTH],
        }
    }

    /// Function name hashes, outermost first, without a leftover.
    pub fn frames(&self) -> &[u64] {
        let end = (self.depth as usize).min(MAX_STACK_DEPTH);
        &self.frames[(self.leftover_outermost as usize).min(end)..end]
    }

    /// Kernel instruction pointers, innermost first; empty for a sample taken in user mode.
    pub fn kernel_frames(&self) -> &[u64] {
        &self.kernel_frames[..(self.kernel_depth as usize).min(MAX_KERNEL_DEPTH)]
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: `#[repr(C)]` plain-old-data with explicit padding.
    unsafe impl aya::Pod for super::SampleKey {}
    unsafe impl aya::Pod for super::StackTrace {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_leave_out_a_leftover_outermost_entry() {
        let mut trace = StackTrace::zeroed();
        trace.depth = 3;
        trace.frames[..3].copy_from_slice(&[7, 8, 9]);
        assert_eq!(trace.frames(), [7, 8, 9]);
        trace.leftover_outermost = 1;
        assert_eq!(trace.frames(), [8, 9]);
        trace.depth = 0;
        assert!(trace.frames().is_empty(), "nothing to leave out");
    }
}
