//! AWS event-stream (`application/vnd.amazon.eventstream`) framing on `aws-smithy-eventstream`.
//!
//! The crate parses headers and payloads; this wrapper adds what a proxy needs on top: it checks
//! the prelude as soon as 12 bytes are in, so an impossible length is rejected at once instead of
//! buffering towards it, keeps its buffer bounded, and tells "need more bytes" from "corrupt" with a
//! typed error.

use aws_smithy_eventstream::frame::{read_message_from, write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Buf, Bytes, BytesMut};

const PRELUDE_LEN: usize = 12;
const CRC_LEN: usize = 4;
/// Smallest frame: prelude plus message CRC, no headers, no payload.
const MIN_FRAME_LEN: usize = PRELUDE_LEN + CRC_LEN;
/// Bedrock caps a payload at 16 MiB; headers and slack stay well under 8 MiB more.
pub const MAX_FRAME_LEN: usize = 24 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("event-stream prelude checksum mismatch")]
    PreludeChecksum,
    #[error("event-stream message checksum mismatch")]
    MessageChecksum,
    #[error("event-stream frame length {0} is impossible")]
    BadLength(u32),
    #[error("event-stream frame of {0} bytes exceeds the 24 MiB limit")]
    TooLarge(u32),
    #[error("event-stream headers are malformed: {0}")]
    BadHeaders(String),
    #[error("event stream ended inside a frame ({0} bytes left over)")]
    Truncated(usize),
}

/// What one event-stream message is, read from its `:message-type` and friends.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `:message-type: event` with its `:event-type`.
    Event { event_type: String, payload: Bytes },
    /// `:message-type: exception` with its `:exception-type` (lowerCamel in Bedrock streams).
    Exception {
        exception_type: String,
        payload: Bytes,
    },
    /// `:message-type: error` with `:error-code` / `:error-message`.
    Error { code: String, message: String },
}

impl Frame {
    fn from_message(message: &Message) -> Self {
        let header = |name: &str| {
            message
                .headers()
                .iter()
                .find(|h| h.name().as_str() == name)
                .and_then(|h| h.value().as_string().ok())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default()
        };
        match header(":message-type").as_str() {
            "exception" => Self::Exception {
                exception_type: header(":exception-type"),
                payload: message.payload().clone(),
            },
            "error" => Self::Error {
                code: header(":error-code"),
                message: header(":error-message"),
            },
            _ => Self::Event {
                event_type: header(":event-type"),
                payload: message.payload().clone(),
            },
        }
    }
}

/// A decoded frame together with its exact bytes, so a proxy can forward what it checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RawFrame {
    pub bytes: Bytes,
    pub frame: Frame,
}

/// Incremental decoder: feed bytes as they arrive, take whole frames out.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: BytesMut,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<RawFrame>, FrameError> {
        if self.buffer.len() < PRELUDE_LEN {
            return Ok(None);
        }
        let total_len = read_u32(&self.buffer[0..4]);
        let prelude_crc = read_u32(&self.buffer[8..12]);
        if crc32fast::hash(&self.buffer[0..8]) != prelude_crc {
            return Err(FrameError::PreludeChecksum);
        }
        let len = total_len as usize;
        if len < MIN_FRAME_LEN {
            return Err(FrameError::BadLength(total_len));
        }
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge(total_len));
        }
        if self.buffer.len() < len {
            return Ok(None);
        }
        let frame = self.buffer.split_to(len).freeze();
        let message_crc = read_u32(&frame[len - CRC_LEN..]);
        if crc32fast::hash(&frame[..len - CRC_LEN]) != message_crc {
            return Err(FrameError::MessageChecksum);
        }
        let message =
            read_message_from(frame.chunk()).map_err(|e| FrameError::BadHeaders(e.to_string()))?;
        Ok(Some(RawFrame {
            frame: Frame::from_message(&message),
            bytes: frame,
        }))
    }

    /// Bytes held waiting for the rest of a frame.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Call at end of stream: leftover bytes mean the upstream cut a frame short.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.buffer.len() {
            0 => Ok(()),
            n => Err(FrameError::Truncated(n)),
        }
    }
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(word)
}

/// An exception frame as Bedrock sends one mid-stream, for errors the gateway must report after the
/// response head has gone out.
pub fn exception_frame(exception_type: &str, message: &str) -> Bytes {
    let payload = serde_json::json!({ "message": message }).to_string();
    let message = Message::new(payload)
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("exception".into()),
        ))
        .add_header(Header::new(
            ":exception-type",
            HeaderValue::String(exception_type.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ));
    let mut out = Vec::new();
    // Only a header or payload over the format's limits fails to encode; ours are tiny.
    let _ = write_message_to(&message, &mut out);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        crate::fixtures_dir().join("eventstream")
    }

    fn manifest() -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(fixtures().join("manifest.json")).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["files"]
            .as_array()
            .cloned()
            .expect("manifest lists files")
    }

    fn decode_all(bytes: &[u8], chunk: usize) -> Result<Vec<RawFrame>, FrameError> {
        let mut decoder = Decoder::new();
        let mut frames = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            decoder.push(piece);
            while let Some(frame) = decoder.next_frame()? {
                frames.push(frame);
            }
        }
        decoder.finish()?;
        Ok(frames)
    }

    #[test]
    fn valid_fixture_frames_decode_identically_at_every_split() {
        let mut checked = 0;
        for entry in manifest() {
            if entry["valid"] != serde_json::Value::Bool(true) {
                continue;
            }
            let path = fixtures().join(entry["file"].as_str().unwrap());
            let bytes = std::fs::read(&path).unwrap();
            let whole = decode_all(&bytes, bytes.len()).unwrap();
            assert_eq!(whole.len(), 1, "{}", path.display());
            for split in 1..bytes.len() {
                let mut decoder = Decoder::new();
                decoder.push(&bytes[..split]);
                assert_eq!(decoder.next_frame(), Ok(None), "split {split}");
                decoder.push(&bytes[split..]);
                assert_eq!(decoder.next_frame().unwrap().as_ref(), whole.first());
                decoder.finish().unwrap();
            }
            checked += 1;
        }
        assert_eq!(checked, 8);
    }

    #[test]
    fn corrupt_fixture_frames_are_rejected_with_no_partial_event() {
        let mut checked = 0;
        for entry in manifest() {
            if entry["valid"] != serde_json::Value::Bool(false) {
                continue;
            }
            let path = fixtures().join(entry["file"].as_str().unwrap());
            let bytes = std::fs::read(&path).unwrap();
            for chunk in [1, 7, bytes.len()] {
                assert!(
                    decode_all(&bytes, chunk).is_err(),
                    "{} decoded",
                    path.display()
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 12);
    }

    #[test]
    fn typed_errors_for_each_kind_of_corruption() {
        let good = exception_frame("throttlingException", "slow down");
        let mut prelude = good.to_vec();
        prelude[1] ^= 0xff;
        assert_eq!(
            decode_all(&prelude, 64).unwrap_err(),
            FrameError::PreludeChecksum
        );
        let mut body = good.to_vec();
        let mid = body.len() / 2;
        body[mid] ^= 0x01;
        assert_eq!(
            decode_all(&body, 64).unwrap_err(),
            FrameError::MessageChecksum
        );
        assert_eq!(
            decode_all(&frame_with_len(8), 64).unwrap_err(),
            FrameError::BadLength(8)
        );
        assert_eq!(
            decode_all(&frame_with_len(30 << 20), 64).unwrap_err(),
            FrameError::TooLarge(30 << 20)
        );
        assert_eq!(
            decode_all(&good[..good.len() - 3], 64).unwrap_err(),
            FrameError::Truncated(good.len() - 3)
        );
    }

    /// A prelude with a valid checksum that announces `len` bytes.
    fn frame_with_len(len: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        bytes
    }

    #[test]
    fn exception_frame_round_trips() {
        let frame = exception_frame("modelStreamErrorException", "boom");
        let frames = decode_all(&frame, 5).unwrap();
        assert_eq!(frames[0].bytes, frame);
        assert_eq!(
            frames.into_iter().map(|f| f.frame).collect::<Vec<_>>(),
            vec![Frame::Exception {
                exception_type: "modelStreamErrorException".into(),
                payload: Bytes::from_static(br#"{"message":"boom"}"#),
            }]
        );
    }
}
