"""The real Claude Code CLI (`@anthropic-ai/claude-code`, installed by tests/run.sh into
tests/.claude-code/) in Bedrock mode against the gateway, which forwards to the simulator.

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


@pytest.fixture(scope="module")
def stack():
    if not os.access(CLI, os.X_OK):
        pytest.fail(
            f"Claude Code CLI not found at {CLI}: run tests/run.sh, or "
            "`npm install --prefix tests/.claude-code @anthropic-ai/claude-code`"
        )
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


def claude(base_url, mode=None, **auth):
    """Runs `claude -p PROMPT` against `base_url` (Bedrock mode unless `mode` says otherwise);
    returns the finished process."""
    with tempfile.TemporaryDirectory() as home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            **(mode if mode is not None else bedrock_mode(base_url)),
            "ANTHROPIC_MODEL": SONNET,
            "ANTHROPIC_SMALL_FAST_MODEL": HAIKU,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": HAIKU,
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            # One attempt: an unreachable or refusing gateway fails now, not after minutes of backoff.
            "CLAUDE_CODE_MAX_RETRIES": "0",
            **auth,
        }
        try:
            return subprocess.run(
                [str(CLI), "-p", PROMPT],
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
