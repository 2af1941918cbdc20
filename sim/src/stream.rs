//! Event-stream and silent response bodies, paced and cut as the faults say.

use std::time::Duration;

use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::stream;

use super::eventstream::exception_frame;
use super::faults::{Faults, StreamCut};

pub const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";
/// Server-sent events, the provider APIs' stream format.
pub const SSE: &str = "text/event-stream";

/// How long a silenced response holds the connection before giving up.
const SILENCE_LIMIT: Duration = Duration::from_secs(600);

/// A body error makes actix abort the connection without the chunked terminator, which is the point.
#[derive(Debug, thiserror::Error)]
#[error("body aborted by fault injection")]
struct Aborted;

enum Step {
    Frame(Bytes),
    Abort,
}

/// An AWS event stream of `frames`, paced and cut as the faults say.
pub fn event_stream(frames: Vec<Bytes>, faults: &Faults) -> HttpResponse {
    paced(frames, faults, EVENT_STREAM, |name| {
        exception_frame(name, "Injected by bedrock-sim.")
    })
}

/// Streams `frames` (of `content_type`) one chunk each, with the first-token and inter-token
/// delays between them; a mid-stream exception named `name` is the chunk `exception(name)`.
pub fn paced(
    frames: Vec<Bytes>,
    faults: &Faults,
    content_type: &str,
    exception: impl Fn(&str) -> Bytes,
) -> HttpResponse {
    let mut steps: Vec<Step> = frames.into_iter().map(Step::Frame).collect();
    match faults.stream_cut() {
        Some(StreamCut::Exception { after, name }) if after < steps.len() => {
            steps.truncate(after);
            steps.push(Step::Frame(exception(&name)));
        }
        Some(StreamCut::Drop { after }) if after < steps.len() => {
            steps.truncate(after);
            steps.push(Step::Abort);
        }
        Some(StreamCut::Exception { .. } | StreamCut::Drop { .. }) | None => {}
    }
    let delays: Vec<Duration> = (0..steps.len()).map(|i| faults.event_delay(i)).collect();
    let body = stream::unfold(steps.into_iter().zip(delays), |mut steps| async move {
        let (step, delay) = steps.next()?;
        // Returning Pending before every step makes actix flush each frame as its own write, and
        // makes it flush what came before an abort, which an error on the same poll would discard.
        if delay.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(delay).await;
        }
        let item = match step {
            Step::Frame(frame) => Ok(frame),
            Step::Abort => Err(Aborted),
        };
        Some((item, steps))
    });
    HttpResponse::Ok()
        .content_type(content_type)
        .streaming(body)
}

/// Sends the head and then nothing, until the client leaves or the limit passes.
pub fn silence(content_type: &str) -> HttpResponse {
    let body = stream::once(async {
        tokio::time::sleep(SILENCE_LIMIT).await;
        Err::<Bytes, _>(Aborted)
    });
    HttpResponse::Ok()
        .content_type(content_type)
        .streaming(body)
}
