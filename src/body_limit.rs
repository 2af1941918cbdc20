//! Collects a whole body under a size cap, from a client or from upstream: refused before a byte
//! is read when its `Content-Length` says more, else as soon as the chunk crossing the cap arrives.

use actix_web::http::header::{CONTENT_LENGTH, HeaderMap};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

/// Why a body was not collected.
#[derive(Debug)]
pub enum Uncollected<E> {
    TooLarge,
    /// The stream of chunks failed.
    Failed(E),
}

/// The `Content-Length` a message declares, if it is a number.
pub fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

pub async fn collect<E>(
    declared: Option<usize>,
    max: usize,
    chunks: impl Stream<Item = Result<Bytes, E>>,
) -> Result<Bytes, Uncollected<E>> {
    if declared.is_some_and(|n| n > max) {
        return Err(Uncollected::TooLarge);
    }
    let mut chunks = std::pin::pin!(chunks);
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(Uncollected::Failed)?;
        if body.len() + chunk.len() > max {
            return Err(Uncollected::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
