//! A cluster event's broker-bin-v1 payload, as any host on the cluster network can send it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zeek_probe_zeromq::broker_bin::decode_event(data);
});
