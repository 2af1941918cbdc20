//! One `awc::Client` per worker thread (awc clients are not `Send`), per connect timeout.

use std::cell::RefCell;
use std::time::Duration;

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
            // awc's one timeout spans connect, send and head (5 s by default, which kills
            // ordinary LLM calls); each phase is bounded by its own timeout instead (timeouts.rs).
            .disable_timeout()
            .finish();
        clients.push((connect_timeout, client.clone()));
        client
    }
}
