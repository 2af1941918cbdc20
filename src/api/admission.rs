//! Admission at the door: a concurrency cap that sheds load with a fast 503 instead of queueing,
//! and `Connection: close` on every response once draining has begun.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};

use super::state::AppState;
use crate::error::{ApiFormat, GatewayError};

/// A shed client should come back soon: overload on an LLM gateway passes in seconds.
const SHED_RETRY_AFTER_SECS: u64 = 1;

/// Counts requests in flight, streams included until their last byte.
#[derive(Debug, Default)]
pub struct InFlight(Arc<AtomicUsize>);

pub struct Permit(Arc<AtomicUsize>);

impl InFlight {
    /// A permit, or `None` when `cap` requests are already in flight.
    pub fn try_enter(&self, cap: Option<usize>) -> Option<Permit> {
        let previous = self.0.fetch_add(1, Ordering::AcqRel);
        let permit = Permit(Arc::clone(&self.0));
        match cap {
            Some(cap) if previous >= cap => None, // dropping the permit undoes the increment
            _ => Some(permit),
        }
    }

    pub fn current(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Holds the permit until the body has been sent (or dropped by a departing client).
struct PermitBody {
    body: BoxBody,
    _permit: Permit,
}

impl MessageBody for PermitBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

pub async fn admit(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await;
    };
    let cap = state
        .gateway()
        .config
        .server
        .max_concurrent_requests
        .map(|n| n.get());
    let Some(permit) = state.in_flight().try_enter(cap) else {
        let format = if req.path().starts_with("/v1/") {
            ApiFormat::OpenAi
        } else {
            ApiFormat::Bedrock
        };
        let response = GatewayError::Overloaded {
            retry_after_secs: SHED_RETRY_AFTER_SECS,
        }
        .respond(format);
        return Ok(req.into_response(response));
    };
    let mut response = next.call(req).await?;
    if state.is_draining() {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response.map_body(|_, body| {
        BoxBody::new(PermitBody {
            body,
            _permit: permit,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_admits_exactly_cap_and_recovers() {
        let in_flight = InFlight::default();
        let a = in_flight.try_enter(Some(2));
        let b = in_flight.try_enter(Some(2));
        assert!(a.is_some() && b.is_some());
        assert!(in_flight.try_enter(Some(2)).is_none());
        assert_eq!(in_flight.current(), 2);
        drop(a);
        assert!(in_flight.try_enter(Some(2)).is_some());
        assert!(in_flight.try_enter(None).is_some());
    }
}
