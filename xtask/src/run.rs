//! Running commands from xtask: cargo, the set-up script, anything on PATH.
use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Runs `cmd`, failing unless it exits 0.
pub fn status(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

pub fn cargo(args: &[&str]) -> Result<()> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    status(Command::new(cargo).args(args).current_dir(workspace_root()))
}

/// Installs the toolchain pieces; idempotent and quick when done (xtask/setup.sh).
pub fn setup() -> Result<()> {
    status(Command::new("bash").arg(workspace_root().join("xtask/setup.sh")))
}

/// The real Zeek to profile: `$ZEEK`, a `zeek` on PATH, or the build `setup` installs from
/// `../shared/zeek/` (the same order as the real-Zeek tests, but PATH first: an operator's own
/// Zeek wins over the test build).
pub fn find_zeek() -> Option<PathBuf> {
    let on_path = || env::split_paths(&env::var_os("PATH")?).map(|dir| dir.join("zeek")).find(|p| p.is_file());
    env::var_os("ZEEK")
        .map(PathBuf::from)
        .or_else(on_path)
        .or_else(|| Some(PathBuf::from("/usr/local/zeek/bin/zeek")).filter(|p| p.is_file()))
}
