//! Starts the gateway: actors, the public and admin HTTP servers, and the drain on SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::{App, HttpServer, web};

use crate::api::state::{AppState, ConfigLoader};
use actix_web::middleware::from_fn;

use crate::api::{admin, admission, anthropic, fallback, native, openai};
use crate::config::Config;
use crate::gateway::Gateway;
use crate::upstream::client::UpstreamClients;

/// A running gateway: its bound addresses and a way to stop it.
pub struct Running {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    state: web::Data<AppState>,
    public: actix_web::dev::ServerHandle,
    admin_handle: actix_web::dev::ServerHandle,
    drain_grace: Duration,
    shutdown_timeout: Duration,
    /// Both servers, already running on the current arbiter.
    servers: actix_rt::task::JoinHandle<std::io::Result<()>>,
}

/// A data listener others can reach, with no consumers to tell callers apart: every request is
/// served, and billed to the gateway's AWS credentials.
fn open_to_anyone(config: &Config) -> bool {
    !config.server.listen.ip().to_canonical().is_loopback() && config.consumers.is_empty()
}

/// Streams write a response head and then small frames; with Nagle's algorithm on, the first frame
/// waits for the client's delayed ACK of the head (up to 40 ms on Linux).
fn disable_nagle(connection: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = connection.downcast_ref::<actix_rt::net::TcpStream>() {
        let _ = tcp.set_nodelay(true);
    }
}

/// rustls needs one process-wide crypto provider; awc and the AWS SDK both use aws-lc-rs.
fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Binds both servers and starts every actor; must run inside an actix system. `loader` reads
/// the config again on reload (SIGHUP, `POST /admin/reload`, or a watched file).
pub fn start(config: Config, loader: Option<ConfigLoader>) -> Result<Running, String> {
    install_crypto_provider();
    if open_to_anyone(&config) {
        tracing::warn!(
            listen = %config.server.listen,
            "server.listen is not a loopback address and no consumers are configured: anyone who \
             reaches it spends the configured AWS credentials; add consumers or listen on 127.0.0.1"
        );
    }
    let server = config.server.clone();
    let gateway = Gateway::start(config, None)?;
    let state = web::Data::new(AppState::new(gateway, loader));

    let public_state = state.clone();
    let mut public = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(admission::admit))
            .app_data(public_state.clone())
            .app_data(UpstreamClients::default())
            .route("/v1/chat/completions", web::post().to(openai::chat))
            .route("/v1/completions", web::post().to(openai::completions))
            .route("/v1/embeddings", web::post().to(openai::embeddings))
            .route("/v1/messages", web::post().to(anthropic::messages))
            .route(
                "/v1/messages/count_tokens",
                web::post().to(anthropic::count_tokens),
            )
            .route("/v1/models", web::get().to(openai::models))
            // Every Bedrock Runtime and Agent Runtime path; anything else is a 404.
            .default_service(web::to(native::handle))
    })
    .on_connect(disable_nagle)
    .client_request_timeout(server.client_request_timeout)
    .shutdown_timeout(server.shutdown_timeout.as_secs())
    .disable_signals();
    if let Some(workers) = server.workers {
        public = public.workers(workers.get());
    }
    let public = public
        .bind(server.listen)
        .map_err(|e| format!("server.listen {}: {e}", server.listen))?;
    let listen = public.addrs().first().copied().unwrap_or(server.listen);
    let public = public.run();

    let admin_state = state.clone();
    let admin = HttpServer::new(move || {
        App::new()
            .app_data(admin_state.clone())
            .route("/healthz", web::get().to(admin::healthz))
            .route("/readyz", web::get().to(admin::readyz))
            .service(
                web::scope("/admin")
                    .wrap(from_fn(admin::require_token))
                    .route("/targets", web::get().to(admin::targets))
                    .route("/reload", web::post().to(admin::reload)),
            )
            .route("/metrics", web::get().to(admin::metrics))
            .default_service(web::to(fallback::not_found))
    })
    .workers(1)
    .disable_signals()
    .bind(server.admin_listen)
    .map_err(|e| format!("server.admin_listen {}: {e}", server.admin_listen))?;
    let admin_addr = admin
        .addrs()
        .first()
        .copied()
        .unwrap_or(server.admin_listen);
    let admin = admin.run();

    let public_handle = public.handle();
    let admin_handle = admin.handle();
    // actix servers only run while their future is polled.
    let servers = actix_rt::spawn(async move {
        let (a, b) = futures_util::future::join(public, admin).await;
        a.and(b)
    });
    Ok(Running {
        listen,
        admin: admin_addr,
        state,
        public: public_handle,
        admin_handle,
        drain_grace: server.drain_grace,
        shutdown_timeout: server.shutdown_timeout,
        servers,
    })
}

impl Running {
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGTERM or SIGINT, then drains: `/readyz` fails at once so the load balancer
    /// stops sending, new connections are still taken for `drain_grace`, then the server stops
    /// accepting and in-flight requests get `shutdown_timeout` to finish.
    pub async fn serve_until_signalled(self) -> std::io::Result<()> {
        let Self {
            state,
            public,
            admin_handle,
            drain_grace,
            shutdown_timeout,
            servers,
            ..
        } = self;
        actix_rt::spawn(reload_on_sighup(state.clone()));
        let draining = state.clone();
        let drain = async move {
            wait_for_signal().await;
            tracing::info!(
                grace_ms = drain_grace.as_millis() as u64,
                "signal received; draining"
            );
            state.start_draining();
            tokio::time::sleep(drain_grace).await;
            // Stop accepting, then wait on the gateway's own count of requests in flight (streams
            // count until their last byte) rather than on actix's connection count, which was seen
            // to let a worker go while its streams were still running.
            public.pause().await;
            let deadline = tokio::time::Instant::now() + shutdown_timeout;
            let abort_at = deadline - stream_abort_margin(shutdown_timeout);
            wait_for_idle(&state, abort_at).await;
            if state.in_flight().current() > 0 {
                // Streams still running just before the deadline end with an error record the
                // client understands, rather than being cut by the close.
                tracing::info!("shutdown timeout reached; ending the streams still running");
                state.abort_streams();
                wait_for_idle(&state, deadline).await;
            }
            // Every request has finished (or the deadline passed): what is left are idle
            // keep-alive connections, which a graceful stop would wait on for nothing.
            public.stop(false).await;
            admin_handle.stop(true).await;
        };
        let mut servers = servers;
        let mut drain = std::pin::pin!(drain);
        let joined = tokio::select! {
            joined = &mut servers => {
                // The servers' futures can resolve as soon as the stop is under way, while worker
                // threads still finish their streams: sit out the drain before the process exits.
                if draining.is_draining() {
                    drain.await;
                }
                joined
            }
            () = &mut drain => servers.await,
        };
        let result = joined.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        tracing::info!("stopped");
        result
    }
}

/// Reloads the config on every SIGHUP, the Unix convention for "re-read your configuration".
async fn reload_on_sighup(state: web::Data<AppState>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /admin/reload");
        return;
    };
    while hangup.recv().await.is_some() {
        crate::api::state::log_reload(state.reload(), "SIGHUP");
    }
}

/// Polls the config file's modification time and reloads when it changes (opt-in with
/// `serve --watch-config`). Polling is portable and cheap at this rate.
pub async fn watch_config(state: web::Data<AppState>, path: std::path::PathBuf, every: Duration) {
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut last = modified(&path);
    loop {
        tokio::time::sleep(every).await;
        let now = modified(&path);
        if now != last {
            last = now;
            crate::api::state::log_reload(state.reload(), "file change");
        }
    }
}

/// Waits (bounded) until no request is in flight.
async fn wait_for_idle(state: &AppState, until: tokio::time::Instant) {
    const POLL: Duration = Duration::from_millis(10);
    while state.in_flight().current() > 0 && tokio::time::Instant::now() < until {
        tokio::time::sleep(POLL).await;
    }
}

/// How long before the forced close streams are told to end: enough to write their last record.
fn stream_abort_margin(shutdown_timeout: Duration) -> Duration {
    (shutdown_timeout / 4).min(Duration::from_secs(1))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for signals; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(listen: &str, consumers: &str) -> Config {
        crate::config::parse(
            &format!(
                "server: {{ listen: \"{listen}\" }}\n{consumers}routes:\n  - name: r\n    targets:\n      - model: {{ provider: bedrock, name: m, options: {{ bedrock: {{ aws_region: us-east-1 }} }} }}\n"
            ),
            &|_| None,
        )
        .unwrap()
    }

    #[test]
    fn only_a_reachable_listener_without_consumers_is_open_to_anyone() {
        let consumers = "consumers: [{ name: a, api_key: k }]\n";
        assert!(open_to_anyone(&config("0.0.0.0:8080", "")));
        assert!(open_to_anyone(&config("[::]:8080", "")));
        assert!(open_to_anyone(&config("10.0.0.5:8080", "")));
        assert!(!open_to_anyone(&config("127.0.0.1:8080", "")));
        assert!(!open_to_anyone(&config("[::1]:8080", "")));
        assert!(!open_to_anyone(&config("[::ffff:127.0.0.1]:8080", "")));
        assert!(!open_to_anyone(&config("0.0.0.0:8080", consumers)));
    }
}
