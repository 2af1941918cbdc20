//! Starts the gateway: actors, the public and admin HTTP servers, and the drain on SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::{App, HttpServer, web};

use crate::api::state::AppState;
use crate::api::{admin, fallback, native, openai};
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
    /// Both servers, already running on the current arbiter.
    servers: actix_rt::task::JoinHandle<std::io::Result<()>>,
}

/// rustls needs one process-wide crypto provider; awc and the AWS SDK both use aws-lc-rs.
fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Binds both servers and starts every actor; must run inside an actix system.
pub fn start(config: Config) -> Result<Running, String> {
    install_crypto_provider();
    let server = config.server.clone();
    let gateway = Gateway::start(config)?;
    let state = web::Data::new(AppState::new(gateway));

    let public_state = state.clone();
    let mut public = HttpServer::new(move || {
        App::new()
            .app_data(public_state.clone())
            .app_data(UpstreamClients::default())
            .route("/model/{tail:.*}", web::post().to(native::handle))
            .route("/v1/chat/completions", web::post().to(openai::chat))
            .route("/v1/completions", web::post().to(openai::completions))
            .route("/v1/embeddings", web::post().to(openai::embeddings))
            .route("/v1/models", web::get().to(openai::models))
            .default_service(web::to(fallback::not_found))
    })
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
            .route("/admin/targets", web::get().to(admin::targets))
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
        servers,
    })
}

impl Running {
    /// Serves until SIGTERM or SIGINT, then drains: `/readyz` fails at once so the load balancer
    /// stops sending, new connections are still taken for `drain_grace`, then the server stops
    /// accepting and in-flight requests get `shutdown_timeout` to finish.
    pub async fn serve_until_signalled(self) -> std::io::Result<()> {
        let Self {
            state,
            public,
            admin_handle,
            drain_grace,
            servers,
            ..
        } = self;
        let drain = async move {
            wait_for_signal().await;
            tracing::info!(
                grace_ms = drain_grace.as_millis() as u64,
                "signal received; draining"
            );
            state.start_draining();
            tokio::time::sleep(drain_grace).await;
            public.stop(true).await;
            admin_handle.stop(true).await;
        };
        let mut servers = servers;
        let joined = tokio::select! {
            joined = &mut servers => joined,
            () = drain => servers.await,
        };
        let result = joined.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        tracing::info!("stopped");
        result
    }
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
