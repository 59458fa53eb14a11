//! The Zeek-shaped fixture programs (tests/fixture/), one per ABI generation and variant,
//! built with Zeek's release flags (RelWithDebInfo: -O2 -g, linked -rdynamic).
use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context, Result};

use crate::run::{status, workspace_root};

pub struct Fixture {
    pub name: &'static str,
    /// `ZEEK_ABI` for the source: major * 10000 + minor * 100 + patch.
    pub abi: u32,
    pub extra_flags: &'static [&'static str],
}

/// One per ABI generation (zeek-abi.md §2), plus variants.
pub const FIXTURES: &[Fixture] = &[
    Fixture { name: "zeek-shaped-6.0", abi: 60000, extra_flags: &[] },
    Fixture { name: "zeek-shaped-7.0", abi: 70000, extra_flags: &[] },
    Fixture { name: "zeek-shaped-7.2", abi: 70200, extra_flags: &[] },
    Fixture { name: "zeek-shaped-8.0", abi: 80000, extra_flags: &[] },
    Fixture { name: "zeek-shaped-8.1", abi: 80100, extra_flags: &[] },
    Fixture { name: "zeek-shaped-8.2", abi: 80202, extra_flags: &[] },
    // Distributions build with CET: every function starts with `endbr64`.
    Fixture { name: "zeek-shaped-8.2-cet", abi: 80202, extra_flags: &["-fcf-protection=full"] },
];

/// The fixture the demo and benchmarks use.
pub const DEFAULT: &str = "zeek-shaped-8.2";

pub fn path(name: &str) -> PathBuf {
    workspace_root().join("target/fixtures").join(name)
}

fn source_files() -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![workspace_root().join("tests/fixture")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let p = entry?.path();
            if p.is_dir() { dirs.push(p) } else { files.push(p) }
        }
    }
    Ok(files)
}

/// Builds every fixture whose binary is older than its sources.
pub fn build_all() -> Result<()> {
    let sources = source_files()?;
    let newest = sources.iter().filter_map(|p| fs::metadata(p).and_then(|m| m.modified()).ok()).max();
    fs::create_dir_all(workspace_root().join("target/fixtures"))?;
    for f in FIXTURES {
        let out = path(f.name);
        let built = fs::metadata(&out).and_then(|m| m.modified()).ok();
        if built.is_some() && built >= newest {
            continue;
        }
        eprintln!("xtask: building fixture {}", f.name);
        let mut cmd = Command::new("g++");
        cmd.args(["-std=c++17", "-O2", "-g", "-rdynamic", "-pthread"])
            .arg(format!("-DZEEK_ABI={}", f.abi))
            .args(f.extra_flags)
            .arg("-o")
            .arg(&out)
            .arg(workspace_root().join("tests/fixture/zeek_shaped.cc"));
        status(&mut cmd)?;
    }
    Ok(())
}
