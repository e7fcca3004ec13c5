//! The source of masking keys and handshake nonces, supplied by the caller.

/// Unpredictable bytes for masking keys (RFC 6455 §5.3) and the handshake key (§4.1): any
/// `FnMut(&mut [u8])` that fills the slice, such as `|dest| rng.fill_bytes(dest)`.
///
/// The core never draws randomness itself. The source **must be a cryptographically secure
/// random number generator**: predictable masking keys defeat the protection masking gives
/// against cache-poisoning attacks on intermediaries (RFC 6455 §10.3). Under `std`,
/// [`os_entropy`] is the operating system's generator, which the drivers use.
///
/// It is a closure trait so that a closure passed where one is expected needs no type
/// annotations (a fixed source like this one is for tests only):
///
/// ```
/// use wsproto::{Config, Connection, os_entropy};
/// let test_client = Connection::upgraded_client(Config::default(), |dest| dest.fill(7));
/// let real_client = Connection::upgraded_client(Config::default(), os_entropy);
/// # let _ = (test_client, real_client);
/// ```
pub trait Entropy: FnMut(&mut [u8]) {}

impl<F: FnMut(&mut [u8])> Entropy for F {}

/// An entropy source as the connection keeps it.
pub(crate) type EntropySource = alloc::boxed::Box<dyn FnMut(&mut [u8]) + Send>;

/// Fills `dest` from the operating system's cryptographically secure generator
/// (`getrandom`): the [`Entropy`] to pass to `Connection::client` and
/// `Connection::upgraded_client`.
///
/// # Panics
/// If the operating system's generator fails, which `getrandom` reports only where no
/// generator exists at all.
#[cfg(feature = "std")]
pub fn os_entropy(dest: &mut [u8]) {
    getrandom::fill(dest).expect("the operating system's random generator failed");
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn os_entropy_fills_the_whole_slice() {
        // 64 zero bytes from a working generator have a chance of 2^-512.
        let mut dest = [0u8; 64];
        os_entropy(&mut dest);
        assert_ne!(dest, [0u8; 64]);
    }
}
