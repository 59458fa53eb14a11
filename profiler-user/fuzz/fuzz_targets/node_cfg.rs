//! A zeekctl `node.cfg` (`--node-cfg`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = zeek_probe::exporter::service_discovery::node_cfg_hosts(text, "node.cfg");
    }
});
