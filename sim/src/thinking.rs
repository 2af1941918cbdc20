//! Signed thinking blocks. Claude signs each `thinking` block it writes and refuses a later request
//! that replays one whose text or signature changed; `redacted_thinking` carries opaque data checked
//! the same way. The simulator signs with an HMAC under a key of its own, the same in every instance,
//! so a block written by one simulated region replays to another as it does across Bedrock regions.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const KEY: &[u8] = b"bedrock-sim thinking signature key";
/// Domain tags, so a thinking signature cannot pass as redacted data or the other way round.
const THINKING_TAG: &[u8] = b"thinking\0";
const REDACTED_TAG: &[u8] = b"redacted_thinking\0";
/// Bytes of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

fn mac(domain: &[u8], content: &[u8]) -> HmacSha256 {
    // HMAC accepts a key of any length, so `new_from_slice` cannot fail here.
    let mut mac = HmacSha256::new_from_slice(KEY).unwrap_or_else(|_| unreachable!());
    mac.update(domain);
    mac.update(content);
    mac
}

/// The `signature` of a thinking block with this text.
pub fn sign(thinking: &str) -> String {
    STANDARD.encode(
        mac(THINKING_TAG, thinking.as_bytes())
            .finalize()
            .into_bytes(),
    )
}

/// Whether `signature` is exactly the one [`sign`] gives for `thinking`.
pub fn verify(thinking: &str, signature: &str) -> bool {
    STANDARD.decode(signature).is_ok_and(|tag| {
        mac(THINKING_TAG, thinking.as_bytes())
            .verify_slice(&tag)
            .is_ok()
    })
}

/// The `data` of a redacted thinking block hiding this text: tag then text, base64.
pub fn redact(thinking: &str) -> String {
    let mut data = mac(REDACTED_TAG, thinking.as_bytes())
        .finalize()
        .into_bytes()
        .to_vec();
    data.extend_from_slice(thinking.as_bytes());
    STANDARD.encode(data)
}

/// Whether `data` is exactly what [`redact`] handed out for some text.
pub fn verify_redacted(data: &str) -> bool {
    let Ok(bytes) = STANDARD.decode(data) else {
        return false;
    };
    bytes.len() >= TAG_LEN
        && mac(REDACTED_TAG, &bytes[TAG_LEN..])
            .verify_slice(&bytes[..TAG_LEN])
            .is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_signature_verifies_only_its_own_text() {
        let signature = sign("step one");
        assert!(verify("step one", &signature));
        assert!(!verify("step one ", &signature));
        assert!(!verify("step two", &signature));
        assert_eq!(signature, sign("step one"), "deterministic");
    }

    #[test]
    fn any_changed_byte_of_a_signature_fails() {
        let signature = sign("step one");
        for at in 0..signature.len() {
            let mut bytes = signature.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap();
            assert!(!verify("step one", &altered), "altered at {at}");
        }
        assert!(!verify("step one", "not base64!"));
        assert!(!verify("step one", ""));
    }

    #[test]
    fn redacted_data_verifies_and_is_not_a_signature() {
        let data = redact("hidden");
        assert!(verify_redacted(&data));
        let mut altered = STANDARD.decode(&data).unwrap();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(!verify_redacted(&STANDARD.encode(altered)));
        assert!(!verify_redacted(&sign("hidden")));
        assert!(!verify_redacted("AAAA"));
    }
}
