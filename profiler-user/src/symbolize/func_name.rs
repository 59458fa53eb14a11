//! A function's name from what the BPF side copied: printable text, marked when truncated.
use profiler_common::{FuncInfo, maps::NAME_MAX};

/// The name, or `None` if the copied bytes are not a plausible Zeek identifier.
pub fn func_name(info: &FuncInfo) -> Option<String> {
    let mut name = crate::target::memory::printable(info.name_bytes())?;
    if info.name_len as usize > NAME_MAX {
        name.push('…');
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &[u8], len: usize) -> FuncInfo {
        let mut i = FuncInfo::zeroed();
        i.name[..name.len()].copy_from_slice(name);
        i.name_len = len as u32;
        i
    }

    #[test]
    fn plain_names() {
        assert_eq!(func_name(&info(b"Conn::set_conn", 14)).as_deref(), Some("Conn::set_conn"));
    }

    #[test]
    fn long_names_are_marked_truncated() {
        let long = [b'a'; NAME_MAX];
        let name = func_name(&info(&long, NAME_MAX + 10)).unwrap();
        assert!(name.ends_with('…'));
        assert_eq!(name.chars().count(), NAME_MAX + 1);
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(func_name(&info(b"\x01\x02", 2)), None);
        assert_eq!(func_name(&info(b"", 0)), None);
    }
}
