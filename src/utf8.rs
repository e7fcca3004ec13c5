//! Incremental, fail-fast UTF-8 validation of text that arrives in pieces (RFC 6455 §8.1).
//!
//! A code point may be split across frames or reads; anything that can no longer become valid
//! UTF-8 is reported as soon as its bytes are seen, without waiting for the end of the message.

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod avx512;

/// Below this many bytes simdutf8 is as fast and the CPU feature check is not worth it.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
const WIDE_MIN_LEN: usize = 256;

/// Pieces from this long on are validated in bulk up to the code point they leave open.
const BULK_MIN_LEN: usize = 256;

/// Streaming validator: carries at most one incomplete code point between calls.
#[derive(Debug, Default, Clone)]
pub(crate) struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

/// The bytes seen so far are not the start of any valid UTF-8 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidUtf8;

impl Utf8Validator {
    /// Validates the next piece of the text.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            let have = usize::from(self.partial_len);
            let take = (sequence_width(self.partial[0]) - have).min(bytes.len());
            self.partial[have..have + take].copy_from_slice(&bytes[..take]);
            self.partial_len += take as u8;
            bytes = &bytes[take..];
            match from_utf8(&self.partial[..usize::from(self.partial_len)]) {
                Ok(_) => self.partial_len = 0,
                // Still incomplete, which means `bytes` ran out: wait for more.
                Err(e) if e.error_len().is_none() => return Ok(()),
                Err(_) => return Err(InvalidUtf8),
            }
        }
        if bytes.len() >= BULK_MIN_LEN {
            // Everything before a code point the piece leaves open is validated as complete
            // text, by a validator that need not say where an error is (simdutf8's `basic`
            // is a fifth faster than `compat`); the few bytes after it go through the
            // general path below.
            let open = open_tail_start(bytes);
            validate_complete_simd(&bytes[..open])?;
            bytes = &bytes[open..];
        }
        match from_utf8(bytes) {
            Ok(_) => Ok(()),
            // `error_len() == None` only when the tail is a valid prefix of a code point.
            Err(e) if e.error_len().is_none() => {
                let tail = &bytes[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Ends the text: a code point still incomplete here is an error.
    pub(crate) fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.partial_len == 0;
        self.partial_len = 0;
        if complete { Ok(()) } else { Err(InvalidUtf8) }
    }
}

/// Validates a whole text that arrived in one piece (a single-frame message).
///
/// Nothing is left to wait for, so no error position is needed: short texts that are all
/// ASCII (most small messages) are settled a word at a time, long ones by the fastest
/// validator the CPU has.
#[inline]
pub(crate) fn validate_complete(bytes: &[u8]) -> Result<(), InvalidUtf8> {
    if bytes.len() <= SHORT_TEXT && bytes.is_ascii() {
        return Ok(());
    }
    validate_complete_simd(bytes)
}

#[inline(never)]
fn validate_complete_simd(bytes: &[u8]) -> Result<(), InvalidUtf8> {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if bytes.len() >= WIDE_MIN_LEN && avx512::is_available() {
        // SAFETY: `is_available` checked that the CPU has what `is_valid` needs.
        return if unsafe { avx512::is_valid(bytes) } {
            Ok(())
        } else {
            Err(InvalidUtf8)
        };
    }
    simdutf8::basic::from_utf8(bytes)
        .map(|_| ())
        .map_err(|_| InvalidUtf8)
}

/// Up to this many bytes the ASCII check of [`validate_complete`] comes first: simdutf8
/// hands inputs this short to `core::str::from_utf8`, which took a fifth of the time of
/// decoding a 16-byte text message.
const SHORT_TEXT: usize = 64;

/// SIMD validation (simdutf8's `compat` flavour reports the same `valid_up_to` and
/// `error_len` as `core::str::from_utf8`, which the incremental logic relies on).
fn from_utf8(bytes: &[u8]) -> Result<&str, simdutf8::compat::Utf8Error> {
    simdutf8::compat::from_utf8(bytes)
}

/// Where the code point that `bytes` leaves unfinished starts, if it ends with the first 1-3
/// bytes of a longer sequence; else `bytes.len()`. Only lead bytes are looked at: whether
/// the bytes after the lead are right is left to the validator.
pub(crate) fn open_tail_start(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(3) {
        let byte = bytes[len - back];
        if byte < 0x80 {
            return len;
        }
        if byte >= 0xC0 {
            let width = match byte {
                0xF0.. => 4,
                0xE0.. => 3,
                _ => 2,
            };
            return if width > back { len - back } else { len };
        }
    }
    len
}

/// Length of the sequence a lead byte starts; only called on leads `from_utf8` accepted.
fn sequence_width(lead: u8) -> usize {
    match lead {
        0xF0..=0xF7 => 4,
        0xE0..=0xEF => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn validate_in_pieces(bytes: &[u8], piece: usize) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::default();
        for chunk in bytes.chunks(piece.max(1)) {
            v.feed(chunk)?;
        }
        v.finish()
    }

    #[test]
    fn split_code_point_is_fine() {
        let text = "κόσμε €𝄞".as_bytes();
        for piece in 1..text.len() {
            assert_eq!(validate_in_pieces(text, piece), Ok(()));
        }
    }

    #[test]
    fn sec_8_1_fails_at_the_first_impossible_byte() {
        // Each of these is already invalid after the bytes shown, before the text ends.
        for bad in [
            &[
                0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0,
            ][..],
            &[0xF4, 0x90],
            &[0xF5],
            &[0xC0],
            &[0xE0, 0x80],
            &[0x80],
        ] {
            let mut v = Utf8Validator::default();
            assert_eq!(v.feed(bad), Err(InvalidUtf8), "{bad:x?}");
            let mut v = Utf8Validator::default();
            let result = bad
                .iter()
                .try_for_each(|b| v.feed(core::slice::from_ref(b)));
            assert_eq!(result, Err(InvalidUtf8), "byte at a time {bad:x?}");
        }
    }

    #[test]
    fn truncated_code_point_fails_at_finish() {
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xF0, 0x9D, 0x84]), Ok(()));
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }

    #[test]
    fn complete_text_ascii_and_multibyte() {
        assert_eq!(validate_complete(b""), Ok(()));
        assert_eq!(validate_complete(b"Hello, world, sixteen"), Ok(()));
        assert_eq!(validate_complete("κόσμε €𝄞".as_bytes()), Ok(()));
        // An impossible byte in the 8-byte words and in the tail of the ASCII check.
        assert_eq!(validate_complete(b"abcdefg\xffabc"), Err(InvalidUtf8));
        assert_eq!(validate_complete(b"abcdefgh\xff"), Err(InvalidUtf8));
        // A truncated code point at the end is an error when nothing can follow.
        assert_eq!(
            validate_complete(&[b'a', 0xF0, 0x9D, 0x84]),
            Err(InvalidUtf8)
        );
        let long = "é".repeat(300);
        assert_eq!(validate_complete(long.as_bytes()), Ok(()));
        assert_eq!(
            validate_complete(&long.as_bytes()[..long.len() - 1]),
            Err(InvalidUtf8)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]
        #[test]
        fn pieces_agree_with_core(bytes in proptest::collection::vec(any::<u8>(), 0..40), piece in 1usize..8) {
            let expected = core::str::from_utf8(&bytes).is_ok();
            prop_assert_eq!(validate_in_pieces(&bytes, piece).is_ok(), expected);
        }

        /// The incremental logic trusts `valid_up_to` and `error_len`: the SIMD validator must
        /// report them exactly as core does, on inputs long enough for its SIMD paths.
        #[test]
        fn simd_errors_match_core(
            text in "\\PC{0,120}",
            bad in proptest::collection::vec(any::<u8>(), 0..4),
            at in any::<proptest::sample::Index>(),
            cut in any::<proptest::sample::Index>(),
        ) {
            let mut bytes = text.into_bytes();
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, bad);
            bytes.truncate(cut.index(bytes.len() + 1).max(at));
            let ours = from_utf8(&bytes).map_err(|e| (e.valid_up_to(), e.error_len()));
            let core = core::str::from_utf8(&bytes).map_err(|e| (e.valid_up_to(), e.error_len()));
            prop_assert_eq!(ours, core);
        }

        /// Pieces long enough for the AVX-512 path, cut anywhere, with or without an error.
        #[test]
        fn long_pieces_agree_with_core(
            text in "\\PC{100,900}",
            bad in proptest::collection::vec(any::<u8>(), 0..3),
            at in any::<proptest::sample::Index>(),
            piece in 256usize..700,
        ) {
            let mut bytes = text.into_bytes();
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, bad);
            let expected = core::str::from_utf8(&bytes).is_ok();
            prop_assert_eq!(validate_in_pieces(&bytes, piece).is_ok(), expected);
        }

        /// Whole texts of every length around the short and wide thresholds.
        #[test]
        fn complete_agrees_with_core(
            text in "\\PC{0,400}",
            bad in proptest::collection::vec(any::<u8>(), 0..3),
            at in any::<proptest::sample::Index>(),
        ) {
            let mut bytes = text.into_bytes();
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, bad);
            let expected = core::str::from_utf8(&bytes).is_ok();
            prop_assert_eq!(validate_complete(&bytes).is_ok(), expected);
        }

        #[test]
        fn valid_text_in_any_pieces(text in "\\PC{0,30}", piece in 1usize..8) {
            let bytes: Vec<u8> = text.into_bytes();
            prop_assert_eq!(validate_in_pieces(&bytes, piece), Ok(()));
        }
    }
}
