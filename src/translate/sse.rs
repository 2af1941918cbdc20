//! Server-sent-event framing for OpenAI and Anthropic streams.
//!
//! A record is `data: <json>\n\n`. serde_json's compact writer escapes every control character
//! inside strings, so the JSON can never contain a raw line break and model text such as
//! `"\n\ndata: [DONE]"` cannot end a record early or forge one.

use serde::Serialize;

use super::error::TranslateError;

const DONE: &[u8] = b"data: [DONE]\n\n";

/// Appends one named record, `event: <name>` then `data: <json>`, as Anthropic streams do. JSON
/// text can hold a line break only as whitespace between tokens (inside strings it is escaped),
/// so line breaks are blanked rather than allowed to end the record early.
pub fn write_event(out: &mut Vec<u8>, name: &str, json: &[u8]) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
    write_data(out, json);
}

/// Appends one unnamed `data:` record holding `json`, line breaks blanked as in [`write_event`].
pub fn write_data(out: &mut Vec<u8>, json: &[u8]) {
    out.extend_from_slice(b"data: ");
    out.extend(
        json.iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\n\n");
}

/// Appends one `data:` record holding `value` as compact JSON.
pub fn write_json<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), TranslateError> {
    let start = out.len();
    out.extend_from_slice(b"data: ");
    if let Err(err) = serde_json::to_writer(&mut *out, value) {
        // Leave no half-written record behind for the caller to flush.
        out.truncate(start);
        return Err(TranslateError::upstream(format!(
            "could not encode a stream chunk: {err}"
        )));
    }
    out.extend_from_slice(b"\n\n");
    Ok(())
}

/// Appends the `[DONE]` sentinel that OpenAI clients wait for.
pub fn write_done(out: &mut Vec<u8>) {
    out.extend_from_slice(DONE);
}

/// Reads written records back, for tests of the stream translators.
#[cfg(test)]
pub(crate) mod read_back {
    #![allow(clippy::unwrap_used)]
    use serde_json::Value;

    /// `event:`/`data:` records as (name, JSON).
    pub(crate) fn named(out: &[u8]) -> Vec<(String, Value)> {
        std::str::from_utf8(out)
            .unwrap()
            .split_terminator("\n\n")
            .map(|r| {
                let (event, data) = r.split_once('\n').unwrap();
                (
                    event.strip_prefix("event: ").unwrap().to_owned(),
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
                )
            })
            .collect()
    }

    /// `data:` records as JSON, `[DONE]` as the JSON string "[DONE]"; each must be one line.
    pub(crate) fn data(out: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(out).unwrap();
        assert!(text.is_empty() || text.ends_with("\n\n"), "{text:?}");
        text.split_terminator("\n\n")
            .map(|r| {
                let json = r.strip_prefix("data: ").unwrap();
                assert!(!json.contains('\n') && !json.contains('\r'));
                if json == "[DONE]" {
                    Value::from(json)
                } else {
                    serde_json::from_str(json).unwrap()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn framing_survives_hostile_text() {
        let mut out = Vec::new();
        let text = "a\n\nb\rc\r\ndata: [DONE]\n\nevent: x\u{2028}";
        write_json(&mut out, &serde_json::json!({ "t": text })).unwrap();
        let s = std::str::from_utf8(&out).unwrap();
        assert!(s.starts_with("data: "));
        assert!(s.ends_with("\n\n"));
        let inner = &s["data: ".len()..s.len() - 2];
        assert!(!inner.contains('\n') && !inner.contains('\r'));
        let v: serde_json::Value = serde_json::from_str(inner).unwrap();
        assert_eq!(v["t"], text);
    }

    #[test]
    fn named_events_keep_one_data_line() {
        let mut out = Vec::new();
        write_event(&mut out, "ping", b"{\n \"type\": \"ping\"\r\n}");
        assert_eq!(out, b"event: ping\ndata: {  \"type\": \"ping\"  }\n\n");
    }

    #[test]
    fn done_record() {
        let mut out = b"x".to_vec();
        write_done(&mut out);
        assert_eq!(out, b"xdata: [DONE]\n\n");
    }
}
