//! Reads a request body under the configured limit, answering in the client's format: a declared
//! `Content-Length` over the limit is refused before a byte is read, a chunked body as soon as it
//! crosses the limit.

use actix_web::HttpRequest;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::web::{self, BytesMut, Payload};
use bytes::Bytes;
use futures_util::StreamExt;

use super::state::AppState;
use crate::config::defaults::DEFAULT_CLIENT_BODY_TIMEOUT as DEFAULT_BODY_TIMEOUT;
use crate::error::GatewayError;

pub async fn read_body(
    req: &HttpRequest,
    payload: Payload,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    // actix-web bounds the request head but not the body: a client trickling bytes would hold a
    // worker slot for ever.
    let timeout = req
        .app_data::<web::Data<AppState>>()
        .map_or(DEFAULT_BODY_TIMEOUT, |s| {
            s.gateway().config.server.client_body_timeout
        });
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
    mut payload: Payload,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            GatewayError::bad_request(format!("could not read the request body: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(GatewayError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
