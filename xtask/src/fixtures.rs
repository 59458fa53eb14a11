//! The Zeek-shaped fixture programs (tests/fixture/), one per ABI generation and variant,
//! built with Zeek's release flags (RelWithDebInfo: -O2 -g, no frame pointers, linked
//! -rdynamic), and the shared library of their own they all link (tests/fixture/helpers/).
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result};

use crate::run::{status, workspace_root};

pub struct Fixture {
    pub name: &'static str,
    /// `ZEEK_ABI` for the source: major * 10000 + minor * 100 + patch.
    pub abi: u32,
    pub extra_flags: &'static [&'static str],
    pub debug_info: DebugInfo,
}

/// Where the fixture's DWARF ends up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum DebugInfo {
    /// In the binary (`-g`, like RelWithDebInfo builds).
    Embedded,
    /// Removed with `.symtab`; `.dynsym` kept (distribution packages).
    Stripped,
    /// Moved to `<name>.debug` beside it, found through `.gnu_debuglink` (`-dbg` packages).
    Separate,
}

const CET: &[&str] = &["-fcf-protection=full"];
const DEBUG: &[&str] = &["-DZEEK_DEBUG_BUILD"];

const fn generation(name: &'static str, abi: u32) -> Fixture {
    Fixture { name, abi, extra_flags: &[], debug_info: DebugInfo::Embedded }
}

/// One per ABI generation (zeek-abi.md §2), plus variants.
pub const FIXTURES: &[Fixture] = &[
    generation("zeek-shaped-6.0", 60000),
    generation("zeek-shaped-7.0", 70000),
    generation("zeek-shaped-7.2", 70200),
    generation("zeek-shaped-8.0", 80000),
    generation("zeek-shaped-8.1", 80100),
    generation("zeek-shaped-8.2", 80202),
    // Distributions build with CET (every function starts with `endbr64`) and strip.
    Fixture { extra_flags: CET, ..generation("zeek-shaped-8.2-cet", 80202) },
    Fixture { extra_flags: CET, ..generation("zeek-shaped-7.0-cet", 70000) },
    Fixture { debug_info: DebugInfo::Stripped, ..generation("zeek-shaped-8.2-stripped", 80202) },
    Fixture { debug_info: DebugInfo::Stripped, ..generation("zeek-shaped-7.0-stripped", 70000) },
    Fixture { debug_info: DebugInfo::Separate, ..generation("zeek-shaped-8.2-debuglink", 80202) },
    Fixture { extra_flags: DEBUG, ..generation("zeek-shaped-8.2-debug", 80202) },
    Fixture { extra_flags: DEBUG, ..generation("zeek-shaped-7.0-debug", 70000) },
];

/// The fixture the demo and benchmarks use.
pub const DEFAULT: &str = "zeek-shaped-8.2";

/// The fixtures' own shared library (as libbinpac is Zeek's), beside them in target/fixtures.
pub const HELPERS_LIBRARY: &str = "libzeek_shaped_helpers.so";

/// Release Zeek omits frame pointers (GCC's -O2 default, said explicitly): stacks are walked
/// with .eh_frame, which the fixtures and the library keep as every build does.
const RELEASE_FLAGS: &[&str] = &["-std=c++17", "-O2", "-g", "-fomit-frame-pointer"];

fn dir() -> PathBuf {
    workspace_root().join("target/fixtures")
}

pub fn path(name: &str) -> PathBuf {
    dir().join(name)
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

/// Builds the library, then every fixture, where the output is older than the sources.
pub fn build_all() -> Result<()> {
    let sources = source_files()?;
    let newest = sources.iter().filter_map(|p| fs::metadata(p).and_then(|m| m.modified()).ok()).max();
    let stale = |out: &Path| {
        let built = fs::metadata(out).and_then(|m| m.modified()).ok();
        built.is_none() || built < newest
    };
    fs::create_dir_all(dir())?;
    let library = path(HELPERS_LIBRARY);
    if stale(&library) {
        eprintln!("xtask: building fixture library {HELPERS_LIBRARY}");
        status(
            Command::new("g++")
                .args(RELEASE_FLAGS)
                .args(["-fPIC", "-shared", "-fvisibility=hidden", "-o"])
                .arg(&library)
                .arg(workspace_root().join("tests/fixture/helpers/binpac_http.cc")),
        )?;
    }
    // $ORIGIN finds the library from target/fixtures; the directory's own path, second, from
    // copies of a fixture made elsewhere on this machine (tests patch some).
    let rpath = format!("-Wl,-rpath,$ORIGIN:{}", dir().display());
    for f in FIXTURES {
        let out = path(f.name);
        if !stale(&out) {
            continue;
        }
        eprintln!("xtask: building fixture {}", f.name);
        let mut cmd = Command::new("g++");
        cmd.args(RELEASE_FLAGS)
            .args(["-rdynamic", "-pthread"])
            .arg(format!("-DZEEK_ABI={}", f.abi))
            .args(f.extra_flags)
            .arg("-o")
            .arg(&out)
            .arg(workspace_root().join("tests/fixture/zeek_shaped.cc"))
            .arg(format!("-L{}", dir().display()))
            .arg(format!("-l:{HELPERS_LIBRARY}"))
            .arg(&rpath);
        status(&mut cmd)?;
        match f.debug_info {
            DebugInfo::Embedded => {}
            DebugInfo::Stripped => status(Command::new("strip").arg("--strip-all").arg(&out))?,
            DebugInfo::Separate => {
                let debug = out.with_file_name(format!("{}.debug", f.name));
                status(Command::new("objcopy").arg("--only-keep-debug").arg(&out).arg(&debug))?;
                status(Command::new("strip").arg("--strip-debug").arg(&out))?;
                // Relative to the binary's directory, as packagers do.
                let link = format!("--add-gnu-debuglink={}", debug.display());
                status(Command::new("objcopy").arg(link).arg(&out).current_dir(dir()))?;
            }
        }
    }
    Ok(())
}
