//! Every default the loader applies, each with the reason it was chosen. Balancer defaults are Kong
//! `ai-proxy-advanced`'s, so a Kong config carried across behaves the same.

use std::time::Duration;

/// Conventional HTTP port, the one container platforms probe by default.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// A separate port keeps metrics and admin endpoints off the public listener, and loopback keeps
/// reload and the target view off the network until a deployment opens it on purpose.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// 1 MiB holds a long chat history; larger bodies are usually images and should be a choice.
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: usize = 1024 * 1024;
/// 16 MiB covers large embedding batches while bounding memory per buffered response.
pub const DEFAULT_MAX_RESPONSE_BODY_SIZE: usize = 16 * 1024 * 1024;
pub const DEFAULT_MAX_EMBEDDING_INPUTS: usize = 256;
/// OpenAI's own cap on inputs per embeddings request: the most `max_embedding_inputs` may allow.
pub const MAX_EMBEDDING_INPUTS: usize = 2048;
/// Long enough for a cloud load balancer to notice a failing readiness probe and stop sending.
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(5);
/// Kubernetes' default termination grace period; streams still running after it are cut.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// A request head that takes longer than this is a slow-loris, not a client.
pub const DEFAULT_CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bodies are at most a few MiB; 30 s allows slow links without pinning connections forever.
pub const DEFAULT_CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Payloads may hold personal data, so logging them must be asked for.
pub const DEFAULT_LOG_PAYLOADS: bool = false;

/// Needs no other service; Redis is for limits shared across replicas.
pub const DEFAULT_RATE_LIMIT_BACKEND: &str = "local";

/// Kong's default route type; chat is what most clients send.
pub const DEFAULT_ROUTE_TYPE: &str = "llm/v1/chat";
/// Kong's default: no state, spreads load by weight.
pub const DEFAULT_ALGORITHM: &str = "round-robin";
/// Kong's default: time per output token compares targets fairly across response lengths.
pub const DEFAULT_LATENCY_STRATEGY: &str = "tpot";
/// Kong's default: input and output tokens both cost capacity.
pub const DEFAULT_TOKENS_COUNT_STRATEGY: &str = "total-tokens";
/// Kong's default header for consistent hashing (stored lower-cased, as HTTP/2 sends it).
pub const DEFAULT_HASH_ON_HEADER: &str = "X-Kong-LLM-Request-ID";
/// Kong's default ring size: fine-grained enough for 65535 weight points across a few targets.
pub const DEFAULT_SLOTS: u32 = 10_000;
/// Kong's default: enough to try every region of a typical three-region route twice.
pub const DEFAULT_RETRIES: u32 = 5;
/// Kong's default: only fail over on outcomes where the request surely did no work upstream.
pub const DEFAULT_FAILOVER_CRITERIA: [&str; 2] = ["error", "timeout"];
/// The header Claude Code sends with every request of one session.
pub const CLAUDE_CODE_SESSION_HEADER: &str = "x-claude-code-session-id";
/// Bedrock's longest prompt-cache lifetime (the 1-hour cache TTL): a session idle for longer has
/// no cache left to return to.
pub const DEFAULT_SESSION_AFFINITY_TTL: Duration = Duration::from_secs(3600);
/// Sessions held per route: a few MB at most (an entry is a hash, a target and a time), far more
/// than the concurrent sessions one replica serves.
pub const DEFAULT_SESSION_AFFINITY_MAX_SESSIONS: u32 = 100_000;
/// Kong's default (60 000 ms).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Kong's default (60 000 ms); long generations stream, so this bounds the gap between chunks.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Kong's default (60 000 ms).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Kong's default: the circuit breaker is off until asked for.
pub const DEFAULT_MAX_FAILS: u32 = 0;
/// Kong's default (10 000 ms): how long a tripped target rests before it is tried again.
pub const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);

/// Kong's default target weight; leaves room to weigh a target down as well as up.
pub const DEFAULT_WEIGHT: u16 = 100;
/// Names the gateway in CloudTrail when it assumes a role.
pub const DEFAULT_ROLE_SESSION_NAME: &str = "bedrock-balancer";
/// Costs are only for metrics and `tokens_count_strategy: cost`; zero means "not priced".
pub const DEFAULT_COST: f64 = 0.0;
/// Beta flags Bedrock's Claude models take in `anthropic_beta` today (Anthropic-API-only flags such
/// as `claude-code-20250219` make Bedrock answer `invalid beta flag`, so they are dropped).
pub const DEFAULT_ANTHROPIC_BETAS: [&str; 12] = [
    "interleaved-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "tool-search-tool-2025-10-19",
    "fine-grained-tool-streaming-2025-05-14",
    "token-efficient-tools-2025-02-19",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-examples-2025-10-29",
    "computer-use-2025-01-24",
    "computer-use-2024-10-22",
];

/// The Anthropic API, for `provider: anthropic` without `options.upstream_url`.
pub const DEFAULT_ANTHROPIC_URL: &str = "https://api.anthropic.com";
/// OpenAI's API, for `provider: openai` without `options.upstream_url`.
pub const DEFAULT_OPENAI_URL: &str = "https://api.openai.com";
/// The `anthropic-version` header the Anthropic API requires (Kong's default).
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";
/// The latest GA Azure OpenAI API version, the first GA one with `stream_options` (the streamed
/// usage the gateway counts tokens by) beside `tools`, `tool_choice` and `parallel_tool_calls`.
/// Kong's default, `2023-05-15`, predates all of them.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";
/// OpenAI-format streams ask for their usage chunk unless a target says its server refuses
/// `stream_options`.
pub const DEFAULT_STREAM_INCLUDE_USAGE: bool = true;
