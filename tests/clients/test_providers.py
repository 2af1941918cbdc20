"""The official `anthropic` SDK through the gateway to the simulated Anthropic API (an `anthropic`
target), alone and as the overflow of a throttled Bedrock region."""

import time

import anthropic
import pytest

import harness

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
API_MODEL = "claude-sonnet-4-5"
# A model id selects one route: the overflow route's Anthropic target has its own.
OVERFLOW_MODEL = "claude-haiku-4-5"
# The gateway's own key for the Anthropic API, and the client's key for the gateway.
UPSTREAM_KEY = "sk-ant-upstream-0123456789"
CONSUMER_KEY = "sk-team-a-0123456789"
TIMEOUT = 20
TARGET_HEADER = "x-bedrock-balancer-target"

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def anthropic_target(url, priority, model=API_MODEL):
    return f"""
      - model:
          provider: anthropic
          name: {model}
          options: {{ upstream_url: "{url}" }}
        auth: {{ header_name: x-api-key, header_value: "{UPSTREAM_KEY}" }}
        priority: {priority}"""


@pytest.fixture(scope="module")
def stack():
    region = harness.start_sim("us-east-1")
    api = harness.start_sim("us-east-1", "--provider", "anthropic", "--api-key", UPSTREAM_KEY)
    try:
        config = f"""
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2 }}
consumers:
  - name: team-a
    api_key: {CONSUMER_KEY}
routes:
  - name: claude-api
    targets:{anthropic_target(api.url, 1)}
  - name: overflow
    balancer: {{ algorithm: priority, retries: 1, failover_criteria: [error, timeout, http_429, non_idempotent] }}
    targets:{harness.target_yaml(CLAUDE, "us-east-1", region.url)}
        priority: 1{anthropic_target(api.url, 2, OVERFLOW_MODEL)}
"""
        gw = harness.start_gateway(config)
        try:
            yield gw, region, api
        finally:
            gw.stop()
    finally:
        region.stop()
        api.stop()


@pytest.fixture
def client(stack):
    gw, _, _ = stack
    return anthropic.Anthropic(base_url=gw.url, api_key=CONSUMER_KEY, timeout=TIMEOUT, max_retries=0)


def assert_upstream_saw_only_the_targets_key(api):
    headers = harness.sim_stats(api.url)["last_request_headers"]
    assert headers["x-api-key"] == UPSTREAM_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers
    assert all(CONSUMER_KEY not in v for v in headers.values()), headers


@pytest.mark.parametrize("streamed", [False, True])
def test_messages_reach_the_anthropic_api_with_tools(stack, client, streamed):
    _, _, api = stack
    messages = [{"role": "user", "content": "use the tool for Paris"}]
    kwargs = dict(model="claude-api", max_tokens=200, tools=[WEATHER_TOOL], messages=messages)
    if streamed:
        with client.messages.stream(**kwargs) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(**kwargs)
    assert first.model == API_MODEL
    assert first.usage.output_tokens > 0
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input, dict)
    assert_upstream_saw_only_the_targets_key(api)
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "rainy, 12C"}]},
    ]
    second = client.messages.create(model="claude-api", max_tokens=200, tools=[WEATHER_TOOL], messages=messages)
    assert second.stop_reason == "end_turn"
    assert "rainy, 12C" in second.content[0].text


def test_betas_go_upstream_as_the_anthropic_beta_header(stack, client):
    _, _, api = stack
    client.beta.messages.create(
        model="claude-api",
        max_tokens=50,
        betas=["token-efficient-tools-2025-02-19"],
        messages=[{"role": "user", "content": "hi"}],
    )
    headers = harness.sim_stats(api.url)["last_request_headers"]
    assert headers["anthropic-beta"] == "token-efficient-tools-2025-02-19"


def served_by(client, streamed):
    kwargs = dict(model="overflow", max_tokens=50, messages=[{"role": "user", "content": "hello"}])
    if streamed:
        with client.messages.with_streaming_response.create(stream=True, **kwargs) as r:
            events = [line for line in r.iter_lines() if line.startswith("event: ")]
            assert events[-1] == "event: message_stop"
            return r.headers[TARGET_HEADER]
    raw = client.messages.with_raw_response.create(**kwargs)
    assert raw.parse().content[0].text
    return raw.headers[TARGET_HEADER]


def test_a_throttled_region_overflows_to_the_anthropic_api_and_comes_back(stack, client):
    gw, region, api = stack
    assert served_by(client, False) == f"us-east-1/{CLAUDE}"
    harness.set_faults(region.url, {"status": 429, "retry_after": 1})
    try:
        for streamed in (False, True):
            assert served_by(client, streamed).endswith(f"/{OVERFLOW_MODEL}")
        assert_upstream_saw_only_the_targets_key(api)
    finally:
        harness.set_faults(region.url, {})
    # Its Retry-After over, the region takes the traffic back (bounded poll on the admin view).
    deadline = time.monotonic() + 10
    while not any(t["region"] == "us-east-1" and t["ready"] for t in admin_targets(gw)):
        assert time.monotonic() < deadline, "us-east-1 never became ready again"
        time.sleep(0.05)
    assert served_by(client, True) == f"us-east-1/{CLAUDE}"


def admin_targets(gw):
    import json
    import urllib.request

    with urllib.request.urlopen(gw.admin + "/admin/targets", timeout=5) as r:
        return json.load(r)["targets"]
