"""The official `anthropic` and `openai` SDKs through the gateway to the simulated Anthropic API,
OpenAI API and Azure OpenAI: every surface x provider pair (legacy completions included), plain,
streamed and with tools; the Anthropic API as the overflow of a throttled Bedrock region; Azure's
retry-after-ms."""

import json
import time
import urllib.request

import anthropic
import openai
import pytest

import harness

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
API_MODEL = "claude-sonnet-4-5"
# A model id selects one route: the overflow route's Anthropic target has its own.
OVERFLOW_MODEL = "claude-haiku-4-5"
# The gateway's own key for the Anthropic API, and the client's key for the gateway.
UPSTREAM_KEY = "sk-ant-upstream-0123456789"
CONSUMER_KEY = "sk-team-a-0123456789"
OPENAI_KEY = "sk-openai-upstream-0123456789"
AZURE_KEY = "azure-upstream-0123456789"
GPT = "gpt-4o-mini"
AZURE_MODEL = "gpt-4o"
AZURE_DEPLOYMENT = "prod-4o"
INSTRUCT = "gpt-3.5-turbo-instruct"
AZURE_INSTRUCT = "gpt-35-turbo-instruct"
AZURE_INSTRUCT_DEPLOYMENT = "instruct-prod"
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


def azure_target(url, model, deployment):
    return f"""
      - model:
          provider: azure
          name: {model}
          options:
            upstream_url: "{url}"
            azure_deployment_id: {deployment}
            azure_api_version: "2024-10-21"
        auth: {{ header_name: api-key, header_value: "{AZURE_KEY}" }}"""


@pytest.fixture(scope="module")
def stack():
    region = harness.start_sim("us-east-1")
    api = harness.start_sim("us-east-1", "--provider", "anthropic", "--api-key", UPSTREAM_KEY)
    oai = harness.start_sim("us-east-1", "--provider", "openai", "--api-key", OPENAI_KEY)
    azure = harness.start_sim("us-east-1", "--provider", "azure", "--api-key", AZURE_KEY)
    try:
        config = f"""
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2 }}
consumers:
  - name: team-a
    api_key: {CONSUMER_KEY}
routes:
  - name: claude-api
    targets:{harness.anthropic_target(api.url, API_MODEL, UPSTREAM_KEY, 1)}
  - name: overflow
    balancer: {{ algorithm: priority, retries: 1, failover_criteria: [error, timeout, http_429, non_idempotent] }}
    targets:{harness.target_yaml(CLAUDE, "us-east-1", region.url)}
        priority: 1{harness.anthropic_target(api.url, OVERFLOW_MODEL, UPSTREAM_KEY, 2)}
  - name: gpt
    targets:{harness.openai_target(oai.url, GPT, OPENAI_KEY)}
  - name: gpt-azure
    targets:{azure_target(azure.url, AZURE_MODEL, AZURE_DEPLOYMENT)}
  - name: text
    route_type: llm/v1/completions
    targets:{harness.openai_target(oai.url, INSTRUCT, OPENAI_KEY)}
  - name: text-azure
    route_type: llm/v1/completions
    targets:{azure_target(azure.url, AZURE_INSTRUCT, AZURE_INSTRUCT_DEPLOYMENT)}
  - name: embed
    route_type: llm/v1/embeddings
    targets:{harness.openai_target(oai.url, "text-embedding-3-small", OPENAI_KEY)}
  - name: embed-azure
    route_type: llm/v1/embeddings
    targets:{azure_target(azure.url, "text-embedding-3-large", "emb-prod")}
"""
        gw = harness.start_gateway(config)
        gw.sims = {"anthropic": api, "openai": oai, "azure": azure}
        try:
            yield gw, region, api
        finally:
            gw.stop()
    finally:
        for sim in (region, api, oai, azure):
            sim.stop()


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


def test_messages_pass_through_to_the_anthropic_api(stack, client):
    _, _, api = stack
    answer = client.messages.create(model="claude-api", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    # As the Anthropic API answered: its own model name.
    assert answer.model == API_MODEL
    assert answer.usage.output_tokens > 0
    assert_upstream_saw_only_the_targets_key(api)


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
    with urllib.request.urlopen(gw.admin + "/admin/targets", timeout=5) as r:
        return json.load(r)["targets"]


@pytest.fixture
def oai_client(stack):
    gw, _, _ = stack
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=CONSUMER_KEY, timeout=TIMEOUT, max_retries=0)


# Each route's simulator, and what its last request must have carried.
UPSTREAMS = {
    "claude-api": ("anthropic", {"x-api-key": UPSTREAM_KEY}),
    "gpt": ("openai", {"authorization": f"Bearer {OPENAI_KEY}"}),
    "gpt-azure": ("azure", {"api-key": AZURE_KEY}),
    "text": ("openai", {"authorization": f"Bearer {OPENAI_KEY}"}),
    "text-azure": ("azure", {"api-key": AZURE_KEY}),
    "embed": ("openai", {"authorization": f"Bearer {OPENAI_KEY}"}),
    "embed-azure": ("azure", {"api-key": AZURE_KEY}),
}


def assert_upstream_auth(gw, route):
    sim, expected = UPSTREAMS[route]
    headers = harness.sim_stats(gw.sims[sim].url)["last_request_headers"]
    for name, value in expected.items():
        assert headers.get(name) == value, headers
    assert all(CONSUMER_KEY not in v for v in headers.values()), headers
    assert not ({"x-api-key", "authorization", "api-key"} - set(expected)) & set(headers), headers


def oai_tool_round_trip(oai_client, route, streamed):
    tool = {
        "type": "function",
        "function": {
            "name": WEATHER_TOOL["name"],
            "description": WEATHER_TOOL["description"],
            "parameters": WEATHER_TOOL["input_schema"],
        },
    }
    messages = [{"role": "user", "content": "use the tool for Paris"}]
    if streamed:
        stream = oai_client.chat.completions.create(
            model=route, messages=messages, tools=[tool], stream=True, max_tokens=200
        )
        calls, finish = {}, None
        for chunk in stream:
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for call in choice.delta.tool_calls or []:
                    entry = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                    entry["id"] = call.id or entry["id"]
                    if call.function:
                        entry["name"] += call.function.name or ""
                        entry["arguments"] += call.function.arguments or ""
        call = calls[0]
    else:
        answer = oai_client.chat.completions.create(model=route, messages=messages, tools=[tool], max_tokens=200)
        finish = answer.choices[0].finish_reason
        c = answer.choices[0].message.tool_calls[0]
        call = {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
    assert finish == "tool_calls"
    assert call["name"] == "get_weather" and isinstance(json.loads(call["arguments"]), dict)
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": "rainy, 12C"},
    ]
    second = oai_client.chat.completions.create(model=route, messages=messages, tools=[tool], max_tokens=200)
    assert second.choices[0].finish_reason == "stop"
    assert "rainy, 12C" in second.choices[0].message.content


@pytest.mark.parametrize("route", ["gpt", "gpt-azure", "claude-api"])
def test_openai_chat_reaches_every_provider(stack, oai_client, route):
    gw, _, _ = stack
    answer = oai_client.chat.completions.create(
        model=route, messages=[{"role": "user", "content": "hello there"}], max_tokens=50
    )
    assert answer.choices[0].message.content
    assert answer.usage.completion_tokens > 0
    assert_upstream_auth(gw, route)


@pytest.mark.parametrize("route", ["gpt", "gpt-azure", "claude-api"])
@pytest.mark.parametrize("include_usage", [False, True])
def test_openai_chat_streams_from_every_provider(stack, oai_client, route, include_usage):
    gw, _, _ = stack
    kwargs = dict(model=route, messages=[{"role": "user", "content": "hello there"}], max_tokens=50, stream=True)
    if include_usage:
        kwargs["stream_options"] = {"include_usage": True}
    chunks = list(oai_client.chat.completions.create(**kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    usage = [c.usage for c in chunks if c.usage]
    # The gateway asks for the usage chunk to count tokens; the client sees it only if it asked.
    assert bool(usage) == include_usage, chunks[-2:]
    if include_usage:
        assert usage[-1].completion_tokens > 0
    assert_upstream_auth(gw, route)


@pytest.mark.parametrize("route", ["gpt", "gpt-azure", "claude-api"])
@pytest.mark.parametrize("streamed", [False, True])
def test_openai_tools_round_trip_on_every_provider(stack, oai_client, route, streamed):
    oai_tool_round_trip(oai_client, route, streamed)
    assert_upstream_auth(stack[0], route)


@pytest.mark.parametrize("route", ["claude-api", "gpt", "gpt-azure"])
@pytest.mark.parametrize("streamed", [False, True])
def test_anthropic_tools_round_trip_on_every_provider(stack, client, route, streamed):
    gw, _, _ = stack
    messages = [{"role": "user", "content": "use the tool for Paris"}]
    kwargs = dict(model=route, max_tokens=200, tools=[WEATHER_TOOL], messages=messages)
    if streamed:
        with client.messages.stream(**kwargs) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(**kwargs)
    assert first.stop_reason == "tool_use"
    assert first.usage.output_tokens > 0
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input, dict)
    assert_upstream_auth(gw, route)
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "rainy, 12C"}]},
    ]
    kwargs["messages"] = messages
    if streamed:
        with client.messages.stream(**kwargs) as s:
            text = "".join(s.text_stream)
    else:
        second = client.messages.create(**kwargs)
        assert second.stop_reason == "end_turn"
        text = second.content[0].text
    assert "rainy, 12C" in text


def test_azure_retry_after_ms_cools_the_target_down(stack, oai_client):
    gw, _, _ = stack
    azure = gw.sims["azure"]
    harness.set_faults(azure.url, {"status": 429, "retry_after": 30})
    try:
        with pytest.raises(openai.RateLimitError):
            oai_client.chat.completions.create(model="gpt-azure", messages=[{"role": "user", "content": "hi"}])
    finally:
        harness.set_faults(azure.url, {})
    target = next(t for t in admin_targets(gw) if t["target"].endswith(f"/{AZURE_MODEL}"))
    assert 20_000 < target["cooldown_remaining_ms"] <= 30_000, target


@pytest.mark.parametrize(("route", "model"), [("embed", "text-embedding-3-small"), ("embed-azure", "emb-prod")])
def test_embeddings_reach_openai_and_azure(stack, oai_client, route, model):
    gw, _, _ = stack
    sim = gw.sims[UPSTREAMS[route][0]]
    before = harness.sim_stats(sim.url)["by_model"].get(model, {}).get("embeddings", 0)
    answer = oai_client.embeddings.create(model=route, input=["one text", "another text"])
    assert [d.index for d in answer.data] == [0, 1]
    assert len(answer.data[0].embedding) > 0
    assert answer.usage.prompt_tokens > 0
    assert_upstream_auth(gw, route)
    # One upstream call for the whole batch, to the target's model (Azure: its deployment).
    assert harness.sim_stats(sim.url)["by_model"][model]["embeddings"] == before + 1


def test_provider_errors_reach_each_client_in_its_own_format(stack, client, oai_client):
    gw, _, _ = stack
    oai = gw.sims["openai"]
    harness.set_faults(oai.url, {"status": 429, "retry_after": 3})
    try:
        # Same format: the OpenAI server's own error, its Retry-After kept.
        with pytest.raises(openai.RateLimitError) as same:
            oai_client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
        assert same.value.response.headers["retry-after"] == "3"
        # Across formats: Anthropic's rate_limit_error.
        with pytest.raises(anthropic.RateLimitError) as across:
            client.messages.create(model="gpt", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
        assert across.value.body["type"] == "error"
        assert across.value.body["error"]["type"] == "rate_limit_error"
        for e in (same.value, across.value):
            assert OPENAI_KEY not in e.response.text and CONSUMER_KEY not in e.response.text
    finally:
        harness.set_faults(oai.url, {})


def completion_tokens(gw, provider, model):
    with urllib.request.urlopen(gw.admin + "/metrics", timeout=5) as r:
        text = r.read().decode()
    # The text format lists labels by name: provider, target, token_type.
    prefix = f'bedrock_balancer_tokens_total{{provider="{provider}",target="'
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix) and f'/{model}",token_type="completion"}}' in line
    )


@pytest.mark.parametrize(("route", "provider", "model"),
                         [("gpt", "openai", GPT), ("gpt-azure", "azure", AZURE_MODEL),
                          ("claude-api", "anthropic", API_MODEL)])
def test_streamed_usage_is_counted_even_when_the_client_did_not_ask(stack, oai_client, route, provider, model):
    gw, _, _ = stack
    before = completion_tokens(gw, provider, model)
    chunks = list(
        oai_client.chat.completions.create(
            model=route, messages=[{"role": "user", "content": "count me"}], max_tokens=50, stream=True
        )
    )
    assert not any(c.usage for c in chunks)
    harness.wait_for("the stream's tokens counted", lambda: completion_tokens(gw, provider, model) > before)


def test_an_openai_only_route_takes_what_converse_could_not(stack, oai_client):
    """`logit_bias` is refused on Bedrock routes; an OpenAI server judges it itself."""
    gw, _, _ = stack
    answer = oai_client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "hi"}], max_tokens=20, logit_bias={"50256": -100}
    )
    assert answer.choices[0].message.content
    assert_upstream_auth(gw, "gpt")


# Each completions route's target name, and the model the simulator was asked for (Azure: the deployment).
INSTRUCT_ROUTES = {"text": (INSTRUCT, INSTRUCT), "text-azure": (AZURE_INSTRUCT, AZURE_INSTRUCT_DEPLOYMENT)}


def completions_seen(gw, route, op):
    _, upstream = INSTRUCT_ROUTES[route]
    sim = gw.sims[UPSTREAMS[route][0]]
    return harness.sim_stats(sim.url)["by_model"].get(upstream, {}).get(op, 0)


@pytest.mark.parametrize("route", ["text", "text-azure"])
def test_legacy_completions_reach_openai_and_azure(stack, oai_client, route):
    gw, _, _ = stack
    name, upstream = INSTRUCT_ROUTES[route]
    provider = UPSTREAMS[route][0]
    before = completions_seen(gw, route, "completions"), completion_tokens(gw, provider, name)
    answer = oai_client.completions.create(model=route, prompt=["Say hi", "Say bye"], max_tokens=30)
    assert answer.object == "text_completion"
    # A batch of prompts passes through as sent: one choice each, answered by the target's model.
    assert [c.index for c in answer.choices] == [0, 1]
    assert answer.choices[1].text == f"Hello from us-east-1 ({upstream}). You said: Say bye"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.completion_tokens > 0
    assert_upstream_auth(gw, route)
    assert completions_seen(gw, route, "completions") == before[0] + 1
    assert completion_tokens(gw, provider, name) == before[1] + answer.usage.completion_tokens


@pytest.mark.parametrize("route", ["text", "text-azure"])
@pytest.mark.parametrize("include_usage", [False, True])
def test_legacy_completions_stream_from_openai_and_azure(stack, oai_client, route, include_usage):
    gw, _, _ = stack
    name, upstream = INSTRUCT_ROUTES[route]
    provider = UPSTREAMS[route][0]
    before = completions_seen(gw, route, "completions-stream"), completion_tokens(gw, provider, name)
    kwargs = dict(model=route, prompt="Say hello there", max_tokens=30, stream=True)
    if include_usage:
        kwargs["stream_options"] = {"include_usage": True}
    chunks = list(oai_client.completions.create(**kwargs))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == f"Hello from us-east-1 ({upstream}). You said: Say hello there"
    assert chunks[-2 if include_usage else -1].choices[0].finish_reason == "stop"
    usage = [c.usage for c in chunks if c.usage]
    # The gateway asks for the usage chunk to count tokens; the client sees it only if it asked.
    assert bool(usage) == include_usage, chunks[-2:]
    assert_upstream_auth(gw, route)
    assert completions_seen(gw, route, "completions-stream") == before[0] + 1
    expected = before[1] + len(text.split())
    harness.wait_for("the stream's tokens counted", lambda: completion_tokens(gw, provider, name) == expected)


@pytest.mark.parametrize(("route", "provider"), [("gpt", "openai"), ("claude-api", "anthropic")])
def test_the_access_log_line_names_the_provider(stack, route, provider):
    gw, _, _ = stack
    request_id = f"provider-log-{provider}"
    body = json.dumps({"model": route, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]})
    req = urllib.request.Request(gw.url + "/v1/chat/completions", data=body.encode(), method="POST", headers={
        "content-type": "application/json", "authorization": f"Bearer {CONSUMER_KEY}", "x-request-id": request_id,
    })
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        assert r.status == 200
    def logged():
        return [l for l in gw.stderr_lines if f"request_id={request_id} " in l]
    harness.wait_for("the request's log line", logged)
    [line] = logged()
    assert f'provider="{provider}"' in line, line
    assert f'/{GPT if provider == "openai" else API_MODEL} ' in line, line
