//! Faults to inject into model operations, set from the command line or live via `/_sim/faults`.

use std::time::Duration;

use actix_web::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::errors::{ErrorKind, SimError};

/// Exception sent mid-stream when `stream_exception` is not given.
const DEFAULT_STREAM_EXCEPTION: &str = "modelStreamErrorException";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay before answering a model request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Uniform random extra delay on top of `latency_ms`, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Streams: delay before the first event, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub ttft_ms: u64,
    /// Streams: delay between events, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub inter_token_ms: u64,
    /// Answer model requests with this HTTP status and the matching Bedrock exception.
    #[arg(long = "fail-status")]
    pub status: Option<u16>,
    /// Exception name to send with `status` instead of the one derived from it (the OpenAI
    /// dialects send it as the error's `code`).
    #[arg(long = "fail-exception")]
    pub exception: Option<String>,
    /// Fail only every Nth model request (0: all of them).
    #[arg(long, default_value_t = 0)]
    pub fail_every_nth: u64,
    /// Seconds to put in a `Retry-After` header on injected errors.
    #[arg(long)]
    pub retry_after: Option<u64>,
    /// Streams: after this many events, send an exception frame and end the stream.
    #[arg(long)]
    pub stream_exception_after: Option<usize>,
    /// Streams: the `:exception-type` of that frame (lowerCamel, e.g. `throttlingException`).
    #[arg(long)]
    pub stream_exception: Option<String>,
    /// Streams: after this many events, tear the connection down mid-body.
    #[arg(long)]
    pub drop_after_events: Option<usize>,
    /// Send the response head, then no body bytes until the client gives up.
    #[arg(long)]
    pub silence_after_headers: bool,
}

/// An error to inject in place of the real answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub error: SimError,
    /// The `exception` named in the faults, if any.
    pub named: Option<String>,
    pub retry_after: Option<u64>,
}

/// How a stream is cut short, if at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamCut {
    Exception { after: usize, name: String },
    Drop { after: usize },
}

impl Faults {
    /// The error for the `nth` model request since these faults were set (counting from 1).
    pub fn injected_error(&self, nth: u64) -> Option<Injected> {
        let status = self.status?;
        if self.fail_every_nth > 1 && !nth.is_multiple_of(self.fail_every_nth) {
            return None;
        }
        let kind = ErrorKind::for_status(status);
        let status = StatusCode::from_u16(status).unwrap_or(kind.status());
        let name = self
            .exception
            .clone()
            .unwrap_or_else(|| kind.name().to_owned());
        Some(Injected {
            error: SimError::injected(status, name, "Injected by bedrock-sim.".to_owned()),
            named: self.exception.clone(),
            retry_after: self.retry_after,
        })
    }

    /// Delay before the response head; `draw` is a uniform sample in [0, 1).
    pub fn head_delay(&self, draw: f64) -> Duration {
        let jitter = (self.jitter_ms as f64 * draw) as u64;
        Duration::from_millis(self.latency_ms + jitter)
    }

    /// Delay before stream event `index`.
    pub fn event_delay(&self, index: usize) -> Duration {
        Duration::from_millis(if index == 0 {
            self.ttft_ms
        } else {
            self.inter_token_ms
        })
    }

    /// The earliest of the configured stream cuts.
    pub fn stream_cut(&self) -> Option<StreamCut> {
        let exception_first = self
            .stream_exception_after
            .filter(|after| self.drop_after_events.is_none_or(|drop| drop >= *after));
        match (exception_first, self.drop_after_events) {
            (Some(after), _) => Some(StreamCut::Exception {
                after,
                name: self
                    .stream_exception
                    .clone()
                    .unwrap_or_else(|| DEFAULT_STREAM_EXCEPTION.to_owned()),
            }),
            (_, Some(after)) => Some(StreamCut::Drop { after }),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn no_status_means_no_error() {
        assert_eq!(Faults::default().injected_error(1), None);
    }

    #[test]
    fn status_names_the_exception_and_keeps_retry_after() {
        let faults = Faults {
            status: Some(429),
            retry_after: Some(3),
            ..Faults::default()
        };
        let injected = faults.injected_error(7).unwrap();
        assert_eq!(injected.error.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(injected.error.name, "ThrottlingException");
        assert_eq!(injected.retry_after, Some(3));
    }

    #[test]
    fn every_nth_fails_only_on_multiples() {
        let faults = Faults {
            status: Some(503),
            fail_every_nth: 3,
            ..Faults::default()
        };
        let failing: Vec<u64> = (1..=9)
            .filter(|n| faults.injected_error(*n).is_some())
            .collect();
        assert_eq!(failing, vec![3, 6, 9]);
        assert_eq!(
            faults.injected_error(3).unwrap().error.name,
            "ServiceUnavailableException"
        );
    }

    #[test]
    fn explicit_exception_overrides_the_name_not_the_status() {
        let faults = Faults {
            status: Some(400),
            exception: Some("ServiceQuotaExceededException".to_owned()),
            ..Faults::default()
        };
        let error = faults.injected_error(1).unwrap().error;
        assert_eq!(error.name, "ServiceQuotaExceededException");
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn delays_use_the_draw() {
        let faults = Faults {
            latency_ms: 100,
            jitter_ms: 50,
            ttft_ms: 7,
            inter_token_ms: 2,
            ..Faults::default()
        };
        assert_eq!(faults.head_delay(0.0), Duration::from_millis(100));
        assert_eq!(faults.head_delay(0.5), Duration::from_millis(125));
        assert_eq!(faults.event_delay(0), Duration::from_millis(7));
        assert_eq!(faults.event_delay(4), Duration::from_millis(2));
    }

    #[test]
    fn earliest_stream_cut_wins() {
        let mut faults = Faults {
            stream_exception_after: Some(4),
            drop_after_events: Some(2),
            ..Faults::default()
        };
        assert_eq!(faults.stream_cut(), Some(StreamCut::Drop { after: 2 }));
        faults.drop_after_events = Some(9);
        assert_eq!(
            faults.stream_cut(),
            Some(StreamCut::Exception {
                after: 4,
                name: "modelStreamErrorException".to_owned()
            })
        );
    }

    #[test]
    fn json_fields_are_all_optional() {
        let faults: Faults = serde_json::from_str(r#"{"status":429}"#).unwrap();
        assert_eq!(faults.status, Some(429));
        assert!(serde_json::from_str::<Faults>(r#"{"bogus":1}"#).is_err());
    }
}
