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

pub fn find_in_path(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?).map(|dir| dir.join(program)).find(|p| p.is_file())
}
