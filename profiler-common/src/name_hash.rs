//! The hash that identifies a function by its name, computed in BPF over the name copied into
//! `NAME_WORDS` zero-padded 64-bit words. Odd by construction, so it never equals the reserved
//! even caller values (`CALLER_NATIVE`, `CALLER_UNRESOLVED`).

use crate::maps::NAME_MAX;

pub const NAME_WORDS: usize = NAME_MAX / 8;

const SEED: u64 = 0xcbf2_9ce4_8422_2325;
const MULTIPLIER: u64 = 0x0000_0100_0000_01b3;

/// Hashes a name given as its full length and its first `NAME_MAX` bytes (zero-padded words).
/// Every word is mixed, the padding too: a loop of a fixed count is one straight run for the
/// verifier, where one that stopped at the name's end was walked again for each length it
/// could stop at (~600 instructions verified per hash, a quarter of the sampler's frame walk).
#[inline(always)]
pub fn name_hash(full_len: u64, words: &[u64; NAME_WORDS]) -> u64 {
    let mut h = SEED ^ full_len;
    for word in words {
        h = (h ^ word).wrapping_mul(MULTIPLIER);
        h ^= h >> 29;
    }
    h | 1
}

/// The same hash over a byte string (user space and tests).
pub fn name_hash_bytes(name: &[u8]) -> u64 {
    let mut words = [0u64; NAME_WORDS];
    for (i, b) in name.iter().take(NAME_MAX).enumerate() {
        words[i / 8] |= (*b as u64) << ((i % 8) * 8);
    }
    name_hash(name.len() as u64, &words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinguishes_names_lengths_and_prefixes() {
        let a = name_hash_bytes(b"Conn::set_conn");
        assert_ne!(a, name_hash_bytes(b"Conn::set_con"));
        assert_ne!(a, name_hash_bytes(b"Conn::set_conn\0"));
        assert_eq!(a, name_hash_bytes(b"Conn::set_conn"));
        assert_eq!(a & 1, 1, "odd, never a reserved caller value");
    }

    #[test]
    fn long_names_hash_their_prefix_and_full_length() {
        let long = [b'x'; NAME_MAX + 10];
        assert_ne!(name_hash_bytes(&long), name_hash_bytes(&long[..NAME_MAX]));
        assert_ne!(name_hash_bytes(&long), name_hash_bytes(&long[..NAME_MAX + 9]));
    }
}
