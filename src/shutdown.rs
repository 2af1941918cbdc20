//! The last phase of a graceful stop: streams still running when `shutdown_timeout` is nearly up
//! are told to end, so each closes with an error the client understands (an exception frame or an
//! SSE error record) instead of being torn down by the server.

use tokio::sync::watch;

#[derive(Debug)]
pub struct StreamAbort {
    tx: watch::Sender<bool>,
}

/// Held by each stream; resolves once the abort is fired.
#[derive(Debug, Clone)]
pub struct AbortSignal(watch::Receiver<bool>);

impl Default for StreamAbort {
    fn default() -> Self {
        Self {
            tx: watch::channel(false).0,
        }
    }
}

impl StreamAbort {
    pub fn signal(&self) -> AbortSignal {
        AbortSignal(self.tx.subscribe())
    }

    pub fn fire(&self) {
        self.tx.send_replace(true);
    }
}

impl AbortSignal {
    /// Resolves when the abort fires; never, if its sender is gone without firing.
    pub async fn fired(&mut self) {
        if self.0.wait_for(|fired| *fired).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn every_signal_sees_the_fire() {
        let abort = StreamAbort::default();
        let mut early = abort.signal();
        abort.fire();
        let mut late = abort.signal();
        early.fired().await;
        late.fired().await;
    }
}
