//! The names people read for the script functions the BPF side recorded, decided once per
//! profile for every recorded function so that call edges and sampled stacks name each the
//! same way.
//!
//! Functions are identified by Zeek's own name (its hash is the `FUNCS` key). Lambdas are the
//! exception to showing that name: Zeek calls them `lambda_<hash>`, which means nothing to
//! people and is not the name `--profile-scripts` prints, so they are shown by where they are
//! defined, `lambda@<script>:<first line>`, with the script's path relative to Zeek's script
//! directory or its zkg package (`base/protocols/ssl/consts.zeek`, `pkg/main.zeek`): several
//! base scripts are called `consts.zeek`. Distinct functions never share a shown name: should
//! two lambdas be defined on the same line, both carry Zeek's name too.
use std::collections::{BTreeMap, HashMap, hash_map::Entry};

use profiler_common::{FuncInfo, maps::CALLER_UNRESOLVED};

use super::{FuncKind, func_name};
use crate::target::memory::printable;

/// The name shown for a function that could not be read: a caller or stack frame the probe
/// marked `CALLER_UNRESOLVED`, or one whose `FUNCS` entry is missing or does not decode.
pub const UNRESOLVED: &str = "<unresolved>";

/// A recorded function as the outputs name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedFunction {
    /// The name people read.
    pub name: String,
    /// Zeek's own name where the shown one differs (lambdas).
    pub zeek_name: Option<String>,
    pub kind: FuncKind,
    /// The defining script, as Zeek recorded its path.
    pub file: Option<String>,
    /// First line of the definition (0 when unknown).
    pub line: u32,
}

/// Every recorded function's shown name, by name hash.
#[derive(Debug, Default)]
pub struct FunctionNames {
    by_hash: HashMap<u64, NamedFunction>,
}

impl FunctionNames {
    /// Names the `wanted` functions of `funcs` (the `FUNCS` map, shared by every target: one
    /// profile names only what it shows, and its names are distinct among those). Hashes with
    /// no entry, and entries that do not decode, are left out: looking them up gives `None`.
    pub fn new(funcs: &HashMap<u64, FuncInfo>, wanted: impl IntoIterator<Item = u64>) -> Self {
        let mut by_hash: HashMap<u64, NamedFunction> = HashMap::new();
        for hash in wanted {
            if let (Entry::Vacant(slot), Some(info)) = (by_hash.entry(hash), funcs.get(&hash))
                && let Some(named) = decode(info)
            {
                slot.insert(named);
            }
        }
        let mut holders: BTreeMap<(String, FuncKind), Vec<u64>> = BTreeMap::new();
        for (hash, f) in &by_hash {
            holders.entry((f.name.clone(), f.kind)).or_default().push(*hash);
        }
        for hashes in holders.into_values().filter(|h| h.len() > 1) {
            for hash in hashes {
                if let Some(f) = by_hash.get_mut(&hash)
                    && let Some(zeek_name) = &f.zeek_name
                {
                    f.name = format!("{} {zeek_name}", f.name);
                }
            }
        }
        Self { by_hash }
    }

    pub fn get(&self, hash: u64) -> Option<&NamedFunction> {
        self.by_hash.get(&hash)
    }

    /// The function a caller or a stack frame holds: `None` where the probe could not read it
    /// (`CALLER_UNRESOLVED`) or it has no name here; both show as [`UNRESOLVED`].
    pub fn resolve(&self, hash: u64) -> Option<&NamedFunction> {
        if hash == CALLER_UNRESOLVED { None } else { self.get(hash) }
    }

    /// The name a caller or a stack frame shows.
    pub fn shown_name(&self, hash: u64) -> &str {
        self.resolve(hash).map_or(UNRESOLVED, |f| &f.name)
    }
}

fn decode(info: &FuncInfo) -> Option<NamedFunction> {
    let zeek_name = func_name(info)?;
    let kind = FuncKind::from_raw(info.kind, info.flavor)?;
    let file = printable(info.file_bytes());
    let (name, zeek_name) = match &file {
        Some(file) if zeek_name.starts_with("lambda_") => {
            (format!("lambda@{}:{}", script_path(file), info.line), Some(zeek_name))
        }
        _ => (zeek_name, None),
    };
    Some(NamedFunction { name, zeek_name, kind, file, line: info.line })
}

/// A script's path relative to where Zeek finds scripts: below a zkg package directory
/// (`site/packages/<pkg>/…`) from the package on, below `<prefix>/share/zeek/` from there on,
/// anything else as Zeek recorded it.
pub fn script_path(file: &str) -> &str {
    file.rsplit_once("/site/packages/")
        .or_else(|| file.rsplit_once("/share/zeek/"))
        .map_or(file, |(_, relative)| relative)
}

/// What the BPF side records for a function, made by hand (tests of the decoders).
#[cfg(test)]
pub fn func_info(name: &str, kind: u8, flavor: u8, file: &str, line: u32) -> FuncInfo {
    let mut i = FuncInfo::zeroed();
    i.name[..name.len()].copy_from_slice(name.as_bytes());
    i.name_len = name.len() as u32;
    i.kind = kind;
    i.flavor = flavor;
    i.file[..file.len()].copy_from_slice(file.as_bytes());
    i.line = line;
    i
}

#[cfg(test)]
mod tests {
    use profiler_common::name_hash::name_hash_bytes;

    use super::*;

    fn names(funcs: &[(&str, &str, u32)]) -> FunctionNames {
        let funcs: HashMap<u64, FuncInfo> = funcs
            .iter()
            .map(|(name, file, line)| (name_hash_bytes(name.as_bytes()), func_info(name, 0, 0, file, *line)))
            .collect();
        FunctionNames::new(&funcs, funcs.keys().copied())
    }

    fn shown(names: &FunctionNames, zeek_name: &str) -> String {
        names.get(name_hash_bytes(zeek_name.as_bytes())).unwrap().name.clone()
    }

    #[test]
    fn lambdas_are_named_by_script_path_and_line() {
        let ssl = "lambda_<5765545886963271275>";
        let pe = "lambda_<2218387913957005912>";
        let pkg = "lambda_<17>";
        let n = names(&[
            (ssl, "/usr/local/zeek/share/zeek/base/protocols/ssl/consts.zeek", 27),
            (pe, "/usr/local/zeek/share/zeek/base/files/pe/consts.zeek", 28),
            (pkg, "/opt/zeek/share/zeek/site/packages/zeek-ja4/main.zeek", 42),
            ("Conn::set_conn", "/usr/local/zeek/share/zeek/base/protocols/conn/main.zeek", 260),
        ]);
        assert_eq!(shown(&n, ssl), "lambda@base/protocols/ssl/consts.zeek:27");
        assert_eq!(shown(&n, pe), "lambda@base/files/pe/consts.zeek:28");
        assert_eq!(shown(&n, pkg), "lambda@zeek-ja4/main.zeek:42");
        assert_eq!(shown(&n, "Conn::set_conn"), "Conn::set_conn");
        let ssl = n.get(name_hash_bytes(ssl.as_bytes())).unwrap();
        assert_eq!(ssl.zeek_name.as_deref(), Some("lambda_<5765545886963271275>"));
        assert_eq!(n.get(name_hash_bytes(b"Conn::set_conn")).unwrap().zeek_name, None);
    }

    #[test]
    fn lambdas_defined_on_one_line_stay_apart() {
        let file = "/usr/local/zeek/share/zeek/site/local.zeek";
        let n = names(&[("lambda_<1>", file, 5), ("lambda_<2>", file, 5), ("lambda_<3>", file, 6)]);
        assert_eq!(shown(&n, "lambda_<1>"), "lambda@site/local.zeek:5 lambda_<1>");
        assert_eq!(shown(&n, "lambda_<2>"), "lambda@site/local.zeek:5 lambda_<2>");
        assert_eq!(shown(&n, "lambda_<3>"), "lambda@site/local.zeek:6");
    }

    #[test]
    fn only_the_wanted_are_named_and_kept_apart() {
        let file = "/usr/local/zeek/share/zeek/site/local.zeek";
        let funcs: HashMap<u64, FuncInfo> = ["lambda_<1>", "lambda_<2>"]
            .map(|name| (name_hash_bytes(name.as_bytes()), func_info(name, 0, 0, file, 5)))
            .into();
        let n = FunctionNames::new(&funcs, [name_hash_bytes(b"lambda_<1>")]);
        assert_eq!(shown(&n, "lambda_<1>"), "lambda@site/local.zeek:5", "no clash within what is shown");
        assert!(n.get(name_hash_bytes(b"lambda_<2>")).is_none());
    }

    #[test]
    fn scripts_outside_zeeks_directories_keep_their_path() {
        assert_eq!(script_path("/home/ops/test.zeek"), "/home/ops/test.zeek");
        assert_eq!(script_path("./test.zeek"), "./test.zeek");
        assert_eq!(script_path("/usr/local/zeek/share/zeek/site/local.zeek"), "site/local.zeek");
    }

    #[test]
    fn undecodable_entries_are_left_out() {
        let mut bad = func_info("x", 0, 0, "", 0);
        bad.kind = 7;
        let n = FunctionNames::new(&HashMap::from([(5, bad)]), [5, 6]);
        assert!(n.get(5).is_none());
        assert!(n.get(6).is_none());
    }
}
