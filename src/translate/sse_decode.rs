//! An incremental server-sent-events decoder for upstream streams (Anthropic API and
//! OpenAI-compatible servers), fed bytes as they arrive, split anywhere.
//!
//! Follows the WHATWG event-stream rules the providers rely on: lines end in `\n`, `\r\n` or
//! `\r`; a blank line dispatches the event; `data:` lines join with `\n`; one space after the
//! colon is dropped; `:` comment lines and other fields are ignored. Bytes are buffered until a
//! line is complete, so a UTF-8 character or a `\r\n` split across reads decodes whole.

/// One dispatched event: its `event:` name (empty when the server sent none) and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of the line being read.
    line: Vec<u8>,
    /// The last byte seen was `\r`: a `\n` right after it ends no second line.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes; returns the events they completed, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    if let Some(event) = self.end_line() {
                        events.push(event);
                    }
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
        events
    }

    /// Whether bytes of an unfinished event are buffered (a stream cut mid-event).
    pub fn pending(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }

    fn end_line(&mut self) -> Option<SseEvent> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            return self.dispatch();
        }
        let text = String::from_utf8_lossy(&line);
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // Comments (`: ping`), `id`, `retry` and unknown fields carry nothing to translate.
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    const STREAM: &str = ": hello\r\nevent: message_start\r\ndata: {\"a\":\"é\"}\r\n\r\n\
        event: ping\ndata: {}\n\nid: 7\nretry: 10\ndata: line1\ndata:line2\n\n\
        event: lonely\n\ndata: [DONE]\r\r";

    fn expected() -> Vec<SseEvent> {
        let ev = |event: &str, data: &str| SseEvent {
            event: event.into(),
            data: data.into(),
        };
        vec![
            ev("message_start", "{\"a\":\"é\"}"),
            ev("ping", "{}"),
            ev("", "line1\nline2"),
            ev("", "[DONE]"),
        ]
    }

    #[test]
    fn whole_stream() {
        let mut d = SseDecoder::new();
        assert_eq!(d.feed(STREAM.as_bytes()), expected());
        assert!(!d.pending());
    }

    #[test]
    fn cut_mid_event_is_pending() {
        let mut d = SseDecoder::new();
        assert!(d.feed(b"event: x\ndata: {\"partial\"").is_empty());
        assert!(d.pending());
        assert_eq!(d.feed(b":1}\n\n")[0].data, "{\"partial\":1}");
    }

    proptest! {
        #[test]
        fn any_split_decodes_the_same(cuts in proptest::collection::vec(0usize..=STREAM.len(), 0..8)) {
            let bytes = STREAM.as_bytes();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut d = SseDecoder::new();
            let mut got = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                got.extend(d.feed(&bytes[from..cut]));
                from = cut;
            }
            prop_assert_eq!(got, expected());
        }
    }
}
