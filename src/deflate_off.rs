//! permessage-deflate with the `deflate` feature off: never offered, never accepted, so the
//! codec types have no values and their methods cannot be reached. The reader and the writer
//! use the same names either way, without `cfg`s of their own.

use crate::config::Config;
use crate::extension::Negotiated;
use alloc::vec::Vec;

/// Why a compressed message could not be inflated (never, without the feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code, reason = "nothing is inflated without the deflate feature")]
pub(crate) enum InflateError {
    /// It inflates past the limit.
    TooBig,
    /// It is not valid deflate data.
    Corrupt,
}

/// No decompressor exists without the feature.
#[derive(Debug)]
pub(crate) enum Inflater {}

/// No compressor exists without the feature.
#[derive(Debug)]
pub(crate) enum Deflater {}

/// No compressor settings exist without the feature.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SharedDeflate {}

/// Nothing is agreed: the handshake never offers or accepts permessage-deflate.
pub(crate) fn agreed(_: &Negotiated, _: &Config) -> Option<(Inflater, Deflater)> {
    None
}

impl Inflater {
    pub(crate) fn inflate(
        &mut self,
        _: &[u8],
        _: &mut Vec<u8>,
        _: usize,
    ) -> Result<(), InflateError> {
        match *self {}
    }

    pub(crate) fn finish_inflate(&mut self, _: &mut Vec<u8>, _: usize) -> Result<(), InflateError> {
        match *self {}
    }

    pub(crate) fn inflate_bounded(
        &mut self,
        _: &[u8],
        _: &mut Vec<u8>,
        _: usize,
        _: bool,
    ) -> Result<(usize, bool), InflateError> {
        match *self {}
    }
}

impl Deflater {
    pub(crate) fn should_compress(&self, _: usize) -> bool {
        match *self {}
    }

    pub(crate) fn deflate(&mut self, _: &[u8], _: &mut Vec<u8>, _: bool) {
        match *self {}
    }

    pub(crate) fn shared_settings(&self) -> Option<SharedDeflate> {
        match *self {}
    }
}
