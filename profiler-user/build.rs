//! Builds the BPF programs (profiler-ebpf, nightly, bpfel-unknown-none) and leaves the object in
//! OUT_DIR, from where `probes::programs` embeds it: the `zeek-probe` binary needs nothing else
//! at run time. `cargo xtask setup` installs what this needs (rust-src, bpf-linker).
//!
//! Also records the git commit the binary is built from (`ZEEK_PROBE_GIT_COMMIT`, for
//! `--version`): a copied binary or a package then says which source it is.
use std::{path::Path, process::Command};

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    git_commit(Path::new(&manifest_dir));
    let ebpf_dir = format!("{manifest_dir}/../profiler-ebpf");
    println!("cargo:rerun-if-changed={manifest_dir}/../profiler-common");
    aya_build::build_ebpf(
        [aya_build::Package { name: "profiler-ebpf", root_dir: &ebpf_dir, ..Default::default() }],
        aya_build::Toolchain::default(),
    )
}

/// `git rev-parse --short HEAD`, `-dirty` when tracked files differ from it, `unknown` outside
/// a git checkout (a source tarball) or without git.
fn git_commit(dir: &Path) {
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).current_dir(dir).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let commit = match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            // Stamped again when HEAD moves (a checkout, or a commit moving its branch), not
            // at every edit or `git add`: rerunning this script rebuilds the BPF programs
            // (a minute). `-dirty` therefore says how the tree was when HEAD last moved, which
            // for `cargo xtask dist` from a checkout is now.
            if let Some(p) = git(&["rev-parse", "--git-path", "HEAD"]) {
                println!("cargo:rerun-if-changed={}", dir.join(p).display());
            }
            if let Some(p) = git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r])) {
                println!("cargo:rerun-if-changed={}", dir.join(p).display());
            }
            if dirty { format!("{commit}-dirty") } else { commit }
        }
        None => "unknown".to_owned(),
    };
    println!("cargo:rustc-env=ZEEK_PROBE_GIT_COMMIT={commit}");
}
