//! Masking and unmasking of payload bytes in place (RFC 6455 §5.3).
//!
//! Masking is an XOR with a 4-byte key, so applying it twice restores the input. The fast path
//! works on 8-byte words (in AVX2 registers when the CPU has them, detected at run time under
//! `std`) and is proven equal to the byte loop by property tests.

/// XORs `buf` in place with `key`, as if `buf` started `phase` bytes into the masked payload.
///
/// A payload that arrives in several reads is unmasked chunk by chunk: pass the number of
/// payload bytes already unmasked as `phase` (only `phase % 4` matters).
///
/// Inlined so that the short payloads of small messages are unmasked in place in the
/// caller's code; long ones go to a separate function that picks the widest registers.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], phase: usize) {
    let key = rotate_key(key, phase);
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if buf.len() >= WIDE_MIN_LEN {
        apply_mask_long(buf, key);
        return;
    }
    apply_mask_words(buf, key);
}

/// Long payloads: from a 32-byte boundary on, in AVX2 registers where the CPU has them.
///
/// The few bytes before the boundary are done one at a time, so that no vector store
/// crosses a cache line: a payload one byte past a boundary was unmasked at 31 GiB/s
/// instead of 48 (1 MiB, `cargo bench -p wsproto-benches --bench primitives -- mask_`).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[inline(never)]
fn apply_mask_long(buf: &mut [u8], key: [u8; 4]) {
    let head = (VECTOR_ALIGN - buf.as_ptr() as usize % VECTOR_ALIGN) % VECTOR_ALIGN;
    let (head_bytes, buf) = buf.split_at_mut(head.min(buf.len()));
    apply_mask_bytewise(head_bytes, key, 0);
    let key = rotate_key(key, head);
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: `apply_mask_avx2` only needs the CPU to support AVX2, detected just above.
        unsafe { apply_mask_avx2(buf, key) };
    } else {
        apply_mask_words(buf, key);
    }
}

/// Below this length the 8-byte loop is as fast and the CPU feature check is not worth it.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
const WIDE_MIN_LEN: usize = 64;

/// The width of an AVX2 register: long payloads are unmasked from a multiple of it on.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
const VECTOR_ALIGN: usize = 32;

/// The portable loop, compiled for 32-byte AVX2 registers: 1.7x the throughput of the
/// baseline (SSE2) build on a 64 KiB payload
/// (`cargo bench -p wsproto-benches --bench primitives -- mask_`).
/// Only detected at run time, as the `std` feature can; `no_std` builds keep the baseline.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
unsafe fn apply_mask_avx2(buf: &mut [u8], key: [u8; 4]) {
    apply_mask_words(buf, key);
}

/// Word-at-a-time: the key repeats every 4 bytes, so an 8-byte word of it lines up with
/// every 8-byte chunk; the compiler vectorises this loop to the widest registers it may use.
#[inline(always)]
fn apply_mask_words(buf: &mut [u8], key: [u8; 4]) {
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

    /// Both dispatch targets, on every length up to a few vectors and every phase and
    /// alignment (past a 32-byte boundary), against the byte loop.
    #[test]
    fn every_path_equals_plain_mask() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..=260 {
            for offset in 0..40 {
                for phase in 0..4 {
                    let mut plain = data.clone();
                    apply_mask_bytewise(&mut plain[offset..offset + len], key, phase);
                    let mut fast = data.clone();
                    apply_mask(&mut fast[offset..offset + len], key, phase);
                    assert_eq!(fast, plain, "len {len} offset {offset} phase {phase}");
                    let mut words = data.clone();
                    apply_mask_words(&mut words[offset..offset + len], rotate_key(key, phase));
                    assert_eq!(words, plain, "portable, len {len} offset {offset}");
                    #[cfg(all(feature = "std", target_arch = "x86_64"))]
                    if std::is_x86_feature_detected!("avx2") {
                        let mut wide = data.clone();
                        // SAFETY: AVX2 support was detected just above.
                        unsafe {
                            apply_mask_avx2(&mut wide[offset..offset + len], rotate_key(key, phase))
                        };
                        assert_eq!(wide, plain, "avx2, len {len} offset {offset}");
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn fast_mask_equals_plain_mask(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
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
