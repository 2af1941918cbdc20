"""The simulator as boto3 sees it: every call must parse, sign and stream like real Bedrock."""

import json

import pytest
from botocore.exceptions import ClientError, EventStreamError

from conftest import control, make_client

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
PROFILE_ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
    "us.anthropic.claude-3-haiku-20240307-v1:0"
)


def user(text):
    return [{"role": "user", "content": [{"text": text}]}]


@pytest.mark.parametrize("model_id", [HAIKU, PROFILE_ARN])
def test_converse(client, sim, model_id):
    out = client.converse(modelId=model_id, messages=user("hello there"))
    text = out["output"]["message"]["content"][0]["text"]
    assert text == f"Hello from us-east-1 ({model_id}). You said: hello there"
    assert out["stopReason"] == "end_turn"
    assert out["usage"] == {"inputTokens": 2, "outputTokens": 8, "totalTokens": 10}
    assert out["ResponseMetadata"]["RequestId"], "x-amzn-requestid"
    stats = control(sim, "GET", "/_sim/stats")
    assert stats["by_model"] == {model_id: {"converse": 1}}
    assert stats["by_operation"] == {"converse": 1}
    auth = stats["last_request_headers"]["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), auth


def test_converse_tool_use(client):
    out = client.converse(
        modelId=HAIKU,
        messages=user("weather in Paris?"),
        toolConfig={
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "inputSchema": {
                            "json": {
                                "type": "object",
                                "properties": {"city": {"type": "string"}},
                                "required": ["city"],
                            }
                        },
                    }
                }
            ]
        },
    )
    assert out["stopReason"] == "tool_use"
    tool_use = out["output"]["message"]["content"][0]["toolUse"]
    assert tool_use["name"] == "get_weather"
    assert tool_use["input"] == {"city": "sample"}


def test_converse_stream(client):
    out = client.converse_stream(modelId=HAIKU, messages=user("stream this"))
    content_type = out["ResponseMetadata"]["HTTPHeaders"]["content-type"]
    assert content_type == "application/vnd.amazon.eventstream"
    text, metadata, stop = "", None, None
    for event in out["stream"]:
        if "contentBlockDelta" in event:
            text += event["contentBlockDelta"]["delta"]["text"]
        elif "messageStop" in event:
            stop = event["messageStop"]["stopReason"]
        elif "metadata" in event:
            metadata = event["metadata"]
    assert text == f"Hello from us-east-1 ({HAIKU}). You said: stream this"
    assert stop == "end_turn"
    assert metadata["usage"] == {"inputTokens": 2, "outputTokens": 8, "totalTokens": 10}


def invoke(client, model_id, body):
    out = client.invoke_model(modelId=model_id, body=json.dumps(body))
    return out, json.loads(out["body"].read())


def test_invoke_anthropic(client):
    out, body = invoke(
        client,
        HAIKU,
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert body["type"] == "message"
    assert body["content"][0]["text"].endswith("You said: hi")
    headers = out["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == "1"
    assert headers["x-amzn-bedrock-output-token-count"] == str(body["usage"]["output_tokens"])


def test_invoke_titan_v2(client):
    out, body = invoke(
        client, "amazon.titan-embed-text-v2:0", {"inputText": "a b c", "dimensions": 512}
    )
    assert out["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"] == "3"
    assert len(body["embedding"]) == 512
    assert abs(sum(v * v for v in body["embedding"]) - 1.0) < 1e-6
    assert body["inputTextTokenCount"] == 3
    _, again = invoke(
        client, "amazon.titan-embed-text-v2:0", {"inputText": "a b c", "dimensions": 512}
    )
    assert again["embedding"] == body["embedding"]


def test_invoke_cohere(client):
    _, body = invoke(
        client,
        "cohere.embed-english-v3",
        {"texts": ["one", "two"], "input_type": "search_document"},
    )
    assert body["response_type"] == "embeddings_floats"
    assert [len(v) for v in body["embeddings"]] == [1024, 1024]
    assert body["texts"] == ["one", "two"]


def test_invoke_with_response_stream(client):
    out = client.invoke_model_with_response_stream(
        modelId=PROFILE_ARN,
        body=json.dumps(
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "stream me"}],
            }
        ),
    )
    events = [json.loads(e["chunk"]["bytes"]) for e in out["body"]]
    types = [e["type"] for e in events]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    text = "".join(
        e["delta"]["text"] for e in events if e["type"] == "content_block_delta"
    )
    assert text == f"Hello from us-east-1 ({PROFILE_ARN}). You said: stream me"
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] == 8


def test_tampered_signature_is_refused(client, sim):
    def flip_one_byte(request, **_):
        auth = request.headers["Authorization"]
        if isinstance(auth, bytes):
            auth = auth.decode()
        request.headers["Authorization"] = auth[:-1] + ("0" if auth[-1] != "0" else "1")

    client.meta.events.register("before-send.bedrock-runtime.*", flip_one_byte)
    with pytest.raises(ClientError) as error:
        client.converse(modelId=HAIKU, messages=user("hi"))
    assert error.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert control(sim, "GET", "/_sim/stats")["bad_signatures"] == 1


def test_wrong_secret_is_refused(sim):
    client = make_client(sim, secret="not-the-secret")
    with pytest.raises(ClientError) as error:
        client.converse(modelId=HAIKU, messages=user("hi"))
    assert error.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    stats = control(sim, "GET", "/_sim/stats")
    assert (stats["bad_signatures"], stats["requests_total"]) == (1, 1)


def test_unknown_model_is_not_found(client, sim):
    with pytest.raises(ClientError) as error:
        client.converse(modelId="acme.unknown-v1:0", messages=user("hi"))
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    stats = control(sim, "GET", "/_sim/stats")
    assert (stats["bad_signatures"], stats["requests_total"]) == (0, 1)


def test_injected_throttling(client, sim):
    control(sim, "POST", "/_sim/faults", {"status": 429, "retry_after": 1})
    with pytest.raises(ClientError) as error:
        client.converse(modelId=HAIKU, messages=user("hi"))
    assert error.value.response["Error"]["Code"] == "ThrottlingException"
    assert error.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"
    control(sim, "DELETE", "/_sim/faults")
    client.converse(modelId=HAIKU, messages=user("hi"))
    stats = control(sim, "GET", "/_sim/stats")
    assert stats["errors_injected"] == 1
    assert stats["by_operation"] == {"converse": 2}


def test_exception_mid_stream(client, sim):
    control(
        sim,
        "POST",
        "/_sim/faults",
        {"stream_exception_after": 3, "stream_exception": "throttlingException"},
    )
    out = client.converse_stream(modelId=HAIKU, messages=user("stream this"))
    seen = []
    with pytest.raises(EventStreamError) as error:
        for event in out["stream"]:
            seen.append(event)
    assert len(seen) == 3
    assert error.value.response["Error"]["Code"] == "throttlingException"


def test_llama_invoke_and_stream(client):
    model_id = "meta.llama3-8b-instruct-v1:0"
    _, body = invoke(client, model_id, {"prompt": "tell me", "max_gen_len": 3})
    assert body["generation"] == "Hello from us-east-1"
    assert body["stop_reason"] == "length"
    out = client.invoke_model_with_response_stream(
        modelId=model_id, body=json.dumps({"prompt": "tell me"})
    )
    chunks = [json.loads(e["chunk"]["bytes"]) for e in out["body"]]
    assert "".join(c["generation"] for c in chunks).endswith("You said: tell me")
    assert chunks[-1]["stop_reason"] == "stop"
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["inputTokenCount"] == 2


def test_invalid_bodies_are_validation_errors(client):
    with pytest.raises(ClientError) as error:
        client.invoke_model(modelId=HAIKU, body=b"{not json")
    assert error.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as error:
        client.invoke_model_with_response_stream(
            modelId="amazon.titan-embed-text-v2:0", body=json.dumps({"inputText": "a"})
        )
    assert error.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as error:
        client.converse(modelId="acme.unknown-v1", messages=user("hi"))
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"
