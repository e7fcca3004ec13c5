//! The source of masking keys and handshake nonces, supplied by the caller.

/// Unpredictable bytes for masking keys (RFC 6455 §5.3) and the handshake key (§4.1).
///
/// The core never draws randomness itself. The source **must be a cryptographically secure
/// random number generator**: predictable masking keys defeat the protection masking gives
/// against cache-poisoning attacks on intermediaries (RFC 6455 §10.3). Closures
/// `FnMut(&mut [u8])` implement it; the drivers use the operating system's generator.
pub trait Entropy {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]);
}

impl<F: FnMut(&mut [u8])> Entropy for F {
    fn fill(&mut self, dest: &mut [u8]) {
        self(dest)
    }
}
