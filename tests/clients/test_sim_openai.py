"""The simulator's OpenAI and Azure OpenAI modes as the official `openai` SDK sees them, with no
gateway in between: chat plain, streamed and with tools, legacy completions plain and streamed,
embeddings, and an injected 429."""

import openai
import pytest

from harness import set_faults, sim_stats, start_sim

KEY = "sk-sim-openai-test-key"
DEPLOYMENT = "gpt4o-eu"
API_VERSION = "2024-10-21"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module", params=["openai", "azure"])
def served(request):
    """(sim url, SDK client, the model name replies carry, the auth header, region)."""
    region = {"openai": "openai-east", "azure": "swedencentral"}[request.param]
    sim = start_sim(region, "--provider", request.param, "--api-key", KEY)
    try:
        if request.param == "openai":
            client = openai.OpenAI(base_url=sim.url + "/v1", api_key=KEY, max_retries=0)
            yield sim.url, client, "gpt-4o", ("authorization", f"Bearer {KEY}"), region
        else:
            client = openai.AzureOpenAI(
                azure_endpoint=sim.url, api_key=KEY, api_version=API_VERSION, max_retries=0
            )
            yield sim.url, client, DEPLOYMENT, ("api-key", KEY), region
    finally:
        sim.stop()


@pytest.fixture(autouse=True)
def no_faults(served):
    set_faults(served[0], {})
    yield
    set_faults(served[0], {})


def ask(text):
    return [{"role": "user", "content": text}]


def test_plain_chat_names_region_and_model_and_the_key_arrived(served):
    url, client, model, (header, value), region = served
    out = client.chat.completions.create(model=model, messages=ask("hello there"))
    assert out.model == model
    assert out.choices[0].message.content == f"Hello from {region} ({model}). You said: hello there"
    assert out.choices[0].finish_reason == "stop"
    assert out.usage.prompt_tokens == 2 and out.usage.completion_tokens == 8
    assert out.usage.prompt_tokens_details.cached_tokens == 0
    stats = sim_stats(url)
    assert stats["last_request_headers"][header] == value
    assert stats["by_model"][model]["chat-completions"] >= 1


def test_legacy_completions_parse_as_the_sdks_completion_plain_and_streamed(served):
    url, client, model, (header, value), region = served
    out = client.completions.create(model=model, prompt=["hello there", "bye"], max_tokens=40)
    assert out.object == "text_completion" and out.model == model
    assert [c.text for c in out.choices] == [
        f"Hello from {region} ({model}). You said: hello there",
        f"Hello from {region} ({model}). You said: bye",
    ]
    assert out.usage.prompt_tokens == 3 and out.usage.completion_tokens == 15
    chunks = list(
        client.completions.create(
            model=model, prompt="stream please", stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == f"Hello from {region} ({model}). You said: stream please"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    stats = sim_stats(url)
    assert stats["last_request_headers"][header] == value
    assert stats["by_model"][model]["completions"] >= 1
    assert stats["by_model"][model]["completions-stream"] >= 1


def test_streamed_chat_joins_to_the_answer_with_a_usage_chunk(served):
    _, client, model, _, region = served
    stream = client.chat.completions.create(
        model=model,
        messages=ask("stream please"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"Hello from {region} ({model}). You said: stream please"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


def test_tools_a_call_then_a_text_about_its_result(served):
    _, client, model, _, _ = served
    messages = ask("What is the weather in Paris? Use the tool.")
    out = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == '{"city":"sample"}'

    streamed = client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER], stream=True
    )
    pieces = [d for c in streamed for d in (c.choices[0].delta.tool_calls or [])]
    assert pieces[0].id == call.id and pieces[0].function.name == "get_weather"
    assert "".join(p.function.arguments or "" for p in pieces) == call.function.arguments

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    out = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].message.content.endswith("tool result sunny, 21C")

    forced = client.chat.completions.create(
        model=model, messages=ask("hi"), tools=[WEATHER], tool_choice="required"
    )
    assert forced.choices[0].message.tool_calls[0].function.name == "get_weather"
    unforced = client.chat.completions.create(model=model, messages=ask("hi"), tools=[WEATHER])
    assert unforced.choices[0].message.tool_calls is None


def test_embeddings_are_deterministic_vectors_with_usage(served):
    url, client, model, _, _ = served
    embedding_model = "text-embedding-3-small" if model == "gpt-4o" else model
    # The SDK asks for base64 and decodes it; floats are asked for explicitly here.
    a = client.embeddings.create(model=embedding_model, input=["alpha beta", "gamma"])
    b = client.embeddings.create(
        model=embedding_model, input="alpha beta", encoding_format="float"
    )
    assert len(a.data) == 2 and len(a.data[0].embedding) == 1536
    assert a.data[0].embedding == pytest.approx(b.data[0].embedding, abs=1e-6)
    assert a.data[0].embedding != a.data[1].embedding
    assert a.usage.prompt_tokens == 3
    assert sim_stats(url)["by_model"][embedding_model]["embeddings"] == 2


def test_an_injected_429_is_a_rate_limit_error_with_the_apis_headers(served):
    url, client, model, _, _ = served
    set_faults(url, {"status": 429, "retry_after": 2})
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model=model, messages=ask("hi"))
    headers = raised.value.response.headers
    assert headers["retry-after"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    if model == DEPLOYMENT:
        assert headers["retry-after-ms"] == "2000"
    assert "Injected" in raised.value.message
    set_faults(url, {"status": 503})
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model=model, messages=ask("hi"))
    assert raised.value.status_code == 503


def test_a_wrong_key_is_an_authentication_error(served):
    url, client, model, _, _ = served
    before = sim_stats(url)["bad_signatures"]
    with pytest.raises(openai.AuthenticationError):
        client.with_options(api_key="wrong").chat.completions.create(
            model=model, messages=ask("hi")
        )
    assert sim_stats(url)["bad_signatures"] == before + 1
