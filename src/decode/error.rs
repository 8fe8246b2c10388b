//! Why a frame could not be decoded: the layer, the byte offset in the frame, the lengths
//! involved, and a Display text that is a full sentence a student can act on.

use std::fmt;

/// A frame (or part of one) that could not be decoded.
///
/// `offset` is where the layer starts in the frame; `needed` and `available` are byte counts
/// whose meaning [`Problem`] gives (for [`Problem::BadValue`] they are the value found and the
/// value expected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The layer that failed, e.g. `"IPv4 header"`, `"TCP header"`, `"Ethernet header"`.
    pub layer: &'static str,
    /// Byte offset of the layer's start in the frame.
    pub offset: usize,
    /// Bytes the layer needs (or the length a header field claims).
    pub needed: usize,
    /// Bytes actually there from `offset` on (or the limit the field broke).
    pub available: usize,
    /// What went wrong.
    pub problem: Problem,
}

/// The kinds of decode failure, each with its own sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The fixed part of the header does not fit: `needed` bytes, `available` remain.
    Truncated,
    /// A length field (named) claims `needed` bytes but only `available` remain.
    LengthExceedsData {
        /// The header field that holds the length, e.g. `"header length"`.
        field: &'static str,
    },
    /// A length field (named) claims `needed` bytes, less than the minimum `available`.
    LengthTooSmall {
        /// The header field that holds the length.
        field: &'static str,
    },
    /// A field has a value that makes the layer undecodable: found `needed`, expected
    /// `available`.
    BadValue {
        /// The header field, e.g. `"version"`.
        field: &'static str,
    },
    /// The link type (in `needed`) is not one mailwire decodes.
    UnsupportedLinkType,
}

impl DecodeError {
    /// A header that needs `needed` bytes where only `available` remain.
    pub fn truncated(layer: &'static str, offset: usize, needed: usize, available: usize) -> Self {
        Self {
            layer,
            offset,
            needed,
            available,
            problem: Problem::Truncated,
        }
    }

    /// A length field that claims more bytes than remain.
    pub fn length_exceeds(
        layer: &'static str,
        field: &'static str,
        offset: usize,
        claimed: usize,
        available: usize,
    ) -> Self {
        Self {
            layer,
            offset,
            needed: claimed,
            available,
            problem: Problem::LengthExceedsData { field },
        }
    }

    /// A length field that claims fewer bytes than the header's minimum.
    pub fn length_too_small(
        layer: &'static str,
        field: &'static str,
        offset: usize,
        claimed: usize,
        minimum: usize,
    ) -> Self {
        Self {
            layer,
            offset,
            needed: claimed,
            available: minimum,
            problem: Problem::LengthTooSmall { field },
        }
    }

    /// A field whose value is not the one the layer requires.
    pub fn bad_value(
        layer: &'static str,
        field: &'static str,
        offset: usize,
        found: usize,
        expected: usize,
    ) -> Self {
        Self {
            layer,
            offset,
            needed: found,
            available: expected,
            problem: Problem::BadValue { field },
        }
    }

    /// A link type mailwire does not decode.
    pub fn unsupported_link(link_type: i32) -> Self {
        Self {
            layer: "link layer",
            offset: 0,
            needed: usize::try_from(link_type).unwrap_or(usize::MAX),
            available: 0,
            problem: Problem::UnsupportedLinkType,
        }
    }
}

fn bytes(n: usize) -> String {
    if n == 1 {
        "1 byte".to_string()
    } else {
        format!("{n} bytes")
    }
}

fn remain(n: usize) -> String {
    if n == 1 {
        "only 1 byte remains".to_string()
    } else {
        format!("only {n} bytes remain")
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            layer,
            offset,
            needed,
            available,
            ..
        } = self;
        match &self.problem {
            Problem::Truncated => write!(
                f,
                "{layer} at byte {offset} needs {} but {}",
                bytes(*needed),
                remain(*available)
            ),
            Problem::LengthExceedsData { field } => write!(
                f,
                "{layer} at byte {offset} says (in its {field} field) it is {} long but {}",
                bytes(*needed),
                remain(*available)
            ),
            Problem::LengthTooSmall { field } => write!(
                f,
                "{layer} at byte {offset} says (in its {field} field) it is {} long, \
                 less than the {available}-byte minimum",
                bytes(*needed)
            ),
            Problem::BadValue { field } => write!(
                f,
                "{layer} at byte {offset} has {field} {needed} where {available} was expected"
            ),
            Problem::UnsupportedLinkType => write!(
                f,
                "link type {needed} is not one mailwire decodes (it reads Ethernet, NULL/LOOP \
                 loopback, Linux cooked SLL and SLL2, and raw IPv4/IPv6)"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_name_layer_offset_and_lengths() {
        assert_eq!(
            DecodeError::length_exceeds("IPv4 header", "header length", 14, 60, 40).to_string(),
            "IPv4 header at byte 14 says (in its header length field) it is 60 bytes long \
             but only 40 bytes remain"
        );
        assert_eq!(
            DecodeError::truncated("TCP header", 34, 20, 1).to_string(),
            "TCP header at byte 34 needs 20 bytes but only 1 byte remains"
        );
        assert_eq!(
            DecodeError::length_too_small("TCP header", "data offset", 34, 8, 20).to_string(),
            "TCP header at byte 34 says (in its data offset field) it is 8 bytes long, less \
             than the 20-byte minimum"
        );
        assert_eq!(
            DecodeError::bad_value("IPv4 header", "version", 14, 6, 4).to_string(),
            "IPv4 header at byte 14 has version 6 where 4 was expected"
        );
        assert!(
            DecodeError::unsupported_link(147)
                .to_string()
                .starts_with("link type 147 ")
        );
    }
}
