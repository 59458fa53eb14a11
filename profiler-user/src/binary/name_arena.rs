//! Symbol names back to back in one string. A Zeek binary and its libraries have a hundred
//! thousand symbols with long C++ names: one allocation per name cost more than reading them,
//! at every `record` start.

/// Where one name is in its arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRef {
    start: u32,
    len: u32,
}

#[derive(Debug, Clone, Default)]
pub struct NameArena(String);

impl NameArena {
    /// Appends `name`; `None` once the arena would pass 4 GiB (no symbol table comes close).
    pub fn push(&mut self, name: &str) -> Option<NameRef> {
        let start = u32::try_from(self.0.len()).ok()?;
        let len = u32::try_from(name.len()).ok()?;
        start.checked_add(len)?;
        self.0.push_str(name);
        Some(NameRef { start, len })
    }

    /// Whether the name at `at` is `name`; most names differ in length, told without reading them.
    pub fn is(&self, at: NameRef, name: &str) -> bool {
        at.len as usize == name.len() && self.get(at) == name
    }

    pub fn get(&self, name: NameRef) -> &str {
        let start = name.start as usize;
        self.0.get(start..start + name.len as usize).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_back_each_name_pushed() {
        let mut arena = NameArena::default();
        let names = ["_start", "", "_ZN4zeek6detail10ScriptFunc6InvokeEv", "x"];
        let refs: Vec<NameRef> = names.iter().map(|n| arena.push(n).unwrap()).collect();
        for (name, at) in names.iter().zip(&refs) {
            assert_eq!(arena.get(*at), *name);
            assert!(arena.is(*at, name));
        }
        assert!(!arena.is(refs[0], "_stark") && !arena.is(refs[0], "_start_") && !arena.is(refs[3], ""));
    }
}
