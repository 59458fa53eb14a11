//! Builds the BPF programs (profiler-ebpf, nightly, bpfel-unknown-none) and leaves the object in
//! OUT_DIR, from where `probes::programs` embeds it: the `zeek-probe` binary needs nothing else
//! at run time. `cargo xtask setup` installs what this needs (rust-src, bpf-linker).
fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = format!("{manifest_dir}/../profiler-ebpf");
    println!("cargo:rerun-if-changed={manifest_dir}/../profiler-common");
    aya_build::build_ebpf(
        [aya_build::Package { name: "profiler-ebpf", root_dir: &ebpf_dir, ..Default::default() }],
        aya_build::Toolchain::default(),
    )
}
