//! Reads a whole upstream body as nginx reads a response: `read_timeout` bounds each wait for the
//! next chunk, not the whole body (a long answer arriving steadily is not cut), and the size is
//! capped as the bytes arrive.

use std::time::Duration;

use actix_web::HttpMessage;
use awc::error::PayloadError;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::body_limit::{Uncollected, collect, declared_length};

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("no data for {} ms", .0.as_millis())]
    Idle(Duration),
    #[error("larger than {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Broken(PayloadError),
}

pub async fn read_body(
    response: &mut awc::ClientResponse,
    max: usize,
    read_timeout: Duration,
) -> Result<Bytes, BodyError> {
    let declared = declared_length(response.headers());
    let chunks =
        futures_util::stream::unfold(response.take_payload(), move |mut payload| async move {
            let item = match tokio::time::timeout(read_timeout, payload.next()).await {
                Ok(None) => return None,
                Ok(Some(chunk)) => chunk.map_err(BodyError::Broken),
                Err(_) => Err(BodyError::Idle(read_timeout)),
            };
            Some((item, payload))
        });
    collect(declared, max, chunks).await.map_err(|e| match e {
        Uncollected::TooLarge => BodyError::TooLarge(max),
        Uncollected::Failed(e) => e,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;
    use crate::upstream::timeouts::tests::server;

    /// Answers with a chunked body: eight chunks, 400 ms apart (3.2 s in all).
    fn steady(mut stream: TcpStream) {
        let mut head = [0u8; 1024];
        let _ = stream.read(&mut head);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        for _ in 0..8 {
            let _ = stream.write_all(b"1\r\nx\r\n");
            std::thread::sleep(Duration::from_millis(400));
        }
        let _ = stream.write_all(b"0\r\n\r\n");
    }

    /// Answers with a head and a first chunk, then goes silent while holding the connection.
    fn stalls(mut stream: TcpStream) {
        let mut head = [0u8; 1024];
        let _ = stream.read(&mut head);
        let _ =
            stream.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nx\r\n");
        let _ = stream.read(&mut head);
    }

    async fn get(url: &str) -> awc::ClientResponse {
        awc::Client::builder()
            .disable_timeout()
            .finish()
            .get(url)
            .send()
            .await
            .unwrap()
    }

    #[actix_rt::test]
    async fn a_body_arriving_steadily_is_read_whole_though_it_takes_longer_than_the_timeout() {
        let mut response = get(&server(steady)).await;
        let body = read_body(&mut response, 1024, Duration::from_secs(2)).await;
        assert_eq!(body.unwrap(), Bytes::from_static(b"xxxxxxxx"));
    }

    #[actix_rt::test]
    async fn a_gap_longer_than_the_timeout_ends_the_read() {
        let mut response = get(&server(stalls)).await;
        let body = read_body(&mut response, 1024, Duration::from_millis(300)).await;
        assert!(matches!(body, Err(BodyError::Idle(_))), "{body:?}");
    }

    #[actix_rt::test]
    async fn a_body_over_the_cap_is_refused_as_it_arrives() {
        let mut response = get(&server(steady)).await;
        let body = read_body(&mut response, 3, Duration::from_secs(2)).await;
        assert!(matches!(body, Err(BodyError::TooLarge(3))), "{body:?}");
    }
}
