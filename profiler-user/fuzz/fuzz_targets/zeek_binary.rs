//! An executable to inspect (`check PATH`, discovery of every process's executable): ELF,
//! symbols, version, prologues and DWARF of a corrupted or hostile file.
#![no_main]
use std::io::Write as _;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = tempfile::NamedTempFile::new() else { return };
    if file.write_all(data).is_ok() {
        let _ = zeek_probe::binary::ZeekBinary::inspect(file.path(), file.path());
    }
});
