//! The validated configuration: every value here has been checked, so the rest of the gateway never
//! re-validates. Built only by `config::validate` from the raw serde types.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32, NonZeroUsize};
use std::time::Duration;

/// The whole gateway configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    /// When non-empty, every request must authenticate as one of these.
    pub consumers: Vec<Consumer>,
    pub rate_limits: RateLimitBackend,
    /// At least one route; names are unique.
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// SHA-256 of `server.admin_token`: when set, `/admin/*` needs it as a Bearer token.
    pub admin_token_sha256: Option<[u8; 32]>,
    pub max_request_body_size: NonZeroUsize,
    /// Largest non-streaming upstream response the gateway will buffer.
    pub max_response_body_size: NonZeroUsize,
    /// Inputs one `/v1/embeddings` request may carry (Titan makes one upstream call per input).
    pub max_embedding_inputs: NonZeroUsize,
    /// `None`: one worker per core.
    pub workers: Option<NonZeroUsize>,
    pub max_concurrent_requests: Option<NonZeroUsize>,
    /// Time between SIGTERM and refusing new connections (the load balancer's reaction time).
    pub drain_grace: Duration,
    /// How long in-flight requests and streams may run after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Time a client has to send the request head.
    pub client_request_timeout: Duration,
    /// Time a client has to send the whole body once the head arrived.
    pub client_body_timeout: Duration,
    /// Log request and response payloads (with secrets redacted). Off by default.
    pub log_payloads: bool,
}

/// SHA-256 of a key or token: the only form the config keeps API keys and the admin token in, and
/// the one requests are compared against.
pub fn key_digest(key: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(key).into()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Consumer {
    pub name: String,
    /// SHA-256 of the API key (from `api_key` or `api_key_sha256`).
    pub api_key_sha256: Option<[u8; 32]>,
    /// Key pair for clients that SigV4-sign their requests to the gateway.
    pub aws: Option<AwsKeys>,
    pub limits: Limits,
}

/// A static AWS key pair. `Debug` never prints the secret.
#[derive(Clone, PartialEq)]
pub struct AwsKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKeys")
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub rpm: Option<NonZeroU32>,
    pub tpm: Option<NonZeroU32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitBackend {
    Local,
    Redis { url: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub route_type: RouteType,
    /// Extra names that, like the route's own, spread a request over all its targets.
    pub model_aliases: Vec<String>,
    pub balancer: BalancerConfig,
    /// Never empty.
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteType {
    Chat,
    Completions,
    Embeddings,
    /// ApplyGuardrail; targets are regions without a model. At most one such route.
    Guardrail,
    /// bedrock-agent-runtime (rerank, retrieve, retrieve-and-generate); targets are regions
    /// without a model. At most one such route.
    Agent,
}

impl RouteType {
    pub const ALL: [Self; 5] = [
        Self::Chat,
        Self::Completions,
        Self::Embeddings,
        Self::Guardrail,
        Self::Agent,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "llm/v1/chat",
            Self::Completions => "llm/v1/completions",
            Self::Embeddings => "llm/v1/embeddings",
            Self::Guardrail => "bedrock/guardrail",
            Self::Agent => "bedrock/agent",
        }
    }

    /// Whether the route's targets are models (reached as `/model/{id}` and by OpenAI's `model`).
    pub const fn serves_models(self) -> bool {
        match self {
            Self::Chat | Self::Completions | Self::Embeddings => true,
            Self::Guardrail | Self::Agent => false,
        }
    }

    /// The Bedrock service the route's targets are.
    pub const fn service(self) -> Service {
        match self {
            Self::Chat | Self::Completions | Self::Embeddings | Self::Guardrail => Service::Runtime,
            Self::Agent => Service::AgentRuntime,
        }
    }
}

/// A Bedrock service endpoint; both sign with the name `bedrock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `bedrock-runtime.{region}.amazonaws.com`
    Runtime,
    /// `bedrock-agent-runtime.{region}.amazonaws.com`
    AgentRuntime,
}

impl Service {
    /// The endpoint's host name prefix, which also names the service in labels.
    pub const fn host_prefix(self) -> &'static str {
        match self {
            Self::Runtime => "bedrock-runtime",
            Self::AgentRuntime => "bedrock-agent-runtime",
        }
    }
}

/// The request headers Bedrock reads on InvokeModel and InvokeModelWithResponseStream, lower-cased:
/// the only client `x-amz*` headers that go upstream (signed), and the names `invoke_headers` may set.
pub const INVOKE_HEADERS: [&str; 5] = [
    "x-amzn-bedrock-guardrailidentifier",
    "x-amzn-bedrock-guardrailversion",
    "x-amzn-bedrock-trace",
    "x-amzn-bedrock-performanceconfig-latency",
    "x-amzn-bedrock-service-tier",
];

/// A target's defaults for [`INVOKE_HEADERS`] and whether a client's value replaces them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InvokeHeaders {
    /// `(lower-cased name from INVOKE_HEADERS, value)`, in the order of `INVOKE_HEADERS`.
    pub defaults: Vec<(&'static str, String)>,
    /// `false`: where the target sets a header, the client's value is dropped.
    pub overridable: bool,
}

/// The region's own guardrail for a client's guardrail id (`guardrail_map`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardrailRef {
    pub identifier: String,
    /// `None`: the client's version passes as sent.
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BalancerConfig {
    pub algorithm: Algorithm,
    pub latency_strategy: LatencyStrategy,
    pub tokens_count_strategy: TokensCountStrategy,
    /// Lower-cased header name; `None` means consistent hashing falls back to round-robin.
    pub hash_on_header: Option<String>,
    pub retries: u32,
    pub failover_criteria: FailoverCriteria,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// 0 disables the circuit breaker.
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub slots: NonZeroU32,
    /// `None` when `session_affinity_ttl` is 0.
    pub session_affinity: Option<SessionAffinity>,
}

/// How a route keeps a session on the target that built its prompt cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAffinity {
    /// Lower-cased headers whose value names a session; the first one present wins.
    pub headers: Vec<String>,
    /// A session not seen for this long is forgotten.
    pub ttl: Duration,
    /// Sessions one route remembers at most.
    pub max_sessions: NonZeroU32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RoundRobin,
    LeastConnections,
    LowestLatency,
    LowestUsage,
    ConsistentHashing,
    Priority,
    P2cEwma,
}

impl Algorithm {
    /// Every algorithm, in the order the config documentation lists them.
    pub const ALL: [Self; 7] = [
        Self::RoundRobin,
        Self::LeastConnections,
        Self::LowestLatency,
        Self::LowestUsage,
        Self::ConsistentHashing,
        Self::Priority,
        Self::P2cEwma,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round-robin",
            Self::LeastConnections => "least-connections",
            Self::LowestLatency => "lowest-latency",
            Self::LowestUsage => "lowest-usage",
            Self::ConsistentHashing => "consistent-hashing",
            Self::Priority => "priority",
            Self::P2cEwma => "p2c-ewma",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LatencyStrategy {
    Tpot,
    E2e,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokensCountStrategy {
    TotalTokens,
    PromptTokens,
    CompletionTokens,
    Cost,
}

/// One outcome that may send a request on to another target (Kong `failover_criteria`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailoverCriterion {
    Error,
    Timeout,
    InvalidHeader,
    Http403,
    Http404,
    Http429,
    Http500,
    Http502,
    Http503,
    Http504,
    NonIdempotent,
}

impl FailoverCriterion {
    pub const ALL: [Self; 11] = [
        Self::Error,
        Self::Timeout,
        Self::InvalidHeader,
        Self::Http403,
        Self::Http404,
        Self::Http429,
        Self::Http500,
        Self::Http502,
        Self::Http503,
        Self::Http504,
        Self::NonIdempotent,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::InvalidHeader => "invalid_header",
            Self::Http403 => "http_403",
            Self::Http404 => "http_404",
            Self::Http429 => "http_429",
            Self::Http500 => "http_500",
            Self::Http502 => "http_502",
            Self::Http503 => "http_503",
            Self::Http504 => "http_504",
            Self::NonIdempotent => "non_idempotent",
        }
    }

    /// The criterion that covers an upstream HTTP status, if any.
    pub const fn for_status(status: u16) -> Option<Self> {
        match status {
            403 => Some(Self::Http403),
            404 => Some(Self::Http404),
            // The Anthropic API's 529 (overloaded) fails over as a throttle does.
            429 | 529 => Some(Self::Http429),
            500 => Some(Self::Http500),
            502 => Some(Self::Http502),
            503 => Some(Self::Http503),
            504 => Some(Self::Http504),
            _ => None,
        }
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// A set of failover criteria, as a bit set so checking one costs nothing on the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FailoverCriteria(u16);

impl FailoverCriteria {
    pub fn insert(&mut self, criterion: FailoverCriterion) {
        self.0 |= criterion.bit();
    }

    pub const fn contains(self, criterion: FailoverCriterion) -> bool {
        self.0 & criterion.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = FailoverCriterion> {
        FailoverCriterion::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }
}

impl FromIterator<FailoverCriterion> for FailoverCriteria {
    fn from_iter<I: IntoIterator<Item = FailoverCriterion>>(iter: I) -> Self {
        let mut set = Self::default();
        for criterion in iter {
            set.insert(criterion);
        }
        set
    }
}

/// Who serves a target (`model.provider`, Kong's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Bedrock,
    /// The Anthropic API (Messages).
    Anthropic,
    /// Any OpenAI-compatible server.
    OpenAi,
    /// Azure OpenAI.
    Azure,
}

impl Provider {
    pub const ALL: [Self; 4] = [Self::Bedrock, Self::Anthropic, Self::OpenAi, Self::Azure];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Bedrock => "bedrock",
            Self::Anthropic => "anthropic",
            Self::OpenAi => "openai",
            Self::Azure => "azure",
        }
    }

    /// Whether the provider has an API for the route type: the Anthropic API has no embeddings
    /// or legacy completions, and guardrail and agent routes are Bedrock operations.
    pub const fn serves(self, route_type: RouteType) -> bool {
        match self {
            Self::Bedrock => true,
            Self::Anthropic => matches!(route_type, RouteType::Chat),
            Self::OpenAi | Self::Azure => matches!(
                route_type,
                RouteType::Chat | RouteType::Completions | RouteType::Embeddings
            ),
        }
    }
}

/// Where a non-Bedrock provider's request goes besides `upstream_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderOptions {
    Bedrock,
    /// Sent as the `anthropic-version` header.
    Anthropic {
        version: String,
    },
    OpenAi {
        stream_include_usage: bool,
    },
    /// `/openai/deployments/{deployment_id}/...?api-version={api_version}`.
    Azure {
        deployment_id: String,
        api_version: String,
        stream_include_usage: bool,
    },
}

impl ProviderOptions {
    pub const fn provider(&self) -> Provider {
        match self {
            Self::Bedrock => Provider::Bedrock,
            Self::Anthropic { .. } => Provider::Anthropic,
            Self::OpenAi { .. } => Provider::OpenAi,
            Self::Azure { .. } => Provider::Azure,
        }
    }

    /// Whether an OpenAI-format stream to the target asks for its usage chunk
    /// (`stream_options.include_usage`); `false` sends no `stream_options` at all, for servers
    /// that refuse the field.
    pub const fn asks_stream_usage(&self) -> bool {
        match self {
            Self::OpenAi {
                stream_include_usage,
            }
            | Self::Azure {
                stream_include_usage,
                ..
            } => *stream_include_usage,
            Self::Bedrock | Self::Anthropic { .. } => false,
        }
    }
}

/// How the gateway authenticates to a target, chosen by its provider: only a Bedrock target is
/// ever SigV4-signed, so the gateway's AWS credentials never reach another provider's server.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetAuth {
    /// Bedrock: SigV4 for the target's region, with static keys or else the standard AWS
    /// credential chain, optionally through an assumed role.
    SigV4 {
        keys: Option<AwsKeys>,
        assume_role: Option<AssumeRole>,
    },
    /// The target's own key, sent instead of a signature: a Bedrock API key, or another
    /// provider's key header.
    Key(KeyHeader),
    /// An OpenAI-compatible server that takes no key (a vLLM inside the network); never Bedrock.
    None,
}

impl TargetAuth {
    /// Whether requests are signed with AWS credentials the target's actor must load first.
    pub const fn needs_aws_credentials(&self) -> bool {
        matches!(self, Self::SigV4 { .. })
    }
}

/// A header carrying the target's own key (`auth.header_name` / `header_value`, or a Bedrock API
/// key as `Authorization: Bearer`). `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyHeader {
    /// Lower-cased.
    pub name: String,
    pub value: String,
}

impl std::fmt::Debug for KeyHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyHeader")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The operator's label for the target (`name`), which replaces `region/model` wherever the
    /// target is named: two keys for one provider's model differ by nothing else.
    pub name: Option<String>,
    /// The model id sent upstream (Bedrock model id, inference-profile id or ARN; the provider's
    /// model name otherwise); `None` for the regions of a `bedrock/guardrail` or `bedrock/agent`
    /// route.
    pub model_id: Option<String>,
    pub provider: ProviderOptions,
    /// The service the upstream is (from the route type); Bedrock targets only.
    pub service: Service,
    /// Bedrock: the AWS region the request is signed for; never parsed out of a host name.
    /// Other providers: the upstream's `host[:port]`, which names the target in the `region`
    /// label and, without a `name`, in its label.
    pub region: String,
    /// Scheme, host and optional port of the upstream, without a trailing slash:
    /// `https://{service host prefix}.{region}.amazonaws.com` for Bedrock, the provider's public
    /// API otherwise, unless `upstream_url` overrides it.
    pub upstream_url: String,
    /// The path of `upstream_url` that requests go under, without a trailing `/`: for `openai`
    /// the API's base as an OpenAI SDK's `base_url` has it (`/v1` when `upstream_url` names only
    /// a host), for `anthropic` a prefix before `/v1/messages`; empty for the others.
    pub base_path: String,
    /// Model routes only: defaults for Bedrock's InvokeModel headers.
    pub invoke_headers: InvokeHeaders,
    /// `bedrock/guardrail` routes only: client guardrail id -> this region's guardrail.
    pub guardrail_map: BTreeMap<String, GuardrailRef>,
    /// `bedrock/agent` routes only: client knowledge base id -> this region's knowledge base.
    pub knowledge_base_map: BTreeMap<String, String>,
    pub auth: TargetAuth,
    /// Price per million input tokens.
    pub input_cost: f64,
    /// Price per million output tokens.
    pub output_cost: f64,
    /// Price per million input tokens read from Bedrock's prompt cache.
    pub cache_read_cost: f64,
    /// Price per million input tokens written to Bedrock's prompt cache.
    pub cache_write_cost: f64,
    /// Set when the model id alone does not say (an application inference profile ARN).
    pub model_family: Option<ModelFamily>,
    /// Beta flags passed on to Claude as `anthropic_beta`; others are dropped.
    pub anthropic_betas: Vec<String>,
    /// Default `max_tokens` when the client sends none (used for token-budget reservations).
    pub max_tokens: Option<NonZeroU32>,
    /// How the output cap is spelled in a chat body the gateway writes for an `openai` / `azure`
    /// target (`max_tokens` for every other provider).
    pub max_tokens_field: MaxTokensField,
    pub weight: NonZeroU16,
    /// Lower number = preferred tier. `None`: Kong's rule (tier by weight, heavier first).
    pub priority: Option<u32>,
    pub limits: Limits,
}

/// The chat completions field a translated request's output cap goes in
/// (`options.max_tokens_field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaxTokensField {
    /// What vLLM, TGI, Ollama and every Azure API version take.
    MaxTokens,
    /// What OpenAI's and Azure's reasoning models (o-series, gpt-5) take instead.
    MaxCompletionTokens,
}

impl MaxTokensField {
    pub const ALL: [Self; 2] = [Self::MaxTokens, Self::MaxCompletionTokens];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MaxTokens => "max_tokens",
            Self::MaxCompletionTokens => "max_completion_tokens",
        }
    }
}

/// A model family whose native API the gateway speaks (`options.bedrock.model_family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelFamily {
    Anthropic,
}

impl Target {
    /// Whether the target is a Claude model, which takes Anthropic's Messages body on InvokeModel.
    pub fn speaks_anthropic(&self) -> bool {
        self.model_family == Some(ModelFamily::Anthropic)
            || self
                .model_id
                .as_deref()
                .is_some_and(|m| m.contains("anthropic."))
    }

    /// A stable, human-readable id used in logs, metrics labels and response headers: the
    /// target's `name`, else `region/model`.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("{}/{}", self.region, self.resource()),
        }
    }

    /// What the target serves, for labels: its model id, else its service (a region's guardrails
    /// or agent runtime).
    pub fn resource(&self) -> &str {
        self.model_id
            .as_deref()
            .unwrap_or(self.service.host_prefix())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    pub role_arn: String,
    pub session_name: String,
    pub sts_endpoint_url: Option<String>,
}
