//! Frame headers: the opcode, flags, length and masking key (RFC 6455 §5.2).
//!
//! Pure parsing and encoding; this module knows nothing of connection state, so the rules
//! that depend on role, negotiated extensions or fragmentation live in the connection.

use crate::error::ProtocolError;
use crate::event::MessageKind;

/// A frame opcode (RFC 6455 §5.2, §11.8). Reserved opcodes are rejected when parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: starts or answers the closing handshake.
    Close,
    /// 0x9: asks for a Pong.
    Ping,
    /// 0xA: answers a Ping, or a unidirectional heartbeat.
    Pong,
}

impl Opcode {
    /// Decodes the 4-bit opcode field.
    ///
    /// # Errors
    /// [`ProtocolError::ReservedOpcode`] for 0x3-0x7 and 0xB-0xF (RFC 6455 §5.2).
    pub fn from_bits(bits: u8) -> Result<Self, ProtocolError> {
        Ok(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// The 4-bit wire value.
    #[must_use]
    pub fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// The opcode that starts a message of this kind.
    pub(crate) fn of(kind: MessageKind) -> Self {
        match kind {
            MessageKind::Text => Self::Text,
            MessageKind::Binary => Self::Binary,
        }
    }

    /// Control frames are Close, Ping and Pong (RFC 6455 §5.5).
    #[must_use]
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// The largest payload a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The longest frame header: 2 bytes, an 8-byte extended length and a 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;

/// The longest payload whose length fits in the header's second byte (RFC 6455 §5.2).
pub(crate) const MAX_SHORT_PAYLOAD: u64 = 125;

/// One frame's header, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// RSV1, RSV2, RSV3 as the low three bits (RSV1 = `0b100`).
    pub rsv: u8,
    /// The opcode.
    pub opcode: Opcode,
    /// The masking key, present on frames sent by a client.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a header, else the header and its
    /// length in bytes.
    ///
    /// # Errors
    /// [`ProtocolError::ReservedOpcode`] and [`ProtocolError::InvalidLength`] (a 64-bit length
    /// with the most significant bit set, RFC 6455 §5.2).
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, ProtocolError> {
        let [b0, b1, rest @ ..] = buf else {
            return Ok(None);
        };
        let opcode = Opcode::from_bits(b0 & 0x0F)?;
        let masked = b1 & 0x80 != 0;
        let (payload_len, rest, mut len) = match b1 & 0x7F {
            126 => match rest {
                [a, b, rest @ ..] => (u64::from(u16::from_be_bytes([*a, *b])), rest, 4),
                _ => return Ok(None),
            },
            127 => match rest.split_first_chunk::<8>() {
                Some((bytes, rest)) => {
                    let len = u64::from_be_bytes(*bytes);
                    // RFC 6455 §5.2: the most significant bit MUST be 0.
                    if len >> 63 != 0 {
                        return Err(ProtocolError::InvalidLength);
                    }
                    (len, rest, 10)
                }
                None => return Ok(None),
            },
            short => (u64::from(short), rest, 2),
        };
        let mask = if masked {
            match rest.first_chunk::<4>() {
                Some(key) => {
                    len += 4;
                    Some(*key)
                }
                None => return Ok(None),
            }
        } else {
            None
        };
        let header = Self {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x07,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, len)))
    }

    /// Writes the header into `out` and returns its length, using the shortest length form
    /// (RFC 6455 §5.2: "the minimal number of bytes MUST be used").
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = first_byte(self.fin, self.rsv, self.opcode);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut len = match self.payload_len {
            0..=MAX_SHORT_PAYLOAD => {
                out[1] = mask_bit | self.payload_len as u8;
                2
            }
            126..=0xFFFF => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
                4
            }
            _ => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[len..len + 4].copy_from_slice(&key);
            len += 4;
        }
        len
    }
}

/// A header's first byte: FIN, the RSV bits and the opcode (RFC 6455 §5.2).
#[inline]
pub(crate) fn first_byte(fin: bool, rsv: u8, opcode: Opcode) -> u8 {
    (u8::from(fin) << 7) | ((rsv & 0x07) << 4) | opcode.bits()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(bytes: &[u8]) -> (FrameHeader, usize) {
        FrameHeader::parse(bytes).unwrap().unwrap()
    }

    #[test]
    fn sec_5_7_unmasked_hello_header() {
        let (h, len) = parse_all(b"\x81\x05Hello");
        assert_eq!(len, 2);
        assert_eq!(
            h,
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: Opcode::Text,
                mask: None,
                payload_len: 5
            }
        );
    }

    #[test]
    fn sec_5_7_masked_hello_header() {
        let (h, len) = parse_all(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f]);
        assert_eq!(len, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.payload_len, 5);
    }

    #[test]
    fn sec_5_7_length_forms() {
        let (h, len) = parse_all(&[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!((h.opcode, h.payload_len, len), (Opcode::Binary, 256, 4));
        let (h, len) = parse_all(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!((h.payload_len, len), (65536, 10));
    }

    #[test]
    fn sec_5_2_partial_headers_need_more() {
        let full = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for n in 0..full.len() {
            assert_eq!(FrameHeader::parse(&full[..n]), Ok(None), "{n} bytes");
        }
        assert_eq!(parse_all(&full).1, 14);
    }

    #[test]
    fn sec_5_2_reserved_opcodes_and_length_msb() {
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op, 0]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
        let bad = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::parse(&bad), Err(ProtocolError::InvalidLength));
    }

    proptest! {
        #[test]
        fn encode_then_parse_round_trips(
            fin in any::<bool>(), rsv in 0u8..8, op in prop::sample::select(&[0u8, 1, 2, 8, 9, 10][..]),
            mask in any::<Option<[u8; 4]>>(), payload_len in prop_oneof![0u64..300, 0u64..=(u64::MAX >> 1)],
        ) {
            let header = FrameHeader { fin, rsv, opcode: Opcode::from_bits(op).unwrap(), mask, payload_len };
            let mut buf = [0u8; MAX_HEADER_LEN];
            let len = header.encode(&mut buf);
            prop_assert_eq!(FrameHeader::parse(&buf[..len]), Ok(Some((header, len))));
        }
    }
}
