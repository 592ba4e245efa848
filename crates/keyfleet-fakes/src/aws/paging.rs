//! Opaque paging markers. AWS rejects a marker it did not issue with `InvalidMarkerException`,
//! so each marker carries a keyed hash of its position and of the listing it belongs to
//! (operation, account, region, filter). Nothing is stored per marker.

use std::fmt::Write as _;
use std::hash::{BuildHasher, RandomState};

use super::protocol::{ErrorCode, KmsError};

/// Signs and opens markers with a key chosen at random when the fake starts.
#[derive(Debug, Default)]
pub(crate) struct Markers {
    key: RandomState,
}

impl Markers {
    /// A marker for the listing `context` that resumes at `position` (inclusive).
    pub(crate) fn issue(&self, context: &str, position: &str) -> String {
        let mut marker = String::with_capacity(position.len() * 2 + 17);
        for byte in position.bytes() {
            let _ = write!(marker, "{byte:02x}");
        }
        let _ = write!(marker, ".{:016x}", self.mac(context, position));
        marker
    }

    /// The position a marker issued for `context` resumes at.
    pub(crate) fn open(&self, context: &str, marker: &str) -> Result<String, KmsError> {
        let invalid = || {
            KmsError::new(
                ErrorCode::InvalidMarker,
                "The request was rejected because the marker that specifies where pagination \
                 should next begin is not valid.",
            )
        };
        let (hex, mac) = marker.split_once('.').ok_or_else(invalid)?;
        let position = decode_hex(hex).ok_or_else(invalid)?;
        let mac = u64::from_str_radix(mac, 16).map_err(|_| invalid())?;
        if mac != self.mac(context, &position) {
            return Err(invalid());
        }
        Ok(position)
    }

    fn mac(&self, context: &str, position: &str) -> u64 {
        self.key.hash_one((context, position))
    }
}

fn decode_hex(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_opens_only_in_its_own_listing() {
        let markers = Markers::default();
        let marker = markers.issue("ListKeys:111122223333:us-east-1", "alias/x");
        assert_eq!(markers.open("ListKeys:111122223333:us-east-1", &marker).unwrap(), "alias/x");
        let other = markers.open("ListKeys:111122223333:eu-west-1", &marker).unwrap_err();
        assert_eq!(other.code, ErrorCode::InvalidMarker);
        assert!(markers.open("ListKeys:111122223333:us-east-1", "zz").is_err());
        assert!(
            Markers::default().open("ListKeys:111122223333:us-east-1", &marker).is_err(),
            "another fake did not issue it"
        );
    }
}
