//! UTF-8 validation 64 bytes per step with AVX-512, for CPUs that have it (detected at run
//! time under `std`).
//!
//! simdutf8's AVX2 path validates multibyte text at about 16 GiB/s here, half of what copying
//! the same bytes costs, and the text decode bench spent half its time in it. This module
//! follows the method of Keiser and Lemire ("Validating UTF-8 in less than one instruction
//! per byte", 2021): every pair of consecutive bytes is classified by three 16-entry nibble
//! lookups whose results share a bit only when the pair is impossible, and the bytes two and
//! three places after a 3- or 4-byte lead must be continuations.

use core::arch::x86_64::{
    __m512i, _mm_loadu_si128, _mm512_alignr_epi8, _mm512_and_si512, _mm512_broadcast_i32x4,
    _mm512_loadu_si512, _mm512_movepi8_mask, _mm512_or_si512, _mm512_permutex2var_epi64,
    _mm512_set_epi64, _mm512_set1_epi8, _mm512_setzero_si512, _mm512_shuffle_epi8,
    _mm512_srli_epi16, _mm512_subs_epu8, _mm512_test_epi8_mask, _mm512_xor_si512,
};

// What can be wrong with a pair of consecutive bytes, one bit per class. A pair is invalid
// when the class bits of its first byte's high nibble, its first byte's low nibble and its
// second byte's high nibble have one in common.

/// A lead byte followed by something other than a continuation.
const TOO_SHORT: u8 = 1 << 0;
/// An ASCII byte followed by a continuation.
const TOO_LONG: u8 = 1 << 1;
/// E0 followed by 80..9F: a 3-byte form of a code point that fits in 2 bytes.
const OVERLONG_3: u8 = 1 << 2;
/// F4 followed by 90..BF, or a lead from F5 on: past U+10FFFF.
const TOO_LARGE: u8 = 1 << 3;
/// ED followed by A0..BF: U+D800..U+DFFF.
const SURROGATE: u8 = 1 << 4;
/// C0 or C1 followed by a continuation: a 2-byte form of ASCII.
const OVERLONG_2: u8 = 1 << 5;
/// A lead from F5 on followed by 80..8F (the part of `TOO_LARGE` F4 does not share).
const TOO_LARGE_1000: u8 = 1 << 6;
/// F0 followed by 80..8F: a 4-byte form of a code point that fits in 3 bytes. Shares its
/// bit with `TOO_LARGE_1000`: the first bytes of the two never overlap.
const OVERLONG_4: u8 = 1 << 6;
/// Two continuations: wrong unless a 3- or 4-byte lead came two or three bytes earlier,
/// which is checked apart.
const TWO_CONTS: u8 = 1 << 7;
/// The classes decided by the first byte's high nibble alone.
const CARRY: u8 = TOO_SHORT | TOO_LONG | TWO_CONTS;

/// Indexed by the first byte's high nibble.
const FIRST_HIGH: [u8; 16] = [
    // 0_______: ASCII
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    // 10______: continuation
    TWO_CONTS,
    TWO_CONTS,
    TWO_CONTS,
    TWO_CONTS,
    // 1100____
    TOO_SHORT | OVERLONG_2,
    // 1101____
    TOO_SHORT,
    // 1110____
    TOO_SHORT | OVERLONG_3 | SURROGATE,
    // 1111____
    TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4,
];

/// Indexed by the first byte's low nibble.
const FIRST_LOW: [u8; 16] = [
    // ____0000
    CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4,
    // ____0001
    CARRY | OVERLONG_2,
    // ____001_
    CARRY,
    CARRY,
    // ____0100
    CARRY | TOO_LARGE,
    // ____0101 .. ____1100
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    // ____1101
    CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE,
    // ____111_
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
];

/// Indexed by the second byte's high nibble.
const SECOND_HIGH: [u8; 16] = [
    // 0_______: ASCII
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    // 1000____
    TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4,
    // 1001____
    TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE,
    // 101_____
    TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
    TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
    // 11______: a lead
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
];

/// Bytes above these, at the end of a block, start a code point the block does not finish.
const INCOMPLETE_ABOVE: [u8; 64] = {
    let mut max = [0xFF; 64];
    max[61] = 0xF0 - 1;
    max[62] = 0xE0 - 1;
    max[63] = 0xC0 - 1;
    max
};

/// Whether the CPU can run [`is_valid`].
pub(super) fn is_available() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
}

/// Whether `bytes` is complete, valid UTF-8 (as `core::str::from_utf8(bytes).is_ok()`).
///
/// Only call it where [`is_available`] said yes.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) fn is_valid(bytes: &[u8]) -> bool {
    let mut state = State::new();
    let mut blocks = bytes.chunks_exact(64);
    for block in &mut blocks {
        // SAFETY: `block` is 64 readable bytes, and `loadu` has no alignment requirement.
        let input = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
        state.check(input);
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        // Padded with ASCII NULs, which end any code point the text left open as TOO_SHORT.
        let mut last = [0u8; 64];
        last[..rest.len()].copy_from_slice(rest);
        // SAFETY: `last` is 64 readable bytes.
        let input = unsafe { _mm512_loadu_si512(last.as_ptr().cast()) };
        state.check(input);
    }
    let error = _mm512_or_si512(state.error, state.prev_incomplete);
    _mm512_test_epi8_mask(error, error) == 0
}

/// What one block leaves for the next.
struct State {
    first_high: __m512i,
    first_low: __m512i,
    second_high: __m512i,
    incomplete_above: __m512i,
    prev_input: __m512i,
    prev_incomplete: __m512i,
    error: __m512i,
}

impl State {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn new() -> Self {
        Self {
            first_high: broadcast(&FIRST_HIGH),
            first_low: broadcast(&FIRST_LOW),
            second_high: broadcast(&SECOND_HIGH),
            // SAFETY: a 64-byte array, and `loadu` has no alignment requirement.
            incomplete_above: unsafe { _mm512_loadu_si512(INCOMPLETE_ABOVE.as_ptr().cast()) },
            prev_input: _mm512_setzero_si512(),
            prev_incomplete: _mm512_setzero_si512(),
            error: _mm512_setzero_si512(),
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn check(&mut self, input: __m512i) {
        if _mm512_movepi8_mask(input) == 0 {
            // All ASCII: only a code point the previous block left open can be wrong.
            self.error = _mm512_or_si512(self.error, self.prev_incomplete);
            self.prev_incomplete = _mm512_setzero_si512();
            self.prev_input = input;
            return;
        }
        // The bytes 1, 2 and 3 places before each byte. `alignr` shifts within 16-byte lanes,
        // so it is fed the lanes one step down: the previous block's last lane, then this
        // block's first three (64-bit element 8 + k of the index picks `prev_input`'s k).
        let lanes_down = _mm512_permutex2var_epi64(
            input,
            _mm512_set_epi64(5, 4, 3, 2, 1, 0, 15, 14),
            self.prev_input,
        );
        let prev1 = _mm512_alignr_epi8::<15>(input, lanes_down);
        let prev2 = _mm512_alignr_epi8::<14>(input, lanes_down);
        let prev3 = _mm512_alignr_epi8::<13>(input, lanes_down);

        let nibble = _mm512_set1_epi8(0x0F);
        let first_high = _mm512_shuffle_epi8(
            self.first_high,
            _mm512_and_si512(_mm512_srli_epi16::<4>(prev1), nibble),
        );
        let first_low = _mm512_shuffle_epi8(self.first_low, _mm512_and_si512(prev1, nibble));
        let second_high = _mm512_shuffle_epi8(
            self.second_high,
            _mm512_and_si512(_mm512_srli_epi16::<4>(input), nibble),
        );
        let special = _mm512_and_si512(_mm512_and_si512(first_high, first_low), second_high);

        // A byte 2 places after a lead from E0 on, or 3 places after one from F0 on, must be a
        // continuation: there TWO_CONTS is expected and its bit is flipped off.
        let third = _mm512_subs_epu8(prev2, _mm512_set1_epi8((0xE0u8 - 0x80) as i8));
        let fourth = _mm512_subs_epu8(prev3, _mm512_set1_epi8((0xF0u8 - 0x80) as i8));
        let must_continue = _mm512_and_si512(
            _mm512_or_si512(third, fourth),
            _mm512_set1_epi8(TWO_CONTS as i8),
        );
        self.error = _mm512_or_si512(self.error, _mm512_xor_si512(must_continue, special));
        self.prev_incomplete = _mm512_subs_epu8(input, self.incomplete_above);
        self.prev_input = input;
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn broadcast(table: &[u8; 16]) -> __m512i {
    // SAFETY: a 16-byte array, and `loadu` has no alignment requirement.
    _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(table.as_ptr().cast()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;
    use std::io::Write;

    /// Whether this CPU can run the checks. When it cannot, the test says it was skipped, so
    /// that its pass does not read as checked: straight to stderr, which the test harness
    /// does not capture (it captures only the `print!` family), so it shows without
    /// `--nocapture`.
    fn runs_here(test: &str) -> bool {
        if is_available() {
            return true;
        }
        // One write, so that the line stays whole among the other tests' output.
        let line = std::format!("utf8::avx512 {test} skipped: this CPU has no AVX-512BW\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
        false
    }

    /// Checks `is_valid` against core; only called once `runs_here` said yes.
    fn check(bytes: &[u8]) {
        assert!(is_available(), "checked on a CPU without AVX-512BW");
        // SAFETY: `is_valid` needs AVX-512F and AVX-512BW, which `is_available` just
        // confirmed this CPU has.
        let ours = unsafe { is_valid(bytes) };
        assert_eq!(
            ours,
            core::str::from_utf8(bytes).is_ok(),
            "{:x?}",
            &bytes[..bytes.len().min(200)]
        );
    }

    /// Where a sequence sits matters: inside a 16-byte lane, across lanes, across blocks,
    /// at the end of the input.
    const PLACES: [usize; 8] = [0, 1, 13, 14, 15, 60, 62, 63];

    #[test]
    fn every_byte_pair_in_every_place() {
        if !runs_here("every_byte_pair_in_every_place") {
            return;
        }
        for first in 0..=255u8 {
            for second in 0..=255u8 {
                for &at in &PLACES {
                    let mut bytes = alloc::vec![b'a'; 130];
                    bytes[at] = first;
                    bytes[at + 1] = second;
                    check(&bytes);
                    check(&bytes[..at + 2]);
                }
            }
        }
    }

    #[test]
    fn every_lead_with_two_and_three_following_bytes() {
        if !runs_here("every_lead_with_two_and_three_following_bytes") {
            return;
        }
        // Every lead from C0 on, with following bytes from a set that covers each class
        // boundary (ASCII, the continuation ranges, leads), at a lane and a block boundary.
        let followers = [
            0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xF0, 0xF4, 0xFF,
        ];
        for lead in 0xC0..=0xFFu8 {
            for &b in &followers {
                for &c in &followers {
                    for &d in &followers {
                        for at in [14, 61, 62] {
                            let mut bytes = alloc::vec![b'a'; 130];
                            bytes[at..at + 4].copy_from_slice(&[lead, b, c, d]);
                            check(&bytes);
                            check(&bytes[..at + 3]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn agrees_with_core() {
        if !runs_here("agrees_with_core") {
            return;
        }
        proptest!(ProptestConfig::with_cases(2048), |(
            text in "\\PC{0,300}",
            bad in proptest::collection::vec(any::<u8>(), 0..4),
            at in any::<proptest::sample::Index>(),
            cut in any::<proptest::sample::Index>(),
        )| {
            let mut bytes: Vec<u8> = text.into_bytes();
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, bad);
            bytes.truncate(cut.index(bytes.len() + 1));
            check(&bytes);
        });
    }
}
