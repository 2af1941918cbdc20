"""Claude on the simulator as boto3 sees it: InvokeModel, InvokeModelWithResponseStream and
CountTokens with Anthropic's Messages body, held to Bedrock's rules."""

import json

import pytest
from botocore.exceptions import ClientError, EventStreamError

from conftest import control

SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
VERSION = "bedrock-2023-05-31"
THINKING = {"type": "enabled", "budget_tokens": 1024}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather of a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def claude_body(text="hello there", **extra):
    return {
        "anthropic_version": VERSION,
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def invoke(client, body, model_id=SONNET):
    out = client.invoke_model(modelId=model_id, body=json.dumps(body))
    return out, json.loads(out["body"].read())


def stream_events(client, body, model_id=SONNET):
    out = client.invoke_model_with_response_stream(modelId=model_id, body=json.dumps(body))
    return [json.loads(e["chunk"]["bytes"]) for e in out["body"]]


def refusal(call):
    with pytest.raises(ClientError) as error:
        call()
    response = error.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"]["Code"] == "ValidationException"
    return response["Error"]["Message"]


def test_invoke_answers_a_message_with_cache_usage_and_headers(client):
    out, body = invoke(client, claude_body())
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["content"] == [
        {"type": "text", "text": f"Hello from us-east-1 ({SONNET}). You said: hello there"}
    ]
    assert body["stop_reason"] == "end_turn" and body["stop_sequence"] is None
    assert body["usage"] == {
        "input_tokens": 2,
        "output_tokens": 8,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    headers = out["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == "2"
    assert headers["x-amzn-bedrock-output-token-count"] == "8"
    assert headers["x-amzn-bedrock-cache-read-input-token-count"] == "0"


def test_bedrock_refuses_what_the_anthropic_api_takes(client, sim):
    message = refusal(lambda: invoke(client, claude_body(model="claude-x", stream=True)))
    assert "extraneous key [model] is not permitted" in message
    assert "extraneous key [stream] is not permitted" in message
    body = claude_body()
    del body["anthropic_version"]
    assert "required key [anthropic_version] not found" in refusal(lambda: invoke(client, body))
    wrong = claude_body(anthropic_version="2023-06-01")
    assert refusal(lambda: invoke(client, wrong)) == "Invalid API version: 2023-06-01"
    beta = claude_body(anthropic_beta=["claude-code-20250219"])
    assert refusal(lambda: invoke(client, beta)) == "invalid beta flag"
    low = claude_body(thinking={"type": "enabled", "budget_tokens": 100})
    assert "greater than or equal to 1024" in refusal(lambda: invoke(client, low))
    over = claude_body(thinking={"type": "enabled", "budget_tokens": 4096})
    assert "`max_tokens` must be greater than `thinking.budget_tokens`" in refusal(
        lambda: invoke(client, over)
    )
    # What arrived is on record, refused or not.
    records = control(sim, "GET", "/_sim/stats")["claude_requests"]
    assert records[0]["keys"] == ["anthropic_version", "max_tokens", "messages", "model", "stream"]
    assert records[3]["anthropic_beta"] == ["claude-code-20250219"]
    assert {r["operation"] for r in records} == {"invoke"}


def test_a_supported_beta_is_accepted_and_recorded(client, sim):
    betas = ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]
    invoke(client, claude_body(anthropic_beta=betas))
    [record] = control(sim, "GET", "/_sim/stats")["claude_requests"]
    assert record["model"] == SONNET
    assert record["anthropic_beta"] == betas
    assert record["anthropic_version"] == VERSION


def test_thinking_is_signed_and_verified_when_replayed(client, sim):
    _, first = invoke(client, claude_body(thinking=THINKING))
    thinking, text = first["content"]
    assert thinking["type"] == "thinking" and thinking["signature"]
    assert text["type"] == "text"

    def replay(block):
        return claude_body(
            thinking=THINKING,
            messages=[
                {"role": "user", "content": "hello there"},
                {"role": "assistant", "content": [block, text]},
                {"role": "user", "content": "and then?"},
            ],
        )

    _, second = invoke(client, replay(thinking))
    assert second["content"][-1]["text"].endswith("You said: and then?")
    altered = dict(thinking, signature=thinking["signature"][:-4] + "AAA=")
    message = refusal(lambda: invoke(client, replay(altered)))
    assert message.endswith("messages.1.content.0: Invalid `signature` in `thinking` block")
    stats = control(sim, "GET", "/_sim/stats")
    assert stats["thinking_signatures_verified"] == 1
    assert stats["thinking_signatures_rejected"] == 1


def test_stream_carries_anthropics_events_and_bedrock_metrics_last(client):
    body = claude_body(thinking=THINKING)
    _, whole = invoke(client, body)
    events = stream_events(client, body)
    types = [e["type"] for e in events]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    thinking = "".join(d["thinking"] for d in deltas if d["type"] == "thinking_delta")
    signature = "".join(d["signature"] for d in deltas if d["type"] == "signature_delta")
    text = "".join(d["text"] for d in deltas if d["type"] == "text_delta")
    assert [thinking, signature, text] == [
        whole["content"][0]["thinking"],
        whole["content"][0]["signature"],
        whole["content"][1]["text"],
    ]
    assert events[-2]["delta"]["stop_reason"] == "end_turn"
    assert events[-2]["usage"]["output_tokens"] == whole["usage"]["output_tokens"]
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert set(metrics) == {
        "inputTokenCount",
        "outputTokenCount",
        "invocationLatency",
        "firstByteLatency",
        "cacheReadInputTokenCount",
        "cacheWriteInputTokenCount",
    }
    assert metrics["outputTokenCount"] == whole["usage"]["output_tokens"]
    assert all("amazon-bedrock-invocationMetrics" not in e for e in events[:-1])


def test_tool_use_round_trip(client):
    ask = claude_body("please use the tool for Paris", tools=[WEATHER_TOOL])
    _, called = invoke(client, ask)
    assert called["stop_reason"] == "tool_use"
    [tool_use] = called["content"]
    assert tool_use["name"] == "get_weather" and tool_use["input"] == {"city": "sample"}
    events = stream_events(client, ask)
    partial = "".join(
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(partial) == tool_use["input"]
    answer = claude_body(
        tools=[WEATHER_TOOL],
        messages=[
            ask["messages"][0],
            {"role": "assistant", "content": [tool_use]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tool_use["id"], "content": "sunny"}
                ],
            },
        ],
    )
    _, final = invoke(client, answer)
    assert final["stop_reason"] == "end_turn"
    assert final["content"][0]["text"].endswith("You said: tool result sunny")
    lost = json.loads(json.dumps(answer))
    lost["messages"][2]["content"][0]["tool_use_id"] = "toolu_other"
    assert "`tool_use` ids were found without `tool_result` blocks" in refusal(
        lambda: invoke(client, lost)
    )


def test_a_cached_prefix_is_written_then_read(client):
    system = [
        {"type": "text", "text": "You are terse. " * 20, "cache_control": {"type": "ephemeral"}}
    ]
    body = claude_body("hi", system=system)
    _, first = invoke(client, body)
    assert first["usage"]["cache_creation_input_tokens"] == 60
    assert first["usage"]["cache_read_input_tokens"] == 0
    assert first["usage"]["input_tokens"] == 1
    events = stream_events(client, body)
    assert events[0]["message"]["usage"]["cache_read_input_tokens"] == 60
    assert events[0]["message"]["usage"]["cache_creation_input_tokens"] == 0
    assert events[-1]["amazon-bedrock-invocationMetrics"]["cacheReadInputTokenCount"] == 60


def test_count_tokens(client, sim):
    body = claude_body("one two three", system="four five")
    out = client.count_tokens(
        modelId=SONNET, input={"invokeModel": {"body": json.dumps(body).encode()}}
    )
    assert out["inputTokens"] == 5
    out = client.count_tokens(
        modelId=SONNET,
        input={"converse": {"messages": [{"role": "user", "content": [{"text": "a b c d"}]}]}},
    )
    assert out["inputTokens"] == 4
    bad = claude_body(model="x")
    assert "extraneous key [model]" in refusal(
        lambda: client.count_tokens(
            modelId=SONNET, input={"invokeModel": {"body": json.dumps(bad).encode()}}
        )
    )
    assert refusal(
        lambda: client.count_tokens(
            modelId="meta.llama3-8b-instruct-v1:0",
            input={"invokeModel": {"body": b'{"prompt": "hi"}'}},
        )
    ) == "The provided model doesn't support counting tokens."
    stats = control(sim, "GET", "/_sim/stats")
    assert stats["by_operation"]["count-tokens"] == 4
    assert [r["operation"] for r in stats["claude_requests"]] == ["count-tokens"] * 2


def test_faults_apply_to_claude_streams(client, sim):
    control(
        sim,
        "POST",
        "/_sim/faults",
        {"stream_exception_after": 2, "stream_exception": "throttlingException"},
    )
    out = client.invoke_model_with_response_stream(modelId=SONNET, body=json.dumps(claude_body()))
    seen = []
    with pytest.raises(EventStreamError) as error:
        for event in out["body"]:
            seen.append(json.loads(event["chunk"]["bytes"])["type"])
    assert seen == ["message_start", "content_block_start"]
    assert error.value.response["Error"]["Code"] == "throttlingException"
