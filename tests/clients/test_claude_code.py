"""The real Claude Code CLI (`@anthropic-ai/claude-code`, installed by tests/run.sh into
tests/.claude-code/) against the gateway, in Bedrock mode and in messages mode; the gateway
forwards to the simulated Bedrock, Anthropic API and OpenAI-compatible server.

Each run gets a fresh temporary HOME and working directory, an environment built from scratch (no
credentials of the machine leak in), telemetry, auto-update and non-essential traffic off, no
retries and a bounded timeout, so a CLI that cannot reach the gateway fails at once with its
own message instead of hanging."""

import os
import pathlib
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

import harness
import obs_support

CLI = pathlib.Path(
    os.environ.get(
        "CLAUDE_CODE_BIN", harness.ROOT / "tests" / ".claude-code" / "node_modules" / ".bin" / "claude"
    )
)
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
API_KEY = "sk-team-cc-pytest-7d2e9a"
PROMPT = "say hi"
ANSWER = f"Hello from us-east-1 ({SONNET}). You said: {PROMPT}"
# A CLI run on a loaded 2-core machine; a healthy one takes a few seconds.
RUN_TIMEOUT_SECONDS = 120
# The gateway's log line is written by a background thread, soon after the response.
LOG_WAIT_SECONDS = 10
# Flags that Bedrock accepts in `anthropic_beta` (the simulator refuses any other).
BEDROCK_BETAS = {
    "interleaved-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "tool-search-tool-2025-10-19",
    "fine-grained-tool-streaming-2025-05-14",
    "token-efficient-tools-2025-02-19",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "output-128k-2025-02-19",
}


def routes(sim_url):
    return f"""
routes:
  - name: claude
    balancer: {{ retries: 0 }}
    targets:{harness.target_yaml(SONNET, "us-east-1", sim_url)}
  - name: haiku
    balancer: {{ retries: 0 }}
    targets:{harness.target_yaml(HAIKU, "us-east-1", sim_url)}
"""


SERVER = "server: { listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2 }\n"


def require_cli():
    if not os.access(CLI, os.X_OK):
        pytest.fail(
            f"Claude Code CLI not found at {CLI}: run tests/run.sh, or "
            "`npm install --prefix tests/.claude-code @anthropic-ai/claude-code`"
        )


@pytest.fixture(scope="module")
def stack():
    require_cli()
    sim = harness.start_sim("us-east-1")
    started = [sim]
    try:
        open_gateway = harness.start_gateway(SERVER + routes(sim.url))
        started.append(open_gateway)
        keyed_gateway = harness.start_gateway(
            SERVER + f'consumers:\n  - {{ name: team-cc, api_key: "{API_KEY}" }}\n' + routes(sim.url)
        )
        started.append(keyed_gateway)
        yield sim, open_gateway, keyed_gateway
    finally:
        for process in reversed(started):
            process.stop()


@pytest.fixture
def sim(stack):
    sim = stack[0]
    request = urllib.request.Request(sim.url + "/_sim/stats", method="DELETE")
    urllib.request.urlopen(request, timeout=5).close()
    return sim


def bedrock_mode(base_url):
    return {
        "CLAUDE_CODE_USE_BEDROCK": "1",
        "ANTHROPIC_BEDROCK_BASE_URL": base_url,
        "AWS_REGION": "us-east-1",
    }


def messages_mode(base_url, api_key):
    """Claude Code speaking Anthropic's Messages API to the gateway, as it would to api.anthropic.com."""
    return {"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": api_key}


def claude(base_url, mode=None, models=(SONNET, HAIKU), prompt=PROMPT, args=(), **auth):
    """Runs `claude -p prompt [args]` against `base_url` (Bedrock mode unless `mode` says
    otherwise) with `models` as its main and small/fast model; returns the finished process."""
    with tempfile.TemporaryDirectory() as home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            **(mode if mode is not None else bedrock_mode(base_url)),
            "ANTHROPIC_MODEL": models[0],
            "ANTHROPIC_SMALL_FAST_MODEL": models[1],
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": models[1],
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            # One attempt: an unreachable or refusing gateway fails now, not after minutes of backoff.
            "CLAUDE_CODE_MAX_RETRIES": "0",
            **auth,
        }
        try:
            return subprocess.run(
                [str(CLI), "-p", prompt, *args],
                cwd=home,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired as e:
            pytest.fail(
                f"claude -p did not finish in {RUN_TIMEOUT_SECONDS}s against {base_url}; "
                f"stdout: {e.stdout!r} stderr: {e.stderr!r}"
            )


def streamed_bodies(sim):
    stats = harness.sim_stats(sim.url)
    return stats, [
        r for r in stats["claude_requests"] if r["operation"] == "invoke-with-response-stream"
    ]


def assert_bedrock_valid(record):
    assert "model" not in record["keys"] and "stream" not in record["keys"], record["keys"]
    assert record["anthropic_version"] == "bedrock-2023-05-31"
    assert set(record["anthropic_beta"] or []) <= BEDROCK_BETAS, record["anthropic_beta"]


def test_bedrock_mode_without_auth_prints_the_simulators_answer(stack, sim):
    _, gateway, _ = stack
    done = claude(gateway.url, CLAUDE_CODE_SKIP_BEDROCK_AUTH="1")
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip() == ANSWER
    stats, [record] = streamed_bodies(sim)
    assert record["model"] == SONNET
    assert_bedrock_valid(record)
    # Claude Code turns thinking on and caches its system prompt and last turn.
    assert record["body"]["thinking"]["type"] == "enabled"
    assert stats["by_model"][SONNET]["invoke-with-response-stream"] == 1


def test_bedrock_mode_with_a_consumer_key_as_bearer_token(stack, sim):
    _, _, gateway = stack
    done = claude(gateway.url, AWS_BEARER_TOKEN_BEDROCK=API_KEY)
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip() == ANSWER
    stats, [record] = streamed_bodies(sim)
    assert_bedrock_valid(record)
    # The gateway signed upstream with its own key; the consumer's key stayed with the gateway.
    upstream_auth = stats["last_request_headers"]["authorization"]
    assert upstream_auth.startswith("AWS4-HMAC-SHA256 Credential=" + harness.KEY_ID)
    assert API_KEY not in str(stats)
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while not any('"team-cc"' in line for line in gateway.stderr_lines):
        assert time.monotonic() < deadline, "no request logged for consumer team-cc"
        time.sleep(0.05)


def test_bedrock_mode_with_a_wrong_key_is_refused_before_any_region(stack, sim):
    _, _, gateway = stack
    done = claude(gateway.url, AWS_BEARER_TOKEN_BEDROCK=API_KEY + "-wrong")
    assert done.returncode != 0
    assert "401" in done.stdout + done.stderr
    assert harness.sim_stats(sim.url)["requests_total"] == 0


def test_an_unreachable_gateway_fails_at_once(stack):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    done = claude(f"http://127.0.0.1:{closed_port}", CLAUDE_CODE_SKIP_BEDROCK_AUTH="1")
    assert done.returncode != 0
    assert "Unable to connect" in done.stdout + done.stderr


def test_messages_mode_prints_the_simulators_answer(stack, sim):
    _, gateway, _ = stack
    done = claude(gateway.url, messages_mode(gateway.url, "unused-without-consumers"))
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip() == ANSWER
    stats, [record] = streamed_bodies(sim)
    assert record["model"] == SONNET
    assert_bedrock_valid(record)
    # Claude Code's Anthropic-API-only beta flags were dropped, its body otherwise kept.
    assert record["body"]["thinking"]["type"] == "enabled"


def test_messages_mode_with_a_consumer_key(stack, sim):
    _, _, gateway = stack
    done = claude(gateway.url, messages_mode(gateway.url, API_KEY))
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip() == ANSWER
    stats, [record] = streamed_bodies(sim)
    assert_bedrock_valid(record)
    assert API_KEY not in str(stats)


def test_messages_mode_with_a_wrong_key_is_refused_before_any_region(stack, sim):
    _, _, gateway = stack
    done = claude(gateway.url, messages_mode(gateway.url, API_KEY + "-wrong"))
    assert done.returncode != 0
    assert harness.sim_stats(sim.url)["requests_total"] == 0


# Messages mode to the other providers. A model name Claude Code does not know (a route name such
# as `claude-api` or `gpt`) makes it assume the newest Claude: adaptive thinking, `output_config`
# effort, `context_management` and system messages between turns (beta
# mid-conversation-system-2026-04-07). A Claude model name makes it send what that model takes.
UPSTREAM_KEY = "sk-ant-upstream-cc-51f0"
OPENAI_KEY = "sk-openai-upstream-cc-93b2"
API_MODEL = "claude-sonnet-4-5-20250929"
API_SMALL_MODEL = "claude-haiku-4-5-20251001"
GPT, GPT_SMALL = "gpt-4o", "gpt-4o-mini"
# Named as the model, so Claude Code sends what Sonnet 4.5 takes on Bedrock and the API alike.
OVERFLOW_ROUTE, OVERFLOW_MODEL = "claude-sonnet-4-5", "claude-sonnet-4-5"
# Flags of Claude Code that Bedrock refuses; the Anthropic API must get them.
ANTHROPIC_API_BETAS = {"claude-code-20250219", "mid-conversation-system-2026-04-07"}


@pytest.fixture(scope="module")
def providers():
    require_cli()
    region = harness.start_sim("us-east-1")
    api = harness.start_sim("us-east-1", "--provider", "anthropic", "--api-key", UPSTREAM_KEY)
    oai = harness.start_sim("us-east-1", "--provider", "openai", "--api-key", OPENAI_KEY)
    started = [region, api, oai]
    try:
        gateway = harness.start_gateway(
            SERVER
            + f"""consumers:
  - {{ name: team-cc, api_key: "{API_KEY}" }}
routes:
  - name: claude-api
    targets:{harness.anthropic_target(api.url, API_MODEL, UPSTREAM_KEY)}
  - name: claude-api-small
    targets:{harness.anthropic_target(api.url, API_SMALL_MODEL, UPSTREAM_KEY)}
  - name: gpt
    targets:{harness.openai_target(oai.url, GPT, OPENAI_KEY)}
  - name: gpt-small
    targets:{harness.openai_target(oai.url, GPT_SMALL, OPENAI_KEY)}
  - name: {OVERFLOW_ROUTE}
    balancer: {{ algorithm: priority, retries: 1, failover_criteria: [error, timeout, http_429, non_idempotent] }}
    targets:{harness.target_yaml(SONNET, "us-east-1", region.url)}
        priority: 1{harness.anthropic_target(api.url, OVERFLOW_MODEL, UPSTREAM_KEY, 2)}
"""
        )
        started.append(gateway)
        gateway.sims = {"bedrock": region, "anthropic": api, "openai": oai}
        yield gateway
    finally:
        for process in reversed(started):
            process.stop()


@pytest.fixture
def gateway(providers):
    for sim in providers.sims.values():
        urllib.request.urlopen(urllib.request.Request(sim.url + "/_sim/stats", method="DELETE"), timeout=5).close()
    return providers


def requests_total(gateway):
    """{(route, provider, code): count} from the gateway's `requests_total`."""
    counts = {}
    for line in obs_support.scrape(gateway.admin).splitlines():
        if line.startswith("bedrock_balancer_requests_total{"):
            labels = dict(obs_support.LABEL.findall(line))
            key = (labels["route"], labels["provider"], labels["code"])
            counts[key] = counts.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return counts


def run(gateway, models, expected, prompt=PROMPT, args=()):
    """Runs the CLI in messages mode with `models`; returns it once the gateway has counted what
    the run asked of it, which must be `expected` ({(route, provider, code): n}, every request
    answered 200 by a target: a refused background call would show here). A stream is counted
    when it ends, just after the CLI read its last byte: polled, bounded."""
    before = requests_total(gateway)
    done = claude(gateway.url, messages_mode(gateway.url, API_KEY), models, prompt, args)
    assert done.returncode == 0, done.stderr + done.stdout

    def counted():
        return {k: n - before.get(k, 0) for k, n in requests_total(gateway).items() if n != before.get(k, 0)}

    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while (seen := counted()) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen == expected
    return done


def assert_only_the_targets_key(headers, name, value):
    assert headers.get(name) == value, headers
    assert not ({"x-api-key", "authorization"} - {name}) & set(headers), headers
    assert all(API_KEY not in v for v in headers.values()), headers


def test_messages_mode_passes_through_to_the_anthropic_api(gateway):
    done = run(gateway, ("claude-api", "claude-api-small"), {("claude-api", "anthropic", "200"): 1})
    assert done.stdout.strip() == f"Hello from us-east-1 ({API_MODEL}). You said: {PROMPT}"
    stats = harness.sim_stats(gateway.sims["anthropic"].url)
    headers = stats["last_request_headers"]
    assert_only_the_targets_key(headers, "x-api-key", UPSTREAM_KEY)
    # Unfiltered: the API-only flags Bedrock would refuse arrive with the rest.
    betas = set(headers["anthropic-beta"].split(","))
    assert ANTHROPIC_API_BETAS <= betas, betas
    [record] = [r for r in stats["claude_requests"] if r["model"] == API_MODEL]
    # The body as Claude Code wrote it, model aside: its system message between the turns too.
    assert record["operation"] == "messages-stream"
    assert record["body"]["thinking"]["type"] == "adaptive"
    assert "system" in [m["role"] for m in record["body"]["messages"]]
    assert set(stats["by_model"]) <= {API_MODEL, API_SMALL_MODEL}, stats["by_model"]


def test_messages_mode_is_translated_to_an_openai_compatible_server(gateway):
    done = run(gateway, ("gpt", "gpt-small"), {("gpt", "openai", "200"): 1})
    # Claude Code streams; the chat stream came back as Anthropic events it could print.
    assert done.stdout.strip() == f"Hello from us-east-1 ({GPT}). You said: {PROMPT}"
    stats = harness.sim_stats(gateway.sims["openai"].url)
    assert stats["by_model"][GPT] == {"chat-completions-stream": 1}, stats["by_model"]
    assert set(stats["by_model"]) <= {GPT, GPT_SMALL}, stats["by_model"]
    assert_only_the_targets_key(stats["last_request_headers"], "authorization", f"Bearer {OPENAI_KEY}")


def test_messages_mode_runs_a_tool_through_an_openai_compatible_server(gateway):
    """The model calls Claude Code's Read tool (the only one offered) with the simulator's sample
    input; the CLI runs it and sends back its failure, translated both ways (`is_error` as an
    `Error: ` prefix), and prints the model's answer to it."""
    done = run(gateway, ("gpt", "gpt-small"), {("gpt", "openai", "200"): 2}, "use the tool", ("--tools", "Read"))
    assert done.stdout.strip().startswith(f"Hello from us-east-1 ({GPT}). You said: tool result Error: "), done.stdout
    stats = harness.sim_stats(gateway.sims["openai"].url)
    assert stats["by_model"] == {GPT: {"chat-completions-stream": 2}}, stats["by_model"]


def test_a_throttled_bedrock_region_overflows_to_the_anthropic_api_in_one_run(gateway):
    harness.set_faults(gateway.sims["bedrock"].url, {"status": 429, "retry_after": 30})
    try:
        # One request in /metrics, answered by the Anthropic API: provider="anthropic".
        done = run(gateway, (OVERFLOW_ROUTE, "claude-api-small"), {(OVERFLOW_ROUTE, "anthropic", "200"): 1})
        assert done.stdout.strip() == f"Hello from us-east-1 ({OVERFLOW_MODEL}). You said: {PROMPT}"
    finally:
        harness.set_faults(gateway.sims["bedrock"].url, {})
    # The region was asked first and refused; the API answered the same request.
    assert harness.sim_stats(gateway.sims["bedrock"].url)["by_model"][SONNET]
    api = harness.sim_stats(gateway.sims["anthropic"].url)
    assert api["by_model"][OVERFLOW_MODEL] == {"messages-stream": 1}, api["by_model"]
    assert_only_the_targets_key(api["last_request_headers"], "x-api-key", UPSTREAM_KEY)
