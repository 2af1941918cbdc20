//! Kong's (nginx's) upstream timeouts on one request: `connect_timeout` until the connection is
//! ready, `write_timeout` for sending the request, `read_timeout` for the wait for the response
//! head. awc has one timeout over all three, so the request body is a [`MessageBody`] that marks
//! when awc starts and finishes taking it, and a single timer is re-armed at each mark.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use awc::error::SendRequestError;
use bytes::Bytes;
use tokio::time::{Instant, Sleep};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub write: Duration,
    pub read: Duration,
}

/// Where a request is on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connecting (TCP and TLS), or waiting for a connection: nothing has been sent.
    Connecting,
    /// awc is taking the body.
    Writing,
    /// The whole request is handed over; waiting for the response head.
    AwaitingHead,
}

impl Phase {
    /// Whether any of the request may have reached the target.
    pub fn sent(self) -> bool {
        self != Self::Connecting
    }
}

#[derive(Debug)]
pub enum SendFailure {
    /// The phase's own timeout passed.
    TimedOut(Phase),
    /// awc failed, during this phase.
    Failed(Phase, SendRequestError),
}

/// Sends `body` with `request`, each phase bounded by its own timeout. The request must carry no
/// awc timeout of its own (the client disables it).
pub fn send(request: awc::ClientRequest, body: Bytes, timeouts: Timeouts) -> Sending {
    let phase = Rc::new(Cell::new(Phase::Connecting));
    let body = MarkedBody {
        size: if body.is_empty() {
            // awc never polls an empty sized body; an unsized one it polls once (and still
            // sends `content-length: 0` over HTTP/1.1), so the end of writing is seen.
            BodySize::Stream
        } else {
            BodySize::Sized(body.len() as u64)
        },
        body: (!body.is_empty()).then_some(body),
        phase: Rc::clone(&phase),
    };
    Sending {
        send: request.send_body(body),
        timer: Box::pin(tokio::time::sleep(timeouts.connect)),
        armed: Phase::Connecting,
        phase,
        timeouts,
    }
}

/// The request body in one piece; taking it marks the start of writing, asking past it the end.
struct MarkedBody {
    body: Option<Bytes>,
    size: BodySize,
    phase: Rc<Cell<Phase>>,
}

impl MessageBody for MarkedBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        self.size
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        let next = this.body.take();
        this.phase.set(if next.is_some() {
            Phase::Writing
        } else {
            Phase::AwaitingHead
        });
        Poll::Ready(next.map(Ok))
    }
}

pub struct Sending {
    send: awc::SendClientRequest,
    phase: Rc<Cell<Phase>>,
    /// The phase the timer is set for.
    armed: Phase,
    timer: Pin<Box<Sleep>>,
    timeouts: Timeouts,
}

impl Timeouts {
    fn of(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Connecting => self.connect,
            Phase::Writing => self.write,
            Phase::AwaitingHead => self.read,
        }
    }
}

impl Future for Sending {
    type Output = Result<awc::ClientResponse, SendFailure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(result) = Pin::new(&mut this.send).poll(cx) {
            return Poll::Ready(result.map_err(|e| SendFailure::Failed(this.phase.get(), e)));
        }
        // awc takes the body inside the poll above, so a new phase starts about now.
        let phase = this.phase.get();
        if phase != this.armed {
            this.armed = phase;
            let limit = this.timeouts.of(phase);
            this.timer.as_mut().reset(Instant::now() + limit);
        }
        match this.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(SendFailure::TimedOut(phase))),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::io::Read;
    use std::net::TcpListener;
    use std::time::Instant;

    use super::*;

    const LONG: Duration = Duration::from_secs(30);

    fn client() -> awc::Client {
        awc::Client::builder().disable_timeout().finish()
    }

    fn timeouts(connect: Duration, write: Duration, read: Duration) -> Timeouts {
        Timeouts {
            connect,
            write,
            read,
        }
    }

    /// A server that accepts connections on a thread and hands each to `serve`.
    pub(in crate::upstream) fn server(serve: fn(std::net::TcpStream)) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || serve(stream));
            }
        });
        url
    }

    /// Reads the request head and a small body, then holds the connection without answering.
    pub(in crate::upstream) fn read_and_hold(mut stream: std::net::TcpStream) {
        let mut buf = [0u8; 4096];
        while stream.read(&mut buf).is_ok_and(|n| n > 0) {}
    }

    /// Accepts and never reads, so a large body fills the socket buffers and stalls.
    fn never_read(stream: std::net::TcpStream) {
        std::thread::sleep(LONG);
        drop(stream);
    }

    #[actix_rt::test]
    async fn a_silent_upstream_times_out_after_the_read_timeout_not_write_plus_read() {
        let url = server(read_and_hold);
        // An empty body too, which awc would not ask for were it sized: the end of writing shows.
        for body in [Bytes::from_static(b"{}"), Bytes::new()] {
            let started = Instant::now();
            let result = send(
                client().post(&url),
                body,
                timeouts(LONG, LONG, Duration::from_millis(300)),
            )
            .await;
            assert!(
                matches!(result, Err(SendFailure::TimedOut(Phase::AwaitingHead))),
                "{result:?}"
            );
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(300), "{took:?}");
            assert!(took < Duration::from_secs(10), "{took:?}");
        }
    }

    #[actix_rt::test]
    async fn a_body_the_upstream_does_not_take_times_out_while_writing() {
        let url = server(never_read);
        // Far more than loopback socket buffers hold.
        let body = Bytes::from(vec![b'x'; 64 << 20]);
        let result = send(
            client().post(&url),
            body,
            timeouts(LONG, Duration::from_millis(500), LONG),
        )
        .await;
        assert!(
            matches!(result, Err(SendFailure::TimedOut(Phase::Writing))),
            "{result:?}"
        );
    }

    #[actix_rt::test]
    async fn a_refused_connection_fails_before_anything_is_sent() {
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        let result = send(
            client().post(&url),
            Bytes::from_static(b"{}"),
            timeouts(LONG, LONG, LONG),
        )
        .await;
        match result {
            Err(SendFailure::Failed(phase, SendRequestError::Connect(_))) => {
                assert!(!phase.sent());
            }
            other => panic!("{other:?}"),
        }
    }
}
