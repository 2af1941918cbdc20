//! Reads an authenticated request body under the configured limit: the caller's credentials are
//! checked on the head before a byte of body is read, and a signature over the body right after.
//! A declared `Content-Length` over the limit is refused before a byte is read, a chunked body as
//! soon as it crosses the limit.

use actix_web::HttpRequest;
use actix_web::web::Payload;
use bytes::Bytes;

use crate::auth::Caller;
use crate::body_limit::{Uncollected, collect, declared_length};
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// The caller and the body, in that order; nothing else of the request is looked at before both
/// are known good.
pub async fn read_authenticated(
    req: &HttpRequest,
    payload: Payload,
    gateway: &Gateway,
) -> Result<(Caller, Bytes), GatewayError> {
    let pending = gateway.auth.check_head(req)?;
    let body = read_body(req, payload, gateway).await?;
    let caller = pending.verify(&body)?;
    Ok((caller, body))
}

async fn read_body(
    req: &HttpRequest,
    payload: Payload,
    gateway: &Gateway,
) -> Result<Bytes, GatewayError> {
    let server = &gateway.config.server;
    let limit = server.max_request_body_size.get();
    // actix-web bounds the request head but not the body: a client trickling bytes would hold a
    // worker slot for ever.
    let timeout = server.client_body_timeout;
    tokio::time::timeout(timeout, read_limited(req, payload, limit))
        .await
        .unwrap_or_else(|_| {
            Err(GatewayError::BodyTimeout {
                secs: timeout.as_secs_f64(),
            })
        })
}

async fn read_limited(
    req: &HttpRequest,
    payload: Payload,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    collect(declared_length(req.headers()), limit, payload)
        .await
        .map_err(|e| match e {
            Uncollected::TooLarge => GatewayError::PayloadTooLarge { limit },
            Uncollected::Failed(e) => {
                GatewayError::bad_request(format!("could not read the request body: {e}"))
            }
        })
}
