//! A record from the NCSA ZeroMQ log writer: two frames, the log path and its JSON, here split
//! at the input's first newline.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (path, json) = data.split_at(data.iter().position(|b| *b == b'\n').unwrap_or(data.len()));
    let json = json.strip_prefix(b"\n").unwrap_or(json);
    let _ = zeek_probe_zeromq::ncsa_logs::parse(&[path.to_vec(), json.to_vec()]);
});
