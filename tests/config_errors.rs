//! Bad configs, each with the exact list of problems `check-config` prints; good configs with
//! the defaults they get.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::{NonZeroU16, NonZeroU32, NonZeroUsize};
use std::time::Duration;

use bedrock_balancer::config::{
    self, Algorithm, Config, FailoverCriterion, MaxTokensField, ProviderOptions, RateLimitBackend,
    RouteType, SessionAffinity, TargetAuth,
};

fn env(name: &str) -> Option<String> {
    match name {
        "TEAM_A_KEY" => Some("team-a-secret-key".to_owned()),
        "AWS_KEY_ID" => Some("AKIAEXAMPLE".to_owned()),
        "AWS_SECRET" => Some("wJalrXUtnFEMI/K7MDENG".to_owned()),
        "READ_TIMEOUT" => Some("90s".to_owned()),
        "EMPTY_KEY" => Some(String::new()),
        _ => None,
    }
}

fn errors(yaml: &str) -> String {
    match config::parse(yaml, &env) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors.to_string(),
    }
}

fn ok(yaml: &str) -> Config {
    config::parse(yaml, &env).unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

/// One route with one target, to which each case adds its mistake.
fn route_with(balancer: &str, target: &str) -> String {
    format!(
        "routes:
  - name: claude
    balancer: {{ {balancer} }}
    targets:
      - model:
          provider: bedrock
          name: anthropic.claude
          options: {{ bedrock: {{ aws_region: us-east-1 }} }}
        {target}
"
    )
}

const MINIMAL: &str = "routes:
  - name: claude
    targets:
      - model:
          provider: bedrock
          name: anthropic.claude
          options: { bedrock: { aws_region: us-east-1 } }
";

#[test]
fn unknown_top_level_field() {
    assert_eq!(
        errors(&format!("{MINIMAL}rutes: []\n")),
        "(root): unknown field \"rutes\", expected one of server, consumers, rate_limits, routes"
    );
}

#[test]
fn unknown_balancer_field() {
    assert_eq!(
        errors(&route_with("algoritm: priority", "")),
        "routes[0].balancer: unknown field \"algoritm\", expected one of algorithm, latency_strategy, \
         tokens_count_strategy, hash_on_header, slots, retries, failover_criteria, connect_timeout, \
         read_timeout, write_timeout, max_fails, fail_timeout, session_affinity_ttl, \
         session_affinity_max_sessions"
    );
}

#[test]
fn unknown_target_field() {
    assert_eq!(
        errors(&route_with("", "wieght: 5")),
        "routes[0].targets[0]: unknown field \"wieght\", expected one of model, auth, weight, priority, limits, name"
    );
}

#[test]
fn unknown_algorithm() {
    assert_eq!(
        errors(&route_with("algorithm: fastest", "")),
        "routes[0].balancer.algorithm: unknown algorithm \"fastest\"; expected one of round-robin, \
         least-connections, lowest-latency, lowest-usage, consistent-hashing, priority, p2c-ewma"
    );
}

#[test]
fn unknown_failover_criterion() {
    assert_eq!(
        errors(&route_with("failover_criteria: [error, http_418]", "")),
        "routes[0].balancer.failover_criteria[1]: unknown failover criterion \"http_418\"; expected one of \
         error, timeout, invalid_header, http_403, http_404, http_429, http_500, http_502, http_503, \
         http_504, non_idempotent"
    );
}

#[test]
fn empty_targets() {
    assert_eq!(
        errors("routes:\n  - name: claude\n    targets: []\n"),
        "routes[0].targets: must list at least one target"
    );
}

#[test]
fn no_routes() {
    assert_eq!(errors("server: {}\n"), "routes: required");
    assert_eq!(
        errors("routes: []\n"),
        "routes: must list at least one route"
    );
    assert_eq!(errors(""), "routes: required");
}

#[test]
fn duplicate_route_names() {
    let yaml = format!("{MINIMAL}{}", MINIMAL.trim_start_matches("routes:\n"));
    assert_eq!(
        errors(&yaml),
        "routes[1].name: duplicate route name \"claude\" (also routes[0])
routes[1].targets[0].model.name: \"anthropic.claude\" is already claimed by \
         routes[0].targets[0].model.name; a route name, model alias or model id must select one route"
    );
}

#[test]
fn missing_region() {
    assert_eq!(
        errors(&MINIMAL.replace(
            "options: { bedrock: { aws_region: us-east-1 } }",
            "options: {}"
        )),
        "routes[0].targets[0].model.options.bedrock.aws_region: required"
    );
}

#[test]
fn bad_region() {
    assert_eq!(
        errors(&MINIMAL.replace("us-east-1", "us-east")),
        "routes[0].targets[0].model.options.bedrock.aws_region: invalid AWS region \"us-east\"; \
         expected a region like us-east-1"
    );
}

#[test]
fn bad_model_family_betas_and_cache_prices() {
    let yaml = MINIMAL.replace(
        "options: { bedrock: { aws_region: us-east-1 } }",
        "options: { bedrock: { aws_region: us-east-1, model_family: llama }, cache_read_cost: -1, \
         anthropic_betas: [\"a,b\", ok-2025-01-01] }",
    );
    assert_eq!(
        errors(&yaml),
        "routes[0].targets[0].model.options.bedrock.model_family: unsupported model_family \
         \"llama\"; the only value is \"anthropic\" (other models are reached through Converse \
         and need none)\n\
         routes[0].targets[0].model.options.cache_read_cost: must be a finite number >= 0, got -1\n\
         routes[0].targets[0].model.options.anthropic_betas: beta flags must be non-empty and \
         hold no comma or space, got [\"a,b\"]"
    );
}

#[test]
fn anthropic_options() {
    let arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc";
    let config = ok(&MINIMAL.replace("anthropic.claude", arn).replace(
        "options: { bedrock: { aws_region: us-east-1 } }",
        "options: { bedrock: { aws_region: us-east-1, model_family: anthropic }, \
             cache_read_cost: 0.3, cache_write_cost: 3.75, anthropic_betas: [] }",
    ));
    let t = &config.routes[0].targets[0];
    assert!(t.speaks_anthropic());
    assert_eq!((t.cache_read_cost, t.cache_write_cost), (0.3, 3.75));
    assert!(t.anthropic_betas.is_empty());
    let default = &ok(MINIMAL).routes[0].targets[0];
    assert!(default.speaks_anthropic());
    assert!(
        default
            .anthropic_betas
            .contains(&"interleaved-thinking-2025-05-14".to_owned())
    );
    let nova =
        &ok(&MINIMAL.replace("anthropic.claude", "amazon.nova-lite-v1:0")).routes[0].targets[0];
    assert!(!nova.speaks_anthropic());
}

#[test]
fn weight_zero_and_too_large() {
    assert_eq!(
        errors(&route_with("", "weight: 0")),
        "routes[0].targets[0].weight: must be 1..=65535, got 0"
    );
    assert_eq!(
        errors(&route_with("", "weight: 70000")),
        "routes[0].targets[0].weight: must be 1..=65535, got 70000"
    );
}

#[test]
fn missing_env_var() {
    assert_eq!(
        errors(&route_with(
            "",
            "auth: { aws_access_key_id: \"${AWS_KEY}\", aws_secret_access_key: \"${AWS_SECRET}\" }"
        )),
        "routes[0].targets[0].auth.aws_access_key_id: environment variable AWS_KEY is not set"
    );
}

#[test]
fn unset_variable_in_a_comment_is_ignored() {
    ok(&format!("# export ${{NOT_SET}} first\n{MINIMAL}"));
}

#[test]
fn bad_upstream_url() {
    let bedrock = MINIMAL.replace(
        "options: { bedrock: { aws_region: us-east-1 } }",
        "options: { bedrock: { aws_region: us-east-1 }, upstream_url: \"https://vpce.example.com/v1\" }",
    );
    let azure = provider_target(
        "llm/v1/chat",
        "azure",
        "upstream_url: \"https://team.example.com/openai/v1\", azure_deployment_id: d",
        "header_name: api-key, header_value: k",
    );
    for origin_only in [bedrock, azure] {
        assert_eq!(
            errors(&origin_only),
            "routes[0].targets[0].model.options.upstream_url: must be http(s)://host[:port] with \
             no path: only openai and anthropic targets take a base path"
        );
    }
    assert_eq!(
        errors(&provider_target(
            "llm/v1/chat",
            "openai",
            "upstream_url: \"https://api.groq.com/openai/v1?x=1\"",
            ""
        )),
        "routes[0].targets[0].model.options.upstream_url: must have no query or fragment"
    );
    let yaml = MINIMAL.replace(
        "options: { bedrock: { aws_region: us-east-1 } }",
        "options: { bedrock: { aws_region: us-east-1 }, upstream_url: \"bedrock.example.com\" }",
    );
    assert_eq!(
        errors(&yaml),
        "routes[0].targets[0].model.options.upstream_url: must start with http:// or https://"
    );
}

#[test]
fn openai_and_anthropic_upstream_urls_are_sdk_base_urls() {
    let target = |provider: &str, url: &str| {
        let auth = "header_name: x-api-key, header_value: k";
        let yaml = provider_target(
            "llm/v1/chat",
            provider,
            &format!("upstream_url: \"{url}\""),
            auth,
        );
        ok(&yaml).routes[0].targets[0].clone()
    };
    let groq = target("openai", "https://api.groq.com/openai/v1/");
    assert_eq!(
        (
            groq.upstream_url.as_str(),
            groq.base_path.as_str(),
            groq.region.as_str()
        ),
        (
            "https://api.groq.com",
            "/openai/v1",
            "api.groq.com/openai/v1"
        )
    );
    assert_eq!(groq.label(), "api.groq.com/openai/v1/m1");
    // A bare host, with or without its root `/`, is the API's origin: calls go under `/v1`, and
    // the label is the host's.
    for url in ["http://vllm:8000", "http://vllm:8000/"] {
        let vllm = target("openai", url);
        assert_eq!(
            (
                vllm.upstream_url.as_str(),
                vllm.base_path.as_str(),
                vllm.label().as_str()
            ),
            ("http://vllm:8000", "/v1", "vllm:8000/m1"),
            "{url}"
        );
    }
    let proxy = target("anthropic", "https://proxy.example.com/anthropic");
    assert_eq!(
        (proxy.upstream_url.as_str(), proxy.base_path.as_str()),
        ("https://proxy.example.com", "/anthropic")
    );
    assert_eq!(
        target("anthropic", "https://api.anthropic.com").base_path,
        ""
    );
}

#[test]
fn negative_timeout() {
    assert_eq!(
        errors(&route_with("connect_timeout: -5", "")),
        "routes[0].balancer.connect_timeout: must not be negative, got -5"
    );
}

#[test]
fn junk_duration_and_zero_timeout() {
    assert_eq!(
        errors(&route_with("read_timeout: fast, fail_timeout: 0", "")),
        "routes[0].balancer.read_timeout: invalid duration \"fast\"; expected milliseconds (60000) or a number \
         with a unit: \"500ms\", \"60s\", \"2m\", \"1h\"\n\
         routes[0].balancer.fail_timeout: must be greater than 0"
    );
}

#[test]
fn session_affinity_bounds() {
    assert_eq!(
        errors(&route_with(
            "session_affinity_ttl: soon, session_affinity_max_sessions: 0",
            ""
        )),
        "routes[0].balancer.session_affinity_ttl: invalid duration \"soon\"; expected milliseconds (60000) or a \
         number with a unit: \"500ms\", \"60s\", \"2m\", \"1h\"\n\
         routes[0].balancer.session_affinity_max_sessions: must be 1..=10000000, got 0"
    );
}

#[test]
fn tpm_and_rpm_zero() {
    assert_eq!(
        errors(&route_with("", "limits: { tpm: 0 }")),
        "routes[0].targets[0].limits.tpm: must be >= 1, got 0"
    );
    assert_eq!(
        errors(&format!(
            "consumers:\n  - {{ name: team-a, api_key: \"${{TEAM_A_KEY}}\", limits: {{ rpm: 0 }} }}\n{MINIMAL}"
        )),
        "consumers[0].limits.rpm: must be >= 1, got 0"
    );
}

#[test]
fn provider_unknown() {
    assert_eq!(
        errors(&MINIMAL.replace("provider: bedrock", "provider: cohere")),
        "routes[0].targets[0].model.provider: unsupported provider \"cohere\"; expected one of \
         bedrock, anthropic, openai, azure"
    );
}

/// One target of `provider` on a route of `route_type`, with `options` and `auth` flow mappings.
fn provider_target(route_type: &str, provider: &str, options: &str, auth: &str) -> String {
    format!(
        "routes:
  - name: r
    route_type: {route_type}
    targets:
      - model: {{ provider: {provider}, name: m1, options: {{ {options} }} }}
        auth: {{ {auth} }}
"
    )
}

/// `"Bearer ${OPENAI_API_KEY}"` with the variable empty would send `Bearer ` and pass every other
/// check; the problem names the field and the variable, never a value.
#[test]
fn a_secret_whose_variable_is_empty_is_refused() {
    let openai = |auth: &str| provider_target("llm/v1/chat", "openai", "", auth);
    assert_eq!(
        errors(&openai(
            "header_name: Authorization, header_value: \"Bearer ${EMPTY_KEY}\""
        )),
        "routes[0].targets[0].auth.header_value: environment variable EMPTY_KEY is empty; a secret must not take an empty value"
    );
    // Alone it is reported once, not also as an empty header value.
    assert_eq!(
        errors(&openai(
            "header_name: x-api-key, header_value: \"${EMPTY_KEY}\""
        )),
        "routes[0].targets[0].auth.header_value: environment variable EMPTY_KEY is empty; a secret must not take an empty value"
    );
    assert_eq!(
        errors(&format!(
            "consumers:\n  - {{ name: team-a, api_key: \"team-${{EMPTY_KEY}}\" }}\n{MINIMAL}"
        )),
        "consumers[0].api_key: environment variable EMPTY_KEY is empty; a secret must not take an empty value"
    );
}

#[test]
fn provider_route_type_pairs_that_cannot_be_served() {
    let key = "header_name: x-api-key, header_value: k";
    assert_eq!(
        errors(&provider_target("llm/v1/embeddings", "anthropic", "", key)),
        "routes[0].targets[0].model.provider: provider \"anthropic\" cannot serve a \
         llm/v1/embeddings route; its targets may be: bedrock, openai, azure"
    );
    assert_eq!(
        errors(&provider_target("llm/v1/completions", "anthropic", "", key)),
        "routes[0].targets[0].model.provider: provider \"anthropic\" cannot serve a \
         llm/v1/completions route; its targets may be: bedrock, openai, azure"
    );
    for native_only in ["bedrock/guardrail", "bedrock/agent"] {
        assert_eq!(
            errors(&provider_target(native_only, "openai", "", "").replace("name: m1, ", "")),
            format!(
                "routes[0].targets[0].model.provider: provider \"openai\" cannot serve a \
                 {native_only} route; its targets may be: bedrock"
            )
        );
    }
}

#[test]
fn embeddings_routes_do_not_mix_bedrock_and_openai_targets() {
    let yaml = "routes:
  - name: embed
    route_type: llm/v1/embeddings
    targets:
      - model: { provider: bedrock, name: amazon.titan-embed-text-v2:0, options: { bedrock: { aws_region: us-east-1 } } }
      - model: { provider: openai, name: text-embedding-3-small }
";
    assert_eq!(
        errors(yaml),
        "routes[0].targets[1].model.provider: is \"openai\" but routes[0].targets[0] is \
         \"bedrock\"; an embeddings route serves one family (request bodies and vectors differ), \
         so give each its own route"
    );
    let openai_only = yaml.replace(
        "provider: bedrock, name: amazon.titan-embed-text-v2:0, options: { bedrock: { aws_region: us-east-1 } }",
        "provider: azure, name: text-embedding-3-small, options: { azure_instance: team, azure_deployment_id: emb }",
    ).replace("text-embedding-3-small }", "text-embedding-3-small }\n        auth: { header_name: api-key, header_value: k }");
    assert_eq!(
        errors(&openai_only),
        "routes[0].targets[0].auth.header_name: required for provider \"azure\" (with header_value)"
    );
}

#[test]
fn embeddings_routes_serve_one_openai_model() {
    let yaml = "routes:
  - name: embed
    route_type: llm/v1/embeddings
    targets:
      - model: { provider: openai, name: text-embedding-3-small }
      - model: { provider: azure, name: text-embedding-3-small, options: { azure_instance: team, azure_deployment_id: small } }
        auth: { header_name: api-key, header_value: k }
      - model: { provider: openai, name: text-embedding-3-large }
";
    assert_eq!(
        errors(yaml),
        "routes[0].targets[2].model.name: is \"text-embedding-3-large\" but routes[0].targets[0] \
         is \"text-embedding-3-small\"; an embeddings route serves one model (vectors of different \
         models are not comparable), so give each its own route"
    );
    let one_model = ok(&yaml.replace(
        "- model: { provider: openai, name: text-embedding-3-large }",
        "- name: second-key\n        model: { provider: openai, name: text-embedding-3-small }",
    ));
    assert_eq!(one_model.routes[0].targets.len(), 3);
}

#[test]
fn routes_mixing_claude_with_other_models_are_served_with_a_warning() {
    let yaml = "routes:
  - name: claude
    targets:
      - model: { provider: bedrock, name: us.anthropic.claude-sonnet-4-5-20250929-v1:0, options: { bedrock: { aws_region: us-east-1 } } }
      - model: { provider: openai, name: anthropic/claude-sonnet-4.5 }
      - model: { provider: azure, name: gpt-4o, options: { azure_instance: team, azure_deployment_id: gpt4o } }
        auth: { header_name: api-key, header_value: k }
  - name: llama
    targets:
      - model: { provider: bedrock, name: meta.llama3-70b-instruct-v1:0, options: { bedrock: { aws_region: us-east-1 } } }
      - model: { provider: openai, name: llama3 }
  - name: sonnet
    targets:
      - model: { provider: bedrock, name: arn:aws:bedrock:us-east-1:1:application-inference-profile/x, options: { bedrock: { aws_region: us-east-1, model_family: anthropic } } }
      - model: { provider: anthropic, name: claude-sonnet-4-5 }
        auth: { header_name: x-api-key, header_value: k }
  - name: unknown-family
    targets:
      - model: { provider: bedrock, name: arn:aws:bedrock:us-east-1:1:application-inference-profile/y, options: { bedrock: { aws_region: us-east-1 } } }
      - model: { provider: anthropic, name: claude-opus-4-1 }
        auth: { header_name: x-api-key, header_value: k }
  - name: doubled
    targets:
      - model: { provider: anthropic, name: claude-haiku-4-5, options: { upstream_url: \"https://proxy.internal/anthropic/v1/\" } }
        auth: { header_name: x-api-key, header_value: k }
      - model: { provider: openai, name: claude-3-5-haiku, options: { upstream_url: \"https://proxy.internal/v1/chat/completions\" } }
";
    let config = ok(yaml);
    let warnings: Vec<String> = config::warnings(&config)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        warnings,
        [
            "routes[0].targets: route \"claude\" mixes Claude targets \
          [routes[0].targets[0] (us-east-1/us.anthropic.claude-sonnet-4-5-20250929-v1:0), \
          routes[0].targets[1] (api.openai.com/anthropic/claude-sonnet-4.5)] with other models \
          [routes[0].targets[2] (team.openai.azure.com/gpt-4o)]: a request that fails over \
          between them is answered by another model family (tools, output and prompt caching \
          differ); give each family its own route unless that is meant",
            "routes[4].targets[0].model.options.upstream_url: its path ends in \"/v1\", and the \
          gateway appends \"/v1/messages\" to it (sending \"/anthropic/v1/v1/messages\"): give \
          the API's base, as an SDK's base_url",
            "routes[4].targets[1].model.options.upstream_url: its path ends in \
          \"/chat/completions\", and the gateway appends \"/chat/completions\" to it (sending \
          \"/v1/chat/completions/chat/completions\"): give the API's base, as an SDK's base_url"
        ]
    );
}

#[test]
fn provider_options_and_auth_belong_to_their_provider() {
    assert_eq!(
        errors(&provider_target(
            "llm/v1/chat",
            "anthropic",
            "bedrock: { aws_region: us-east-1 }, azure_deployment_id: d",
            "aws_access_key_id: AKIA, aws_bearer_token: t",
        )),
        "routes[0].targets[0].model.options.bedrock: not an option of provider \"anthropic\"
routes[0].targets[0].model.options.azure_deployment_id: not an option of provider \"anthropic\"
routes[0].targets[0].auth.header_name: required for provider \"anthropic\" (with header_value)
routes[0].targets[0].auth.aws_access_key_id: only for provider \"bedrock\"; a \"anthropic\" key goes in header_name / header_value
routes[0].targets[0].auth.aws_bearer_token: only for provider \"bedrock\"; a \"anthropic\" key goes in header_name / header_value"
    );
    assert_eq!(
        errors(&provider_target("llm/v1/chat", "azure", "anthropic_version: v", "header_name: api-key")),
        "routes[0].targets[0].model.options.azure_deployment_id: required for provider \"azure\"
routes[0].targets[0].model.options.azure_instance: required for provider \"azure\" unless upstream_url is set
routes[0].targets[0].model.options.anthropic_version: not an option of provider \"azure\"
routes[0].targets[0].auth.header_value: required when header_name is set"
    );
    assert_eq!(
        errors(&provider_target(
            "llm/v1/chat",
            "azure",
            "azure_instance: \"a/b\", azure_deployment_id: \"d?x\"",
            "header_name: Host, header_value: \"k\\ny\"",
        )),
        "routes[0].targets[0].model.options.azure_instance: must be non-empty letters, digits, '-', '_' or '.', got \"a/b\"
routes[0].targets[0].model.options.azure_deployment_id: must be non-empty letters, digits, '-', '_' or '.', got \"d?x\"
routes[0].targets[0].auth.header_name: \"Host\" is set by the gateway; name the header that carries the key
routes[0].targets[0].auth.header_value: must be printable ASCII (no line breaks)"
    );
    // Only OpenAI-format targets send `stream_options`.
    assert_eq!(
        errors(&provider_target(
            "llm/v1/chat",
            "anthropic",
            "stream_include_usage: false",
            "header_name: x-api-key, header_value: k",
        )),
        "routes[0].targets[0].model.options.stream_include_usage: not an option of provider \"anthropic\""
    );
    let config = ok(&provider_target(
        "llm/v1/chat",
        "openai",
        "stream_include_usage: false",
        "header_name: Authorization, header_value: Bearer k",
    ));
    let provider = &config.routes[0].targets[0].provider;
    assert_eq!(
        *provider,
        ProviderOptions::OpenAi {
            stream_include_usage: false
        }
    );
    assert!(!provider.asks_stream_usage());
}

#[test]
fn max_tokens_field_is_an_openai_and_azure_option() {
    let openai = |options: &str| {
        provider_target(
            "llm/v1/chat",
            "openai",
            options,
            "header_name: Authorization, header_value: Bearer k",
        )
    };
    assert_eq!(
        ok(&openai("")).routes[0].targets[0].max_tokens_field,
        MaxTokensField::MaxTokens
    );
    assert_eq!(
        ok(&openai("max_tokens_field: max_completion_tokens")).routes[0].targets[0]
            .max_tokens_field,
        MaxTokensField::MaxCompletionTokens
    );
    let azure = provider_target(
        "llm/v1/chat",
        "azure",
        "azure_instance: team, azure_deployment_id: o3, max_tokens_field: max_completion_tokens",
        "header_name: api-key, header_value: k",
    );
    assert_eq!(
        ok(&azure).routes[0].targets[0].max_tokens_field,
        MaxTokensField::MaxCompletionTokens
    );
    assert_eq!(
        errors(&openai("max_tokens_field: maxTokens")),
        "routes[0].targets[0].model.options.max_tokens_field: unknown max tokens field \"maxTokens\"; \
         expected one of max_tokens, max_completion_tokens"
    );
    assert_eq!(
        errors(&provider_target(
            "llm/v1/chat",
            "anthropic",
            "max_tokens_field: max_completion_tokens",
            "header_name: x-api-key, header_value: k",
        )),
        "routes[0].targets[0].model.options.max_tokens_field: not an option of provider \"anthropic\""
    );
}

#[test]
fn bedrock_api_keys_replace_sigv4_only() {
    let target = |auth: &str, bedrock: &str| {
        MINIMAL.replace(
            "options: { bedrock: { aws_region: us-east-1 } }",
            &format!("options: {{ bedrock: {{ aws_region: us-east-1{bedrock} }} }}\n        auth: {{ {auth} }}"),
        )
    };
    assert_eq!(
        errors(&target(
            "aws_bearer_token: t, aws_access_key_id: \"${AWS_KEY_ID}\", header_name: x-api-key",
            ", aws_assume_role_arn: \"arn:aws:iam::1:role/r\"",
        )),
        "routes[0].targets[0].auth.aws_bearer_token: not allowed with options.bedrock.aws_assume_role_arn (a Bedrock API key replaces SigV4)
routes[0].targets[0].auth.aws_access_key_id: not allowed with aws_bearer_token (a Bedrock API key replaces SigV4)
routes[0].targets[0].auth.header_name: not for provider \"bedrock\"; a Bedrock API key goes in aws_bearer_token"
    );
    let config = ok(&target("aws_bearer_token: \"${TEAM_A_KEY}\"", ""));
    let t = &config.routes[0].targets[0];
    let TargetAuth::Key(key) = &t.auth else {
        panic!("a Bedrock API key is sent as a key header: {:?}", t.auth);
    };
    assert_eq!(
        (key.name.as_str(), key.value.as_str()),
        ("authorization", "Bearer team-a-secret-key")
    );
    assert_eq!(
        t.upstream_url,
        "https://bedrock-runtime.us-east-1.amazonaws.com"
    );
    assert!(!format!("{config:?}").contains("team-a-secret-key"));
}

#[test]
fn every_provider_with_its_defaults_and_overrides() {
    let yaml = "routes:
  - name: claude
    balancer: { algorithm: priority }
    targets:
      - model: { provider: bedrock, name: anthropic.claude, options: { bedrock: { aws_region: us-east-1 } } }
      - model: { provider: anthropic, name: claude-sonnet-4-5 }
        auth: { header_name: x-api-key, header_value: \"${TEAM_A_KEY}\" }
      - model: { provider: anthropic, name: claude-sonnet-4-5, options: { upstream_url: \"http://127.0.0.1:9001/\", anthropic_version: 2023-01-01 } }
        auth: { header_name: X-Api-Key, header_value: k2 }
      - model: { provider: openai, name: llama3, options: { upstream_url: \"http://vllm:8000\" } }
      - model: { provider: openai, name: gpt-4o }
        auth: { header_name: Authorization, header_value: \"Bearer ${TEAM_A_KEY}\" }
      - model: { provider: azure, name: gpt-4o, options: { azure_instance: team, azure_deployment_id: gpt4o } }
        auth: { header_name: api-key, header_value: k3 }
      - model: { provider: azure, name: gpt-4o, options: { upstream_url: \"http://127.0.0.1:9002\", azure_deployment_id: d2, azure_api_version: 2024-10-21 } }
        auth: { header_name: api-key, header_value: k4 }
";
    let config = ok(yaml);
    // (provider, upstream, label host or region, key header)
    type Row<'a> = (
        ProviderOptions,
        &'a str,
        &'a str,
        Option<(&'a str, &'a str)>,
    );
    let got: Vec<Row> = config.routes[0]
        .targets
        .iter()
        .map(|t| {
            (
                t.provider.clone(),
                t.upstream_url.as_str(),
                t.region.as_str(),
                match &t.auth {
                    TargetAuth::Key(k) => Some((k.name.as_str(), k.value.as_str())),
                    TargetAuth::SigV4 { .. } | TargetAuth::None => None,
                },
            )
        })
        .collect();
    let anthropic = |v: &str| ProviderOptions::Anthropic {
        version: v.to_owned(),
    };
    let azure = |d: &str, v: &str| ProviderOptions::Azure {
        deployment_id: d.to_owned(),
        api_version: v.to_owned(),
        stream_include_usage: true,
    };
    let openai = ProviderOptions::OpenAi {
        stream_include_usage: true,
    };
    assert_eq!(
        got,
        [
            (
                ProviderOptions::Bedrock,
                "https://bedrock-runtime.us-east-1.amazonaws.com",
                "us-east-1",
                None
            ),
            (
                anthropic("2023-06-01"),
                "https://api.anthropic.com",
                "api.anthropic.com",
                Some(("x-api-key", "team-a-secret-key"))
            ),
            (
                anthropic("2023-01-01"),
                "http://127.0.0.1:9001",
                "127.0.0.1:9001",
                Some(("x-api-key", "k2"))
            ),
            (openai.clone(), "http://vllm:8000", "vllm:8000", None),
            (
                openai.clone(),
                "https://api.openai.com",
                "api.openai.com",
                Some(("authorization", "Bearer team-a-secret-key"))
            ),
            (
                azure("gpt4o", "2024-10-21"),
                "https://team.openai.azure.com",
                "team.openai.azure.com",
                Some(("api-key", "k3"))
            ),
            (
                azure("d2", "2024-10-21"),
                "http://127.0.0.1:9002",
                "127.0.0.1:9002",
                Some(("api-key", "k4"))
            ),
        ]
    );
    // Only the Bedrock target signs; the keyless vLLM sends no credentials at all.
    let auth = |i: usize| &config.routes[0].targets[i].auth;
    assert_eq!(
        *auth(0),
        TargetAuth::SigV4 {
            keys: None,
            assume_role: None
        }
    );
    assert_eq!(*auth(3), TargetAuth::None);
    assert!(!format!("{config:?}").contains("team-a-secret-key"));
}

#[test]
fn api_key_and_digest_both() {
    let digest = "a".repeat(64);
    assert_eq!(
        errors(&format!(
            "consumers:\n  - {{ name: team-a, api_key: \"${{TEAM_A_KEY}}\", api_key_sha256: \"{digest}\" }}\n{MINIMAL}"
        )),
        "consumers[0]: set api_key or api_key_sha256, not both"
    );
}

#[test]
fn bad_sha256_hex() {
    assert_eq!(
        errors(&format!(
            "consumers:\n  - {{ name: team-a, api_key_sha256: \"abc123\" }}\n{MINIMAL}"
        )),
        "consumers[0].api_key_sha256: must be 64 hexadecimal characters (a SHA-256 digest)"
    );
}

#[test]
fn duplicate_consumer_key() {
    // The second consumer's digest is SHA-256 of the first's key, so they are the same key.
    let yaml = format!(
        "consumers:
  - {{ name: team-a, api_key: \"${{TEAM_A_KEY}}\" }}
  - {{ name: team-b, api_key_sha256: \"{}\" }}
  - {{ name: team-a, api_key: other-key }}
{MINIMAL}",
        sha256_hex("team-a-secret-key")
    );
    assert_eq!(
        errors(&yaml),
        "consumers[1].api_key_sha256: same key as consumers[0]; every consumer needs its own\n\
         consumers[2].name: duplicate consumer name \"team-a\" (also consumers[0])"
    );
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[test]
fn consumer_without_credential() {
    assert_eq!(
        errors(&format!("consumers:\n  - name: team-a\n{MINIMAL}")),
        "consumers[0]: needs a credential: api_key, api_key_sha256, or aws_access_key_id with aws_secret_access_key"
    );
}

#[test]
fn redis_backend_without_url() {
    assert_eq!(
        errors(&format!("rate_limits: {{ backend: redis }}\n{MINIMAL}")),
        "rate_limits.redis_url: required when backend is redis"
    );
    assert_eq!(
        errors(&format!("rate_limits: {{ backend: memcached }}\n{MINIMAL}")),
        "rate_limits.backend: unknown backend \"memcached\"; expected one of local, redis"
    );
}

#[test]
fn half_an_auth_pair() {
    assert_eq!(
        errors(&route_with(
            "",
            "auth: { aws_access_key_id: \"${AWS_KEY_ID}\" }"
        )),
        "routes[0].targets[0].auth.aws_secret_access_key: required when aws_access_key_id is set"
    );
}

#[test]
fn duplicate_target() {
    let yaml = format!(
        "{MINIMAL}      - model: {{ provider: bedrock, name: anthropic.claude, options: {{ bedrock: {{ aws_region: us-west-2 }} }} }}
      - model: {{ provider: bedrock, name: anthropic.claude, options: {{ bedrock: {{ aws_region: us-east-1 }} }} }}
"
    );
    assert_eq!(
        errors(&yaml),
        "routes[0].targets[2]: duplicates routes[0].targets[0] (us-east-1/anthropic.claude); \
         to reach the same model twice (another key or account), give each target its own `name`"
    );
}

/// Two keys (organisations) for the same Anthropic model: the common way to double a quota.
fn two_anthropic_keys(names: [&str; 2]) -> String {
    let target = |name: &str, key: &str| {
        format!(
            "      - {name}model: {{ provider: anthropic, name: claude-sonnet-4-5 }}
        auth: {{ header_name: x-api-key, header_value: {key} }}
"
        )
    };
    format!(
        "routes:
  - name: claude
    targets:
{}{}",
        target(names[0], "key-org-a"),
        target(names[1], "key-org-b")
    )
}

#[test]
fn two_keys_to_one_host_and_model_need_names() {
    assert_eq!(
        errors(&two_anthropic_keys(["", ""])),
        "routes[0].targets[1]: duplicates routes[0].targets[0] (api.anthropic.com/claude-sonnet-4-5); \
         to reach the same model twice (another key or account), give each target its own `name`"
    );
    assert_eq!(
        errors(&two_anthropic_keys([
            "name: org-a\n        ",
            "name: org-a\n        "
        ])),
        "routes[0].targets[1]: duplicates routes[0].targets[0] (org-a); target names must differ \
         within a route"
    );
    // A name may not take another target's `region/model` label either.
    assert_eq!(
        errors(&two_anthropic_keys([
            "name: \"org/a b\"\n        ",
            "name: \"\"\n        "
        ])),
        "routes[0].targets[0].name: must be 1 to 64 letters, digits, '-', '_', '.' or ':', got \"org/a b\"\n\
         routes[0].targets[1].name: must be 1 to 64 letters, digits, '-', '_', '.' or ':', got \"\""
    );

    let config = ok(&two_anthropic_keys([
        "name: org-a\n        ",
        "name: org-b\n        ",
    ]));
    let labels: Vec<String> = config.routes[0].targets.iter().map(|t| t.label()).collect();
    assert_eq!(labels, ["org-a", "org-b"]);
    // One named, one not: the names differ, so nothing is a duplicate.
    let config = ok(&two_anthropic_keys(["name: org-a\n        ", ""]));
    let labels: Vec<String> = config.routes[0].targets.iter().map(|t| t.label()).collect();
    assert_eq!(labels, ["org-a", "api.anthropic.com/claude-sonnet-4-5"]);
}

#[test]
fn several_problems_at_once_in_document_order() {
    let yaml = "server:
  listen: 0.0.0.0:8080
  admin_listen: 0.0.0.0:8080
  workers: 0
routes:
  - name: claude
    balancer:
      algorithm: fastest
      retries: 99999
    targets:
      - model: { provider: bedrock, name: m1, options: { bedrock: { aws_region: us-east-1 } } }
        weight: 0
        colour: blue
      - model: { provider: bedrock, name: m2, options: { bedrock: { aws_region: nowhere } } }
        limits: { rpm: 0, tpm: -1 }
      - model: { provider: azure, name: m3, options: { bedrock: { aws_region: us-east-1 } } }
        weight: lots
  - name: claude
    targets: []
";
    assert_eq!(
        errors(yaml),
        "server.admin_listen: must not share a port with server.listen (0.0.0.0:8080)
server.workers: must be >= 1, got 0
routes[0].balancer.algorithm: unknown algorithm \"fastest\"; expected one of round-robin, least-connections, lowest-latency, lowest-usage, consistent-hashing, priority, p2c-ewma
routes[0].balancer.retries: must be 0..=32767, got 99999
routes[0].targets[0]: unknown field \"colour\", expected one of model, auth, weight, priority, limits, name
routes[0].targets[1].model.options.bedrock.aws_region: invalid AWS region \"nowhere\"; expected a region like us-east-1
routes[0].targets[1].limits.rpm: must be >= 1, got 0
routes[0].targets[1].limits.tpm: must be >= 1, got -1
routes[0].targets[2].weight: invalid type: string \"lots\", expected an integer
routes[1].name: duplicate route name \"claude\" (also routes[0])
routes[1].targets: must list at least one target"
    );
}

#[test]
fn yaml_syntax_error_has_line_and_column() {
    assert_eq!(
        errors("routes:\n  - name: claude\n   targets: [\n"),
        "line 3 column 4: invalid YAML: did not find expected '-' indicator, while parsing a block collection at line 2 column 3"
    );
}

#[test]
fn secrets_never_echoed() {
    let text = errors(&route_with(
        "",
        "auth: { aws_access_key_id: \"\", aws_secret_access_key: 1234567890, aws_session_token: 987654321 }",
    ));
    assert!(
        !text.contains("1234567890") && !text.contains("987654321"),
        "{text}"
    );
    assert_eq!(
        text,
        "routes[0].targets[0].auth.aws_secret_access_key: must be a string (quote the value)"
    );
}

#[test]
fn type_error_names_yaml_kinds() {
    assert_eq!(
        errors(&format!("server: 5\n{MINIMAL}")),
        "server: invalid type: integer 5, expected a mapping"
    );
}

#[test]
fn unreadable_file_is_a_problem_at_its_path() {
    let err = config::load(std::path::Path::new("/nonexistent/gateway.yaml")).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert_eq!(err.problems[0].path, "/nonexistent/gateway.yaml");
    assert!(
        err.problems[0].message.starts_with("cannot read: "),
        "{err}"
    );
}

// ------------------------------------------------------------------ good configs

#[test]
fn defaults_are_kongs() {
    let config = ok(MINIMAL);
    let route = &config.routes[0];
    assert_eq!(route.route_type, RouteType::Chat);
    let b = &route.balancer;
    assert_eq!(b.algorithm, Algorithm::RoundRobin);
    assert_eq!(b.retries, 5);
    assert_eq!(b.connect_timeout, Duration::from_secs(60));
    assert_eq!(b.read_timeout, Duration::from_secs(60));
    assert_eq!(b.write_timeout, Duration::from_secs(60));
    assert_eq!(b.max_fails, 0);
    assert_eq!(b.fail_timeout, Duration::from_secs(10));
    assert_eq!(b.slots, NonZeroU32::new(10_000).unwrap());
    assert_eq!(b.hash_on_header.as_deref(), Some("x-kong-llm-request-id"));
    // Kong's default hash header is per request, so only Claude Code's names sessions.
    assert_eq!(
        b.session_affinity,
        Some(SessionAffinity {
            headers: vec!["x-claude-code-session-id".to_owned()],
            ttl: Duration::from_secs(3600),
            max_sessions: NonZeroU32::new(100_000).unwrap(),
        })
    );
    assert_eq!(
        b.failover_criteria.iter().collect::<Vec<_>>(),
        vec![FailoverCriterion::Error, FailoverCriterion::Timeout]
    );
    let t = &route.targets[0];
    assert_eq!(t.weight, NonZeroU16::new(100).unwrap());
    assert_eq!(
        t.upstream_url,
        "https://bedrock-runtime.us-east-1.amazonaws.com"
    );
    assert_eq!(t.label(), "us-east-1/anthropic.claude");
    assert_eq!(
        (t.input_cost, t.output_cost, t.max_tokens, t.priority),
        (0.0, 0.0, None, None)
    );
    assert_eq!(
        t.auth,
        TargetAuth::SigV4 {
            keys: None,
            assume_role: None
        }
    );
    assert_eq!(config.rate_limits, RateLimitBackend::Local);
    assert!(config.consumers.is_empty());
    let s = &config.server;
    assert_eq!(s.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(s.admin_listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(s.admin_token_sha256, None);
    assert_eq!(
        s.max_request_body_size,
        NonZeroUsize::new(1_048_576).unwrap()
    );
    assert_eq!(
        s.max_response_body_size,
        NonZeroUsize::new(16 * 1_048_576).unwrap()
    );
    assert_eq!(
        (s.workers, s.max_concurrent_requests, s.log_payloads),
        (None, None, false)
    );
    assert_eq!(s.drain_grace, Duration::from_secs(5));
    assert_eq!(s.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(s.client_request_timeout, Duration::from_secs(10));
    assert_eq!(s.client_body_timeout, Duration::from_secs(30));
}

#[test]
fn durations_env_and_overrides() {
    let config = ok(&route_with(
        "connect_timeout: \"5s\", read_timeout: ${READ_TIMEOUT}, write_timeout: 1500, algorithm: consistent-hashing, \
         hash_on_header: X-Session",
        "auth: { aws_access_key_id: \"${AWS_KEY_ID}\", aws_secret_access_key: \"${AWS_SECRET}\" }",
    ));
    let b = &config.routes[0].balancer;
    assert_eq!(b.connect_timeout, Duration::from_secs(5));
    assert_eq!(b.read_timeout, Duration::from_secs(90));
    assert_eq!(b.write_timeout, Duration::from_millis(1500));
    assert_eq!(b.algorithm, Algorithm::ConsistentHashing);
    assert_eq!(b.hash_on_header.as_deref(), Some("x-session"));
    let session_headers = b.session_affinity.as_ref().map(|s| s.headers.clone());
    assert_eq!(
        session_headers,
        Some(vec![
            "x-session".to_owned(),
            "x-claude-code-session-id".to_owned()
        ]),
        "a hash_on_header the route sets names sessions first"
    );
    let TargetAuth::SigV4 {
        keys: Some(auth), ..
    } = &config.routes[0].targets[0].auth
    else {
        panic!("static keys: {:?}", config.routes[0].targets[0].auth);
    };
    assert_eq!(auth.access_key_id, "AKIAEXAMPLE");
    assert_eq!(auth.secret_access_key, "wJalrXUtnFEMI/K7MDENG");
}

#[test]
fn session_affinity_settings() {
    let b = ok(&route_with(
        "session_affinity_ttl: 5m, session_affinity_max_sessions: 500, hash_on_header: x-claude-code-session-id",
        "",
    ))
    .routes[0]
        .balancer
        .clone();
    assert_eq!(
        b.session_affinity,
        Some(SessionAffinity {
            headers: vec!["x-claude-code-session-id".to_owned()],
            ttl: Duration::from_secs(300),
            max_sessions: NonZeroU32::new(500).unwrap(),
        })
    );
    // Kong's per-request header never names a session, even when the route spells it out.
    let kong = ok(&route_with("hash_on_header: X-Kong-LLM-Request-ID", ""));
    let headers = kong.routes[0].balancer.session_affinity.as_ref().unwrap();
    assert_eq!(headers.headers, vec!["x-claude-code-session-id".to_owned()]);
    let off = ok(&route_with("session_affinity_ttl: 0", ""));
    assert_eq!(off.routes[0].balancer.session_affinity, None);
}

#[test]
fn consumer_keys_are_stored_as_digests() {
    let config = ok(&format!(
        "consumers:\n  - {{ name: team-a, api_key: \"${{TEAM_A_KEY}}\", limits: {{ rpm: 600, tpm: 2000000 }} }}\n{MINIMAL}"
    ));
    let c = &config.consumers[0];
    assert_eq!(
        hex::encode(c.api_key_sha256.unwrap()),
        sha256_hex("team-a-secret-key")
    );
    assert_eq!(c.limits.rpm, NonZeroU32::new(600));
    assert_eq!(c.limits.tpm, NonZeroU32::new(2_000_000));
}

#[test]
fn gateway_example_is_valid() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/gateway.yaml"))
        .unwrap();
    let vars = |name: &str| match name {
        "ADMIN_TOKEN" | "TEAM_A_API_KEY" | "BATCH_ACCESS_KEY_ID" | "BATCH_SECRET_ACCESS_KEY" => {
            Some(format!("{name}-value"))
        }
        "TEAM_B_API_KEY_SHA256" => Some(sha256_hex("team-b-key")),
        "REDIS_URL" => Some("rediss://redis.internal:6379".to_owned()),
        _ => None,
    };
    let config = config::parse(&text, &vars).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.routes.len(), 2);
    assert_eq!(config.routes[0].targets.len(), 3);
    assert_eq!(config.routes[1].route_type, RouteType::Embeddings);
    assert_eq!(config.consumers.len(), 3);
    assert_eq!(
        config.rate_limits,
        RateLimitBackend::Redis {
            url: "rediss://redis.internal:6379".to_owned()
        }
    );
    let TargetAuth::SigV4 {
        assume_role: Some(assumed),
        ..
    } = &config.routes[0].targets[2].auth
    else {
        panic!("an assumed role: {:?}", config.routes[0].targets[2].auth);
    };
    assert_eq!(assumed.session_name, "bedrock-balancer");
    assert_eq!(
        config.routes[1].balancer.read_timeout,
        Duration::from_secs(30)
    );

    // Without its variables the example names each one where it is used.
    let err = config::parse(&text, &|_| None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "server.admin_token: environment variable ADMIN_TOKEN is not set
consumers[0].api_key: environment variable TEAM_A_API_KEY is not set
consumers[1].api_key_sha256: environment variable TEAM_B_API_KEY_SHA256 is not set
consumers[2].aws_access_key_id: environment variable BATCH_ACCESS_KEY_ID is not set
consumers[2].aws_secret_access_key: environment variable BATCH_SECRET_ACCESS_KEY is not set
rate_limits.redis_url: environment variable REDIS_URL is not set"
    );
}

#[test]
fn unset_variable_hides_only_what_depends_on_it() {
    // The placeholder for ${W} is not a number; only the missing variable is worth reporting.
    assert_eq!(
        errors(&route_with("retries: -1", "weight: ${W}")),
        "routes[0].balancer.retries: must be 0..=32767, got -1\n\
         routes[0].targets[0].weight: environment variable W is not set"
    );
}

#[test]
fn escaped_reference_stays_literal() {
    assert_eq!(
        errors(&MINIMAL.replace("name: claude", "name: \"$${X}\"")),
        "routes[0].name: invalid route name \"${X}\"; use only letters, digits, _ . : / -"
    );
}

#[test]
fn admin_token_empty_or_not_a_string() {
    assert_eq!(
        errors(&format!("server: {{ admin_token: \"\" }}\n{MINIMAL}")),
        "server.admin_token: must not be empty (leave it out to keep /admin/* open on admin_listen)"
    );
    assert_eq!(
        errors(&format!("server: {{ admin_token: 123456 }}\n{MINIMAL}")),
        "server.admin_token: must be a string (quote the value)"
    );
    let config = ok(&format!(
        "server: {{ admin_token: \"${{TEAM_A_KEY}}\" }}\n{MINIMAL}"
    ));
    assert_eq!(
        config.server.admin_token_sha256.map(hex::encode),
        Some(sha256_hex("team-a-secret-key"))
    );
}

/// Two routes: `claude` over `anthropic.claude`, and `other` (with `aliases`) over `model`.
fn two_routes(aliases: &str, model: &str) -> String {
    format!(
        "{MINIMAL}  - name: other
    model_aliases: {aliases}
    targets:
      - model:
          provider: bedrock
          name: {model}
          options: {{ bedrock: {{ aws_region: us-west-2 }} }}
"
    )
}

#[test]
fn a_model_id_served_by_two_routes() {
    assert_eq!(
        errors(&two_routes("[]", "anthropic.claude")),
        "routes[1].targets[0].model.name: \"anthropic.claude\" is already claimed by \
         routes[0].targets[0].model.name; a route name, model alias or model id must select one route"
    );
}

#[test]
fn an_alias_claimed_by_another_route() {
    assert_eq!(
        errors(&two_routes("[fast, claude, anthropic.claude]", "meta.llama3")),
        "routes[1].model_aliases[1]: \"claude\" is already claimed by routes[0].name; a route name, \
         model alias or model id must select one route
routes[1].model_aliases[2]: \"anthropic.claude\" is already claimed by \
         routes[0].targets[0].model.name; a route name, model alias or model id must select one route"
    );
    // An alias may repeat its own route's name; another route's alias may not.
    let yaml = two_routes("[claude-2]", "meta.llama3").replace("name: other", "name: claude-2");
    assert!(ok(&yaml).routes[1].model_aliases == ["claude-2"]);
    let yaml = two_routes("[fast]", "meta.llama3")
        .replacen("name: claude", "name: fast", 1)
        .replace("name: other", "name: slow");
    assert_eq!(
        errors(&yaml),
        "routes[1].model_aliases[0]: \"fast\" is already claimed by routes[0].name; a route name, \
         model alias or model id must select one route"
    );
}

#[test]
fn an_alias_may_name_the_routes_own_model_id() {
    let config = ok(&two_routes("[meta.llama3, llama]", "meta.llama3"));
    assert_eq!(config.routes[1].model_aliases, ["meta.llama3", "llama"]);
    assert_eq!(
        errors(&two_routes("[\"\", \"bad alias\"]", "meta.llama3")),
        "routes[1].model_aliases[0]: must not be empty
routes[1].model_aliases[1]: invalid model alias \"bad alias\"; use only letters, digits, _ . : / -"
    );
}

#[test]
fn an_embeddings_route_serves_one_family() {
    let embeddings = |second: &str| {
        format!(
            "routes:
  - name: embed
    route_type: llm/v1/embeddings
    targets:
      - model:
          provider: bedrock
          name: amazon.titan-embed-text-v2:0
          options: {{ bedrock: {{ aws_region: us-east-1 }} }}
      - model:
          provider: bedrock
          name: {second}
          options: {{ bedrock: {{ aws_region: us-west-2 }} }}
"
        )
    };
    assert_eq!(
        errors(&embeddings("cohere.embed-english-v3")),
        "routes[0].targets[1].model.name: is a Cohere model but routes[0].targets[0] is Titan v2; \
         an embeddings route serves one family (request bodies and vectors differ), so give each \
         its own route"
    );
    assert_eq!(
        errors(&embeddings("anthropic.claude")),
        "routes[0].targets[1].model.name: \"anthropic.claude\" is not a Titan or Cohere text \
         embedding model, which a llm/v1/embeddings route needs"
    );
    assert_eq!(
        ok(&embeddings("amazon.titan-embed-text-v2:0")).routes[0]
            .targets
            .len(),
        2
    );
}

#[test]
fn max_embedding_inputs_default_and_range() {
    assert_eq!(
        ok(MINIMAL).server.max_embedding_inputs,
        NonZeroUsize::new(256).unwrap()
    );
    let with = |n: i64| format!("server: {{ max_embedding_inputs: {n} }}\n{MINIMAL}");
    assert_eq!(
        ok(&with(2048)).server.max_embedding_inputs,
        NonZeroUsize::new(2048).unwrap()
    );
    assert_eq!(
        errors(&with(2049)),
        "server.max_embedding_inputs: must be 1..=2048, got 2049"
    );
    assert_eq!(
        errors(&with(0)),
        "server.max_embedding_inputs: must be 1..=2048, got 0"
    );
}

/// A guardrail and an agent route, their targets regions without a model.
const REGION_ROUTES: &str = "
  - name: guardrails
    route_type: bedrock/guardrail
    targets:
      - model:
          provider: bedrock
          options:
            bedrock: { aws_region: us-west-2, guardrail_map: { client-gr: { identifier: gr-west, version: '7' }, other: { identifier: gr-x } } }
  - name: knowledge
    route_type: bedrock/agent
    targets:
      - model:
          provider: bedrock
          options: { bedrock: { aws_region: eu-west-1, knowledge_base_map: { KBCLIENT01: KBEUROPE01 } } }
";

#[test]
fn guardrail_and_agent_routes_take_regions_without_a_model() {
    let config = ok(&format!("{MINIMAL}{REGION_ROUTES}"));
    let guardrail = &config.routes[1].targets[0];
    assert_eq!(config.routes[1].route_type, RouteType::Guardrail);
    assert_eq!(guardrail.model_id, None);
    assert_eq!(
        guardrail.upstream_url,
        "https://bedrock-runtime.us-west-2.amazonaws.com"
    );
    assert_eq!(guardrail.label(), "us-west-2/bedrock-runtime");
    assert_eq!(
        guardrail.guardrail_map["client-gr"],
        config::GuardrailRef {
            identifier: "gr-west".into(),
            version: Some("7".into())
        }
    );
    assert_eq!(guardrail.guardrail_map["other"].version, None);
    let agent = &config.routes[2].targets[0];
    assert_eq!(config.routes[2].route_type, RouteType::Agent);
    assert_eq!(
        agent.upstream_url,
        "https://bedrock-agent-runtime.eu-west-1.amazonaws.com"
    );
    assert_eq!(agent.knowledge_base_map["KBCLIENT01"], "KBEUROPE01");
}

#[test]
fn at_most_one_guardrail_and_one_agent_route() {
    let twice = format!(
        "{MINIMAL}{REGION_ROUTES}{}",
        REGION_ROUTES
            .replace("name: guardrails", "name: guardrails-2")
            .replace("name: knowledge", "name: knowledge-2")
    );
    assert_eq!(
        errors(&twice),
        "routes[3].route_type: only one route may have route_type bedrock/guardrail (also routes[1])\n\
         routes[4].route_type: only one route may have route_type bedrock/agent (also routes[2])"
    );
}

#[test]
fn a_model_is_required_on_model_routes_and_refused_on_region_routes() {
    assert_eq!(
        errors(&MINIMAL.replace("          name: anthropic.claude\n", "")),
        "routes[0].targets[0].model.name: required"
    );
    assert_eq!(
        errors(&format!(
            "{MINIMAL}{}",
            REGION_ROUTES.replace(
                "          provider: bedrock\n          options: { bedrock: { aws_region: eu-west-1",
                "          provider: bedrock\n          name: amazon.rerank-v1:0\n          options: { bedrock: { aws_region: eu-west-1"
            )
        )),
        "routes[2].targets[0].model.name: must be omitted: the targets of a bedrock/agent route are regions, not models"
    );
}

#[test]
fn routing_options_belong_to_their_route_type() {
    let mapped_model = MINIMAL.replace(
        "aws_region: us-east-1 }",
        "aws_region: us-east-1, guardrail_map: { a: { identifier: b } }, knowledge_base_map: { c: d } }",
    );
    assert_eq!(
        errors(&mapped_model),
        "routes[0].targets[0].model.options.bedrock.guardrail_map: not allowed on a llm/v1/chat route\n\
         routes[0].targets[0].model.options.bedrock.knowledge_base_map: not allowed on a llm/v1/chat route"
    );
    let headers_on_guardrail = format!(
        "{MINIMAL}{}",
        REGION_ROUTES.replace(
            "aws_region: us-west-2,",
            "aws_region: us-west-2, invoke_headers: { X-Amzn-Bedrock-Trace: ENABLED },"
        )
    );
    assert_eq!(
        errors(&headers_on_guardrail),
        "routes[1].targets[0].model.options.bedrock.invoke_headers: not allowed on a bedrock/guardrail route"
    );
    assert_eq!(
        errors(
            &MINIMAL
                .replace(
                    "aws_region: us-east-1 }",
                    "aws_region: us-east-1, guardrail_map: { a: { version: '1' } } }"
                )
                .replace(
                    "  - name: claude\n",
                    "  - name: g\n    route_type: bedrock/guardrail\n"
                )
                .replace("          name: anthropic.claude\n", "")
        ),
        "routes[0].targets[0].model.options.bedrock.guardrail_map.a.identifier: required"
    );
}

#[test]
fn invoke_headers_are_bedrocks_own_with_printable_values() {
    let config = ok(&MINIMAL.replace(
        "aws_region: us-east-1 }",
        "aws_region: us-east-1, invoke_headers: { X-Amzn-Bedrock-Trace: ENABLED, x-amzn-bedrock-guardrailidentifier: gr-1 }, invoke_headers_overridable: false }",
    ));
    let headers = &config.routes[0].targets[0].invoke_headers;
    assert_eq!(
        headers.defaults,
        [
            ("x-amzn-bedrock-guardrailidentifier", "gr-1".to_owned()),
            ("x-amzn-bedrock-trace", "ENABLED".to_owned())
        ]
    );
    assert!(!headers.overridable);
    assert!(ok(MINIMAL).routes[0].targets[0].invoke_headers.overridable);
    assert_eq!(
        errors(&MINIMAL.replace(
            "aws_region: us-east-1 }",
            "aws_region: us-east-1, invoke_headers: { X-Amz-Security-Token: t, X-Amzn-Bedrock-Trace: \"a\\nb\" } }",
        )),
        "routes[0].targets[0].model.options.bedrock.invoke_headers.X-Amz-Security-Token: not a header Bedrock reads on InvokeModel; expected one of x-amzn-bedrock-guardrailidentifier, x-amzn-bedrock-guardrailversion, x-amzn-bedrock-trace, x-amzn-bedrock-performanceconfig-latency, x-amzn-bedrock-service-tier\n\
         routes[0].targets[0].model.options.bedrock.invoke_headers.X-Amzn-Bedrock-Trace: must be a non-empty header value of printable ASCII"
    );
}
