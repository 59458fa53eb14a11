//! The companion Zeek package (`scripts/*.zeek`): every script must parse and be formatted
//! exactly as `zeek-format` writes it. No Zeek can be installed here, so zeekscript (Zeek's own
//! tree-sitter grammar and formatter, from PyPI) is the judge; `setup.sh` installs it.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{run::workspace_root, tree::entries_under};

/// setup.sh's venv. Always under the workspace's own `target/`, whatever `CARGO_TARGET_DIR` says.
fn tool(name: &str) -> PathBuf {
    workspace_root().join("target/zeekscript-venv/bin").join(name)
}

pub fn check() -> Result<()> {
    let root = workspace_root();
    let (parser, formatter) = (tool("zeek-script"), tool("zeek-format"));
    if !parser.is_file() || !formatter.is_file() {
        bail!("zeekscript is not installed in target/zeekscript-venv (`cargo xtask setup` installs it)");
    }
    let scripts = zeek_files(&root.join("scripts"))?;
    if scripts.is_empty() {
        bail!("no .zeek files under scripts/: the zeekscript check has nothing to check");
    }
    let mut problems = Vec::new();
    for script in &scripts {
        let shown = script.strip_prefix(&root).unwrap_or(script).display().to_string();
        if let Some(problem) = check_one(script, &shown, &parser, &formatter)? {
            problems.push(format!("{shown}: {problem}"));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    eprintln!("xtask: {} Zeek scripts parse and are formatted (zeekscript)", scripts.len());
    Ok(())
}

/// What is wrong with one script, if anything.
fn check_one(script: &Path, shown: &str, parser: &Path, formatter: &Path) -> Result<Option<String>> {
    // Exit 1: no parse tree at all; 2: a tree with error nodes.
    let parse = Command::new(parser)
        .args(["parse", "--quiet"])
        .arg(script)
        .output()
        .with_context(|| format!("cannot run {}", parser.display()))?;
    let format =
        Command::new(formatter).arg(script).output().with_context(|| format!("cannot run {}", formatter.display()))?;
    if !parse.status.success() {
        // zeek-format names the first place it could not parse; the parser only says that it failed.
        let stderr = String::from_utf8_lossy(&format.stderr);
        return Ok(Some(match parse_error_position(&stderr) {
            Some((line, column)) => format!("Zeek syntax error at line {line}, column {column}"),
            None => format!("Zeek syntax error (zeek-script parse: {})", parse.status),
        }));
    }
    if !format.status.success() {
        let stderr = String::from_utf8_lossy(&format.stderr);
        return Ok(Some(format!("zeek-format failed: {}", stderr.lines().next().unwrap_or("no message"))));
    }
    let original = fs::read(script).with_context(|| format!("cannot read {}", script.display()))?;
    if format.stdout != original {
        let line = first_different_line(&original, &format.stdout);
        return Ok(Some(format!(
            "not formatted as zeek-format writes it (first difference at line {line}; \
             `target/zeekscript-venv/bin/zeek-format -i {shown}` fixes it)"
        )));
    }
    Ok(None)
}

/// Every `.zeek` file under `dir`, sorted.
fn zeek_files(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(entries_under(dir)?.into_iter().filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "zeek")).collect())
}

/// `cannot parse line L, col C: ...` from zeek-format (0-based) as 1-based (line, column).
fn parse_error_position(message: &str) -> Option<(usize, usize)> {
    let rest = &message[message.find("cannot parse line ")? + "cannot parse line ".len()..];
    let (line, rest) = rest.split_once(", col ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse::<usize>().ok()? + 1, column.parse::<usize>().ok()? + 1))
}

/// 1-based number of the first line where `a` and `b` differ.
fn first_different_line(a: &[u8], b: &[u8]) -> usize {
    let at = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    1 + a[..at].iter().filter(|&&byte| byte == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_zeek_formats_error_position() {
        let stderr = "parse tree has problems: cannot parse line 49, col 1: \"if ( ( ( ! x\"\n";
        assert_eq!(parse_error_position(stderr), Some((50, 2)));
        assert_eq!(parse_error_position("something else"), None);
    }

    #[test]
    fn finds_the_first_different_line() {
        assert_eq!(first_different_line(b"a\nb\nc\n", b"a\nb\nc\n"), 4);
        assert_eq!(first_different_line(b"a\nb\nc\n", b"a\nB\nc\n"), 2);
        assert_eq!(first_different_line(b"a\n", b"a\nb\n"), 2);
    }
}
