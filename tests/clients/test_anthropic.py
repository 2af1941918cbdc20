"""The official `anthropic` Python SDK through the gateway's Messages API, against simulated regions."""

import json
import urllib.request

import anthropic
import pytest

import harness

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-lite-v1:0"
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


@pytest.mark.parametrize("streamed", [False, True])
def test_tool_use_round_trip_through_converse(client, streamed):
    messages = [{"role": "user", "content": "weather in Paris?"}]
    kwargs = dict(model="nova", max_tokens=200, tools=[WEATHER_TOOL], messages=messages)
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
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21C"}]},
    ]
    second = client.messages.create(model="nova", max_tokens=200, tools=[WEATHER_TOOL], messages=messages)
    assert second.stop_reason == "end_turn"
    assert "sunny, 21C" in second.content[0].text


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
    assert ids == ["claude", "nova"]
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
