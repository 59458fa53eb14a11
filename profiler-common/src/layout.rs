//! What the BPF programs need to know about one target process: where the fields they read
//! live in Zeek's objects (they move between Zeek releases) and which vtables identify a
//! genuine function object. User space fills one entry per PID before attaching; a probe hit
//! from a PID without an entry is ignored, which is also how probes shared by several Zeek
//! processes of one binary filter by PID.

/// Byte offsets into Zeek's objects and runtime addresses of the function vtables.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetLayout {
    /// `Func::kind` (read as u8: 0 script, 1 BIF).
    pub func_kind: u32,
    /// `Func::type`, a `FuncType*`.
    pub func_type: u32,
    /// `Func::name`, a libstdc++ `std::string` (data pointer, then length).
    pub func_name: u32,
    /// `FuncType::flavor` (read as u8: 0 function, 1 event, 2 hook).
    pub func_type_flavor: u32,
    /// `Frame::function`, the `ScriptFunc*` a frame belongs to.
    pub frame_function: u32,
    /// `EnumVal::int_val`, the ordinal of a `Log::ID` value.
    pub enum_val_int: u32,
    /// `Val::type`, from an `EnumVal` to its `EnumType`.
    pub val_type: u32,
    pub _reserved: u32,
    /// Runtime address of `vtable for zeek::detail::ScriptFunc` + 16 (what a vptr holds).
    pub script_func_vptr: u64,
    /// Runtime address of `vtable for zeek::detail::BuiltinFunc` + 16.
    pub builtin_func_vptr: u64,
}

#[cfg(feature = "user")]
// SAFETY: plain-old-data, `#[repr(C)]`, no padding holes that matter to the kernel.
unsafe impl aya::Pod for TargetLayout {}
