//! Inspecting fixture binaries as zeek-probe sees them: version, layout, probe placement.
//! No privileges needed.
use zeek_probe::binary::{
    AbiLayout, ElfFile, LayoutSource, Mismatch, ProbePointKind, ZeekBinary, dwarf, layout_fields::LAYOUT_FIELDS,
};

use crate::common::{GENERATIONS, fixture};

fn inspect(name: &str) -> ZeekBinary {
    let path = fixture(name);
    ZeekBinary::inspect(&path, &path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn recognises_the_8_2_fixture() {
    let b = inspect("zeek-shaped-8.2");
    assert_eq!(b.version.to_string(), "8.2.2");
    assert_eq!((b.layout.abi, b.layout.source), ("8.2", LayoutSource::Dwarf));
    assert!(b.layout_mismatches.is_empty(), "the table agrees with DWARF: {:?}", b.layout_mismatches);
    assert!(b.is_pie, "the fixture is linked as PIE, like Zeek");
    assert!(b.script_func_vtable.is_some() && b.builtin_func_vtable.is_some());
    let kinds: Vec<ProbePointKind> = b.probe_points.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [ProbePointKind::ScriptFuncInvoke, ProbePointKind::BuiltinFuncInvoke, ProbePointKind::LogManagerWrite]
    );
    // Like a real Zeek built without CET: probes go on the first instruction.
    assert!(b.probe_points.iter().all(|p| p.skipped == 0), "{:?}", b.probe_points);
}

#[test]
fn knows_every_abi_generation() {
    for (name, version, abi) in GENERATIONS {
        let b = inspect(name);
        assert_eq!((b.version.to_string().as_str(), b.layout.abi), (version, abi), "{name}");
        // CallInfo holds the Frame* from 8.1 on, the Func* before (zeek-abi.md §2).
        let holds_frame = matches!(abi, "8.1" | "8.2");
        assert_eq!(b.layout.call_info_holds_frame, holds_frame, "{name}");
        assert_eq!(b.layout.call_info_size, if holds_frame { 16 } else { 24 }, "{name}");
        assert_eq!(b.layout.event_mgr_current.is_some(), abi >= "7.2", "{name}");
        assert!(b.call_stack.is_some() && b.event_mgr.is_some(), "{name}");
    }
}

#[test]
fn dwarf_gives_every_field_and_catches_a_wrong_table_entry() {
    for (name, _, _) in GENERATIONS {
        let every_field: Vec<_> = LAYOUT_FIELDS.iter().map(|field| field.dwarf).collect();
        let elf = ElfFile::open(&fixture(name)).unwrap();
        let source = dwarf::source(&elf).expect("the fixtures are built with -g");
        let offsets = dwarf::read(&elf, &source, &every_field, &[]).unwrap();
        for field in LAYOUT_FIELDS {
            assert!(offsets.get(field.dwarf).is_some(), "{name}: {:?} not found in DWARF", field.dwarf);
        }
        let b = inspect(name);
        let mut wrong = AbiLayout::for_version(&b.version).unwrap();
        wrong.func_name = 80;
        assert_eq!(wrong.apply_dwarf(&offsets), [Mismatch { field: "zeek::Func::name".into(), table: 80, dwarf: 72 }]);
        assert_eq!((wrong.func_name, wrong.source), (72, LayoutSource::Dwarf), "{name}: DWARF wins");
    }
    // Stripped: no DWARF anywhere, the table is used.
    let stripped = inspect("zeek-shaped-8.2-stripped");
    assert_eq!(stripped.layout.source, LayoutSource::Table);
    assert!(stripped.dwarf.is_none());
    assert_eq!(stripped.layout, AbiLayout::for_version(&stripped.version).unwrap());
}

#[test]
fn steps_past_endbr64_on_cet_builds() {
    let plain = inspect("zeek-shaped-8.2");
    let cet = inspect("zeek-shaped-8.2-cet");
    for p in &cet.probe_points {
        assert_eq!(p.skipped, 4, "{:?} starts with endbr64", p.kind);
    }
    // The file offset is the address's, plus the skipped prologue.
    let invoke = &cet.probe_points[0];
    assert_ne!(invoke.file_offset, plain.probe_points[0].file_offset);
}
