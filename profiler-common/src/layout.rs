//! What the BPF programs need to know about one target process: where the fields they read
//! live in Zeek's objects (they move between Zeek releases), the runtime addresses of the
//! globals they sample, and which vtables identify genuine objects. User space fills one
//! entry per PID before attaching; a probe hit or sample from a PID without an entry is
//! ignored, which is also how programs shared by several Zeek processes filter by PID.

/// Byte offsets into Zeek's objects and runtime addresses in the target.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetLayout {
    /// Runtime address of `vtable for zeek::detail::ScriptFunc` + 16 (what a vptr holds).
    pub script_func_vptr: u64,
    /// Runtime address of `vtable for zeek::detail::BuiltinFunc` + 16.
    pub builtin_func_vptr: u64,
    /// Runtime address of `vtable for zeek::detail::Frame` + 16 (0: unknown, not checked).
    pub frame_vptr: u64,
    /// Runtime address of `zeek::detail::call_stack`, a `std::vector<CallInfo>`
    /// (0: script stacks are not sampled).
    pub call_stack: u64,
    /// Runtime address of `zeek::event_mgr` (0: unknown).
    pub event_mgr: u64,
    /// Runtime address of `g_frame_stack`, a `std::vector<Frame*>` of the script frames only
    /// (0: not maintained, 8.0 on).
    pub frame_stack: u64,
    /// `Func::kind` (read as u8: 0 script, 1 BIF).
    pub func_kind: u32,
    /// `Func::type`, a `FuncType*`.
    pub func_type: u32,
    /// `Func::name`, a libstdc++ `std::string` (data pointer, then length).
    pub func_name: u32,
    /// `FuncType::flavor` (read as u8: 0 function, 1 event, 2 hook).
    pub func_type_flavor: u32,
    /// `Obj::location`, a `Location*` (file name `const char*` at +0, first line at +8).
    pub obj_location: u32,
    /// `Frame::function`, the `ScriptFunc*` a frame belongs to.
    pub frame_function: u32,
    /// `EnumVal::int_val`, the ordinal of a `Log::ID` value.
    pub enum_val_int: u32,
    /// `Val::type`, from an `EnumVal` to its `EnumType`.
    pub val_type: u32,
    /// Size of one `CallInfo` in `call_stack`.
    pub call_info_size: u32,
    /// 1 when `CallInfo` holds `Frame* frame` at +8 (8.1+), 0 when it holds `const Func* func`.
    pub call_info_holds_frame: u32,
    /// `EventMgr::current`, the `Event*` being dispatched (0: not available, before 7.2).
    pub event_mgr_current: u32,
    /// `Event::handler`, an `EventHandler*`.
    pub event_handler: u32,
    /// `EventHandler::name`, a `std::string`.
    pub event_handler_name: u32,
    /// `Func::bodies`, a `std::vector<Func::Body>`; a body's `Stmt*` is its first member.
    pub func_bodies: u32,
    /// `EventMgr::num_events_dispatched`, a u64 Zeek increments after each dispatched event:
    /// what tells one dispatch from the next (0: not available, before 7.2).
    pub event_mgr_dispatched: u32,
    pub _pad: u32,
    /// End (highest address) of the main thread's stack, from `/proc/PID/maps` (0: unknown,
    /// no native stacks are copied).
    pub main_stack_end: u64,
}

#[cfg(feature = "user")]
// SAFETY: plain-old-data, `#[repr(C)]`, explicit padding.
unsafe impl aya::Pod for TargetLayout {}
