//! `zeek-probe --version`: the version, the commit built from and the features built in, so
//! that a binary copied to a sensor or installed from a package says what it is.
use std::process::Command;

use crate::common::{workspace_root, zeek_probe};

#[test]
fn version_names_the_commit_and_the_features_built_in() {
    let out = Command::new(zeek_probe()).arg("--version").output().expect("run zeek-probe --version");
    assert!(out.status.success(), "zeek-probe --version failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .expect("git rev-parse (the tests run from a checkout)");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let first = format!("zeek-probe {} (commit {head}", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&first), "--version says {text:?}, not {first:?}…");
    let features = if cfg!(feature = "zmq") { "features: zmq" } else { "features: none" };
    assert!(text.lines().any(|l| l == features), "--version says {text:?}, without {features:?}");
}
