//! What the faults do to a model request before any API mode answers it, in one order for all:
//! the head delay, then a silenced body, then an injected error in the mode's own format.

use actix_web::HttpResponse;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};

use super::faults::{Faults, Injected};
use super::state::SimState;
use super::stream::silence;

/// The faults to answer with, or the response they put in the answer's place. `content_type` is
/// the silenced body's; `render` shapes an injected error, and configured `Retry-After` is added.
pub async fn pass(
    state: &SimState,
    content_type: &str,
    render: impl FnOnce(&Injected) -> HttpResponse,
) -> Result<Faults, HttpResponse> {
    let (faults, nth) = state.next_request();
    let delay = faults.head_delay(fastrand::f64());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if faults.silence_after_headers {
        return Err(silence(content_type));
    }
    if let Some(injected) = faults.injected_error(nth) {
        state.stats.error_injected();
        let mut res = render(&injected);
        if let Some(seconds) = injected.retry_after
            && !res.headers().contains_key(RETRY_AFTER)
        {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        return Err(res);
    }
    Ok(faults)
}
