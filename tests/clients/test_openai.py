"""The official `openai` Python SDK through the gateway's OpenAI-compatible API, against simulated regions."""

import base64
import json
import struct
import urllib.error
import urllib.request

import openai
import pytest

import harness

CHAT_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
TEXT_MODEL = "anthropic.claude-instant-v1"
# Fault tests get routes of their own, on models no other route uses: a 429 or a mid-stream
# throttling exception puts the target into cooldown, which must not leak into other tests.
THROTTLED_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
THROTTLED_STREAM_MODEL = "anthropic.claude-v2:1"
BROKEN_STREAM_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
SILENT_MODEL = "anthropic.claude-3-opus-20240229-v1:0"
# The `silent` route's read timeout: short, so a silent upstream fails fast.
SILENT_READ_TIMEOUT_MS = 300
TITAN_V2 = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"
REGIONS = ["us-east-1", "us-west-2"]
ROUTES = {"claude", "claude-text", "throttled", "throttled-stream", "broken-stream", "silent", "titan", "cohere"}
# Bounds every SDK call, so a hung stream fails the test instead of stalling the suite.
TIMEOUT = 20

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}

# A 1x1 transparent PNG.
PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def stack():
    sims = [harness.start_sim(r) for r in REGIONS]
    try:

        def targets(model):
            return "".join(harness.target_yaml(model, r, s.url) for r, s in zip(REGIONS, sims))

        config = f"""
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2 }}
routes:
  - name: claude
    targets:{targets(CHAT_MODEL)}
  - name: claude-text
    route_type: llm/v1/completions
    targets:{targets(TEXT_MODEL)}
  - name: throttled
    balancer: {{ retries: 1, failover_criteria: [error, timeout, http_429, non_idempotent] }}
    targets:{targets(THROTTLED_MODEL)}
  - name: throttled-stream
    balancer: {{ retries: 1, failover_criteria: [error, timeout, http_429, non_idempotent] }}
    targets:{targets(THROTTLED_STREAM_MODEL)}
  - name: broken-stream
    targets:{targets(BROKEN_STREAM_MODEL)}
  - name: silent
    balancer: {{ retries: 0, read_timeout: {SILENT_READ_TIMEOUT_MS} }}
    targets:{targets(SILENT_MODEL)}
  - name: titan
    route_type: llm/v1/embeddings
    targets:{targets(TITAN_V2)}
  - name: cohere
    route_type: llm/v1/embeddings
    targets:{targets(COHERE)}
"""
        gateway = harness.start_gateway(config)
    except BaseException:
        for s in sims:
            s.stop()
        raise
    yield gateway, sims
    gateway.stop()
    for s in sims:
        s.stop()


@pytest.fixture
def client(stack):
    gateway, _ = stack
    # No consumers are configured, so any key is accepted; no retries so errors reach the test.
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="anything", max_retries=0, timeout=TIMEOUT)


def user(text):
    return [{"role": "user", "content": text}]


def collect_stream(stream):
    """Reassembles a chat stream: (content, tool calls by index, finish reason, chunks)."""
    content, calls, finish, chunks = "", {}, None, []
    for chunk in stream:
        chunks.append(chunk)
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                content += delta.content
            for call in delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                if call.id:
                    slot["id"] = call.id
                if call.function and call.function.name:
                    slot["name"] = call.function.name
                if call.function and call.function.arguments:
                    slot["arguments"] += call.function.arguments
            if choice.finish_reason:
                finish = choice.finish_reason
    return content, calls, finish, chunks


def non_streamed_on(client, target, **kwargs):
    """A non-streamed reply from `target`: round-robin reaches every target within len(REGIONS) calls."""
    for _ in REGIONS:
        raw = client.chat.completions.with_raw_response.create(**kwargs)
        if raw.headers["x-bedrock-balancer-target"] == target:
            return raw.parse()
    raise AssertionError(f"no reply from {target} in {len(REGIONS)} calls")


def test_plain_chat(client):
    out = client.chat.completions.create(model="claude", messages=user("Hello there"), max_tokens=100)
    assert out.object == "chat.completion"
    assert out.model == "claude"
    choice = out.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content.startswith("Hello from ")
    assert CHAT_MODEL in choice.message.content and "Hello there" in choice.message.content
    assert out.usage.completion_tokens == len(choice.message.content.split())
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


def test_system_message_and_stop_sequence(client):
    out = client.chat.completions.create(
        model="claude",
        messages=[{"role": "system", "content": "Be brief"}, *user("stop here please")],
        stop=["You said"],
    )
    assert out.choices[0].finish_reason == "stop"
    assert "You said" not in out.choices[0].message.content
    assert out.choices[0].message.content.startswith("Hello from")


def test_max_tokens_gives_length(client):
    out = client.chat.completions.create(model="claude", messages=user("one two three four"), max_tokens=2)
    assert out.choices[0].finish_reason == "length"
    assert out.usage.completion_tokens == 2


def test_streamed_chat_equals_non_streamed(client):
    raw = client.chat.completions.with_raw_response.create(
        model="claude", messages=user("stream me please"), stream=True
    )
    target = raw.headers["x-bedrock-balancer-target"]
    assert raw.headers["content-type"].startswith("text/event-stream")
    content, calls, finish, chunks = collect_stream(raw.parse())
    assert calls == {}
    assert finish == "stop"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.model == "claude" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert all(c.usage is None for c in chunks)
    whole = non_streamed_on(client, target, model="claude", messages=user("stream me please"))
    assert content == whole.choices[0].message.content
    assert content.startswith("Hello from")


def test_stream_options_include_usage(client):
    stream = client.chat.completions.create(
        model="claude", messages=user("count my words"), stream=True, stream_options={"include_usage": True}
    )
    content, _, finish, chunks = collect_stream(stream)
    assert finish == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == len(content.split())
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_tool_calling_round_trip(client):
    messages = user("What is the weather in Paris?")
    first = client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, str)
    args = json.loads(call.function.arguments)
    assert args == {"city": "sample", "days": 1}

    messages = [
        *messages,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "sunny and 21 degrees"},
    ]
    second = client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER_TOOL])
    choice = second.choices[0]
    assert choice.finish_reason == "stop"
    assert not choice.message.tool_calls
    assert choice.message.content.startswith("Hello from")
    assert "tool result sunny and 21 degrees" in choice.message.content


def test_assistant_message_object_sent_back(client):
    # The common SDK idiom: append the returned message object itself, not a dict.
    messages = user("What is the weather in Rome?")
    first = client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER_TOOL])
    message = first.choices[0].message
    messages += [message, {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "hot"}]
    second = client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER_TOOL])
    assert "tool result hot" in second.choices[0].message.content


def test_stream_helper_accumulates(client):
    with client.chat.completions.stream(model="claude", messages=user("weather?"), tools=[WEATHER_TOOL]) as s:
        final = s.get_final_completion()
    [call] = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"city": "sample", "days": 1}
    with client.chat.completions.stream(
        model="claude", messages=user("hi there"), stream_options={"include_usage": True}
    ) as s:
        final = s.get_final_completion()
    assert final.choices[0].message.content.endswith("You said: hi there")
    assert final.usage.completion_tokens == len(final.choices[0].message.content.split())


def test_tool_choice_named_and_required(client):
    other = {"type": "function", "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}}}
    out = client.chat.completions.create(
        model="claude",
        messages=user("weather?"),
        tools=[other, WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert out.choices[0].message.tool_calls[0].function.name == "get_weather"
    out = client.chat.completions.create(
        model="claude", messages=user("weather?"), tools=[WEATHER_TOOL], tool_choice="required"
    )
    assert out.choices[0].finish_reason == "tool_calls"
    out = client.chat.completions.create(
        model="claude", messages=user("weather?"), tools=[WEATHER_TOOL], tool_choice="none"
    )
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].message.content.startswith("Hello from")


def test_streamed_tool_calls(client):
    messages = user("What is the weather in Oslo?")
    content, calls, finish, _ = collect_stream(
        client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER_TOOL], stream=True)
    )
    assert finish == "tool_calls"
    assert content == ""
    assert list(calls) == [0]
    call = calls[0]
    assert call["name"] == "get_weather"
    assert call["id"]
    whole = client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER_TOOL])
    [expected] = whole.choices[0].message.tool_calls
    assert call["id"] == expected.id
    assert json.loads(call["arguments"]) == json.loads(expected.function.arguments)

    # The streamed call, sent back with its result, gets a streamed text answer.
    follow = [
        *messages,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": [{"type": "text", "text": "rainy"}]},
    ]
    content, calls, finish, _ = collect_stream(
        client.chat.completions.create(model="claude", messages=follow, tools=[WEATHER_TOOL], stream=True)
    )
    assert finish == "stop"
    assert calls == {}
    assert "tool result rainy" in content


RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "member": {"type": "boolean"}},
            "required": ["name", "age"],
        },
    },
}


def test_response_format_json_schema(client):
    out = client.chat.completions.create(
        model="claude", messages=user("Describe a person"), response_format=RESPONSE_FORMAT
    )
    choice = out.choices[0]
    assert choice.finish_reason == "stop"
    assert not choice.message.tool_calls
    parsed = json.loads(choice.message.content)
    assert parsed == {"name": "sample", "age": 1, "member": True}

    content, calls, finish, _ = collect_stream(
        client.chat.completions.create(
            model="claude", messages=user("Describe a person"), response_format=RESPONSE_FORMAT, stream=True
        )
    )
    assert calls == {}
    assert finish == "stop"
    assert json.loads(content) == parsed


def test_response_format_json_object(client):
    out = client.chat.completions.create(
        model="claude", messages=user("Any JSON"), response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(out.choices[0].message.content), dict)


def test_image_data_url_is_accepted(client):
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1X1}", "detail": "low"}},
    ]
    out = client.chat.completions.create(model="claude", messages=[{"role": "user", "content": content}])
    assert out.choices[0].message.content.startswith("Hello from")
    assert "What is in this picture?" in out.choices[0].message.content


def test_image_http_url_is_a_bad_request_naming_the_param(client):
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": content}])
    assert err.value.status_code == 400
    assert err.value.param == "messages[0].content[1].image_url"
    assert "messages[0].content[1].image_url" in err.value.message
    assert err.value.type == "invalid_request_error"


def test_embeddings_float_and_base64_agree(client):
    texts = ["the quick brown fox", "jumps over the lazy dog", "hello"]
    floats = client.embeddings.create(model="titan", input=texts, encoding_format="float")
    assert floats.model == "titan"
    assert [d.index for d in floats.data] == [0, 1, 2]
    assert all(len(d.embedding) == 1024 for d in floats.data)
    assert floats.usage.prompt_tokens > 0
    norm = sum(x * x for x in floats.data[0].embedding) ** 0.5
    assert abs(norm - 1.0) < 1e-3
    encoded = client.embeddings.create(model="titan", input=texts, encoding_format="base64")
    assert [d.index for d in encoded.data] == [0, 1, 2]
    for f, b in zip(floats.data, encoded.data):
        assert isinstance(b.embedding, str)
        raw = base64.b64decode(b.embedding)
        decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
        assert len(decoded) == len(f.embedding)
        # The float answer is f32 printed as decimal: equal once both are rounded to f32.
        assert list(decoded) == [struct.unpack("<f", struct.pack("<f", x))[0] for x in f.embedding]
    assert floats.data[0].embedding != floats.data[1].embedding


def test_titan_v2_dimensions(client):
    out = client.embeddings.create(model="titan", input="short text", dimensions=256, encoding_format="float")
    assert len(out.data) == 1
    assert len(out.data[0].embedding) == 256
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="titan", input="short text", dimensions=300, encoding_format="float")
    assert err.value.param == "dimensions"


def test_cohere_embeddings(client):
    texts = [f"document number {i}" for i in range(100)]
    out = client.embeddings.create(model="cohere", input=texts, encoding_format="float")
    assert len(out.data) == 100
    assert [d.index for d in out.data] == list(range(100))
    assert len({len(d.embedding) for d in out.data}) == 1
    assert out.usage.prompt_tokens > 0
    # Batched upstream (96 per call) but the order is the client's: compare with single calls.
    single = client.embeddings.create(model="cohere", input=texts[97], encoding_format="float")
    assert single.data[0].embedding == out.data[97].embedding
    encoded = client.embeddings.create(model="cohere", input=texts[:2], encoding_format="base64")
    raw = base64.b64decode(encoded.data[1].embedding)
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert list(decoded) == [struct.unpack("<f", struct.pack("<f", x))[0] for x in out.data[1].embedding]
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="cohere", input="x", dimensions=256)
    assert err.value.param == "dimensions"


def test_models_list_names_the_routes(client):
    models = client.models.list()
    assert {m.id for m in models.data} == ROUTES
    assert all(m.object == "model" for m in models.data)


def test_legacy_completions(client):
    out = client.completions.create(model="claude-text", prompt="Say something nice", max_tokens=50)
    assert out.object == "text_completion"
    assert out.model == "claude-text"
    assert out.choices[0].text.startswith("Hello from")
    assert TEXT_MODEL in out.choices[0].text
    assert out.choices[0].finish_reason == "stop"
    assert out.usage.completion_tokens == len(out.choices[0].text.split())

    text, finish, usage = "", None, None
    for chunk in client.completions.create(
        model="claude-text", prompt="Say something nice", stream=True, stream_options={"include_usage": True}
    ):
        for choice in chunk.choices:
            text += choice.text
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    assert finish == "stop"
    assert "Say something nice" in text and text.startswith("Hello from")
    assert usage.completion_tokens == len(text.split())


def test_route_type_mismatch_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="claude", prompt="x")
    assert err.value.param == "model"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="titan", messages=user("x"))


def test_429_from_every_region_is_a_rate_limit_error(client, stack):
    _, sims = stack
    before = [harness.sim_stats(s.url)["errors_injected"] for s in sims]
    try:
        for s in sims:
            harness.set_faults(s.url, {"status": 429})
        with pytest.raises(openai.RateLimitError) as err:
            client.chat.completions.create(model="throttled", messages=user("hi"))
        assert err.value.status_code == 429
        assert err.value.code == "rate_limit_exceeded"
        after = [harness.sim_stats(s.url)["errors_injected"] for s in sims]
        # Failover tried both regions; both throttled.
        assert [a - b for a, b in zip(after, before)] == [1, 1]
    finally:
        for s in sims:
            harness.set_faults(s.url, {})


def test_mid_stream_exception_raises_api_error(client, stack):
    gateway, sims = stack
    try:
        for s in sims:
            harness.set_faults(s.url, {"stream_exception_after": 3, "stream_exception": "throttlingException"})
        stream = client.chat.completions.create(model="broken-stream", messages=user("a long answer please"), stream=True)
        received = ""
        with pytest.raises(openai.APIError) as err:
            for chunk in stream:
                for choice in chunk.choices:
                    received += choice.delta.content or ""
                    assert choice.finish_reason is None
        assert received.startswith("Hello")
        assert err.value.code == "rate_limit_exceeded"
        assert err.value.type == "requests"

        # On the wire: the error record is last and no [DONE] follows it.
        body = json.dumps(
            {"model": "broken-stream", "messages": user("again"), "stream": True}
        ).encode()
        status, raw = post_raw(gateway.url + "/v1/chat/completions", body)
        assert status == 200
        records = [r for r in raw.decode().split("\n\n") if r]
        assert all(r.startswith("data: ") for r in records)
        assert "[DONE]" not in raw.decode()
        last = json.loads(records[-1][len("data: "):])
        assert last["error"]["code"] == "rate_limit_exceeded"
    finally:
        for s in sims:
            harness.set_faults(s.url, {})


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-model", messages=user("x"))
    assert "no-such-model" in err.value.message
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")


def test_unsupported_parameter_n(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="claude", messages=user("x"), n=2)
    assert err.value.param == "n"
    assert "n" in err.value.message
    assert err.value.code == "unsupported_parameter"


def test_unknown_parameter_is_refused_by_name(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="claude", messages=user("x"), extra_body={"frobnicate": 1})
    assert err.value.param == "frobnicate"


def post_raw(url, body, content_type="application/json"):
    req = urllib.request.Request(url, data=body, headers={"content-type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"])
def test_malformed_json_is_a_400_in_openai_shape(stack, path):
    gateway, _ = stack
    status, raw = post_raw(gateway.url + path, b'{"model": "claude", "messages": [')
    assert status == 400
    body = json.loads(raw)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in body["error"]["message"]


def test_target_header(client):
    raw = client.chat.completions.with_raw_response.create(model="claude", messages=user("where am I"))
    target = raw.headers["x-bedrock-balancer-target"]
    region, model = target.split("/", 1)
    assert region in REGIONS and model == CHAT_MODEL
    assert raw.headers["x-bedrock-balancer-attempts"] == "1"
    # The reply names the region that answered, so the header names the real target.
    assert f"Hello from {region} " in raw.parse().choices[0].message.content


def test_sdk_default_embeddings_decode_like_float(client):
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    default = client.embeddings.create(model="titan", input=["alpha", "beta"])
    floats = client.embeddings.create(model="titan", input=["alpha", "beta"], encoding_format="float")
    for d, f in zip(default.data, floats.data):
        assert [round(x, 5) for x in d.embedding] == [round(x, 5) for x in f.embedding]


def test_parse_with_pydantic_model(client):
    import pydantic

    class City(pydantic.BaseModel):
        name: str
        population: int

    out = client.chat.completions.parse(model="claude", messages=user("A city"), response_format=City)
    assert out.choices[0].message.parsed == City(name="sample", population=1)


def test_streamed_429_is_a_rate_limit_error(client, stack):
    _, sims = stack
    try:
        for s in sims:
            harness.set_faults(s.url, {"status": 429, "retry_after": 7})
        with pytest.raises(openai.RateLimitError) as err:
            for _ in client.chat.completions.create(model="throttled-stream", messages=user("hi"), stream=True):
                pass
        assert err.value.status_code == 429
        assert err.value.response.headers["retry-after"] == "7"
    finally:
        for s in sims:
            harness.set_faults(s.url, {})


def test_dropped_stream_raises_api_error(client, stack):
    _, sims = stack
    try:
        for s in sims:
            harness.set_faults(s.url, {"drop_after_events": 3})
        text = ""
        with pytest.raises(openai.APIError) as err:
            for chunk in client.completions.create(model="claude-text", prompt="long answer please", stream=True):
                text += "".join(c.text for c in chunk.choices)
        assert text.startswith("Hello")
        assert "ended before its final event" in err.value.message
        assert err.value.type == "api_error"
    finally:
        for s in sims:
            harness.set_faults(s.url, {})


def test_developer_role_and_max_completion_tokens(client):
    out = client.chat.completions.create(
        model="claude",
        messages=[{"role": "developer", "content": "Be brief"}, *user("one two three four five")],
        max_completion_tokens=3,
        temperature=0.2,
        top_p=0.9,
        extra_body={"additionalModelRequestFields": {"top_k": 5}},
    )
    assert out.choices[0].finish_reason == "length"
    assert out.usage.completion_tokens == 3


def test_silent_upstream_times_out(client, stack):
    _, sims = stack
    try:
        for s in sims:
            harness.set_faults(s.url, {"silence_after_headers": True})
        with pytest.raises(openai.InternalServerError) as err:
            client.chat.completions.create(model="silent", messages=user("hi"))
        assert err.value.status_code == 504
        assert err.value.code == "upstream_timeout"
        # A stream counts as delivered at its first event: a head and then silence is a timeout
        # before any byte reached the client, an HTTP error rather than a stream.
        with pytest.raises(openai.InternalServerError) as err:
            for _ in client.chat.completions.create(model="silent", messages=user("hi"), stream=True):
                pass
        assert err.value.status_code == 504
        assert err.value.code == "upstream_timeout"
        assert "no first event from" in err.value.message
    finally:
        for s in sims:
            harness.set_faults(s.url, {})
