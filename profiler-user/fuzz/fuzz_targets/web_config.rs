//! A `--web-config` file (exporter-toolkit YAML).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = zeek_probe::exporter::web_config::WebConfig::parse(text, std::path::Path::new("/nonexistent/web.yml"));
    }
});
