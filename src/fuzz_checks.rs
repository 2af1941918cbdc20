//! The properties the fuzz targets (`tests/fuzz`) check on arbitrary input, shared with the corpus
//! replay in `tests/fuzz_corpus.rs` so every saved input stays an ordinary `cargo test` case.
//! Each function panics only when a property is broken.

use crate::eventstream::{Decoder, FrameError, MAX_FRAME_LEN, RawFrame};

/// The event-stream decoder, fed `data` in the chunk sizes its first byte picks: it never panics,
/// never buffers more than one frame's worth, decodes exactly what it decodes from the whole input
/// at once (the same frames, then the same error or end), and its frames are the input's own bytes
/// in order, since the gateway forwards those bytes.
pub fn eventstream_decoder(data: &[u8]) {
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let in_pieces = decode_in_pieces(data, chunk);
    let at_once = decode_in_pieces(data, data.len().max(1));
    assert_eq!(
        in_pieces, at_once,
        "{chunk}-byte pieces decode differently from the whole input"
    );
    let forwarded: Vec<u8> = at_once
        .0
        .iter()
        .flat_map(|raw| raw.bytes.to_vec())
        .collect();
    assert!(
        data.starts_with(&forwarded),
        "decoded frames are not the input's leading bytes"
    );
}

/// The frames decoded from `data` pushed `chunk` bytes at a time, then the first error or
/// `finish`'s verdict: a consumer stops at the first error.
fn decode_in_pieces(data: &[u8], chunk: usize) -> (Vec<RawFrame>, Result<(), FrameError>) {
    let mut decoder = Decoder::new();
    let mut frames = Vec::new();
    for piece in data.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(raw)) => frames.push(raw),
                Ok(None) => break,
                Err(error) => return (frames, Err(error)),
            }
        }
        assert!(
            decoder.buffered() <= MAX_FRAME_LEN + chunk,
            "decoder buffered {} bytes",
            decoder.buffered()
        );
    }
    let end = decoder.finish();
    (frames, end)
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
