"""The official `anthropic` Python SDK through the gateway's Messages API, against simulated regions."""

import json
import urllib.request

import anthropic
import pytest

import harness

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-lite-v1:0"
# A cross-region profile on one simulator: prompt caches and records live per simulator.
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
# A route of one Claude and one non-Claude target, on models no other route uses.
MIXED_CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
MIXED_OTHER = "mistral.mistral-large-2407-v1:0"
REGIONS = ["us-east-1", "us-west-2"]
CONSUMER_KEY = "sk-team-a-0123456789"
# Bounds every SDK call, so a hung stream fails the test instead of stalling the suite.
TIMEOUT = 20

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def targets(model, sims):
    return "".join(harness.target_yaml(model, r, s.url) for r, s in zip(REGIONS, sims))


@pytest.fixture(scope="module")
def stack():
    sims = [harness.start_sim(r) for r in REGIONS]
    try:
        config = f"""
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2 }}
consumers:
  - name: team-a
    api_key: {CONSUMER_KEY}
routes:
  - name: claude
    targets:{targets(CLAUDE, sims)}
  - name: nova
    targets:{targets(NOVA, sims)}
  - name: sonnet
    targets:{harness.target_yaml(SONNET, REGIONS[0], sims[0].url)}
  - name: mixed
    targets:{harness.target_yaml(MIXED_CLAUDE, REGIONS[0], sims[0].url)}{harness.target_yaml(MIXED_OTHER, REGIONS[1], sims[1].url)}
"""
        gw = harness.start_gateway(config)
        try:
            yield gw, sims
        finally:
            gw.stop()
    finally:
        for s in sims:
            s.stop()


@pytest.fixture
def client(stack):
    gw, _ = stack
    return anthropic.Anthropic(base_url=gw.url, api_key=CONSUMER_KEY, timeout=TIMEOUT, max_retries=0)


def answer(text):
    """The simulator's answer without the region that served it (round-robin spreads calls)."""
    return text.split(")", 1)[1]


def operations(sims, model):
    totals = {}
    for s in sims:
        for op, n in harness.sim_stats(s.url)["by_model"].get(model, {}).items():
            totals[op] = totals.get(op, 0) + n
    return totals


def test_create_and_stream_agree_on_a_claude_route(stack, client):
    _, sims = stack
    before = operations(sims, CLAUDE)
    prompt = [{"role": "user", "content": "say hello to the gateway"}]
    whole = client.messages.create(model="claude", max_tokens=200, messages=prompt)
    with client.messages.stream(model="claude", max_tokens=200, messages=prompt) as s:
        streamed_text = "".join(s.text_stream)
        final = s.get_final_message()
    assert whole.type == "message" and whole.role == "assistant"
    assert whole.content[0].type == "text"
    assert "You said: say hello to the gateway" in whole.content[0].text
    assert answer(streamed_text) == answer(whole.content[0].text)
    assert streamed_text == final.content[0].text
    assert final.stop_reason == whole.stop_reason == "end_turn"
    assert whole.usage.input_tokens > 0 and whole.usage.output_tokens > 0
    assert final.usage.output_tokens == whole.usage.output_tokens
    after = operations(sims, CLAUDE)
    assert after.get("invoke", 0) == before.get("invoke", 0) + 1
    assert after.get("invoke-with-response-stream", 0) == before.get("invoke-with-response-stream", 0) + 1
    assert after.get("converse", 0) == before.get("converse", 0)


def test_the_stream_hides_bedrock_invocation_metrics(stack):
    gw, _ = stack
    req = urllib.request.Request(
        gw.url + "/v1/messages",
        data=json.dumps(
            {"model": "claude", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        ).encode(),
        headers={"content-type": "application/json", "x-api-key": CONSUMER_KEY, "anthropic-version": "2023-06-01"},
    )
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        assert r.headers["content-type"] == "text/event-stream"
        text = r.read().decode()
    assert "amazon-bedrock-invocationMetrics" not in text
    records = [rec for rec in text.split("\n\n") if rec]
    names = [rec.split("\n")[0].removeprefix("event: ") for rec in records]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    for rec, name in zip(records, names):
        data = json.loads(rec.split("\n")[1].removeprefix("data: "))
        assert data["type"] == name


def test_consumer_key_is_checked_and_never_forwarded(stack):
    gw, sims = stack
    wrong = anthropic.Anthropic(base_url=gw.url, api_key="sk-wrong", timeout=TIMEOUT, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        wrong.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["error"]["type"] == "authentication_error"
    bearer = anthropic.Anthropic(base_url=gw.url, auth_token=CONSUMER_KEY, timeout=TIMEOUT, max_retries=0)
    msg = bearer.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text
    for s in sims:
        headers = harness.sim_stats(s.url)["last_request_headers"]
        assert "x-api-key" not in headers
        assert CONSUMER_KEY not in json.dumps(headers)


def test_a_route_without_claude_is_answered_through_converse(stack, client):
    _, sims = stack
    before = operations(sims, NOVA)
    prompt = [{"role": "user", "content": "what is new"}]
    whole = client.messages.create(model="nova", max_tokens=100, system="Be brief.", messages=prompt)
    with client.messages.stream(model="nova", max_tokens=100, system="Be brief.", messages=prompt) as s:
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    assert "You said: what is new" in whole.content[0].text
    assert answer(streamed) == answer(whole.content[0].text)
    assert whole.stop_reason == final.stop_reason == "end_turn"
    assert final.usage.input_tokens == whole.usage.input_tokens > 0
    assert final.usage.output_tokens == whole.usage.output_tokens > 0
    after = operations(sims, NOVA)
    assert after.get("converse", 0) == before.get("converse", 0) + 1
    assert after.get("converse-stream", 0) == before.get("converse-stream", 0) + 1


def test_what_converse_cannot_express_is_a_typed_400(client):
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(
            model="nova",
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[{"role": "user", "content": "think"}],
        )
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "thinking" in e.value.body["error"]["message"]


def test_unknown_model_and_bad_body_are_typed_errors(client, stack):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body == {"type": "error", "error": {"type": "not_found_error", "message": e.value.body["error"]["message"]}}
    with pytest.raises(anthropic.BadRequestError) as e:
        client.post("/v1/messages", body={"model": "claude", "max_tokens": 10}, cast_to=object)
    assert "messages" in e.value.body["error"]["message"]


def test_models_list_in_anthropic_shape(client):
    page = client.models.list()
    ids = [m.id for m in page.data]
    assert ids == ["claude", "nova", "sonnet", "mixed"]
    assert all(m.type == "model" for m in page.data)


def test_count_tokens_is_refused_for_a_model_bedrock_cannot_count(client):
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.count_tokens(model="nova", messages=[{"role": "user", "content": "hi"}])
    assert "cannot count tokens" in e.value.body["error"]["message"]


@pytest.fixture
def faulty_sim():
    sim = harness.start_sim("eu-west-1")
    try:
        yield sim
    finally:
        sim.stop()


def faulty_gateway(sim):
    return harness.start_gateway(
        f"""
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 1 }}
routes:
  - name: claude
    balancer: {{ retries: 0 }}
    targets:{harness.target_yaml(CLAUDE, "eu-west-1", sim.url)}
"""
    )


@pytest.mark.parametrize(
    "faults, exception, status",
    [
        ({"status": 429, "retry_after": 3}, anthropic.RateLimitError, 429),
        ({"status": 503}, anthropic.InternalServerError, 529),
        ({"status": 400}, anthropic.BadRequestError, 400),
    ],
)
def test_bedrock_errors_become_typed_sdk_exceptions(faulty_sim, faults, exception, status):
    harness.set_faults(faulty_sim.url, faults)
    gw = faulty_gateway(faulty_sim)
    try:
        client = anthropic.Anthropic(base_url=gw.url, api_key="unused", timeout=TIMEOUT, max_retries=0)
        with pytest.raises(exception) as e:
            client.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        assert e.value.status_code == status
        assert e.value.body["type"] == "error"
        if status == 429:
            assert e.value.response.headers["retry-after"] == "3"
        if status == 529:
            assert e.value.body["error"]["type"] == "overloaded_error"
    finally:
        gw.stop()


def test_a_mid_stream_failure_ends_with_an_error_event(faulty_sim):
    harness.set_faults(faulty_sim.url, {"stream_exception_after": 3, "stream_exception": "serviceUnavailableException"})
    gw = faulty_gateway(faulty_sim)
    try:
        client = anthropic.Anthropic(base_url=gw.url, api_key="unused", timeout=TIMEOUT, max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as e:
            with client.messages.stream(
                model="claude", max_tokens=100, messages=[{"role": "user", "content": "a long answer please"}]
            ) as s:
                for _ in s:
                    pass
        assert e.value.body["error"]["type"] == "overloaded_error"
    finally:
        gw.stop()


def claude_requests(sim):
    return harness.sim_stats(sim.url)["claude_requests"]


def metric(gw, name, **labels):
    with urllib.request.urlopen(gw.admin + "/metrics", timeout=TIMEOUT) as r:
        text = r.read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(f"bedrock_balancer_{name}{{") and want in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_claude_bodies_reach_bedrock_valid(stack, client):
    gw, sims = stack
    client.messages.create(model="sonnet", max_tokens=50, messages=[{"role": "user", "content": "one"}])
    with client.messages.stream(model="sonnet", max_tokens=50, messages=[{"role": "user", "content": "two"}]) as s:
        s.get_final_message()
    records = claude_requests(sims[0])[-2:]
    assert [r["operation"] for r in records] == ["invoke", "invoke-with-response-stream"]
    for r in records:
        assert r["model"] == SONNET
        assert "model" not in r["keys"] and "stream" not in r["keys"]
        assert r["anthropic_version"] == "bedrock-2023-05-31"


@pytest.mark.parametrize("streamed", [False, True])
def test_thinking_blocks_replay_byte_for_byte(stack, client, streamed):
    _, sims = stack
    verified = harness.sim_stats(sims[0].url)["thinking_signatures_verified"]
    kwargs = dict(
        model="sonnet",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "think about caching"}],
    )
    if streamed:
        with client.messages.stream(**kwargs) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(**kwargs)
    thinking = [b for b in first.content if b.type == "thinking"]
    assert thinking and thinking[0].signature
    second_kwargs = dict(kwargs)
    second_kwargs["messages"] = kwargs["messages"] + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": "and now?"},
    ]
    if streamed:
        with client.messages.stream(**second_kwargs) as s:
            second = s.get_final_message()
    else:
        second = client.messages.create(**second_kwargs)
    assert "and now?" in "".join(b.text for b in second.content if b.type == "text")
    assert harness.sim_stats(sims[0].url)["thinking_signatures_verified"] > verified


@pytest.mark.parametrize("route", ["sonnet", "nova"])
@pytest.mark.parametrize("streamed", [False, True])
def test_tool_use_round_trip(client, route, streamed):
    """On Claude (InvokeModel) and through Converse (Nova)."""
    messages = [{"role": "user", "content": "use the tool for Paris"}]
    kwargs = dict(model=route, max_tokens=200, tools=[WEATHER_TOOL], messages=messages)
    if streamed:
        with client.messages.stream(**kwargs) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(**kwargs)
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input, dict)
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "rainy, 12C"}]},
    ]
    second = client.messages.create(model=route, max_tokens=200, tools=[WEATHER_TOOL], messages=messages)
    assert second.stop_reason == "end_turn"
    assert "rainy, 12C" in second.content[0].text


def test_a_repeated_cached_prefix_reports_cache_reads(stack, client):
    gw, _ = stack
    target = f"{REGIONS[0]}/{SONNET}"
    reads_before = metric(gw, "tokens_total", target=target, token_type="cache_read")
    system = [{"type": "text", "text": "You are the cache test. " * 20, "cache_control": {"type": "ephemeral"}}]
    ask = [{"role": "user", "content": "cached question"}]
    first = client.messages.create(model="sonnet", max_tokens=50, system=system, messages=ask)
    with client.messages.stream(model="sonnet", max_tokens=50, system=system, messages=ask) as s:
        second = s.get_final_message()
    assert first.usage.cache_creation_input_tokens > 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert metric(gw, "tokens_total", target=target, token_type="cache_read") - reads_before == (
        second.usage.cache_read_input_tokens
    )


def test_unsupported_betas_are_dropped_and_supported_ones_reach_bedrock(stack, client):
    gw, sims = stack
    target = f"{REGIONS[0]}/{SONNET}"
    dropped = metric(gw, "anthropic_betas_dropped_total", target=target)
    msg = client.beta.messages.create(
        model="sonnet",
        max_tokens=50,
        betas=["claude-code-20250219", "interleaved-thinking-2025-05-14"],
        messages=[{"role": "user", "content": "beta"}],
    )
    assert msg.content[0].text
    record = claude_requests(sims[0])[-1]
    assert record["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]
    assert metric(gw, "anthropic_betas_dropped_total", target=target) == dropped + 1


def test_count_tokens_goes_to_bedrock_count_tokens(stack, client):
    _, sims = stack
    counted = client.messages.count_tokens(
        model="sonnet",
        system="count me",
        messages=[{"role": "user", "content": "one two three four"}],
    )
    assert counted.input_tokens >= 6
    record = claude_requests(sims[0])[-1]
    assert record["operation"] == "count-tokens"
    # CountTokens takes the foundation model, not the cross-region profile.
    assert record["model"] == SONNET.removeprefix("us.")
    assert "model" not in record["keys"] and record["anthropic_version"] == "bedrock-2023-05-31"


def test_a_mixed_route_sends_what_only_claude_can_serve_to_claude(stack, client):
    _, sims = stack
    plain = [client.messages.create(model="mixed", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
             for _ in range(4)]
    assert all(m.content[0].text for m in plain)
    assert operations(sims, MIXED_OTHER).get("converse", 0) >= 1, "round-robin never reached the other model"
    before = operations(sims, MIXED_CLAUDE).get("invoke", 0)
    for _ in range(4):
        msg = client.messages.create(
            model="mixed",
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[{"role": "user", "content": "think"}],
        )
        assert msg.content[0].type == "thinking"
    assert operations(sims, MIXED_CLAUDE).get("invoke", 0) == before + 4
    assert client.messages.count_tokens(model="mixed", messages=[{"role": "user", "content": "a b"}]).input_tokens > 0


def test_native_invoke_counts_cache_tokens_too(stack):
    """Claude Code in Bedrock mode uses the native routes; their cache tokens are metered as well."""
    gw, _ = stack
    target = f"{REGIONS[0]}/{SONNET}"
    body = json.dumps({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 20,
        "system": [{"type": "text", "text": "Native cache prefix. " * 10, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "native"}],
    }).encode()
    reads_before = metric(gw, "tokens_total", target=target, token_type="cache_read")
    headers = []
    for _ in range(2):
        req = urllib.request.Request(
            gw.url + "/model/sonnet/invoke",
            data=body,
            headers={"content-type": "application/json", "authorization": f"Bearer {CONSUMER_KEY}"},
        )
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            headers.append(r.headers)
    read = int(headers[1]["x-amzn-bedrock-cache-read-input-token-count"])
    assert read > 0
    assert metric(gw, "tokens_total", target=target, token_type="cache_read") - reads_before == read
