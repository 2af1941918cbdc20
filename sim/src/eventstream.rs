//! AWS event-stream frame encoder, written from the format description rather than shared with the
//! gateway's decoder, so the two check each other.
//!
//! Frame: total length (u32) | headers length (u32) | prelude CRC32 | headers | payload | message CRC32,
//! all big-endian; a header is name length (u8) | name | value type (u8) | value. Only string values
//! (type 7, u16 length) are ever sent by Bedrock Runtime, so only those are encoded.

use bytes::{BufMut, Bytes, BytesMut};

const PRELUDE_LEN: usize = 12;
const CRC_LEN: usize = 4;
const STRING_TYPE: u8 = 7;

pub fn encode_frame(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let headers_len: usize = headers
        .iter()
        .map(|(name, value)| 1 + name.len() + 1 + 2 + value.len())
        .sum();
    let total_len = PRELUDE_LEN + headers_len + payload.len() + CRC_LEN;
    let mut buf = BytesMut::with_capacity(total_len);
    // Lengths fit: Bedrock frames are far below 4 GiB and header names and values below 64 KiB.
    buf.put_u32(total_len as u32);
    buf.put_u32(headers_len as u32);
    let prelude_crc = crc32fast::hash(&buf[..8]);
    buf.put_u32(prelude_crc);
    for (name, value) in headers {
        buf.put_u8(name.len() as u8);
        buf.put_slice(name.as_bytes());
        buf.put_u8(STRING_TYPE);
        buf.put_u16(value.len() as u16);
        buf.put_slice(value.as_bytes());
    }
    buf.put_slice(payload);
    let message_crc = crc32fast::hash(&buf);
    buf.put_u32(message_crc);
    buf.freeze()
}

/// A modelled stream event (`:message-type: event`) carrying a JSON payload.
pub fn event_frame(event_type: &str, payload: &serde_json::Value) -> Bytes {
    encode_frame(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// A modelled exception sent in place of the next event, which ends the stream.
pub fn exception_frame(exception_type: &str, message: &str) -> Bytes {
    encode_frame(
        &[
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        serde_json::json!({ "message": message })
            .to_string()
            .as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = crate::fixtures_dir().join("eventstream").join(name);
        std::fs::read(path).unwrap()
    }

    #[test]
    fn matches_sdk_go_frames_byte_for_byte() {
        let payload = b"{'foo':'bar'}";
        assert_eq!(
            encode_frame(&[], payload),
            fixture("aws-sdk-go/encoded/positive/payload_no_headers")
        );
        assert_eq!(
            encode_frame(&[("content-type", "application/json")], payload),
            fixture("aws-sdk-go/encoded/positive/payload_one_str_header")
        );
        assert_eq!(
            encode_frame(&[], b""),
            fixture("aws-sdk-go/encoded/positive/empty_message")
        );
    }

    #[test]
    fn matches_smithy_frame_without_headers() {
        assert_eq!(
            encode_frame(&[], b"another test payload"),
            fixture("smithy-rs/valid_no_headers")
        );
    }

    #[test]
    fn prelude_and_message_crcs_are_those_of_the_fixture() {
        let frame = encode_frame(&[("content-type", "application/json")], b"{'foo':'bar'}");
        let crc_at = |at: usize| i32::from_be_bytes(frame[at..at + 4].try_into().unwrap());
        assert_eq!(crc_at(8), 134_054_806);
        assert_eq!(crc_at(frame.len() - 4), -1_919_153_999);
    }

    #[test]
    fn event_frame_carries_the_three_bedrock_headers() {
        let frame = event_frame(
            "messageStop",
            &serde_json::json!({"stopReason": "end_turn"}),
        );
        let text = String::from_utf8_lossy(&frame);
        for needle in [
            ":event-type",
            "messageStop",
            ":message-type",
            "event",
            "application/json",
        ] {
            assert!(text.contains(needle), "{needle} missing");
        }
        assert_eq!(
            u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
            frame.len()
        );
    }
}
