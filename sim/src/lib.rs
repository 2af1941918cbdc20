//! The Bedrock simulator: a local stand-in for `bedrock-runtime.REGION.amazonaws.com` and
//! `bedrock-agent-runtime.REGION.amazonaws.com` (one port serves both; their paths do not overlap)
//! that verifies SigV4, answers Converse, ConverseStream, InvokeModel,
//! InvokeModelWithResponseStream and CountTokens (Claude by Bedrock's rules for the Anthropic
//! Messages body), ApplyGuardrail, the async-invoke calls, Rerank, Retrieve and
//! RetrieveAndGenerate(Stream) deterministically, and injects faults on demand.
//!
//! It shares no code with the gateway's signing, translation or event-stream encoding: it exists to
//! check what the gateway produces, so a shared bug would cancel out. Its SigV4 verifier
//! ([`sigv4_verify`]) is written by hand, apart from the gateway's signer (aws-sigv4); the
//! gateway uses the same verifier for its own clients.

mod agent;
mod anthropic_api;
mod args;
mod async_jobs;
mod calls;
mod claude;
mod claude_stream;
mod converse;
mod count_tokens;
mod errors;
mod eventstream;
mod fault_gate;
mod faults;
mod guardrail;
mod invoke;
mod models;
mod openai_api;
mod openai_chat;
mod openai_completions;
mod openai_embeddings;
mod prompt_cache;
mod server;
mod state;
mod stats;
mod stream;
mod sts;
mod thinking;

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use tokio::signal::unix::{SignalKind, signal};

pub use args::SimArgs;
pub use faults::Faults;
pub use stats::{ClaudeRequest, StatsSnapshot};

use state::SimState;

pub const DEFAULT_REGION: &str = "us-east-1";
/// The example credentials of the AWS documentation, which the SDKs' own tests also use.
pub const DEFAULT_ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// One worker is plenty in-process, where tests share a small machine.
const DEFAULT_WORKERS: usize = 1;
/// STS's default lifetime for AssumeRole credentials.
const STS_SESSION: Duration = Duration::from_secs(3_600);
/// Seconds a stopping server waits for open connections; streams may be silenced on purpose.
const SHUTDOWN_TIMEOUT_SECS: u64 = 1;

/// Credentials the simulator accepts, as `ID:SECRET[:SESSION_TOKEN]` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl sigv4_verify::SigningKey for SimKey {
    fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }
}

/// Which API the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SimProvider {
    /// Bedrock Runtime and Agent Runtime, SigV4-verified (or Bedrock API keys).
    #[default]
    Bedrock,
    /// The Anthropic API: `POST /v1/messages`, `x-api-key` checked against `api_keys`.
    Anthropic,
    /// The OpenAI API: chat completions, legacy completions, embeddings and models, `Authorization: Bearer` checked
    /// against `api_keys`.
    #[value(name = "openai")]
    OpenAi,
    /// Azure OpenAI: `/openai/deployments/{id}/...?api-version=`, `api-key` checked against `api_keys`.
    Azure,
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub provider: SimProvider,
    pub listen: SocketAddr,
    pub region: String,
    pub keys: Vec<SimKey>,
    /// API keys: Bedrock API keys (`Authorization: Bearer <key>` in place of a signature) in
    /// Bedrock mode, the `x-api-key` values in Anthropic mode, the bearer tokens in OpenAI mode,
    /// the `api-key` values in Azure mode.
    pub api_keys: Vec<String>,
    pub faults: Faults,
    pub workers: usize,
    /// Skip SigV4 verification: only for measuring a client that cannot sign (the load
    /// benchmark's direct baseline). Never on by default.
    pub accept_unsigned: bool,
    /// OpenAI and Azure modes: refuse a chat request carrying `stream_options`, as older
    /// OpenAI-compatible servers (vLLM, TGI, Ollama) do. Azure refuses it anyway on API versions
    /// before it existed.
    pub refuse_stream_options: bool,
    /// OpenAI and Azure modes: answers and stream chunks carry no `usage`, as some
    /// OpenAI-compatible servers' do not.
    pub omit_usage: bool,
    /// Serves the provider's API under this path (`/openai` puts OpenAI's at
    /// `/openai/v1/chat/completions`), as Groq, OpenRouter or a proxy in front of an API do;
    /// `/_sim` stays at the root. Empty: at the root.
    pub path_prefix: String,
    /// How long the credentials its STS endpoint hands out live; short ones make a caller's
    /// refreshes observable in a test.
    pub sts_session: Duration,
}

impl SimOptions {
    /// Loopback on a free port, the AWS example key, no faults, one worker.
    pub fn new(region: &str) -> Self {
        Self {
            provider: SimProvider::Bedrock,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            region: region.to_owned(),
            keys: vec![SimKey {
                access_key_id: DEFAULT_ACCESS_KEY_ID.to_owned(),
                secret_access_key: DEFAULT_SECRET_ACCESS_KEY.to_owned(),
                session_token: None,
            }],
            api_keys: Vec::new(),
            faults: Faults::default(),
            workers: DEFAULT_WORKERS,
            accept_unsigned: false,
            refuse_stream_options: false,
            omit_usage: false,
            path_prefix: String::new(),
            sts_session: STS_SESSION,
        }
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    server: ServerHandle,
    state: web::Data<SimState>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(self) {
        self.server.stop(false).await;
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state.set_faults(faults);
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.state.stats.snapshot()
    }
}

/// Binds and spawns the simulator on the current actix system; returns once it accepts connections.
pub async fn start(opts: SimOptions) -> io::Result<SimHandle> {
    let state = web::Data::new(SimState::new(&opts));
    let app_state = state.clone();
    let provider = opts.provider;
    let prefix = opts.path_prefix.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(server::request_id))
            .app_data(app_state.clone())
            .app_data(web::PayloadConfig::new(server::BODY_LIMIT))
            .configure(|cfg| server::routes(cfg, provider, &prefix))
    })
    .workers(opts.workers.max(1))
    // A client that closes its side is gone: drop its connection, so a silenced response ends too.
    .h1_allow_half_closed(false)
    // Like Bedrock's front end, send each stream event as soon as it is written; with Nagle's
    // algorithm a small frame would wait for the client's delayed ACK of the previous one.
    .on_connect(|connection, _| {
        if let Some(tcp) = connection.downcast_ref::<actix_rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .bind(opts.listen)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| io::Error::other("the simulator bound no address"))?;
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(SimHandle {
        addr,
        server: handle,
        state,
    })
}

/// The `sim` command: start, announce the URL on stdout, run until SIGINT or SIGTERM.
pub async fn run(args: SimArgs) -> io::Result<()> {
    // Handlers go in before the announcement, so a supervisor that signals as soon as it reads
    // the line still gets a clean shutdown.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let handle = start(args.into_options()).await?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "bedrock-sim listening on {}", handle.url())?;
        out.flush()?;
    }
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    handle.stop().await;
    Ok(())
}

/// The test data copied into the repository (`tests/fixtures/`, with its licence notes).
#[cfg(test)]
fn fixtures_dir() -> &'static std::path::Path {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures"))
}
