//! `server`: listeners, body limits, worker counts and shutdown timing.

use std::net::SocketAddr;
use std::num::NonZeroUsize;

use super::checks::*;
use crate::config::defaults::*;
use crate::config::error::ConfigProblem;
use crate::config::model::*;
use crate::config::raw::*;

pub(super) fn server(raw: RawServer, problems: &mut Vec<ConfigProblem>) -> Option<ServerConfig> {
    let listen = socket_addr(raw.listen, DEFAULT_LISTEN, "server.listen", problems);
    let admin_listen = socket_addr(
        raw.admin_listen,
        DEFAULT_ADMIN_LISTEN,
        "server.admin_listen",
        problems,
    );
    if let (Some(a), Some(b)) = (listen, admin_listen) {
        let overlap = a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified();
        if a.port() == b.port() && a.port() != 0 && overlap {
            problems.push(ConfigProblem::new(
                "server.admin_listen",
                format!("must not share a port with server.listen ({a})"),
            ));
        }
    }
    let admin_token_sha256 = match raw.admin_token {
        Some(token) if token.0.is_empty() => {
            problems.push(ConfigProblem::new(
                "server.admin_token",
                "must not be empty (leave it out to keep /admin/* open on admin_listen)",
            ));
            None
        }
        token => Some(token.map(|t| key_digest(t.0.as_bytes()))),
    };
    let usize_max = i64::try_from(usize::MAX).unwrap_or(i64::MAX);
    let body =
        |v: Option<i64>, default: usize, path: &str, problems: &mut Vec<ConfigProblem>| match v {
            None => NonZeroUsize::new(default),
            Some(v) => at_least(v, 1, usize_max, path, problems).and_then(to_non_zero_usize),
        };
    let optional_count = |v: Option<i64>, path: &str, problems: &mut Vec<ConfigProblem>| match v {
        None => Some(None),
        Some(v) => at_least(v, 1, usize_max, path, problems)
            .and_then(to_non_zero_usize)
            .map(Some),
    };
    let max_request_body_size = body(
        raw.max_request_body_size,
        DEFAULT_MAX_REQUEST_BODY_SIZE,
        "server.max_request_body_size",
        problems,
    );
    let max_response_body_size = body(
        raw.max_response_body_size,
        DEFAULT_MAX_RESPONSE_BODY_SIZE,
        "server.max_response_body_size",
        problems,
    );
    let max_embedding_inputs = match raw.max_embedding_inputs {
        None => NonZeroUsize::new(DEFAULT_MAX_EMBEDDING_INPUTS),
        Some(v) => in_range(
            v,
            1,
            i64::try_from(MAX_EMBEDDING_INPUTS).unwrap_or(i64::MAX),
            "server.max_embedding_inputs",
            problems,
        )
        .and_then(to_non_zero_usize),
    };
    let workers = optional_count(raw.workers, "server.workers", problems);
    let max_concurrent_requests = optional_count(
        raw.max_concurrent_requests,
        "server.max_concurrent_requests",
        problems,
    );
    let drain_grace = duration(
        raw.drain_grace,
        DEFAULT_DRAIN_GRACE,
        false,
        "server.drain_grace",
        problems,
    );
    let shutdown_timeout = duration(
        raw.shutdown_timeout,
        DEFAULT_SHUTDOWN_TIMEOUT,
        false,
        "server.shutdown_timeout",
        problems,
    );
    let client_request_timeout = duration(
        raw.client_request_timeout,
        DEFAULT_CLIENT_REQUEST_TIMEOUT,
        true,
        "server.client_request_timeout",
        problems,
    );
    let client_body_timeout = duration(
        raw.client_body_timeout,
        DEFAULT_CLIENT_BODY_TIMEOUT,
        true,
        "server.client_body_timeout",
        problems,
    );
    Some(ServerConfig {
        listen: listen?,
        admin_listen: admin_listen?,
        admin_token_sha256: admin_token_sha256?,
        max_request_body_size: max_request_body_size?,
        max_response_body_size: max_response_body_size?,
        max_embedding_inputs: max_embedding_inputs?,
        workers: workers?,
        max_concurrent_requests: max_concurrent_requests?,
        drain_grace: drain_grace?,
        shutdown_timeout: shutdown_timeout?,
        client_request_timeout: client_request_timeout?,
        client_body_timeout: client_body_timeout?,
        log_payloads: raw.log_payloads.unwrap_or(DEFAULT_LOG_PAYLOADS),
    })
}

fn to_non_zero_usize(v: i64) -> Option<NonZeroUsize> {
    usize::try_from(v).ok().and_then(NonZeroUsize::new)
}

fn socket_addr(
    raw: Option<String>,
    default: &str,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<SocketAddr> {
    let text = raw.as_deref().unwrap_or(default);
    match text.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.push(ConfigProblem::new(
                path,
                format!("invalid socket address {text:?}; expected IP:port like {default}"),
            ));
            None
        }
    }
}
