//! Extension negotiation (RFC 6455 §9): parsed offers in, agreed parameters out.
//!
//! The only extension is permessage-deflate (RFC 7692), negotiated when `Config::deflate`
//! asks for it. A server takes the first offer whose parameters are valid and acceptable
//! and declines the rest (malformed or duplicate parameters decline that offer, RFC 7692
//! §5); a client offers its settings, then a plain fallback, and fails the handshake on a
//! response that breaks RFC 7692. What was agreed becomes the RSV bits the connection allows
//! and, with deflate, the codec's parameters.

use crate::config::Config;
#[cfg(feature = "deflate")]
use crate::config::Role;
use crate::handshake::{ExtensionOffer, HandshakeError};
use alloc::string::String;
use alloc::vec::Vec;

#[cfg(feature = "deflate")]
use crate::deflate::DeflateParams;
#[cfg(feature = "deflate")]
use alloc::format;

/// RSV1, which permessage-deflate uses to mark compressed messages (RFC 7692 §6).
pub(crate) const RSV1: u8 = 0b100;

/// What the handshake agreed on for extensions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// RSV bits the agreed extensions define; any other set bit fails the connection.
    pub(crate) rsv_allowed: u8,
    /// permessage-deflate's parameters, when it was agreed.
    #[cfg(feature = "deflate")]
    pub(crate) deflate: Option<DeflateParams>,
}

/// Server side: chooses among the client's offers. Returns the `Sec-WebSocket-Extensions`
/// value to answer with, if any, and what the connection must apply.
pub(crate) fn accept_offers(
    config: &Config,
    offers: &[ExtensionOffer],
) -> (Option<String>, Negotiated) {
    #[cfg(feature = "deflate")]
    if let Some(wanted) = &config.deflate {
        let candidates = offers
            .iter()
            .filter(|o| o.name().eq_ignore_ascii_case(PMCE));
        for offer in candidates {
            // A malformed offer is declined; the next one may still do (RFC 7692 §5).
            let Ok(offered) = PmceParams::parse(offer, Role::Client) else {
                continue;
            };
            let server_bits = match offered.server_max_window_bits {
                // RFC 7692 §7.1.2.1: answer with the same or a smaller value.
                Some(bits) => Some(bits.min(wanted.server_max_window_bits.unwrap_or(15))),
                None => wanted.server_max_window_bits,
            };
            let client_bits = match offered.client_max_window_bits {
                // RFC 7692 §7.1.2.2: without it in the offer, the answer MUST NOT carry it.
                None => None,
                Some(None) => wanted.client_max_window_bits,
                Some(Some(bits)) => wanted.client_max_window_bits.map(|w| w.min(bits)),
            };
            let agreed = PmceParams {
                server_no_context_takeover: offered.server_no_context_takeover
                    || wanted.server_no_context_takeover,
                client_no_context_takeover: offered.client_no_context_takeover
                    || wanted.client_no_context_takeover,
                server_max_window_bits: server_bits,
                client_max_window_bits: client_bits.map(Some),
            };
            let negotiated = Negotiated {
                rsv_allowed: RSV1,
                deflate: Some(agreed.for_role(Role::Server)),
            };
            return (Some(agreed.render()), negotiated);
        }
    }
    let _ = (config, offers);
    (None, Negotiated::default())
}

/// Client side: the `Sec-WebSocket-Extensions` elements to offer, preferred first.
pub(crate) fn client_offers(config: &Config) -> Vec<String> {
    #[cfg(feature = "deflate")]
    if let Some(wanted) = &config.deflate {
        let preferred = PmceParams {
            server_no_context_takeover: wanted.server_no_context_takeover,
            client_no_context_takeover: wanted.client_no_context_takeover,
            server_max_window_bits: wanted.server_max_window_bits,
            // Offered without a value, it says we can honour a limit the server picks.
            client_max_window_bits: Some(wanted.client_max_window_bits),
        };
        let fallback = PmceParams {
            client_max_window_bits: Some(None),
            ..PmceParams::default()
        };
        let mut offers = alloc::vec![preferred.render()];
        if preferred != fallback {
            offers.push(fallback.render());
        }
        return offers;
    }
    let _ = config;
    Vec::new()
}

/// Client side: checks and applies the extensions the server accepted. The handshake has
/// already rejected names that were not offered.
///
/// # Errors
/// A response that breaks RFC 7692: more than one permessage-deflate, unknown, repeated or
/// invalid parameters, or a window larger than the one offered.
pub(crate) fn apply_response(
    config: &Config,
    accepted: &[ExtensionOffer],
) -> Result<Negotiated, HandshakeError> {
    let Some(first) = accepted.first() else {
        return Ok(Negotiated::default());
    };
    #[cfg(feature = "deflate")]
    if let Some(wanted) = &config.deflate {
        let invalid =
            |why: &str| HandshakeError::MalformedResponse(format!("permessage-deflate: {why}"));
        if accepted.len() > 1 {
            return Err(invalid("accepted more than once"));
        }
        let agreed = PmceParams::parse(first, Role::Server).map_err(invalid)?;
        if let (Some(offered), Some(got)) =
            (wanted.server_max_window_bits, agreed.server_max_window_bits)
            && got > offered
        {
            return Err(invalid("server_max_window_bits above the offer"));
        }
        if let (Some(offered), Some(Some(got))) =
            (wanted.client_max_window_bits, agreed.client_max_window_bits)
            && got > offered
        {
            return Err(invalid("client_max_window_bits above the offer"));
        }
        return Ok(Negotiated {
            rsv_allowed: RSV1,
            deflate: Some(agreed.for_role(Role::Client)),
        });
    }
    let _ = config;
    Err(HandshakeError::ExtensionNotOffered(first.name().into()))
}

/// The extension token.
#[cfg(feature = "deflate")]
const PMCE: &str = "permessage-deflate";

/// permessage-deflate parameters as they appear in an offer or a response.
#[cfg(feature = "deflate")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PmceParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in offers only).
    client_max_window_bits: Option<Option<u8>>,
}

#[cfg(feature = "deflate")]
impl PmceParams {
    /// Parses the parameters of an offer (`from` = client) or a response (`from` = server).
    fn parse(element: &ExtensionOffer, from: Role) -> Result<Self, &'static str> {
        let mut params = Self::default();
        for (name, value) in element.params() {
            let name = name.to_ascii_lowercase();
            match name.as_str() {
                "server_no_context_takeover" | "client_no_context_takeover" => {
                    if value.is_some() {
                        return Err("no_context_takeover takes no value");
                    }
                    let flag = if name.starts_with("server") {
                        &mut params.server_no_context_takeover
                    } else {
                        &mut params.client_no_context_takeover
                    };
                    if core::mem::replace(flag, true) {
                        return Err("repeated parameter");
                    }
                }
                "server_max_window_bits" => {
                    let bits = window_bits(value.ok_or("server_max_window_bits needs a value")?)?;
                    if params.server_max_window_bits.replace(bits).is_some() {
                        return Err("repeated parameter");
                    }
                }
                "client_max_window_bits" => {
                    let bits = match value {
                        Some(v) => Some(window_bits(v)?),
                        // RFC 7692 §7.1.2.2: a response must give the value.
                        None if from == Role::Server => {
                            return Err("client_max_window_bits needs a value in a response");
                        }
                        None => None,
                    };
                    if params.client_max_window_bits.replace(bits).is_some() {
                        return Err("repeated parameter");
                    }
                }
                _ => return Err("unknown parameter"),
            }
        }
        Ok(params)
    }

    fn render(&self) -> String {
        let mut out = String::from(PMCE);
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            out.push_str(&format!("; server_max_window_bits={bits}"));
        }
        match self.client_max_window_bits {
            Some(Some(bits)) => out.push_str(&format!("; client_max_window_bits={bits}")),
            Some(None) => out.push_str("; client_max_window_bits"),
            None => {}
        }
        out
    }

    /// The agreed parameters from the point of view of `role`.
    fn for_role(&self, role: Role) -> DeflateParams {
        let client_bits = self.client_max_window_bits.flatten();
        let (send_nct, receive_nct, send_bits) = match role {
            Role::Server => (
                self.server_no_context_takeover,
                self.client_no_context_takeover,
                self.server_max_window_bits,
            ),
            Role::Client => (
                self.client_no_context_takeover,
                self.server_no_context_takeover,
                client_bits,
            ),
        };
        DeflateParams {
            send_no_context_takeover: send_nct,
            receive_no_context_takeover: receive_nct,
            send_max_window_bits: send_bits.unwrap_or(15),
        }
    }
}

/// RFC 7692 §7.1.2: a decimal 8-15 without leading zeros.
#[cfg(feature = "deflate")]
fn window_bits(value: &str) -> Result<u8, &'static str> {
    match value {
        "8" => Ok(8),
        "9" => Ok(9),
        "10" | "11" | "12" | "13" | "14" | "15" => Ok(value.parse().unwrap_or(15)),
        _ => Err("window bits must be 8 to 15"),
    }
}

#[cfg(all(test, feature = "deflate"))]
mod tests {
    use super::*;
    use crate::deflate::DeflateConfig;
    use crate::handshake::parse_extensions;

    fn offers(header: &str) -> Vec<ExtensionOffer> {
        parse_extensions([header.as_bytes()].into_iter()).unwrap()
    }

    fn server(wanted: DeflateConfig, header: &str) -> Option<String> {
        let config = Config {
            deflate: Some(wanted),
            ..Config::default()
        };
        accept_offers(&config, &offers(header)).0
    }

    #[test]
    fn rfc_7692_5_first_valid_offer_wins() {
        let got = server(
            DeflateConfig::default(),
            "permessage-deflate; bogus, permessage-deflate; client_max_window_bits=10; client_max_window_bits=10, permessage-deflate; server_no_context_takeover",
        );
        assert_eq!(
            got.as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
    }

    #[test]
    fn rfc_7692_7_1_2_window_bits() {
        let wanted = DeflateConfig {
            client_max_window_bits: Some(10),
            ..DeflateConfig::default()
        };
        assert_eq!(
            server(wanted.clone(), "permessage-deflate; client_max_window_bits").as_deref(),
            Some("permessage-deflate; client_max_window_bits=10")
        );
        // Without client_max_window_bits in the offer, the response must not carry it.
        assert_eq!(
            server(wanted, "permessage-deflate").as_deref(),
            Some("permessage-deflate")
        );
        assert_eq!(
            server(
                DeflateConfig::default(),
                "permessage-deflate; server_max_window_bits=8"
            )
            .as_deref(),
            Some("permessage-deflate; server_max_window_bits=8")
        );
        for bad in [
            "server_max_window_bits=7",
            "server_max_window_bits=16",
            "server_max_window_bits=08",
            "server_max_window_bits",
            "client_max_window_bits=x",
            "server_no_context_takeover=1",
        ] {
            assert_eq!(
                server(
                    DeflateConfig::default(),
                    &format!("permessage-deflate; {bad}")
                ),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn client_offers_then_falls_back() {
        let mut config = Config {
            deflate: Some(DeflateConfig {
                server_max_window_bits: Some(10),
                ..DeflateConfig::default()
            }),
            ..Config::default()
        };
        assert_eq!(
            client_offers(&config),
            [
                "permessage-deflate; server_max_window_bits=10; client_max_window_bits",
                "permessage-deflate; client_max_window_bits"
            ]
        );
        config.deflate = Some(DeflateConfig::default());
        assert_eq!(
            client_offers(&config),
            ["permessage-deflate; client_max_window_bits"]
        );
    }

    #[test]
    fn client_checks_the_response() {
        let config = Config {
            deflate: Some(DeflateConfig {
                server_max_window_bits: Some(10),
                ..DeflateConfig::default()
            }),
            ..Config::default()
        };
        let ok = apply_response(
            &config,
            &offers("permessage-deflate; server_max_window_bits=9; client_max_window_bits=8"),
        )
        .unwrap();
        assert_eq!(ok.rsv_allowed, RSV1);
        assert_eq!(ok.deflate.unwrap().send_max_window_bits, 8);
        for bad in [
            "permessage-deflate; server_max_window_bits=11",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; x=1",
            "permessage-deflate, permessage-deflate",
        ] {
            assert!(apply_response(&config, &offers(bad)).is_err(), "{bad}");
        }
    }
}
