//! The headers every proxied response carries: its request id, and the gateway's own time.

use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue};

use super::{OVERHEAD_HEADER, REQUEST_ID_HEADER};

/// Adds `x-request-id` and the overhead header to a proxied response.
pub fn stamp(response: &mut actix_web::HttpResponse, id: &str, overhead: Duration) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(id) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", overhead.as_secs_f64() * 1000.0)) {
        headers.insert(HeaderName::from_static(OVERHEAD_HEADER), v);
    }
}
