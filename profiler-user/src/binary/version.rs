//! The Zeek version, from the exported `zeek_version_<X_Y_Z...>_plugin_<API>[_debug]` symbol.
use std::fmt;

pub const VERSION_SYMBOL_PREFIX: &str = "zeek_version_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZeekVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// Anything between the patch level and `_plugin_`, e.g. `dev_123` (may be empty).
    pub suffix: String,
    pub plugin_api: u32,
    /// A debug build (`--build-type=debug`): some layouts differ (zeek-abi.md §2).
    pub debug: bool,
}

impl ZeekVersion {
    /// Parses a version symbol name; `None` when it does not have the expected shape.
    pub fn from_symbol(symbol: &str) -> Option<Self> {
        let rest = symbol.strip_prefix(VERSION_SYMBOL_PREFIX)?;
        let (rest, debug) = match rest.strip_suffix("_debug") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let (version, api) = rest.rsplit_once("_plugin_")?;
        let plugin_api = api.parse().ok()?;
        let mut parts = version.splitn(4, '_');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next()?.parse().ok()?;
        let suffix = parts.next().unwrap_or("").to_owned();
        Some(Self { major, minor, patch, suffix, plugin_api, debug })
    }

    /// `major * 10000 + minor * 100 + patch`, for range comparisons.
    pub fn number(&self) -> u32 {
        self.major * 10_000 + self.minor * 100 + self.patch
    }
}

impl fmt::Display for ZeekVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.suffix.is_empty() {
            write!(f, "-{}", self.suffix.replace('_', "-"))?;
        }
        if self.debug {
            write!(f, " (debug build)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_symbol() {
        let v = ZeekVersion::from_symbol("zeek_version_8_2_2_plugin_7").unwrap();
        assert_eq!((v.major, v.minor, v.patch, v.plugin_api, v.debug), (8, 2, 2, 7, false));
        assert_eq!(v.to_string(), "8.2.2");
        assert_eq!(v.number(), 80202);
    }

    #[test]
    fn parses_dev_and_debug_symbol() {
        let v = ZeekVersion::from_symbol("zeek_version_8_1_0_dev_42_plugin_6_debug").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (8, 1, 0));
        assert_eq!(v.suffix, "dev_42");
        assert!(v.debug);
        assert_eq!(v.to_string(), "8.1.0-dev-42 (debug build)");
    }

    #[test]
    fn rejects_other_shapes() {
        assert!(ZeekVersion::from_symbol("zeek_version_x_plugin_7").is_none());
        assert!(ZeekVersion::from_symbol("zeek_version_8_2_2").is_none());
        assert!(ZeekVersion::from_symbol("bro_version_2_6_plugin_7").is_none());
    }
}
