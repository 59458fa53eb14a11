//! `summary.json`: the whole profile, machine-readable.
use std::{fs, io, path::Path};

use crate::profile::Profile;

pub const FILE_NAME: &str = "summary.json";

pub fn write(dir: &Path, profile: &Profile) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let json = serde_json::to_vec_pretty(profile).map_err(io::Error::other)?;
    fs::write(dir.join(FILE_NAME), json)
}
