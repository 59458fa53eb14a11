//! A cluster event's broker-json-v1 payload.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zeek_probe_zeromq::broker_json::decode_event(data);
});
