//! Close status codes and the Close frame payload (RFC 6455 §5.5.1, §7.4).

use crate::error::{ProtocolError, UsageError};

/// A close status code (RFC 6455 §7.4).
///
/// Any `u16` can be held; [`CloseCode::is_sendable`] says whether it may appear on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: the endpoint cannot accept this type of data.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS_RECEIVED: Self = Self(1005);
    /// 1006: the connection closed without a Close frame (never sent on the wire).
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: a message's data was not consistent with its type (invalid UTF-8 text).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message or frame was too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected the server to negotiate an extension.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: a gateway received an invalid response upstream.
    pub const BAD_GATEWAY: Self = Self(1014);
    /// 1015: the TLS handshake failed (never sent on the wire).
    pub const TLS_HANDSHAKE: Self = Self(1015);

    /// Whether the code may be sent in a Close frame, and accepted in one.
    ///
    /// RFC 6455 §7.4.1/§7.4.2 and the IANA registry: 1000-1003 and 1007-1014 are defined,
    /// 3000-3999 are registered and 4000-4999 private; 1004-1006, 1015, the unassigned
    /// 1016-2999 and anything outside 1000-4999 are not.
    #[must_use]
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// A short description of a known code, for logs.
    #[must_use]
    pub fn description(self) -> &'static str {
        match self.0 {
            1000 => "normal closure",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1005 => "no status received",
            1006 => "abnormal closure",
            1007 => "invalid payload data",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            1012 => "service restart",
            1013 => "try again later",
            1014 => "bad gateway",
            1015 => "TLS handshake failure",
            3000..=3999 => "registered code",
            4000..=4999 => "private code",
            _ => "unknown code",
        }
    }
}

impl core::fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CloseCode({} {})", self.0, self.description())
    }
}

impl core::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.0, self.description())
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

/// The largest close reason that fits a control frame (125 bytes less the 2-byte code).
pub const MAX_CLOSE_REASON: usize = 123;

/// The rules for a Close we send: a code that may appear on the wire (RFC 6455 §7.4.1), or
/// 1005 for a Close without a body (which then has no reason either), and a reason that fits
/// a control frame (§5.5).
///
/// # Errors
/// [`UsageError::InvalidCloseCode`]; [`UsageError::CloseReasonTooLong`] over 123 bytes.
pub(crate) fn check_sendable(code: CloseCode, reason: &str) -> Result<(), UsageError> {
    if code == CloseCode::NO_STATUS_RECEIVED {
        if !reason.is_empty() {
            return Err(UsageError::InvalidCloseCode(code.0));
        }
    } else if !code.is_sendable() {
        return Err(UsageError::InvalidCloseCode(code.0));
    }
    if reason.len() > MAX_CLOSE_REASON {
        return Err(UsageError::CloseReasonTooLong(reason.len()));
    }
    Ok(())
}

/// Parses a received Close payload into its code and reason.
///
/// An empty payload means no code: [`CloseCode::NO_STATUS_RECEIVED`] (RFC 6455 §7.1.5).
pub(crate) fn parse_close_payload(payload: &[u8]) -> Result<(CloseCode, &str), ProtocolError> {
    match payload {
        [] => Ok((CloseCode::NO_STATUS_RECEIVED, "")),
        // RFC 6455 §5.5.1: a body, if present, starts with a 2-byte code.
        [_] => Err(ProtocolError::InvalidClosePayload),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_sendable() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            // RFC 6455 §5.5.1: the reason is UTF-8.
            let reason = core::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok((code, reason))
        }
    }
}

/// A Close frame body: empty for 1005, else the code and the reason.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClosePayload {
    bytes: [u8; 2 + MAX_CLOSE_REASON],
    len: usize,
}

impl ClosePayload {
    /// Builds the body; callers check the reason length (a longer one is cut short).
    pub(crate) fn new(code: CloseCode, reason: &str) -> Self {
        let mut payload = Self {
            bytes: [0; 2 + MAX_CLOSE_REASON],
            len: 0,
        };
        if code != CloseCode::NO_STATUS_RECEIVED {
            let reason = &reason.as_bytes()[..reason.len().min(MAX_CLOSE_REASON)];
            payload.bytes[..2].copy_from_slice(&code.0.to_be_bytes());
            payload.bytes[2..2 + reason.len()].copy_from_slice(reason);
            payload.len = 2 + reason.len();
        }
        payload
    }

    /// The body of the Close that fails a connection: `reason` (an error's message) cut at a
    /// character boundary to fit.
    pub(crate) fn truncated(code: CloseCode, reason: &str) -> Self {
        let mut end = reason.len().min(MAX_CLOSE_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Self::new(code, &reason[..end])
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sec_7_4_sendable_codes() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            assert!(CloseCode(code).is_sendable(), "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(code).is_sendable(), "{code}");
        }
    }

    #[test]
    fn sec_5_5_1_close_payloads() {
        assert_eq!(
            parse_close_payload(&[]),
            Ok((CloseCode::NO_STATUS_RECEIVED, ""))
        );
        assert_eq!(
            parse_close_payload(&[0x03]),
            Err(ProtocolError::InvalidClosePayload)
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8]),
            Ok((CloseCode::NORMAL, ""))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8bye"),
            Ok((CloseCode::NORMAL, "bye"))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xed]),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, 0xff]),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn close_payload_round_trip() {
        let payload = ClosePayload::new(CloseCode(4001), "done");
        assert_eq!(payload.as_bytes(), b"\x0f\xa1done");
        assert_eq!(
            parse_close_payload(payload.as_bytes()),
            Ok((CloseCode(4001), "done"))
        );
        assert!(
            ClosePayload::new(CloseCode::NO_STATUS_RECEIVED, "ignored")
                .as_bytes()
                .is_empty()
        );
    }
}
