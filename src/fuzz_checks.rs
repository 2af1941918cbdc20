//! The properties the fuzz targets (`tests/fuzz`) check on arbitrary input, shared with the corpus
//! replay in `tests/fuzz_corpus.rs` so every saved input stays an ordinary `cargo test` case.
//! Each function panics only when a property is broken.

use crate::eventstream::{Decoder, MAX_FRAME_LEN};

/// The event-stream decoder, fed `data` in the chunk sizes its first byte picks: it never
/// panics, never yields a frame after an error, and never buffers more than one frame's worth.
pub fn eventstream_decoder(data: &[u8]) {
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut decoder = Decoder::new();
    let mut failed = false;
    for piece in data.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(_)) => assert!(!failed, "a frame after a decode error"),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            return;
        }
        assert!(
            decoder.buffered() <= MAX_FRAME_LEN + chunk,
            "decoder buffered {} bytes",
            decoder.buffered()
        );
    }
    let _ = decoder.finish();
}

/// The OpenAI chat request parser: any bytes give a translated request or a typed error with a
/// 4xx/5xx status, never a panic; a translated request's Converse body is valid JSON. Checked for
/// grammar only (`IgnoredAny`): pass-through fields keep the client's numbers verbatim, and JSON
/// allows numbers (`1E999`) that no f64 holds.
pub fn openai_chat_request(data: &[u8]) {
    match crate::translate::chat_request(data) {
        Ok(request) => {
            let parsed = serde_json::from_slice::<serde::de::IgnoredAny>(&request.converse_body);
            assert!(parsed.is_ok(), "invalid Converse body: {parsed:?}");
        }
        Err(error) => assert!((400..600).contains(&error.status())),
    }
}
