//! Offsets of the running kernel's own struct members, from its BTF (/sys/kernel/btf/vmlinux):
//! what the sampler needs where aya-ebpf has no CO-RE relocation. aya's BTF parser keeps its
//! types crate-private and the `btf-rs` crate is LGPL, so the few lines of the format read
//! here are read by hand: a header, then types numbered from 1, each 12 bytes and a tail
//! sized by its kind.
use std::sync::OnceLock;

use crate::cache_dir;

const MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;

/// One type's head; `tail` are the bytes that follow it.
struct BtfType<'a> {
    name: u32,
    kind: u32,
    kind_flag: bool,
    /// A struct's members, or the type a typedef or qualifier refers to.
    size_or_type: u32,
    tail: &'a [u8],
}

struct Btf<'a> {
    strings: &'a [u8],
    /// By type id − 1.
    types: Vec<BtfType<'a>>,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

impl<'a> Btf<'a> {
    /// `None` for bytes that are not little-endian BTF.
    fn parse(data: &'a [u8]) -> Option<Self> {
        if u16::from_le_bytes(data.get(..2)?.try_into().ok()?) != MAGIC {
            return None;
        }
        let [hdr_len, type_off, type_len, str_off, str_len] =
            [4, 8, 12, 16, 20].map(|at| u32_at(data, at).map(|v| v as usize));
        let body = data.get(hdr_len?..)?;
        let section = |off: Option<usize>, len: Option<usize>| body.get(off?..off?.checked_add(len?)?);
        let (mut rest, strings) = (section(type_off, type_len)?, section(str_off, str_len)?);
        let mut types = Vec::new();
        while !rest.is_empty() {
            let info = u32_at(rest, 4)?;
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            let tail_len = match kind {
                1 | 14 | 17 => 4,          // int, var, decl tag
                3 => 12,                   // array
                4 | 5 | 15 => 12 * vlen,   // struct, union, datasec
                6 | 13 => 8 * vlen,        // enum, func proto
                19 => 12 * vlen,           // enum64
                2 | 7..=12 | 16 | 18 => 0, // ptr, fwd, typedef, qualifiers, func, float, type tag
                _ => return None,          // a kind this reader does not know
            };
            let tail = rest.get(12..12 + tail_len)?;
            types.push(BtfType {
                name: u32_at(rest, 0)?,
                kind,
                kind_flag: info >> 31 == 1,
                size_or_type: u32_at(rest, 8)?,
                tail,
            });
            rest = &rest[12 + tail_len..];
        }
        Some(Self { strings, types })
    }

    fn name(&self, offset: u32) -> &[u8] {
        let from = self.strings.get(offset as usize..).unwrap_or_default();
        &from[..from.iter().position(|b| *b == 0).unwrap_or(from.len())]
    }

    fn by_id(&self, id: u32) -> Option<&BtfType<'a>> {
        self.types.get((id as usize).checked_sub(1)?)
    }

    /// The struct or union a type id is, through typedefs and qualifiers.
    fn composite(&self, mut id: u32) -> Option<&BtfType<'a>> {
        for _ in 0..16 {
            let t = self.by_id(id)?;
            match t.kind {
                KIND_STRUCT | KIND_UNION => return Some(t),
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => id = t.size_or_type,
                _ => return None,
            }
        }
        None
    }

    /// The byte offset and type id of member `name` of a struct or union (not a bit field).
    fn member(&self, of: &BtfType<'a>, name: &str) -> Option<(u32, u32)> {
        of.tail.chunks_exact(12).find_map(|m| {
            if self.name(u32_at(m, 0)?) != name.as_bytes() {
                return None;
            }
            let offset = u32_at(m, 8)?;
            let (bits, bitfield) = if of.kind_flag { (offset & 0xff_ffff, offset >> 24) } else { (offset, 0) };
            (bitfield == 0 && bits.is_multiple_of(8)).then_some((bits / 8, u32_at(m, 4)?))
        })
    }

    /// The byte offset of `path` (member names, outermost first) inside the struct `root`.
    fn offset_of(&self, root: &str, path: &[&str]) -> Option<u32> {
        let mut t = self.types.iter().find(|t| t.kind == KIND_STRUCT && self.name(t.name) == root.as_bytes())?;
        let mut offset = 0u32;
        for (i, name) in path.iter().enumerate() {
            let (at, member_type) = self.member(t, name)?;
            offset = offset.checked_add(at)?;
            if i + 1 < path.len() {
                t = self.composite(member_type)?;
            }
        }
        Some(offset)
    }
}

/// Where `task_struct->thread.fsbase` (x86-64: a thread's FS base, its thread pointer) is in
/// the running kernel's `task_struct`; `None` when the kernel has no BTF or it lacks the member.
/// Read once per boot (`cache_dir::for_this_boot`): parsing the BTF takes ~5 ms of the CPU
/// `record`'s stopped command waits for.
pub fn task_fsbase_offset() -> Option<u32> {
    static OFFSET: OnceLock<Option<u32>> = OnceLock::new();
    *OFFSET.get_or_init(|| cache_dir::for_this_boot("task-fsbase-offset", read_task_fsbase_offset))
}

fn read_task_fsbase_offset() -> Option<u32> {
    let data = std::fs::read("/sys/kernel/btf/vmlinux").ok()?;
    Btf::parse(&data)?.offset_of("task_struct", &["thread", "fsbase"])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob of `types` (each a head and its tail) and `strings`.
    fn blob(types: &[([u32; 3], Vec<u32>)], strings: &[u8]) -> Vec<u8> {
        let words: Vec<u32> = types.iter().flat_map(|(head, tail)| head.iter().chain(tail).copied()).collect();
        let type_len = (words.len() * 4) as u32;
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for v in [24, 0, type_len, type_len, strings.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        words.iter().for_each(|w| out.extend_from_slice(&w.to_le_bytes()));
        out.extend_from_slice(strings);
        out
    }

    #[test]
    fn finds_a_nested_member_through_a_typedef_and_refuses_bit_fields() {
        // Strings: 0 "", 1 "outer", 7 "inner", 13 "in", 16 "x", 18 "bits", 23 "t".
        let strings = b"\0outer\0inner\0in\0x\0bits\0t\0";
        let info = |kind: u32, vlen: u32| (kind << 24) | vlen;
        let types = [
            // 1: int
            ([0, info(1, 0), 8], vec![64]),
            // 2: struct inner { bits at 8 (bit field of 3), x at byte 16 } (kind_flag set)
            ([7, info(KIND_STRUCT, 2) | 1 << 31, 24], vec![18, 1, (3 << 24) | 64, 16, 1, 128]),
            // 3: typedef t = struct inner
            ([23, info(KIND_TYPEDEF, 0), 2], vec![]),
            // 4: struct outer { in: t at byte 40 }
            ([1, info(KIND_STRUCT, 1), 64], vec![13, 3, 320]),
        ];
        let data = blob(&types, strings);
        let btf = Btf::parse(&data).unwrap();
        assert_eq!(btf.offset_of("outer", &["in", "x"]), Some(56));
        assert_eq!(btf.offset_of("outer", &["in", "bits"]), None);
        assert_eq!(btf.offset_of("outer", &["in", "y"]), None);
        assert_eq!(btf.offset_of("nothing", &["in"]), None);
        assert!(Btf::parse(&data[..data.len() - 1]).is_none(), "a string section cut short");
        assert!(Btf::parse(b"not btf at all, not at all").is_none());
    }

    /// The running kernel's: x86-64 kernels have `thread_struct::fsbase` (and this one BTF),
    /// the same as kept for this boot.
    #[test]
    fn the_running_kernel_has_task_struct_thread_fsbase() {
        let offset = read_task_fsbase_offset().expect("task_struct.thread.fsbase in /sys/kernel/btf/vmlinux");
        // task_struct is several KiB; `thread` is near its end, the member 8-byte aligned.
        assert!(offset > 1024 && offset.is_multiple_of(8), "{offset}");
        assert_eq!(task_fsbase_offset(), Some(offset));
    }
}
