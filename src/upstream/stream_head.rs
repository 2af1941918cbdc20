//! A streamed answer's first event, read before the answer counts as delivered. Under load the
//! Anthropic API answers a stream with 200 and then an `overloaded_error` event, an
//! OpenAI-compatible server may send an error chunk first, and Bedrock a `throttlingException`
//! frame: nothing reached the client yet, so that is the attempt's failure, read as the HTTP
//! status that would have carried it, and another target may serve. The bytes read go back in
//! front of the body, so the relay decodes them as if nothing had been read.

use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use awc::error::PayloadError;
use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use serde::Deserialize;

use super::classify::{error_name, outcome_for_status};
use super::operation::Operation;
use super::sse_stream::Dialect;
use crate::backend::Outcome;
use crate::eventstream::{Decoder, Frame};
use crate::translate::sse_decode::{SseDecoder, SseEvent};

/// What the first event of a streamed answer says.
pub(crate) enum FirstEvent {
    /// Content came first, or an error of the request itself (which no other target would
    /// answer differently, so the client sees it in the stream, as before), or no whole event
    /// within the read timeout though bytes arrived: relay the answer.
    Relay(awc::ClientResponse),
    /// The stream opened with an error about the target (throttled, overloaded, failing).
    Error(FirstError),
    /// No event came.
    NoEvent(NoEvent),
}

/// The error a stream opened with, as the error response that would have carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FirstError {
    pub status: StatusCode,
    /// Bedrock's exception name; empty for the other providers, as for their error responses.
    pub error_type: String,
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

/// Reads a 2xx answer to `operation` up to its first event, each wait and the whole read bounded
/// by `read_timeout`. An answer that does not stream passes as it is.
pub(crate) async fn first_event(
    mut response: awc::ClientResponse,
    operation: Operation,
    read_timeout: Duration,
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
    let mut body = response.take_payload();
    let mut read: Vec<Bytes> = Vec::new();
    let mut decoder = Peek::new(streamed);
    let deadline = tokio::time::Instant::now() + read_timeout;
    let first = loop {
        let chunk = match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(e))) => return FirstEvent::NoEvent(NoEvent::Broken(e.to_string())),
            Ok(None) => {
                return FirstEvent::NoEvent(NoEvent::Invalid(
                    "the stream ended before its first event".to_owned(),
                ));
            }
            // Bytes that make no event yet (SSE comments a server sends while it queues): the
            // relay's own idle timeout takes over.
            Err(_) if !read.is_empty() => break None,
            Err(_) => return FirstEvent::NoEvent(NoEvent::Silent),
        };
        let first = decoder.feed(&chunk);
        read.push(chunk);
        match first {
            Ok(None) => {}
            Ok(Some(first)) => break Some(first),
            Err(e) => return FirstEvent::NoEvent(NoEvent::Invalid(e)),
        }
    };
    if let Some(error) = first.and_then(|first| first.error(streamed)) {
        return FirstEvent::Error(error);
    }
    // The bytes read first, then the rest of the body as it comes.
    let replayed = stream::iter(read.into_iter().map(Ok)).chain(body);
    let replayed: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(replayed);
    FirstEvent::Relay(response.map_body(|_, _| Payload::from(replayed)))
}

/// The decoder of one stream format, fed until a first event is whole.
enum Peek {
    EventStream(Decoder),
    Sse(SseDecoder),
}

/// A first event, still in its format.
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

    fn feed(&mut self, chunk: &[u8]) -> Result<Option<First>, String> {
        match self {
            Self::EventStream(decoder) => {
                decoder.push(chunk);
                decoder
                    .next_frame()
                    .map(|raw| raw.map(|raw| First::Frame(raw.frame)))
                    .map_err(|e| e.to_string())
            }
            Self::Sse(decoder) => decoder
                .feed(chunk)
                .map(|events| events.into_iter().next().map(First::Sse))
                .map_err(|e| e.to_string()),
        }
    }
}

impl First {
    /// The error this event reports about the target, if it is one.
    fn error(self, streamed: Streamed) -> Option<FirstError> {
        let (status, error_type, body) = match (self, streamed) {
            (
                Self::Frame(Frame::Exception {
                    exception_type,
                    payload,
                }),
                _,
            ) => {
                let name = error_name(&exception_type);
                (bedrock_status(&name), name, payload)
            }
            (Self::Frame(Frame::Error { code, message }), _) => {
                let body = serde_json::json!({ "message": message }).to_string();
                (500, error_name(&code), Bytes::from(body))
            }
            (Self::Frame(Frame::Event { .. }), _) => return None,
            (Self::Sse(event), Streamed::Sse(Dialect::Anthropic)) => {
                let ErrorEvent { error, .. } = serde_json::from_str::<ErrorEvent>(&event.data)
                    .ok()
                    .filter(|e| e.kind == "error")?;
                let status = anthropic_status(error?.kind.as_str());
                (status, String::new(), Bytes::from(event.data))
            }
            (Self::Sse(event), _) => {
                let error = serde_json::from_str::<ErrorChunk>(&event.data).ok()?.error;
                (
                    openai_status(&error),
                    String::new(),
                    Bytes::from(event.data),
                )
            }
        };
        // An error of the request itself is the client's to see, in the stream as before.
        if outcome_for_status(status, &error_type, None) == Outcome::Neutral {
            return None;
        }
        Some(FirstError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error_type,
            body,
        })
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
        "AccessDeniedException" => 403,
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

/// An OpenAI-compatible error's HTTP status: its numeric `code` when it has one (Azure, vLLM),
/// else by its `type` or `code` name.
fn openai_status(error: &ChunkError) -> u16 {
    if let Some(status) = error
        .code
        .as_ref()
        .and_then(|code| match code {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        })
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| (400..=599).contains(n))
    {
        return status;
    }
    let names = [
        error.kind.as_deref(),
        error.code.as_ref().and_then(|c| c.as_str()),
    ];
    let status = |name: &str| match name {
        "rate_limit_exceeded"
        | "rate_limit_error"
        | "insufficient_quota"
        | "requests"
        | "tokens" => Some(429),
        "invalid_request_error" => Some(400),
        "authentication_error" => Some(401),
        "permission_error" => Some(403),
        "not_found_error" => Some(404),
        "service_unavailable" | "overloaded_error" => Some(503),
        _ => None,
    };
    names.into_iter().flatten().find_map(status).unwrap_or(500)
}

#[derive(Deserialize)]
struct ErrorEvent {
    #[serde(rename = "type", default)]
    kind: String,
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Deserialize)]
struct ErrorChunk {
    error: ChunkError,
}

#[derive(Deserialize)]
struct ChunkError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
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
    fn answer(mut stream: TcpStream, content_type: &str, body: &str) {
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        let chunk = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(chunk.as_bytes());
    }

    const ANTHROPIC_STREAM: &str = "event: message_start\ndata: {\"type\":\"message_start\"}\n\n\
        event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    async fn first(url: &str, operation: Operation) -> FirstEvent {
        let response = awc::Client::builder()
            .disable_timeout()
            .finish()
            .post(url)
            .send_body("{}")
            .await
            .unwrap();
        first_event(response, operation, Duration::from_millis(300)).await
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
        assert_eq!(error.error_type, "");
        let body: serde_json::Value = serde_json::from_slice(&error.body).unwrap();
        assert_eq!(body["error"]["type"], "overloaded_error");
    }

    #[actix_rt::test]
    async fn an_openai_error_chunk_first_takes_its_status_from_its_code_or_type() {
        let url = server(|s| {
            answer(
                s,
                "text/event-stream",
                "data: {\"error\":{\"message\":\"slow down\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}\n\n",
            );
        });
        let FirstEvent::Error(error) = first(&url, Operation::ChatCompletionsStream).await else {
            panic!("not an error");
        };
        assert_eq!(error.status.as_u16(), 429);
        let url = server(|s| {
            answer(
                s,
                "text/event-stream",
                "data: {\"error\":{\"message\":\"down\",\"code\":503}}\n\n",
            );
        });
        let FirstEvent::Error(error) = first(&url, Operation::CompletionsStream).await else {
            panic!("not an error");
        };
        assert_eq!(error.status.as_u16(), 503);
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

    impl FirstEvent {
        fn no_event(self) -> Option<NoEvent> {
            match self {
                Self::NoEvent(no_event) => Some(no_event),
                Self::Relay(_) | Self::Error(_) => None,
            }
        }
    }
}
