//! One `awc::Client` per worker thread (awc clients are not `Send`), per connect timeout.

use std::cell::RefCell;
use std::time::Duration;

/// awc's default total timeout is 5 s, which kills ordinary LLM calls; every request sets its own
/// from the route, so this only bounds a request that somehow did not.
const FALLBACK_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct UpstreamClients {
    clients: RefCell<Vec<(Duration, awc::Client)>>,
}

impl UpstreamClients {
    pub fn get(&self, connect_timeout: Duration) -> awc::Client {
        let mut clients = self.clients.borrow_mut();
        if let Some((_, client)) = clients.iter().find(|(t, _)| *t == connect_timeout) {
            return client.clone();
        }
        let connector = awc::Connector::new()
            .timeout(connect_timeout)
            // awc caps a client at 100 connections by default; long streams need many more.
            .limit(0);
        let client = awc::Client::builder()
            .connector(connector)
            .disable_redirects()
            .timeout(FALLBACK_TIMEOUT)
            .finish();
        clients.push((connect_timeout, client.clone()));
        client
    }
}
