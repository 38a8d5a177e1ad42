//! Opaque, authenticated page tokens.
//!
//! A token wraps Meta's cursor together with the request it belongs to (WABA and page
//! size) and an HMAC over both, so a client can neither inject a cursor or parameters
//! into a Graph call nor replay a token against another WABA.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const TAG_LEN: usize = 32;

pub struct PageTokens {
    key: [u8; 32],
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens([redacted])")
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    /// WABA id.
    w: String,
    /// Page size.
    n: u32,
    /// Meta's `after` cursor.
    c: String,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum PageTokenError {
    #[error("not a page token issued by this service")]
    Malformed,
    #[error("issued for another request (a different id, page_size or filter)")]
    OtherRequest,
}

impl PageTokens {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    pub fn encode(&self, waba_id: &str, page_size: u32, cursor: &str) -> String {
        let payload = Payload {
            w: waba_id.to_owned(),
            n: page_size,
            c: cursor.to_owned(),
        };
        let mut bytes = serde_json::to_vec(&payload).expect("a struct of strings serialises");
        let tag = self.mac(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Meta's cursor, if `token` was issued by this service for this very request.
    pub fn decode(
        &self,
        token: &str,
        waba_id: &str,
        page_size: u32,
    ) -> Result<String, PageTokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| PageTokenError::Malformed)?;
        let split = bytes
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(PageTokenError::Malformed)?;
        let (payload, tag) = bytes.split_at(split);
        self.mac(payload)
            .verify_slice(tag)
            .map_err(|_| PageTokenError::Malformed)?;
        let payload: Payload =
            serde_json::from_slice(payload).map_err(|_| PageTokenError::Malformed)?;
        if payload.w != waba_id || payload.n != page_size {
            return Err(PageTokenError::OtherRequest);
        }
        Ok(payload.c)
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(data);
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_forgeries_and_other_requests() {
        let tokens = PageTokens::new([7; 32]);
        let t = tokens.encode("111", 25, "QVFIU");
        assert_eq!(tokens.decode(&t, "111", 25).unwrap(), "QVFIU");
        assert_eq!(
            tokens.decode(&t, "222", 25),
            Err(PageTokenError::OtherRequest)
        );
        assert_eq!(
            tokens.decode(&t, "111", 50),
            Err(PageTokenError::OtherRequest)
        );
        assert_eq!(
            PageTokens::new([8; 32]).decode(&t, "111", 25),
            Err(PageTokenError::Malformed)
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(&t).unwrap();
        bytes[3] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(
            tokens.decode(&tampered, "111", 25),
            Err(PageTokenError::Malformed)
        );
        assert_eq!(
            tokens.decode("!!", "111", 25),
            Err(PageTokenError::Malformed)
        );
        assert_eq!(tokens.decode("", "111", 25), Err(PageTokenError::Malformed));
    }
}

/// Fuzz targets: any `page_token` a client sends. See `src/fuzzing.rs`.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn tokens() -> PageTokens {
        PageTokens::new([7; 32])
    }

    proptest! {
        #![proptest_config(crate::fuzzing::config())]

        #[test]
        fn fuzz_page_token_arbitrary_strings_never_panic(token in any::<String>(), scope in any::<String>(), n in any::<u32>()) {
            prop_assert!(tokens().decode(&token, &scope, n).is_err());
        }

        #[test]
        fn fuzz_page_token_base64_strings_never_panic(token in "[A-Za-z0-9_-]{0,300}") {
            prop_assert!(tokens().decode(&token, "102290129340398", 25).is_err());
        }

        /// Correctly signed payloads that are not the payload: refused, not a panic.
        #[test]
        fn fuzz_page_token_signed_garbage_is_malformed(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
            let tokens = tokens();
            let mut bytes = payload.clone();
            bytes.extend_from_slice(&tokens.mac(&payload).finalize().into_bytes());
            let token = URL_SAFE_NO_PAD.encode(bytes);
            if let Ok(cursor) = tokens.decode(&token, "1", 1) {
                // Only a real payload for that very request decodes.
                let real: Payload = serde_json::from_slice(&payload).unwrap();
                prop_assert_eq!((real.w.as_str(), real.n, real.c), ("1", 1, cursor));
            }
        }

        #[test]
        fn fuzz_page_token_round_trips(scope in any::<String>(), n in any::<u32>(), cursor in any::<String>()) {
            let token = tokens().encode(&scope, n, &cursor);
            prop_assert_eq!(tokens().decode(&token, &scope, n), Ok(cursor));
        }

        #[test]
        fn fuzz_page_token_any_tampering_fails(
            scope in "[0-9]{1,20}",
            n in 1..=100u32,
            cursor in any::<String>(),
            at in any::<proptest::sample::Index>(),
            bit in 0..8u8,
            cut in any::<proptest::sample::Index>(),
        ) {
            let tokens = tokens();
            let token = tokens.encode(&scope, n, &cursor);
            // Any bit of what it carries, or of its tag.
            let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            let flipped = URL_SAFE_NO_PAD.encode(&bytes);
            prop_assert_eq!(tokens.decode(&flipped, &scope, n), Err(PageTokenError::Malformed));
            // Cut short anywhere, or lengthened.
            let short = &token[..cut.index(token.len())];
            prop_assert!(tokens.decode(short, &scope, n).is_err());
            let longer = format!("{token}A");
            prop_assert!(tokens.decode(&longer, &scope, n).is_err());
            // Another request, or another key.
            let other_scope = format!("{scope}0");
            prop_assert_eq!(tokens.decode(&token, &other_scope, n), Err(PageTokenError::OtherRequest));
            prop_assert_eq!(tokens.decode(&token, &scope, n + 1), Err(PageTokenError::OtherRequest));
            prop_assert_eq!(PageTokens::new([8; 32]).decode(&token, &scope, n), Err(PageTokenError::Malformed));
        }
    }
}
