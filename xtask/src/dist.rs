//! `cargo xtask dist`: what a sensor without a toolchain installs, built into target/dist/:
//! `zeek-probe_<version>_amd64.deb`, `zeek-probe-<version>-x86_64-linux.tar.gz` (the same
//! files under one top folder, for other distributions) and their `SHA256SUMS`.
//!
//! Both come from one staged tree laid out as the package installs it, packed with `dpkg-deb`
//! (no cargo-deb: the tarball needs the same tree anyway, and the rest is a control file).
//! The dependencies are what the binary links, as `dpkg-shlibdeps` reads them from it.
use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, ensure};

use crate::{
    run::{self, status, workspace_root},
    tree::{entries_under, files_in},
};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
const PACKAGE: &str = "zeek-probe";
/// The unit in prometheus/ is written for a binary copied to /usr/local/bin (README); the
/// package installs it to /usr/bin.
const UNIT_EXEC_FROM: &str = "ExecStart=/usr/local/bin/zeek-probe ";
const UNIT_EXEC_TO: &str = "ExecStart=/usr/bin/zeek-probe ";

pub struct Artifacts {
    pub deb: PathBuf,
    pub tarball: PathBuf,
}

pub fn dir() -> PathBuf {
    workspace_root().join("target/dist")
}

/// Builds the release binary, its man pages and completions, stages them and packs both
/// artifacts.
pub fn build() -> Result<Artifacts> {
    ensure!(std::env::consts::ARCH == "x86_64", "dist builds amd64 packages, on x86-64 only");
    run::cargo(&["build", "--release", "--package", PACKAGE])?;
    let work = dir().join("build");
    remove_if_present(&work)?;
    let generated = work.join("cli-docs");
    let generated_arg = generated.to_str().context("the target/ path is not UTF-8")?;
    run::cargo(&["run", "--quiet", "--package", "profiler-cli-docs", "--", generated_arg])?;
    // dpkg-shlibdeps wants the tree at debian/<package>/ beside a debian/control.
    let tree = work.join("debian").join(PACKAGE);
    stage(&tree, &generated)?;
    write_control(&work, &tree)?;

    let deb = dir().join(format!("{PACKAGE}_{VERSION}_amd64.deb"));
    status(Command::new("dpkg-deb").args(["--root-owner-group", "-Zxz", "--build"]).arg(&tree).arg(&deb))?;
    let top = format!("{PACKAGE}-{VERSION}-x86_64-linux");
    let tarball = dir().join(format!("{top}.tar.gz"));
    status(
        Command::new("tar")
            .args(["--create", "--gzip", "--sort=name", "--owner=0", "--group=0", "--numeric-owner"])
            .arg("--file")
            .arg(&tarball)
            .arg("--directory")
            .arg(&tree)
            .args(["--exclude=./DEBIAN", &format!("--transform=s,^\\.,{top},"), "."]),
    )?;
    write_sha256sums(&[&deb, &tarball])?;
    eprintln!("xtask: built {} and {}", deb.display(), tarball.display());
    Ok(Artifacts { deb, tarball })
}

/// Lays the files out under `tree` as installed, owner-independent modes (dpkg-deb and tar
/// record root as the owner).
fn stage(tree: &Path, generated: &Path) -> Result<()> {
    let root = workspace_root();
    let doc = Path::new("usr/share/doc").join(PACKAGE);

    let binary = tree.join("usr/bin").join(PACKAGE);
    copy(&root.join("target/release").join(PACKAGE), &binary, 0o755)?;
    // As dh_strip does: the symbol table and the toolchain's notes are of no use on a sensor.
    status(
        Command::new("strip")
            .args(["--remove-section=.comment", "--remove-section=.note", "--strip-unneeded"])
            .arg(&binary),
    )?;

    let unit = fs::read_to_string(root.join("prometheus/zeek-probe.service"))?;
    ensure!(unit.matches(UNIT_EXEC_FROM).count() == 1, "prometheus/zeek-probe.service has no one `{UNIT_EXEC_FROM}`");
    write(
        &tree.join("usr/lib/systemd/system/zeek-probe.service"),
        unit.replace(UNIT_EXEC_FROM, UNIT_EXEC_TO).as_bytes(),
    )?;

    copy(&root.join("xtask/dist/copyright"), &tree.join(&doc).join("copyright"), 0o644)?;
    copy(&root.join("xtask/dist/lintian-overrides"), &tree.join("usr/share/lintian/overrides").join(PACKAGE), 0o644)?;
    write(&tree.join(&doc).join("changelog"), changelog()?.as_bytes())?;
    gzip(&tree.join(&doc).join("changelog"))?;
    copy(&root.join("README.md"), &tree.join(&doc).join("README.md"), 0o644)?;
    gzip(&tree.join(&doc).join("README.md"))?;
    // The scrape configs, alerts, dashboard and web config; the unit is installed itself.
    for example in files_in(&root.join("prometheus"))? {
        if example.file_name().is_some_and(|name| name != "zeek-probe.service") {
            copy(&example, &tree.join(&doc).join("examples").join(file_name(&example)?), 0o644)?;
        }
    }

    // The companion Zeek package as zkg sees it (zkg.meta, script_dir = scripts), for `@load`
    // or `zkg install` without the network.
    let zeek_package = tree.join("usr/share").join(PACKAGE).join("zeek-package");
    copy(&root.join("zkg.meta"), &zeek_package.join("zkg.meta"), 0o644)?;
    for script in files_in(&root.join("scripts"))? {
        copy(&script, &zeek_package.join("scripts").join(file_name(&script)?), 0o644)?;
    }

    for page in files_in(&generated.join("man"))? {
        let installed = tree.join("usr/share/man/man1").join(file_name(&page)?);
        copy(&page, &installed, 0o644)?;
        gzip(&installed)?;
    }
    let completions = [
        ("bash/zeek-probe.bash", "usr/share/bash-completion/completions/zeek-probe"),
        ("zsh/_zeek-probe", "usr/share/zsh/vendor-completions/_zeek-probe"),
        ("fish/zeek-probe.fish", "usr/share/fish/vendor_completions.d/zeek-probe.fish"),
    ];
    for (from, to) in completions {
        copy(&generated.join(from), &tree.join(to), 0o644)?;
    }
    // The installed folders are 0755 whatever the umask was.
    for dir in entries_under(tree)?.into_iter().filter(|p| p.is_dir()) {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// A native package's changelog, one entry dated by the commit built.
fn changelog() -> Result<String> {
    let date = Command::new("git")
        .args(["log", "-1", "--date=format:%a, %d %b %Y %H:%M:%S %z", "--format=%cd"])
        .current_dir(workspace_root())
        .output()
        .context("cannot run git: dist builds from a git checkout")?;
    ensure!(date.status.success(), "git log failed: dist builds from a git checkout");
    let date = String::from_utf8_lossy(&date.stdout).trim().to_owned();
    let maintainer = control_field("Maintainer")?;
    Ok(format!(
        "{PACKAGE} ({VERSION}) unstable; urgency=medium\n\n  * Release {VERSION}: see the project's git history.\n\n -- {maintainer}  {date}\n"
    ))
}

/// DEBIAN/control from xtask/dist/control, with the size and what the binary links filled in,
/// DEBIAN/postrm (removes the layout cache) and DEBIAN/md5sums.
fn write_control(work: &Path, tree: &Path) -> Result<()> {
    fs::write(work.join("debian/control"), format!("Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: amd64\n"))?;
    let shlibdeps = Command::new("dpkg-shlibdeps")
        .args(["-O", "-e"])
        .arg(tree.join("usr/bin").join(PACKAGE))
        .current_dir(work)
        .output()
        .context("cannot run dpkg-shlibdeps (dpkg-dev)")?;
    ensure!(shlibdeps.status.success(), "dpkg-shlibdeps failed: {}", String::from_utf8_lossy(&shlibdeps.stderr));
    let stdout = String::from_utf8_lossy(&shlibdeps.stdout);
    let depends = stdout
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .with_context(|| format!("dpkg-shlibdeps printed no shlibs:Depends: {stdout}"))?;

    let entries = entries_under(tree)?;
    // As dpkg-gencontrol counts: KiB per file, rounded up, and one per directory.
    let mut kib = 0;
    for path in &entries {
        let meta = fs::symlink_metadata(path)?;
        kib += if meta.is_dir() { 1 } else { meta.len().div_ceil(1024) };
    }
    let template = fs::read_to_string(workspace_root().join("xtask/dist/control"))?;
    let control = template
        .replace("@VERSION@", VERSION)
        .replace("@INSTALLED_SIZE@", &kib.to_string())
        .replace("@DEPENDS@", depends);
    write(&tree.join("DEBIAN/control"), control.as_bytes())?;
    let postrm = tree.join("DEBIAN/postrm");
    write(&postrm, &fs::read(workspace_root().join("xtask/dist/postrm"))?)?;
    fs::set_permissions(&postrm, fs::Permissions::from_mode(0o755))?;

    let relative: Vec<&Path> =
        entries.iter().filter(|p| p.is_file()).map(|p| p.strip_prefix(tree)).collect::<Result<_, _>>()?;
    let md5sums = Command::new("md5sum").arg("--").args(&relative).current_dir(tree).output()?;
    ensure!(md5sums.status.success(), "md5sum failed: {}", String::from_utf8_lossy(&md5sums.stderr));
    write(&tree.join("DEBIAN/md5sums"), &md5sums.stdout)
}

fn control_field(name: &str) -> Result<String> {
    let template = fs::read_to_string(workspace_root().join("xtask/dist/control"))?;
    let prefix = format!("{name}: ");
    template
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::to_owned)
        .with_context(|| format!("xtask/dist/control has no {name}"))
}

fn write_sha256sums(artifacts: &[&Path]) -> Result<()> {
    let names: Vec<&std::ffi::OsStr> = artifacts.iter().map(|p| file_name(p)).collect::<Result<_>>()?;
    let sums = Command::new("sha256sum").arg("--").args(&names).current_dir(dir()).output()?;
    ensure!(sums.status.success(), "sha256sum failed: {}", String::from_utf8_lossy(&sums.stderr));
    fs::write(dir().join("SHA256SUMS"), &sums.stdout)?;
    Ok(())
}

/// Removes a folder of ours under target/ that an earlier run left.
pub fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

fn make_parent(path: &Path) -> Result<()> {
    let parent = path.parent().with_context(|| format!("{} has no parent", path.display()))?;
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    make_parent(to)?;
    fs::copy(from, to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn write(to: &Path, contents: &[u8]) -> Result<()> {
    make_parent(to)?;
    fs::write(to, contents).with_context(|| format!("cannot write {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o644))?;
    Ok(())
}

/// `gzip -9n` in place, as Debian compresses manuals and documentation (no name or time
/// stamp: the same input gives the same bytes).
fn gzip(path: &Path) -> Result<()> {
    status(Command::new("gzip").args(["-9n", "--"]).arg(path))
}

fn file_name(path: &Path) -> Result<&std::ffi::OsStr> {
    path.file_name().with_context(|| format!("{} has no file name", path.display()))
}
