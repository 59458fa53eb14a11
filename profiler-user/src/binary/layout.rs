//! Where the fields the probes read live in Zeek's objects, per ABI generation
//! (zeek-abi.md §2). A new Zeek release is a new row here.
use profiler_common::TargetLayout;

use super::{
    dwarf::{DwarfOffsets, Field},
    version::ZeekVersion,
};

/// Where an `AbiLayout` came from, shown in every output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutSource {
    /// The built-in table for the detected version.
    Table,
    /// The binary's debug information (DWARF), checked against the table.
    Dwarf,
}

/// A table offset that DWARF contradicts (DWARF wins).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    pub field: String,
    pub table: u32,
    pub dwarf: u32,
}

/// Field offsets for one Zeek ABI generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbiLayout {
    /// The ABI generation's name, e.g. "8.2".
    pub abi: &'static str,
    /// `Func::bodies`, a `std::vector<Func::Body>` whose first member is the body's `Stmt*`.
    pub func_bodies: u32,
    pub func_kind: u32,
    pub func_type: u32,
    pub func_name: u32,
    pub func_type_flavor: u32,
    pub frame_function: u32,
    pub enum_val_int: u32,
    pub val_type: u32,
    /// `EnumType::names`, a `std::map<std::string, zeek_int_t>`.
    pub enum_type_names: u32,
    /// `Obj::location`.
    pub obj_location: u32,
    /// Size of one `CallInfo` in `zeek::detail::call_stack`.
    pub call_info_size: u32,
    /// `CallInfo` holds the `Frame*` (8.1+) rather than the `Func*` at +8.
    pub call_info_holds_frame: bool,
    /// `EventMgr::current` (7.2+).
    pub event_mgr_current: Option<u32>,
    /// `ScriptFunc::Invoke` keeps `g_frame_stack` in step with `call_stack` (before 8.0).
    pub frame_stack_maintained: bool,
    pub event_handler: u32,
    pub event_handler_name: u32,
    pub source: LayoutSource,
}

/// Runtime addresses in one process that the BPF programs need besides offsets.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuntimeAddresses {
    pub script_func_vptr: u64,
    pub builtin_func_vptr: u64,
    pub frame_vptr: u64,
    /// 0 to leave this process's script stacks unsampled.
    pub call_stack: u64,
    pub event_mgr: u64,
    pub frame_stack: u64,
}

/// One table row: the first version it applies to, and the layout.
struct Row {
    since: u32,
    abi: &'static str,
    call_info_size: u32,
}

/// Rows in ascending order; a version uses the last row whose `since` it reaches.
/// The Func/Frame/EnumVal offsets are the same in every generation so far; what changed is
/// `CallInfo` (8.1) and the debug-build `EnumVal` (fixed in 8.2).
const ROWS: &[Row] = &[
    Row { since: 6_00_00, abi: "6.0", call_info_size: 24 },
    Row { since: 7_00_00, abi: "7.0", call_info_size: 24 },
    Row { since: 7_01_00, abi: "7.1", call_info_size: 24 },
    Row { since: 7_02_00, abi: "7.2", call_info_size: 24 },
    Row { since: 8_00_00, abi: "8.0", call_info_size: 24 },
    Row { since: 8_01_00, abi: "8.1", call_info_size: 16 },
    Row { since: 8_02_00, abi: "8.2", call_info_size: 16 },
];

/// The first version without a row: releases past it need a new row (or DWARF).
const NEXT_UNKNOWN: u32 = 8_03_00;

impl AbiLayout {
    pub fn for_version(version: &ZeekVersion) -> Result<Self, String> {
        let n = version.number();
        if n < ROWS[0].since || n >= NEXT_UNKNOWN {
            return Err(format!("Zeek {version} is not supported: zeek-probe knows the layouts of Zeek 6.0 to 8.2"));
        }
        let row = ROWS.iter().rev().find(|r| n >= r.since).expect("range checked above");
        let debug_enum_val = version.debug && n < 8_02_00;
        Ok(Self {
            abi: row.abi,
            func_bodies: 24,
            func_kind: 56,
            func_type: 64,
            func_name: 72,
            func_type_flavor: 88,
            frame_function: 64,
            enum_val_int: if debug_enum_val { 40 } else { 32 },
            val_type: 24,
            enum_type_names: 64,
            obj_location: 8,
            call_info_size: row.call_info_size,
            call_info_holds_frame: row.call_info_size == 16,
            event_mgr_current: (n >= 7_02_00).then_some(56),
            frame_stack_maintained: n < 8_00_00,
            event_handler: 24,
            event_handler_name: 0,
            source: LayoutSource::Table,
        })
    }

    /// Takes every offset DWARF knows; returns where the table disagreed. The source becomes
    /// DWARF once DWARF supplied anything.
    pub fn apply_dwarf(&mut self, dwarf: &DwarfOffsets) -> Vec<Mismatch> {
        let mut mismatches = Vec::new();
        let mut found = false;
        let mut take = |field: Field, slot: &mut u32| {
            if let Some(value) = dwarf.get(field) {
                found = true;
                if *slot != value {
                    let name = if field.1.is_empty() {
                        format!("sizeof({})", field.0)
                    } else {
                        format!("{}::{}", field.0, field.1)
                    };
                    mismatches.push(Mismatch { field: name, table: *slot, dwarf: value });
                    *slot = value;
                }
            }
        };
        take(("zeek::Obj", "location"), &mut self.obj_location);
        take(("zeek::Func", "bodies"), &mut self.func_bodies);
        take(("zeek::Func", "kind"), &mut self.func_kind);
        take(("zeek::Func", "type"), &mut self.func_type);
        take(("zeek::Func", "name"), &mut self.func_name);
        take(("zeek::FuncType", "flavor"), &mut self.func_type_flavor);
        take(("zeek::detail::Frame", "function"), &mut self.frame_function);
        take(("zeek::Val", "type"), &mut self.val_type);
        take(("zeek::detail::IntValImplementation", "int_val"), &mut self.enum_val_int);
        take(("zeek::EnumType", "names"), &mut self.enum_type_names);
        take(("zeek::Event", "handler"), &mut self.event_handler);
        take(("zeek::EventHandler", "name"), &mut self.event_handler_name);
        take(("zeek::detail::CallInfo", ""), &mut self.call_info_size);
        if let Some(current) = self.event_mgr_current.as_mut() {
            take(("zeek::EventMgr", "current"), current);
        }
        if found {
            self.source = LayoutSource::Dwarf;
        }
        mismatches
    }

    /// The part the BPF programs need, with one process's runtime addresses.
    pub fn target_layout(&self, addresses: RuntimeAddresses) -> TargetLayout {
        TargetLayout {
            script_func_vptr: addresses.script_func_vptr,
            builtin_func_vptr: addresses.builtin_func_vptr,
            frame_vptr: addresses.frame_vptr,
            call_stack: addresses.call_stack,
            event_mgr: addresses.event_mgr,
            frame_stack: addresses.frame_stack,
            func_bodies: self.func_bodies,
            func_kind: self.func_kind,
            func_type: self.func_type,
            func_name: self.func_name,
            func_type_flavor: self.func_type_flavor,
            obj_location: self.obj_location,
            frame_function: self.frame_function,
            enum_val_int: self.enum_val_int,
            val_type: self.val_type,
            call_info_size: self.call_info_size,
            call_info_holds_frame: u32::from(self.call_info_holds_frame),
            event_mgr_current: self.event_mgr_current.unwrap_or(0),
            event_handler: self.event_handler,
            event_handler_name: self.event_handler_name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(s: &str) -> ZeekVersion {
        ZeekVersion::from_symbol(s).unwrap()
    }

    #[test]
    fn picks_the_generation_row() {
        assert_eq!(AbiLayout::for_version(&version("zeek_version_8_2_2_plugin_7")).unwrap().abi, "8.2");
        assert_eq!(AbiLayout::for_version(&version("zeek_version_7_2_2_plugin_5")).unwrap().abi, "7.2");
        assert_eq!(AbiLayout::for_version(&version("zeek_version_6_2_1_plugin_4")).unwrap().abi, "6.0");
        let l81 = AbiLayout::for_version(&version("zeek_version_8_1_0_plugin_6")).unwrap();
        assert_eq!((l81.abi, l81.call_info_size), ("8.1", 16));
        assert_eq!(AbiLayout::for_version(&version("zeek_version_8_0_1_plugin_6")).unwrap().call_info_size, 24);
    }

    #[test]
    fn debug_builds_shift_enum_val_until_8_2() {
        let l = AbiLayout::for_version(&version("zeek_version_7_0_0_plugin_5_debug")).unwrap();
        assert_eq!(l.enum_val_int, 40);
        let l = AbiLayout::for_version(&version("zeek_version_8_2_2_plugin_7_debug")).unwrap();
        assert_eq!(l.enum_val_int, 32);
    }

    #[test]
    fn dwarf_wins_and_every_disagreement_is_reported() {
        let mut layout = AbiLayout::for_version(&version("zeek_version_8_2_2_plugin_7")).unwrap();
        let dwarf = DwarfOffsets::from_values(
            "zeek.debug".into(),
            [(("zeek::Func", "name"), 80), (("zeek::Func", "kind"), 56), (("zeek::detail::CallInfo", ""), 24)].into(),
        );
        let mismatches = layout.apply_dwarf(&dwarf);
        assert_eq!(
            mismatches,
            [
                Mismatch { field: "zeek::Func::name".into(), table: 72, dwarf: 80 },
                Mismatch { field: "sizeof(zeek::detail::CallInfo)".into(), table: 16, dwarf: 24 },
            ]
        );
        assert_eq!((layout.func_name, layout.call_info_size, layout.source), (80, 24, LayoutSource::Dwarf));
        let empty = DwarfOffsets::from_values("none".into(), Default::default());
        let mut table = AbiLayout::for_version(&version("zeek_version_8_2_2_plugin_7")).unwrap();
        assert!(table.apply_dwarf(&empty).is_empty());
        assert_eq!(table.source, LayoutSource::Table, "nothing found: still the table");
    }

    #[test]
    fn refuses_unknown_generations() {
        let err = AbiLayout::for_version(&version("zeek_version_5_2_0_plugin_3")).unwrap_err();
        assert!(err.contains("6.0 to 8.2"), "{err}");
        assert!(AbiLayout::for_version(&version("zeek_version_9_0_0_plugin_8")).is_err());
    }
}
