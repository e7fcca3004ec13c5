//! Masking and unmasking of payload bytes in place (RFC 6455 §5.3).
//!
//! Masking is an XOR with a 4-byte key, so applying it twice restores the input. The fast path
//! works on 8-byte words and is proven equal to the byte loop by a property test.

/// XORs `buf` in place with `key`, as if `buf` started `phase` bytes into the masked payload.
///
/// A payload that arrives in several reads is unmasked chunk by chunk: pass the number of
/// payload bytes already unmasked as `phase` (only `phase % 4` matters).
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], phase: usize) {
    let key = rotate_key(key, phase);
    // Word-at-a-time: the key repeats every 4 bytes, so an 8-byte word of it lines up with
    // every 8-byte chunk; the compiler vectorises this loop.
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let bytes: &mut [u8; 8] = chunk.try_into().expect("chunks_exact_mut yields 8 bytes");
        *bytes = (u64::from_ne_bytes(*bytes) ^ word).to_ne_bytes();
    }
    apply_mask_bytewise(chunks.into_remainder(), key, 0);
}

/// The reference implementation: one byte at a time.
pub(crate) fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], phase: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(phase + i) % 4];
    }
}

fn rotate_key(key: [u8; 4], phase: usize) -> [u8; 4] {
    // As a word: byte i of the result is byte (i + phase) % 4 of the key.
    let word = u32::from_le_bytes(key).rotate_right(8 * (phase % 4) as u32);
    word.to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    #[test]
    fn sec_5_7_masked_hello() {
        let mut payload = *b"\x7f\x9f\x4d\x51\x58";
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn phase_continues_the_key() {
        let mut whole = *b"Hello, world";
        apply_mask(&mut whole, [1, 2, 3, 4], 0);
        let mut split = *b"Hello, world";
        let (a, b) = split.split_at_mut(5);
        apply_mask(a, [1, 2, 3, 4], 0);
        apply_mask(b, [1, 2, 3, 4], 5);
        assert_eq!(whole, split);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn fast_mask_equals_plain_mask(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            key in any::<[u8; 4]>(),
            phase in 0usize..8,
            offset in 0usize..8,
        ) {
            // `offset` shifts the slice start so unaligned buffers are covered too.
            let mut fast: Vec<u8> = core::iter::repeat_n(0, offset).chain(data.iter().copied()).collect();
            let mut plain = fast.clone();
            apply_mask(&mut fast[offset..], key, phase);
            apply_mask_bytewise(&mut plain[offset..], key, phase);
            prop_assert_eq!(fast, plain);
        }
    }
}
