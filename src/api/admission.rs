//! Admission at the door: a concurrency cap that sheds load with a fast 503 instead of queueing,
//! and `Connection: close` on every response once draining has begun.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};

use super::in_flight::Permit;
use super::state::AppState;
use crate::error::{ApiFormat, GatewayError};

/// A shed client should come back soon: overload on an LLM gateway passes in seconds.
const SHED_RETRY_AFTER_SECS: u64 = 1;

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
