//! Where the fields the probes read live in Zeek's objects, per ABI generation
//! (zeek-abi.md §2). A new Zeek release is a new generation here; a new offset is a new row in
//! `layout_fields`.
use profiler_common::TargetLayout;

use super::{
    dwarf::{DwarfOffsets, Field},
    layout_fields::LAYOUT_FIELDS,
    version::ZeekVersion,
};

/// Where an `AbiLayout` came from, shown in every output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutSource {
    /// The built-in table for the detected version.
    #[default]
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

/// Field offsets for one Zeek ABI generation. `Default` (all zero) is only where
/// `for_version` starts before the rows of `LAYOUT_FIELDS` fill it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// `EventMgr::num_events_dispatched` (a member since 7.2): tells dispatches apart.
    pub event_mgr_dispatched: Option<u32>,
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

/// One ABI generation: the first version it applies to, and its name.
struct Generation {
    since: u32,
    abi: &'static str,
}

/// In ascending order; a version belongs to the last generation whose `since` it reaches.
const GENERATIONS: &[Generation] = &[
    Generation { since: 6_00_00, abi: "6.0" },
    Generation { since: 7_00_00, abi: "7.0" },
    Generation { since: 7_01_00, abi: "7.1" },
    Generation { since: 7_02_00, abi: "7.2" },
    Generation { since: 8_00_00, abi: "8.0" },
    Generation { since: 8_01_00, abi: "8.1" },
    Generation { since: 8_02_00, abi: "8.2" },
];

/// The first version without a generation: releases past it need a new one (or DWARF).
const NEXT_UNKNOWN: u32 = 8_03_00;

/// `CallInfo` became `{call, frame}` (16 bytes) in 8.1, from `{call, func, args}` (24).
pub(super) const CALL_INFO_HOLDS_FRAME_SINCE: u32 = 8_01_00;

impl AbiLayout {
    pub fn for_version(version: &ZeekVersion) -> Result<Self, String> {
        let n = version.number();
        if n < GENERATIONS[0].since || n >= NEXT_UNKNOWN {
            return Err(format!("Zeek {version} is not supported: zeek-probe knows the layouts of Zeek 6.0 to 8.2"));
        }
        let generation = GENERATIONS.iter().rev().find(|g| n >= g.since).expect("range checked above");
        let mut layout = Self {
            abi: generation.abi,
            call_info_holds_frame: n >= CALL_INFO_HOLDS_FRAME_SINCE,
            frame_stack_maintained: n < 8_00_00,
            source: LayoutSource::Table,
            ..Self::default()
        };
        for field in LAYOUT_FIELDS {
            if let Some(offset) = (field.table)(version) {
                (field.set)(&mut layout, offset);
            }
        }
        Ok(layout)
    }

    /// The DWARF fields this layout has (a version's table leaves out what it lacks).
    pub fn dwarf_fields(&self) -> Vec<Field> {
        LAYOUT_FIELDS.iter().filter(|field| (field.get)(self).is_some()).map(|field| field.dwarf).collect()
    }

    /// Takes every offset DWARF knows; returns where the table disagreed. The source becomes
    /// DWARF once DWARF supplied anything.
    pub fn apply_dwarf(&mut self, dwarf: &DwarfOffsets) -> Vec<Mismatch> {
        let mut mismatches = Vec::new();
        let mut found = false;
        for field in LAYOUT_FIELDS {
            // A field this version does not have stays absent, whatever DWARF says.
            let (Some(table), Some(value)) = ((field.get)(self), dwarf.get(field.dwarf)) else { continue };
            found = true;
            if table != value {
                mismatches.push(Mismatch { field: field.dwarf_name(), table, dwarf: value });
                (field.set)(self, value);
            }
        }
        if found {
            self.source = LayoutSource::Dwarf;
        }
        mismatches
    }

    /// The part the BPF programs need, with one process's runtime addresses.
    pub fn target_layout(&self, addresses: RuntimeAddresses) -> TargetLayout {
        let mut target = TargetLayout {
            script_func_vptr: addresses.script_func_vptr,
            builtin_func_vptr: addresses.builtin_func_vptr,
            frame_vptr: addresses.frame_vptr,
            call_stack: addresses.call_stack,
            event_mgr: addresses.event_mgr,
            frame_stack: addresses.frame_stack,
            call_info_holds_frame: u32::from(self.call_info_holds_frame),
            ..TargetLayout::default()
        };
        for field in LAYOUT_FIELDS {
            if let Some(slot) = field.target {
                // 0 tells the programs that this Zeek does not have the field.
                *slot(&mut target) = (field.get)(self).unwrap_or(0);
            }
        }
        target
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
