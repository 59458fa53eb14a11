//! Log stream names (`Conn::LOG`) from a `Log::ID` ordinal: read once per enum type from the
//! target's `EnumType::names`, a libstdc++ `std::map<std::string, zeek_int_t>`, then cached.
//! Reading the whole map at the first write means every stream is named while the process is
//! alive, even streams first written just before it exits.
use std::collections::{HashMap, HashSet, hash_map::Entry};

use crate::target::{MemoryError, TargetMemory};

/// libstdc++ `_Rb_tree` offsets from the start of a `std::map`: the header node follows the
/// (empty, padded) comparator; its parent is the root. Nodes: left/right children at +16/+24,
/// the stored `pair<const std::string, zeek_int_t>` at +32.
const MAP_ROOT: u64 = 16;
const MAP_NODE_COUNT: u64 = 40;
const NODE_LEFT: u64 = 16;
const NODE_RIGHT: u64 = 24;
const NODE_KEY: u64 = 32;
const NODE_VALUE: u64 = 64;
/// Zeek defines a few hundred enum values at most; more means a misread.
const MAX_ENUM_NAMES: u64 = 65_536;

/// Reads every (name, ordinal) of the `std::map<std::string, zeek_int_t>` at `map`.
pub fn read_enum_names(mem: &TargetMemory, map: u64) -> Result<HashMap<i64, String>, MemoryError> {
    let count = mem.read_u64(map + MAP_NODE_COUNT)?;
    if count > MAX_ENUM_NAMES {
        return Err(mem.implausible(map, format!("enum with {count} names")));
    }
    let mut names = HashMap::new();
    let mut seen = HashSet::new();
    let mut pending = vec![mem.read_u64(map + MAP_ROOT)?];
    while let Some(node) = pending.pop() {
        if node == 0 {
            continue;
        }
        // A cycle or more nodes than the map claims: the tree changed under us or is garbage.
        if !seen.insert(node) || seen.len() as u64 > count {
            return Err(mem.implausible(map, "enum name tree is not a tree".into()));
        }
        let name = mem.read_std_string(node + NODE_KEY)?;
        names.insert(mem.read_i64(node + NODE_VALUE)?, name);
        pending.push(mem.read_u64(node + NODE_LEFT)?);
        pending.push(mem.read_u64(node + NODE_RIGHT)?);
    }
    Ok(names)
}

/// Stream names per (pid, enum type), read at most once each.
#[derive(Debug, Default)]
pub struct LogStreamNames {
    resolved: HashMap<(u32, u64), HashMap<i64, String>>,
}

impl LogStreamNames {
    /// Names every stream of `enum_type` in `mem`'s process unless done already. `names_offset`
    /// is where `EnumType::names` lives in this Zeek's layout.
    pub fn learn(&mut self, mem: &TargetMemory, enum_type: u64, names_offset: u32) -> Result<(), MemoryError> {
        if let Entry::Vacant(slot) = self.resolved.entry((mem.pid(), enum_type)) {
            slot.insert(read_enum_names(mem, enum_type + u64::from(names_offset))?);
        }
        Ok(())
    }

    /// The stream's name, or a placeholder naming the ordinal when it could not be read.
    pub fn name(&self, pid: u32, enum_type: u64, ordinal: i64) -> String {
        self.resolved
            .get(&(pid, enum_type))
            .and_then(|names| names.get(&ordinal))
            .cloned()
            .unwrap_or_else(|| format!("Log::ID#{ordinal}"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A real `std::map` would need C++; build the same node graph in our own memory.
    #[repr(C)]
    struct Node {
        color: u64,
        parent: u64,
        left: u64,
        right: u64,
        key: [u64; 4],
        value: i64,
    }

    #[repr(C)]
    struct Map {
        compare: u64,
        header_color: u64,
        root: u64,
        leftmost: u64,
        rightmost: u64,
        count: u64,
    }

    #[test]
    fn walks_a_libstdcxx_shaped_tree() {
        let names: BTreeMap<&str, i64> = [("Conn::LOG", 0), ("DNS::LOG", 1), ("Weird::LOG", 2)].into();
        let texts: Vec<&'static str> = names.keys().copied().collect();
        let mut nodes: Vec<Box<Node>> = texts
            .iter()
            .map(|t| {
                Box::new(Node {
                    color: 0,
                    parent: 0,
                    left: 0,
                    right: 0,
                    key: [t.as_ptr() as u64, t.len() as u64, 0, 0],
                    value: names[t],
                })
            })
            .collect();
        // DNS at the root, Conn left, Weird right.
        let left = &*nodes[0] as *const Node as u64;
        let right = &*nodes[2] as *const Node as u64;
        nodes[1].left = left;
        nodes[1].right = right;
        let map = Map {
            compare: 0,
            header_color: 0,
            root: &*nodes[1] as *const Node as u64,
            leftmost: 0,
            rightmost: 0,
            count: 3,
        };
        let mem = TargetMemory::open(std::process::id()).unwrap();
        let read = read_enum_names(&mem, &map as *const Map as u64).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(read[&0], "Conn::LOG");
        assert_eq!(read[&2], "Weird::LOG");

        let mut cache = LogStreamNames::default();
        cache.learn(&mem, &map as *const Map as u64, 0).unwrap();
        assert_eq!(cache.name(std::process::id(), &map as *const Map as u64, 1), "DNS::LOG");
        assert_eq!(cache.name(std::process::id(), &map as *const Map as u64, 9), "Log::ID#9");
    }

    #[test]
    fn rejects_cycles() {
        let text = "Conn::LOG";
        let mut node =
            Box::new(Node { color: 0, parent: 0, left: 0, right: 0, key: [text.as_ptr() as u64, 9, 0, 0], value: 0 });
        node.left = &*node as *const Node as u64;
        let map = Map {
            compare: 0,
            header_color: 0,
            root: &*node as *const Node as u64,
            leftmost: 0,
            rightmost: 0,
            count: 5,
        };
        let mem = TargetMemory::open(std::process::id()).unwrap();
        assert!(matches!(read_enum_names(&mem, &map as *const Map as u64), Err(MemoryError::Implausible { .. })));
    }
}
