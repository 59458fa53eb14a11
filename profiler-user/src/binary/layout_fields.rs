//! The one list of the offsets the probes rely on. A row says how `check` names the offset,
//! where DWARF has it, what the built-in table says for each Zeek version, where `AbiLayout`
//! keeps it and which `TargetLayout` field hands it to the BPF programs. The version table,
//! the DWARF reader, `apply_dwarf`, `target_layout` and `check` all walk this list, so a new
//! offset is one row here (plus its `TargetLayout` field, the BPF contract).
use profiler_common::TargetLayout;

use super::{
    dwarf::Field,
    layout::{AbiLayout, CALL_INFO_HOLDS_FRAME_SINCE},
    version::ZeekVersion,
};

/// One offset the probes read.
pub struct LayoutField {
    /// How `check` shows it, e.g. `Func::name`.
    pub name: &'static str,
    /// The DWARF class and member it is read from; an empty member stands for the class's size.
    pub dwarf: Field,
    /// The built-in table's value for a version (zeek-abi.md §2); `None` when that version
    /// does not have the field.
    pub table: fn(&ZeekVersion) -> Option<u32>,
    /// Its value in an `AbiLayout`; `None` when that layout does not have the field.
    pub get: fn(&AbiLayout) -> Option<u32>,
    pub set: fn(&mut AbiLayout, u32),
    /// The `TargetLayout` field that hands it to the BPF programs; `None` for an offset only
    /// user space reads.
    pub target: Option<fn(&mut TargetLayout) -> &mut u32>,
}

impl LayoutField {
    /// The name DWARF knows it by, as layout mismatches report it.
    pub fn dwarf_name(&self) -> String {
        match self.dwarf {
            (class, "") => format!("sizeof({class})"),
            (class, member) => format!("{class}::{member}"),
        }
    }
}

/// A row for an offset every supported Zeek has, kept in the `AbiLayout` field `$field` and
/// handed to the BPF programs in the `TargetLayout` field of the same name.
macro_rules! offset {
    ($name:literal, $dwarf:expr, $field:ident, $table:expr) => {
        LayoutField {
            name: $name,
            dwarf: $dwarf,
            table: $table,
            get: |layout| Some(layout.$field),
            set: |layout, value| layout.$field = value,
            target: Some(|target| &mut target.$field),
        }
    };
}

/// In the order `check` lists them. The Func/Frame/EnumVal offsets are the same in every
/// generation so far; what changed is `CallInfo` (8.1), `EventMgr::current` (new in 7.2) and
/// the debug-build `EnumVal` (fixed in 8.2).
pub static LAYOUT_FIELDS: &[LayoutField] = &[
    offset!("Obj::location", ("zeek::Obj", "location"), obj_location, |_| Some(8)),
    offset!("Func::bodies", ("zeek::Func", "bodies"), func_bodies, |_| Some(24)),
    offset!("Func::kind", ("zeek::Func", "kind"), func_kind, |_| Some(56)),
    offset!("Func::type", ("zeek::Func", "type"), func_type, |_| Some(64)),
    offset!("Func::name", ("zeek::Func", "name"), func_name, |_| Some(72)),
    offset!("FuncType::flavor", ("zeek::FuncType", "flavor"), func_type_flavor, |_| Some(88)),
    offset!("Frame::function", ("zeek::detail::Frame", "function"), frame_function, |_| Some(64)),
    offset!("Val::type", ("zeek::Val", "type"), val_type, |_| Some(24)),
    offset!("EnumVal::int_val", ("zeek::detail::IntValImplementation", "int_val"), enum_val_int, |version| {
        Some(if version.debug && version.number() < 8_02_00 { 40 } else { 32 })
    }),
    // User space reads the stream names (from the EnumType a probe reported), not the probes.
    LayoutField {
        name: "EnumType::names",
        dwarf: ("zeek::EnumType", "names"),
        table: |_| Some(64),
        get: |layout| Some(layout.enum_type_names),
        set: |layout, value| layout.enum_type_names = value,
        target: None,
    },
    offset!("sizeof(CallInfo)", ("zeek::detail::CallInfo", ""), call_info_size, |version| {
        Some(if version.number() < CALL_INFO_HOLDS_FRAME_SINCE { 24 } else { 16 })
    }),
    offset!("Event::handler", ("zeek::Event", "handler"), event_handler, |_| Some(24)),
    offset!("EventHandler::name", ("zeek::EventHandler", "name"), event_handler_name, |_| Some(0)),
    // Absent before 7.2, where the BPF programs get 0: "not available".
    LayoutField {
        name: "EventMgr::current",
        dwarf: ("zeek::EventMgr", "current"),
        table: |version| (version.number() >= 7_02_00).then_some(56),
        get: |layout| layout.event_mgr_current,
        set: |layout, value| layout.event_mgr_current = Some(value),
        target: Some(|target| &mut target.event_mgr_current),
    },
    // What tells one dispatch from the next (long dispatches); an EventMgr member since 7.2,
    // right before `current` (after `num_events_queued`) in 7.2 to 8.2.
    LayoutField {
        name: "EventMgr::num_events_dispatched",
        dwarf: ("zeek::EventMgr", "num_events_dispatched"),
        table: |version| (version.number() >= 7_02_00).then_some(48),
        get: |layout| layout.event_mgr_dispatched,
        set: |layout, value| layout.event_mgr_dispatched = Some(value),
        target: Some(|target| &mut target.event_mgr_dispatched),
    },
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::binary::RuntimeAddresses;

    /// A `TargetLayout` field without a row would stay 0; two rows filling one field would
    /// lose one of their values. Every row gets a distinct value, so both show.
    #[test]
    fn every_target_layout_field_is_filled_by_exactly_one_row() {
        let mut layout = AbiLayout { call_info_holds_frame: true, ..AbiLayout::default() };
        let value = |row: usize| 1000 + row as u32;
        for (row, field) in LAYOUT_FIELDS.iter().enumerate() {
            (field.set)(&mut layout, value(row));
        }
        // Both halves of every address non-zero, and neither like a row's value.
        let address = |n: u64| 0x7f00_0000_7f00_0000 | (n << 32) | n;
        let addresses = RuntimeAddresses {
            script_func_vptr: address(1),
            builtin_func_vptr: address(2),
            frame_vptr: address(3),
            call_stack: address(4),
            event_mgr: address(5),
            frame_stack: address(6),
        };
        let target = layout.target_layout(addresses);
        // SAFETY: TargetLayout is repr(C) plain data, u64s then u32s without padding (it is
        // aya::Pod), aligned to 8: readable as u32 words.
        let words: &[u32] = unsafe {
            std::slice::from_raw_parts(
                (&target as *const TargetLayout).cast::<u32>(),
                size_of::<TargetLayout>() / size_of::<u32>(),
            )
        };
        let pad = std::mem::offset_of!(TargetLayout, _pad) / size_of::<u32>();
        // The session fills the main thread's stack end from the process, not the binary.
        let stack_end = std::mem::offset_of!(TargetLayout, main_stack_end) / size_of::<u32>();
        let per_process = [pad, stack_end, stack_end + 1];
        let unfilled: Vec<usize> =
            words.iter().enumerate().filter(|(i, w)| **w == 0 && !per_process.contains(i)).map(|(i, _)| i).collect();
        assert!(unfilled.is_empty(), "TargetLayout words no row fills: {unfilled:?} in {target:?}");
        for (row, field) in LAYOUT_FIELDS.iter().enumerate() {
            let copies = words.iter().filter(|w| **w == value(row)).count();
            let expected = usize::from(field.target.is_some());
            assert_eq!(copies, expected, "{} in TargetLayout: {target:?}", field.name);
        }
    }

    #[test]
    fn names_are_unique() {
        let names: HashSet<_> = LAYOUT_FIELDS.iter().map(|f| f.name).collect();
        let dwarf: HashSet<_> = LAYOUT_FIELDS.iter().map(|f| f.dwarf).collect();
        assert_eq!((names.len(), dwarf.len()), (LAYOUT_FIELDS.len(), LAYOUT_FIELDS.len()));
    }
}
