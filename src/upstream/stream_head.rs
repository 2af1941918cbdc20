//! A streamed answer's head: its events up to the first with content, read before the answer
//! counts as delivered. Under load the Anthropic API answers a stream with 200 and then an
//! `overloaded_error` event, an OpenAI-compatible server may send an error chunk, and Bedrock a
//! `throttlingException` frame, often after content-less opening events (a role-only delta,
//! `message_start`, `ping`, `messageStart`): nothing reached the client yet, so that is the
//! attempt's failure, read as the HTTP status that would have carried it, and another target may
//! serve. The bytes read go back in front of the body, so the relay decodes them as if nothing
//! had been read.

use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use awc::error::PayloadError;
use base64::Engine;
use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use serde::Deserialize;
use serde_json::Value;

use super::classify::{error_name, named_error, outcome_for_status, refuses_the_gateway};
use super::operation::Operation;
use super::sse_stream::Dialect;
use crate::backend::Outcome;
use crate::config::Provider;
use crate::eventstream::{Decoder, Frame};
use crate::shutdown::AbortSignal;
use crate::translate::openai_chat::ChunkError;
use crate::translate::sse_decode::{MAX_EVENT_BYTES, SseDecoder, SseEvent};

/// What the head of a streamed answer says.
pub(crate) enum FirstEvent {
    /// Content came first, or an error of the request itself (which no other target would
    /// answer differently, so the client sees it in the stream, as before), or no content within
    /// the read timeout or the held-bytes cap though events or bytes arrived: relay the answer.
    Relay(awc::ClientResponse),
    /// The stream opened with an error about the target (throttled, overloaded, failing, or
    /// refusing the gateway's credentials or config).
    Error(FirstError),
    /// No event came.
    NoEvent(NoEvent),
}

/// The error a stream opened with, as the error response that would have carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FirstError {
    pub status: StatusCode,
    /// Bedrock's exception name, or the Anthropic or OpenAI-compatible error `type`.
    pub error_type: String,
    /// The OpenAI-compatible error `code` (see [`named_error`]); empty otherwise.
    pub error_code: String,
    /// The error in the provider's own error-body format.
    pub body: Bytes,
}

/// Why a streamed answer had no first event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoEvent {
    /// Not the stream the operation asked for: another content type, an empty or corrupt body.
    Invalid(String),
    /// The connection broke.
    Broken(String),
    /// Not a byte within the read timeout.
    Silent,
    /// The gateway is stopping and ended the read.
    Aborted,
}

/// How an operation's answer streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Streamed {
    EventStream,
    Sse(Dialect),
}

impl Streamed {
    fn of(operation: Operation) -> Option<Self> {
        match operation {
            Operation::MessagesStream => Some(Self::Sse(Dialect::Anthropic)),
            Operation::ChatCompletionsStream | Operation::CompletionsStream => {
                Some(Self::Sse(Dialect::OpenAi))
            }
            _ if operation.is_stream() => Some(Self::EventStream),
            _ => None,
        }
    }

    const fn content_type(self) -> &'static str {
        match self {
            Self::EventStream => "application/vnd.amazon.eventstream",
            Self::Sse(_) => "text/event-stream",
        }
    }
}

/// Reads a 2xx answer to `operation` from a `provider` target up to its first event with content
/// or error, each wait and the whole read bounded by `read_timeout`, the bytes held by the SSE
/// event cap; a fired `abort` ends the read. An answer that does not stream passes as it is.
pub(crate) async fn first_event(
    response: awc::ClientResponse,
    (operation, provider): (Operation, Provider),
    read_timeout: Duration,
    abort: Option<AbortSignal>,
) -> FirstEvent {
    let Some(streamed) = Streamed::of(operation) else {
        return FirstEvent::Relay(response);
    };
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case(streamed.content_type()) {
        return FirstEvent::NoEvent(NoEvent::Invalid(format!(
            "a 2xx stream answer of content type {content_type:?}, not {}",
            streamed.content_type()
        )));
    }
    let judge = Judge { streamed, provider };
    let deadline = tokio::time::Instant::now() + read_timeout;
    let abort = async move {
        match abort {
            Some(mut abort) => abort.fired().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        head = peek(response, judge, deadline, MAX_EVENT_BYTES) => head,
        () = abort => FirstEvent::NoEvent(NoEvent::Aborted),
    }
}

/// What the stream's format and provider are, to tell an event's meaning.
#[derive(Debug, Clone, Copy)]
struct Judge {
    streamed: Streamed,
    provider: Provider,
}

/// Reads events until one decides, holding at most `max_held` bytes (then relaying, as when the
/// deadline passes after bytes came).
async fn peek(
    mut response: awc::ClientResponse,
    judge: Judge,
    deadline: tokio::time::Instant,
    max_held: usize,
) -> FirstEvent {
    let mut body = response.take_payload();
    let mut read: Vec<Bytes> = Vec::new();
    let mut held = 0usize;
    let mut decoder = Peek::new(judge.streamed);
    let mut seen_event = false;
    let ended = loop {
        let (events, ended) = match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => {
                held += chunk.len();
                let events = decoder.feed(&chunk);
                read.push(chunk);
                (events, false)
            }
            Ok(Some(Err(e))) => return FirstEvent::NoEvent(NoEvent::Broken(e.to_string())),
            // An event whose lines all ended is whole at the end of the body, as for the relay.
            Ok(None) => (decoder.finish(), true),
            // Bytes that make no content yet (SSE comments or content-less events a server sends
            // while it queues): the relay's own idle timeout takes over.
            Err(_) if !read.is_empty() => break false,
            Err(_) => return FirstEvent::NoEvent(NoEvent::Silent),
        };
        let events = match events {
            Ok(events) => events,
            Err(e) => return FirstEvent::NoEvent(NoEvent::Invalid(e)),
        };
        seen_event |= !events.is_empty();
        match events.into_iter().find_map(|event| judge.decide(event)) {
            Some(Decided::Error(error)) => return FirstEvent::Error(error),
            Some(Decided::Relay) => break ended,
            None if ended && !seen_event => {
                return FirstEvent::NoEvent(NoEvent::Invalid(
                    "the stream ended before its first event".to_owned(),
                ));
            }
            None if ended || held > max_held => break ended,
            None => {}
        }
    };
    // The bytes read first, then the rest of the body as it comes (none once it ended).
    let read = stream::iter(read.into_iter().map(Ok));
    let replayed: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = if ended {
        Box::pin(read)
    } else {
        Box::pin(read.chain(body))
    };
    FirstEvent::Relay(response.map_body(|_, _| Payload::from(replayed)))
}

/// What an event decides about the stream; none for a content-less one.
enum Decided {
    Relay,
    Error(FirstError),
}

/// The decoder of one stream format, fed until an event decides.
enum Peek {
    EventStream(Decoder),
    Sse(SseDecoder),
}

/// An event, still in its format.
enum First {
    Frame(Frame),
    Sse(SseEvent),
}

impl Peek {
    fn new(streamed: Streamed) -> Self {
        match streamed {
            Streamed::EventStream => Self::EventStream(Decoder::new()),
            Streamed::Sse(_) => Self::Sse(SseDecoder::new()),
        }
    }

    /// The events `chunk` completed, in order.
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<First>, String> {
        match self {
            Self::EventStream(decoder) => {
                decoder.push(chunk);
                let mut frames = Vec::new();
                while let Some(raw) = decoder.next_frame().map_err(|e| e.to_string())? {
                    frames.push(First::Frame(raw.frame));
                }
                Ok(frames)
            }
            Self::Sse(decoder) => decoder
                .feed(chunk)
                .map(|events| events.into_iter().map(First::Sse).collect())
                .map_err(|e| e.to_string()),
        }
    }

    /// At the end of the body: the last event, if one is whole; an error if one was cut.
    fn finish(&mut self) -> Result<Vec<First>, String> {
        match self {
            Self::EventStream(decoder) => decoder
                .finish()
                .map(|()| Vec::new())
                .map_err(|e| e.to_string()),
            Self::Sse(decoder) => match decoder.finish() {
                Some(event) => Ok(vec![First::Sse(event)]),
                None if decoder.pending() => Err("the stream ended inside an event".to_owned()),
                None => Ok(Vec::new()),
            },
        }
    }
}

impl Judge {
    /// What `event` decides: an error about the target, a relay (content, or anything not known
    /// to be content-less), or nothing yet.
    fn decide(self, event: First) -> Option<Decided> {
        let (status, error_type, body) = match (event, self.streamed) {
            (
                First::Frame(Frame::Exception {
                    exception_type,
                    payload,
                }),
                _,
            ) => {
                let name = error_name(&exception_type);
                (bedrock_status(&name), name, payload)
            }
            (First::Frame(Frame::Error { code, message }), _) => {
                let body = serde_json::json!({ "message": message }).to_string();
                (500, error_name(&code), Bytes::from(body))
            }
            (
                First::Frame(Frame::Event {
                    event_type,
                    payload,
                }),
                _,
            ) => {
                return bedrock_has_content(&event_type, &payload).then_some(Decided::Relay);
            }
            (First::Sse(event), Streamed::Sse(Dialect::Anthropic)) => {
                let Ok(AnthropicEvent { kind, error }) = serde_json::from_str(&event.data) else {
                    return Some(Decided::Relay);
                };
                match kind.as_str() {
                    "error" => {
                        let kind = error.map(|e| e.kind).unwrap_or_default();
                        (
                            anthropic_status(&kind),
                            String::new(),
                            Bytes::from(event.data),
                        )
                    }
                    kind if ANTHROPIC_CONTENT_LESS.contains(&kind) => return None,
                    _ => return Some(Decided::Relay),
                }
            }
            (First::Sse(event), _) => {
                let Ok(chunk) = serde_json::from_str::<OpenAiChunk<'_>>(&event.data) else {
                    return Some(Decided::Relay);
                };
                match chunk.error {
                    Some(error) => (error.status(), String::new(), Bytes::from(event.data)),
                    None if chunk.has_content() => return Some(Decided::Relay),
                    None => return None,
                }
            }
        };
        // The event's data is the provider's error body, named as an error answer's would be.
        let (named_type, error_code) = named_error(self.provider, status, &body);
        let error_type = if error_type.is_empty() {
            named_type
        } else {
            error_type
        };
        // An error of the request itself is the client's to see, in the stream as before; one
        // refusing the gateway's own credentials or config is not (its text may quote the key).
        let targets = outcome_for_status(status, &error_type, None) != Outcome::Neutral
            || refuses_the_gateway(self.provider, status, &error_type, &error_code);
        if !targets {
            return Some(Decided::Relay);
        }
        Some(Decided::Error(FirstError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error_type,
            error_code,
            body,
        }))
    }
}

/// Anthropic events that open a message before any content.
const ANTHROPIC_CONTENT_LESS: [&str; 2] = ["message_start", "ping"];

/// Whether a Bedrock event carries content: anything but ConverseStream's `messageStart` and, in
/// an InvokeModel stream, a `chunk` wrapping a content-less Anthropic event.
fn bedrock_has_content(event_type: &str, payload: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Chunk<'a> {
        #[serde(borrow)]
        bytes: std::borrow::Cow<'a, str>,
    }
    match event_type {
        "messageStart" => false,
        "chunk" => {
            let inner = serde_json::from_slice::<Chunk<'_>>(payload)
                .ok()
                .and_then(|chunk| {
                    base64::engine::general_purpose::STANDARD
                        .decode(chunk.bytes.as_bytes())
                        .ok()
                })
                .and_then(|inner| serde_json::from_slice::<AnthropicEvent>(&inner).ok());
            !inner.is_some_and(|event| ANTHROPIC_CONTENT_LESS.contains(&event.kind.as_str()))
        }
        _ => true,
    }
}

/// The HTTP status Bedrock gives an exception when it answers with it instead of a stream.
fn bedrock_status(name: &str) -> u16 {
    match name {
        "ThrottlingException" | "ServiceQuotaExceededException" => 429,
        "ServiceUnavailableException" | "ModelNotReadyException" => 503,
        "ModelTimeoutException" => 408,
        "ModelErrorException" | "ModelStreamErrorException" => 424,
        "ValidationException" | "ConflictException" => 400,
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException" => 403,
        "ResourceNotFoundException" => 404,
        _ => 500,
    }
}

/// The Anthropic API's HTTP status for an error type.
fn anthropic_status(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

#[derive(Deserialize)]
struct AnthropicEvent {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    error: Option<AnthropicError>,
}

#[derive(Deserialize)]
struct AnthropicError {
    #[serde(rename = "type", default)]
    kind: String,
}

/// An OpenAI-compatible chunk, read only for an error and whether it carries content.
#[derive(Deserialize)]
struct OpenAiChunk<'a> {
    #[serde(borrow, default)]
    error: Option<ChunkError<'a>>,
    /// Absent from anything but a chunk; null from some servers.
    #[serde(default)]
    choices: Option<Vec<serde_json::Map<String, Value>>>,
}

impl OpenAiChunk<'_> {
    /// Content-less is a chunk whose choices (none, as Azure's first) end nothing and say nothing
    /// but the role: a role-only delta, empty content, null fields. Any other field of a delta
    /// (text, tool calls, reasoning) or a completion's `text` is content, as is what is no chunk.
    fn has_content(&self) -> bool {
        let Some(choices) = &self.choices else {
            return true;
        };
        choices.iter().any(|choice| {
            let delta_says = choice
                .get("delta")
                .and_then(Value::as_object)
                .is_some_and(|delta| delta.iter().any(|(k, v)| k != "role" && filled(v)));
            delta_says
                || choice.get("finish_reason").is_some_and(filled)
                || choice.get("text").is_some_and(filled)
        })
    }
}

/// A value that says something: not null, nor an empty string, list or object.
fn filled(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;
    use crate::upstream::timeouts::tests::{read_and_hold, server};

    const LONG: Duration = Duration::from_secs(30);

    /// Answers 200 with `content_type` and `body` in one chunk, then closes.
    fn answer(stream: TcpStream, content_type: &str, body: &str) {
        answer_bytes(stream, content_type, body.as_bytes());
    }

    fn answer_bytes(mut stream: TcpStream, content_type: &str, body: &[u8]) {
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
        let _ = stream.write_all(b"\r\n0\r\n\r\n");
    }

    const ANTHROPIC_STREAM: &str = "event: message_start\ndata: {\"type\":\"message_start\"}\n\n\
        event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    async fn response(url: &str) -> awc::ClientResponse {
        awc::Client::builder()
            .disable_timeout()
            .finish()
            .post(url)
            .send_body("{}")
            .await
            .unwrap()
    }

    async fn first_from(url: &str, operation: Operation, provider: Provider) -> FirstEvent {
        let response = response(url).await;
        first_event(
            response,
            (operation, provider),
            Duration::from_millis(300),
            None,
        )
        .await
    }

    async fn first(url: &str, operation: Operation) -> FirstEvent {
        let provider = match operation {
            Operation::MessagesStream => Provider::Anthropic,
            Operation::ChatCompletionsStream | Operation::CompletionsStream => Provider::OpenAi,
            _ => Provider::Bedrock,
        };
        first_from(url, operation, provider).await
    }

    /// The body a relayed answer carries, the bytes read first included.
    async fn relayed(head: FirstEvent) -> String {
        let FirstEvent::Relay(mut response) = head else {
            panic!("not relayed");
        };
        let body = crate::upstream::body::read_body(&mut response, 1 << 20, LONG)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[actix_rt::test]
    async fn content_first_is_relayed_with_the_bytes_read_put_back() {
        let url = server(|s| answer(s, "text/event-stream; charset=utf-8", ANTHROPIC_STREAM));
        let FirstEvent::Relay(mut response) = first(&url, Operation::MessagesStream).await else {
            panic!("not relayed");
        };
        let body = crate::upstream::body::read_body(&mut response, 1 << 20, LONG)
            .await
            .unwrap();
        assert_eq!(body, ANTHROPIC_STREAM.as_bytes());
    }

    #[actix_rt::test]
    async fn an_overload_first_is_the_attempts_529_in_the_apis_own_body() {
        let url = server(|s| {
            answer(
                s,
                "text/event-stream",
                "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
            );
        });
        let FirstEvent::Error(error) = first(&url, Operation::MessagesStream).await else {
            panic!("not an error");
        };
        assert_eq!(error.status.as_u16(), 529);
        assert_eq!(error.error_type, "overloaded_error");
        let body: serde_json::Value = serde_json::from_slice(&error.body).unwrap();
        assert_eq!(body["error"]["type"], "overloaded_error");
    }

    #[actix_rt::test]
    async fn an_openai_error_chunk_first_takes_its_status_from_its_code_or_type() {
        assert_eq!(
            error_status(Operation::ChatCompletionsStream, "data: {\"error\":{\"message\":\"slow down\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}\n\n").await,
            429
        );
        assert_eq!(
            error_status(
                Operation::CompletionsStream,
                "data: {\"error\":{\"message\":\"down\",\"code\":503}}\n\n"
            )
            .await,
            503
        );
        // LiteLLM's exception class, read as the translation reads it.
        assert_eq!(
            error_status(
                Operation::ChatCompletionsStream,
                "data: {\"error\":{\"message\":\"slow down\",\"type\":\"RateLimitError\"}}\n\n"
            )
            .await,
            429
        );
    }

    #[actix_rt::test]
    async fn a_request_error_first_is_relayed_for_the_client_to_see() {
        let url = server(|s| {
            answer(
                s,
                "text/event-stream",
                "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"no\"}}\n\n",
            );
        });
        assert!(matches!(
            first(&url, Operation::MessagesStream).await,
            FirstEvent::Relay(_)
        ));
    }

    #[actix_rt::test]
    async fn a_stream_of_another_content_type_or_empty_or_silent_has_no_first_event() {
        let url = server(|s| answer(s, "application/json", "{\"type\":\"message\"}"));
        let FirstEvent::NoEvent(NoEvent::Invalid(what)) =
            first(&url, Operation::MessagesStream).await
        else {
            panic!("a JSON answer to a stream was taken");
        };
        assert!(what.contains("application/json"), "{what}");
        let url = server(|s| answer(s, "text/event-stream", "event: message_start\ndata: {"));
        assert!(matches!(
            first(&url, Operation::MessagesStream).await,
            FirstEvent::NoEvent(NoEvent::Invalid(_))
        ));
        let url = server(|s| answer(s, "application/vnd.amazon.eventstream", "not a frame"));
        assert!(matches!(
            first(&url, Operation::ConverseStream).await,
            FirstEvent::NoEvent(NoEvent::Invalid(_))
        ));
        let url = server(|mut s| {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
            );
            read_and_hold(s);
        });
        assert_eq!(
            first(&url, Operation::ChatCompletionsStream)
                .await
                .no_event(),
            Some(NoEvent::Silent)
        );
    }

    #[actix_rt::test]
    async fn an_answer_that_does_not_stream_passes_as_it_is() {
        let url = server(|s| answer(s, "application/json", "{}"));
        assert!(matches!(
            first(&url, Operation::Converse).await,
            FirstEvent::Relay(_)
        ));
    }

    /// The first event an OpenAI-compatible server sends that refuses the gateway's key, quoting
    /// part of it, as LiteLLM does.
    const KEY_REFUSED: &str = "data: {\"error\":{\"code\":401,\"message\":\"Incorrect API key provided: sk-...ABCD\"}}\n\n";

    #[actix_rt::test]
    async fn a_refusal_of_the_gateways_credentials_first_is_the_attempts_failure() {
        assert_eq!(
            error_status(Operation::ChatCompletionsStream, KEY_REFUSED).await,
            401
        );
        assert_eq!(
            error_status(Operation::MessagesStream, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid x-api-key\"}}\n\n").await,
            401
        );
        // A 404 naming the target's model, which comes from the config; a 404 naming nothing
        // may be about what the client sent (OpenRouter's tools 404) and is relayed.
        assert_eq!(
            error_status(Operation::ChatCompletionsStream, "data: {\"error\":{\"message\":\"The model does not exist\",\"type\":\"invalid_request_error\",\"code\":\"model_not_found\"}}\n\n").await,
            404
        );
        let head = first_with_body(
            Operation::ChatCompletionsStream,
            "data: {\"error\":{\"message\":\"No endpoints found that support tool use\",\"code\":404}}\n\n",
        )
        .await;
        assert!(
            matches!(head, FirstEvent::Relay(_)),
            "a 404 naming nothing failed the attempt"
        );
    }

    #[actix_rt::test]
    async fn bedrocks_refusals_of_the_gateways_credentials_first_fail_but_access_denied_is_relayed()
    {
        let url = server(|s| {
            let frame =
                crate::eventstream::exception_frame("unrecognizedClientException", "bad token");
            answer_bytes(s, "application/vnd.amazon.eventstream", &frame);
        });
        let FirstEvent::Error(error) = first(&url, Operation::ConverseStream).await else {
            panic!("an unrecognized client was relayed");
        };
        assert_eq!(error.status.as_u16(), 403);
        assert_eq!(error.error_type, "UnrecognizedClientException");
        // May be about a guardrail the client named: the client's to see.
        let url = server(|s| {
            let frame = crate::eventstream::exception_frame("accessDeniedException", "guardrail");
            answer_bytes(s, "application/vnd.amazon.eventstream", &frame);
        });
        assert!(matches!(
            first(&url, Operation::ConverseStream).await,
            FirstEvent::Relay(_)
        ));
    }

    #[actix_rt::test]
    async fn an_error_after_content_less_events_is_the_attempts_failure() {
        let openai = "data: {\"choices\":[]}\n\n\
            data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"finish_reason\":null}]}\n\n\
            data: {\"error\":{\"message\":\"slow down\",\"code\":\"429\"}}\n\n";
        assert_eq!(
            error_status(Operation::ChatCompletionsStream, openai).await,
            429
        );
        let anthropic = "event: message_start\ndata: {\"type\":\"message_start\"}\n\n\
            event: ping\ndata: {\"type\":\"ping\"}\n\n\
            event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        assert_eq!(
            error_status(Operation::MessagesStream, anthropic).await,
            529
        );
    }

    #[actix_rt::test]
    async fn content_decides_even_as_reasoning_or_a_completions_text() {
        for (operation, body) in [
            (
                Operation::ChatCompletionsStream,
                "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"reasoning_content\":\"hm\"}}]}\n\n\
                 data: {\"error\":{\"message\":\"down\",\"code\":503}}\n\n",
            ),
            (
                Operation::CompletionsStream,
                "data: {\"choices\":[{\"text\":\"Hi\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}\n\n\
                 data: {\"error\":{\"message\":\"down\",\"code\":503}}\n\n",
            ),
        ] {
            let text = relayed(first_with_body(operation, body).await).await;
            assert_eq!(text, body);
        }
    }

    #[actix_rt::test]
    async fn content_less_events_past_the_cap_are_relayed() {
        let url = server(|s| {
            answer(
                s,
                "text/event-stream",
                "event: ping\ndata: {\"type\":\"ping\"}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n",
            );
        });
        let judge = Judge {
            streamed: Streamed::Sse(Dialect::Anthropic),
            provider: Provider::Anthropic,
        };
        let deadline = tokio::time::Instant::now() + LONG;
        let head = peek(response(&url).await, judge, deadline, 8).await;
        assert!(relayed(head).await.starts_with("event: ping"));
    }

    #[actix_rt::test]
    async fn an_event_ended_by_the_end_of_the_body_is_judged() {
        assert_eq!(
            error_status(
                Operation::ChatCompletionsStream,
                "data: {\"error\":{\"code\":429}}\n"
            )
            .await,
            429
        );
        // A whole one-event answer is relayed, not refused as having no event.
        let body =
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n";
        let text = relayed(first_with_body(Operation::ChatCompletionsStream, body).await).await;
        assert_eq!(text, body);
        // Content-less events, then the end: the answer as it is, for the relay to judge.
        let body = "event: message_start\ndata: {\"type\":\"message_start\"}\n\n";
        let text = relayed(first_with_body(Operation::MessagesStream, body).await).await;
        assert_eq!(text, body);
    }

    #[actix_rt::test]
    async fn a_stop_of_the_gateway_ends_the_read() {
        let url = server(|mut s| {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
            );
            read_and_hold(s);
        });
        let streams = crate::shutdown::StreamAbort::default();
        let abort = streams.signal();
        streams.fire();
        let head = first_event(
            response(&url).await,
            (Operation::ChatCompletionsStream, Provider::OpenAi),
            LONG,
            Some(abort),
        );
        let head = tokio::time::timeout(LONG / 3, head)
            .await
            .expect("the read outlived the stop");
        assert_eq!(head.no_event(), Some(NoEvent::Aborted));
    }

    /// The status of the error a stream answering `body` opens with.
    async fn error_status(operation: Operation, body: &'static str) -> u16 {
        match first_with_body(operation, body).await {
            FirstEvent::Error(error) => error.status.as_u16(),
            _ => panic!("{body} was not the attempt's error"),
        }
    }

    /// Reads an operation's first event from a server answering `body` as a 200 stream.
    async fn first_with_body(operation: Operation, body: &'static str) -> FirstEvent {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let content_type = Streamed::of(operation).unwrap().content_type();
        std::thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                answer_bytes(stream, content_type, body.as_bytes());
            }
        });
        first(&url, operation).await
    }

    impl FirstEvent {
        fn no_event(self) -> Option<NoEvent> {
            match self {
                Self::NoEvent(no_event) => Some(no_event),
                Self::Relay(_) | Self::Error(_) => None,
            }
        }
    }
}
