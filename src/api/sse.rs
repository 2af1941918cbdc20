//! Streams an upstream event stream to the client as server-sent events, in the client's format:
//! the framing, flushing and error endings are the same for OpenAI and Anthropic streams, only
//! the translation of each event differs. A stream already in the client's format (the Anthropic
//! API's) passes through as it came.

use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use futures_util::stream;

use super::openai::success_head;
use super::reply::{Reply, stream_end};
use crate::config::Provider;
use crate::eventstream::Frame;
use crate::observe::Obs;
use crate::shutdown::AbortSignal;
use crate::translate::chat_messages_stream::MessagesChatStream;
use crate::translate::{self, ChatStreamTranslator, TranslateError, messages_stream};
use crate::upstream::forward::Delivered;
use crate::upstream::sse_stream::{Dialect, SseItem, SseReader};
use crate::upstream::stream::{FrameReader, StreamFailure, StreamItem};

/// One stream's translation from upstream events to the client's SSE records.
pub(crate) trait EventTranslator {
    /// Appends the records for one upstream event; on error nothing is appended.
    fn on_event(
        &mut self,
        event_type: &str,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError>;
    /// Appends the error record for a Bedrock exception (or a broken stream); the stream ends.
    fn on_exception(&mut self, exception_type: &str, message: &str, out: &mut Vec<u8>);
    /// Appends what ends a complete stream.
    fn finish(&mut self, out: &mut Vec<u8>);
}

impl EventTranslator for ChatStreamTranslator {
    fn on_event(
        &mut self,
        event_type: &str,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        Self::on_event(self, event_type, payload, out).map(|_| ())
    }

    fn on_exception(&mut self, exception_type: &str, message: &str, out: &mut Vec<u8>) {
        Self::on_exception(self, exception_type, message, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        Self::finish(self, out);
    }
}

/// The head of a streamed answer; the request's clock now runs for a stream.
fn stream_head(delivered: &Delivered, obs: &Obs) -> (HttpResponseBuilder, Instant) {
    let mut builder = success_head(delivered);
    builder
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"));
    obs.streaming_from(delivered.sent_at);
    (builder, delivered.sent_at)
}

/// Translates upstream frames to SSE as each arrives; every upstream event is flushed at once.
/// An upstream exception, break or timeout becomes the format's error record, then the stream
/// ends (for OpenAI without `[DONE]`, so clients cannot mistake it for a complete answer).
fn sse_response<T: EventTranslator + 'static>(
    delivered: Delivered,
    read_timeout: Duration,
    translator: T,
    obs: Rc<Obs>,
    abort: AbortSignal,
) -> HttpResponse {
    let (mut builder, sent_at) = stream_head(&delivered, &obs);
    let reader = FrameReader::new(delivered.response, delivered.lease, read_timeout, abort);
    let state = Some((reader, translator, obs));
    let body = stream::unfold(state, move |mut state| async move {
        // Borrowed in place, not moved out: a moved-out copy would be a second slot for the whole
        // state in this future, which every open stream holds.
        let (reader, translator, obs) = state.as_mut()?;
        let mut out = Vec::new();
        loop {
            let item = reader.next().await;
            match &item {
                Some(StreamItem::Frame(_)) => obs.first_token(sent_at.elapsed()),
                Some(StreamItem::Failed(_)) => {
                    obs.set_error_kind("stream_error");
                    stream_end(reader.upstream(), obs, sent_at);
                }
                None => stream_end(reader.upstream(), obs, sent_at),
            }
            match item {
                Some(StreamItem::Frame(raw)) => match raw.frame {
                    Frame::Event {
                        event_type,
                        payload,
                    } => {
                        if let Err(e) = translator.on_event(&event_type, &payload, &mut out) {
                            obs.set_error_kind("stream_error");
                            stream_end(reader.upstream(), obs, sent_at);
                            translator.on_exception(
                                "internalServerException",
                                &e.to_string(),
                                &mut out,
                            );
                            return Some((Ok::<Bytes, actix_web::Error>(Bytes::from(out)), None));
                        }
                    }
                    Frame::Exception {
                        exception_type,
                        payload,
                    } => {
                        let message = translate::bedrock_error_message(&payload)
                            .unwrap_or_else(|| exception_type.clone());
                        translator.on_exception(&exception_type, &message, &mut out);
                        obs.set_error_kind("stream_error");
                        stream_end(reader.upstream(), obs, sent_at);
                        return Some((Ok(Bytes::from(out)), None));
                    }
                    Frame::Error { code, message } => {
                        translator.on_exception(&code, &message, &mut out);
                        obs.set_error_kind("stream_error");
                        stream_end(reader.upstream(), obs, sent_at);
                        return Some((Ok(Bytes::from(out)), None));
                    }
                },
                Some(StreamItem::Failed(StreamFailure::Broken(m) | StreamFailure::Corrupt(m))) => {
                    translator.on_exception("internalServerException", &m, &mut out);
                    return Some((Ok(Bytes::from(out)), None));
                }
                None => {
                    translator.finish(&mut out);
                    return Some((Ok(Bytes::from(out)), None));
                }
            }
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), state));
            }
        }
    });
    builder.streaming(body)
}

/// Streams the delivered answer to the client through `translator`, read as its provider
/// streams: Bedrock's event stream, or the Anthropic API's or an OpenAI-compatible server's SSE.
pub(crate) fn stream_reply<T: EventTranslator + 'static>(
    delivered: Delivered,
    read_timeout: Duration,
    translator: T,
    obs: &Rc<Obs>,
    abort: AbortSignal,
) -> Reply {
    let obs = Rc::clone(obs);
    let dialect = match delivered.lease.target().config.provider.provider() {
        Provider::Bedrock => {
            return Reply::Stream(sse_response(
                delivered,
                read_timeout,
                translator,
                obs,
                abort,
            ));
        }
        Provider::Anthropic => Dialect::Anthropic,
        Provider::OpenAi | Provider::Azure => Dialect::OpenAi,
    };
    Reply::Stream(sse_relay(
        delivered,
        dialect,
        read_timeout,
        translator,
        obs,
        abort,
    ))
}

/// Relays a server-sent-event stream (the Anthropic API's or an OpenAI-compatible server's) to
/// the client as it arrives, each event through `translator`; the reader takes usage on the way.
/// A break, timeout or bad event appends the client format's error record, then the stream ends.
fn sse_relay<T: EventTranslator + 'static>(
    delivered: Delivered,
    dialect: Dialect,
    read_timeout: Duration,
    translator: T,
    obs: Rc<Obs>,
    abort: AbortSignal,
) -> HttpResponse {
    let (mut builder, sent_at) = stream_head(&delivered, &obs);
    let reader = SseReader::new(
        dialect,
        delivered.response,
        delivered.lease,
        read_timeout,
        abort,
    );
    let body = stream::unfold(
        Some((reader, translator, obs)),
        move |mut state| async move {
            let (reader, translator, obs) = state.as_mut()?;
            let mut out = Vec::new();
            loop {
                let events = match reader.next().await {
                    Some(SseItem::Events(events)) => events,
                    Some(SseItem::Failed(StreamFailure::Broken(m) | StreamFailure::Corrupt(m))) => {
                        obs.set_error_kind("stream_error");
                        stream_end(reader.upstream(), obs, sent_at);
                        translator.on_exception("internalServerException", &m, &mut out);
                        return Some((Ok::<Bytes, actix_web::Error>(Bytes::from(out)), None));
                    }
                    None => {
                        stream_end(reader.upstream(), obs, sent_at);
                        translator.finish(&mut out);
                        return Some((Ok(Bytes::from(out)), None));
                    }
                };
                for event in events {
                    if let Err(e) =
                        translator.on_event(&event.event, event.data.as_bytes(), &mut out)
                    {
                        obs.set_error_kind("stream_error");
                        stream_end(reader.upstream(), obs, sent_at);
                        translator.on_exception(
                            "internalServerException",
                            &e.to_string(),
                            &mut out,
                        );
                        return Some((Ok(Bytes::from(out)), None));
                    }
                }
                if !out.is_empty() {
                    obs.first_token(sent_at.elapsed());
                    return Some((Ok(Bytes::from(out)), state));
                }
            }
        },
    );
    builder.streaming(body)
}

/// The Anthropic API's events to an OpenAI client, as chat chunks.
impl EventTranslator for MessagesChatStream {
    fn on_event(
        &mut self,
        event_type: &str,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        Self::on_event(self, event_type, &String::from_utf8_lossy(payload), out).map(|_| ())
    }

    fn on_exception(&mut self, exception_type: &str, message: &str, out: &mut Vec<u8>) {
        Self::on_exception(self, exception_type, message, out);
    }

    /// `[DONE]` only after a complete answer: an errored stream ends without it.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.failed() {
            Self::finish(self, out);
        }
    }
}

/// The Anthropic API's events to an Anthropic client: as they came.
pub(crate) struct AnthropicRelay;

impl EventTranslator for AnthropicRelay {
    fn on_event(
        &mut self,
        event_type: &str,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        if event_type.is_empty() {
            translate::sse::write_data(out, payload);
        } else {
            translate::sse::write_event(out, event_type, payload);
        }
        Ok(())
    }

    fn on_exception(&mut self, exception_type: &str, message: &str, out: &mut Vec<u8>) {
        messages_stream::on_exception(exception_type, message, out);
    }

    /// The upstream's own `message_stop` ended it.
    fn finish(&mut self, _: &mut Vec<u8>) {}
}

/// An OpenAI-compatible server's chunks to an OpenAI client: as they came, but for the usage
/// chunk the gateway asked for on its own account (to count tokens) when the client did not.
pub(crate) struct ChatRelay {
    pub include_usage: bool,
    /// For the error record of a broken stream.
    pub errors: ChatStreamTranslator,
}

impl EventTranslator for ChatRelay {
    fn on_event(
        &mut self,
        _: &str,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        if !self.include_usage && is_usage_only_chunk(payload) {
            return Ok(());
        }
        translate::sse::write_data(out, payload);
        Ok(())
    }

    fn on_exception(&mut self, exception_type: &str, message: &str, out: &mut Vec<u8>) {
        self.errors.on_exception(exception_type, message, out);
    }

    /// The upstream's own `[DONE]` ended it.
    fn finish(&mut self, _: &mut Vec<u8>) {}
}

/// The chunk `stream_options.include_usage` adds: no choices, only usage.
fn is_usage_only_chunk(payload: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Chunk {
        choices: Vec<serde::de::IgnoredAny>,
        usage: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Chunk>(payload)
        .is_ok_and(|c| c.choices.is_empty() && c.usage.is_some())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn relayed(relay: &mut impl EventTranslator, events: &[(&str, &str)]) -> String {
        let mut out = Vec::new();
        for (name, data) in events {
            relay.on_event(name, data.as_bytes(), &mut out).unwrap();
        }
        relay.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn anthropic_events_keep_their_names_and_unnamed_ones_stay_unnamed() {
        let out = relayed(
            &mut AnthropicRelay,
            &[
                ("message_start", r#"{"type":"message_start"}"#),
                ("", "{\"a\":\n1}"),
            ],
        );
        assert_eq!(
            out,
            "event: message_start\ndata: {\"type\":\"message_start\"}\n\ndata: {\"a\": 1}\n\n"
        );
    }

    #[test]
    fn the_usage_chunk_the_gateway_asked_for_reaches_only_a_client_that_asked() {
        let events = [
            ("", r#"{"choices":[{"delta":{"content":"hi"}}]}"#),
            (
                "",
                r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
            ),
            ("", "[DONE]"),
        ];
        let relay = |include_usage| ChatRelay {
            include_usage,
            errors: ChatStreamTranslator::new("m".into(), "id".into(), 0, include_usage, None),
        };
        let hidden = relayed(&mut relay(false), &events);
        assert!(!hidden.contains("usage"), "{hidden}");
        assert!(hidden.ends_with("data: [DONE]\n\n"), "{hidden}");
        assert_eq!(hidden.matches("data: ").count(), 2);
        let shown = relayed(&mut relay(true), &events);
        assert_eq!(shown.matches("data: ").count(), 3);
        assert!(shown.contains(r#""completion_tokens":1"#), "{shown}");
    }
}
