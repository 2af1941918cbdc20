//! An incremental server-sent-events decoder for upstream streams (Anthropic API and
//! OpenAI-compatible servers), fed bytes as they arrive, split anywhere.
//!
//! Follows the WHATWG event-stream rules the providers rely on: lines end in `\n`, `\r\n` or
//! `\r`; a blank line dispatches the event; `data:` lines join with `\n`; one space after the
//! colon is dropped; `:` comment lines and other fields are ignored. Bytes are buffered until a
//! line is complete, so a UTF-8 character or a `\r\n` split across reads decodes whole.
//!
//! Unlike a browser, the decoder keeps no unbounded buffer (an event past [`MAX_EVENT_BYTES`] is an
//! error) and dispatches, at the end of input, an event whose lines all ended but which no blank
//! line followed: servers that close right after `data: [DONE]\n` sent a whole answer.

/// The most bytes one event (its line being read and its data so far) may hold: a stream event is
/// a delta, far smaller; the cap equals the default `server.max_response_body_size`.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// An event grew past the cap before it ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an upstream server-sent event is larger than {0} bytes")]
pub struct EventTooLarge(pub usize);

/// One dispatched event: its `event:` name (empty when the server sent none) and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

#[derive(Debug)]
pub struct SseDecoder {
    max_event: usize,
    /// Bytes of the line being read.
    line: Vec<u8>,
    /// The last byte seen was `\r`: a `\n` right after it ends no second line.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::with_cap(MAX_EVENT_BYTES)
    }
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder whose events may hold at most `max_event` bytes.
    pub fn with_cap(max_event: usize) -> Self {
        Self {
            max_event,
            line: Vec::new(),
            after_cr: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
        }
    }

    /// Feeds the next bytes; returns the events they completed, in order, or an error once an
    /// event outgrows the cap (the decoder is then of no further use).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, EventTooLarge> {
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
            if self.line.len() + self.data.len() > self.max_event {
                return Err(EventTooLarge(self.max_event));
            }
        }
        Ok(events)
    }

    /// At the end of input: the event whose lines all ended though no blank line followed.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if self.line.is_empty() {
            self.dispatch()
        } else {
            None
        }
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
        assert_eq!(d.feed(STREAM.as_bytes()).unwrap(), expected());
        assert!(!d.pending());
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn cut_mid_event_is_pending() {
        let mut d = SseDecoder::new();
        assert!(d.feed(b"event: x\ndata: {\"partial\"").unwrap().is_empty());
        assert!(d.pending());
        assert_eq!(d.finish(), None, "a line cut short is no whole event");
        assert_eq!(d.feed(b":1}\n\n").unwrap()[0].data, "{\"partial\":1}");
    }

    #[test]
    fn an_event_whose_lines_ended_is_dispatched_at_the_end_of_input() {
        let mut d = SseDecoder::new();
        assert!(d.feed(b"data: {\"a\":1}\n\ndata: [DONE]\n").unwrap().len() == 1);
        assert!(d.pending());
        let last = d.finish().unwrap();
        assert_eq!((last.event.as_str(), last.data.as_str()), ("", "[DONE]"));
        assert!(!d.pending());
        let mut d = SseDecoder::new();
        d.feed(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\r\n")
            .unwrap();
        assert_eq!(d.finish().unwrap().event, "message_stop");
    }

    #[test]
    fn an_event_past_the_cap_is_an_error_whether_one_long_line_or_many() {
        let mut d = SseDecoder::with_cap(64);
        assert!(d.feed(&[b'x'; 60]).unwrap().is_empty());
        assert_eq!(d.feed(b"xxxxx"), Err(EventTooLarge(64)));
        let mut d = SseDecoder::with_cap(64);
        // Each line is short; the data they join into is not.
        let lines = b"data: 0123456789\n".repeat(6);
        assert_eq!(d.feed(&lines), Err(EventTooLarge(64)));
        // Events under the cap, however many, pass.
        let mut d = SseDecoder::with_cap(64);
        let events = b"data: 0123456789\n\n".repeat(100);
        assert_eq!(d.feed(&events).unwrap().len(), 100);
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
                got.extend(d.feed(&bytes[from..cut]).unwrap());
                from = cut;
            }
            prop_assert_eq!(got, expected());
        }
    }
}
