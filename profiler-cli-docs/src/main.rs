//! `profiler-cli-docs OUT`: zeek-probe's man pages and shell completions, generated from the clap
//! definitions of `zeek_probe::cli`, so they cannot drift from the command line. `cargo xtask
//! dist` runs it and installs what it writes:
//! - `OUT/man/`: `zeek-probe.1` and one page per subcommand (`zeek-probe-record.1`, ...);
//! - `OUT/<shell>/`: the completion script for bash, zsh and fish (`zeek-probe.bash`,
//!   `_zeek-probe`, `zeek-probe.fish`); dist installs each where its shell looks.
use std::{fs, path::PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use zeek_probe::cli::Cli;

const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

fn main() -> Result<()> {
    let out = PathBuf::from(std::env::args_os().nth(1).context("usage: profiler-cli-docs OUT")?);
    let man = out.join("man");
    fs::create_dir_all(&man).with_context(|| format!("cannot create {}", man.display()))?;
    clap_mangen::generate_to(Cli::command(), &man).with_context(|| format!("cannot write to {}", man.display()))?;
    for shell in SHELLS {
        let dir = out.join(shell.to_string());
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        clap_complete::generate_to(shell, &mut Cli::command(), "zeek-probe", &dir)
            .with_context(|| format!("cannot write to {}", dir.display()))?;
    }
    Ok(())
}
