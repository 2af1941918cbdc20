"""The official boto3 client through the gateway's Bedrock-native routes."""

import json

import boto3
import pytest
from botocore.config import Config

import harness

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
REGIONS = ["us-east-1", "us-west-2", "eu-west-1"]


@pytest.fixture(scope="module")
def stack():
    sims = [harness.start_sim(r) for r in REGIONS]
    targets = "".join(harness.target_yaml(MODEL, r, s.url, w) for r, s, w in zip(REGIONS, sims, [2, 1, 1]))
    titan = "".join(harness.target_yaml("amazon.titan-embed-text-v2:0", r, s.url) for r, s in zip(REGIONS, sims))
    config = f"""
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2 }}
routes:
  - name: claude
    balancer: {{ retries: 2 }}
    targets:{targets}
  - name: titan
    route_type: llm/v1/embeddings
    targets:{titan}
"""
    gateway = harness.start_gateway(config)
    yield gateway, sims
    gateway.stop()
    for s in sims:
        s.stop()


def client(gateway):
    # Any credentials: the gateway re-signs every request for its targets.
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=gateway.url,
        region_name="us-east-1",
        aws_access_key_id="CLIENTKEYID",
        aws_secret_access_key="client-secret",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def converse_counts(sims):
    return [harness.sim_stats(s.url)["by_operation"].get("converse", 0) for s in sims]


def test_converse_by_route_name(stack):
    # The weighted shares themselves are checked in tests/native.rs.
    gateway, _ = stack
    out = client(gateway).converse(modelId="claude", messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert out["stopReason"] == "end_turn"
    assert "Hello from" in out["output"]["message"]["content"][0]["text"]


def test_converse_stream_reassembles(stack):
    gateway, _ = stack
    out = client(gateway).converse_stream(
        modelId=MODEL, messages=[{"role": "user", "content": [{"text": "stream this"}]}]
    )
    text, usage, stop = "", None, None
    for event in out["stream"]:
        if "contentBlockDelta" in event:
            text += event["contentBlockDelta"]["delta"]["text"]
        if "messageStop" in event:
            stop = event["messageStop"]["stopReason"]
        if "metadata" in event:
            usage = event["metadata"]["usage"]
    assert "Hello from" in text and "stream this" in text
    assert stop == "end_turn"
    assert usage["outputTokens"] == len(text.split())


def test_invoke_model_anthropic_and_titan(stack):
    gateway, _ = stack
    bedrock = client(gateway)
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": [{"role": "user", "content": "hey"}]}
    out = json.loads(bedrock.invoke_model(modelId="claude", body=json.dumps(body))["body"].read())
    assert out["content"][0]["text"].startswith("Hello from")
    emb = json.loads(bedrock.invoke_model(modelId="titan", body=json.dumps({"inputText": "x", "dimensions": 256}))["body"].read())
    assert len(emb["embedding"]) == 256


def test_invoke_model_with_response_stream(stack):
    gateway, _ = stack
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": [{"role": "user", "content": "stream"}]}
    out = client(gateway).invoke_model_with_response_stream(modelId="claude", body=json.dumps(body))
    text = ""
    for event in out["body"]:
        chunk = json.loads(event["chunk"]["bytes"])
        if chunk.get("type") == "content_block_delta":
            text += chunk["delta"]["text"]
    assert text.startswith("Hello from")


def test_client_signature_headers_do_not_reach_upstream(stack):
    gateway, sims = stack
    before = converse_counts(sims)
    out = client(gateway).converse(modelId="claude", messages=[{"role": "user", "content": [{"text": "x"}]}])
    region = out["ResponseMetadata"]["HTTPHeaders"]["x-bedrock-balancer-target"].split("/")[0]
    served = REGIONS.index(region)
    # The request the served region saw last is this one: exactly it counted one more Converse.
    assert [a - b for a, b in zip(converse_counts(sims), before)] == [int(i == served) for i in range(3)]
    headers = harness.sim_stats(sims[served].url)["last_request_headers"]
    assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={harness.KEY_ID}/"), headers
    for value in headers.values():
        assert "CLIENTKEYID" not in value, headers


def test_unknown_model_is_a_resource_not_found(stack):
    gateway, sims = stack
    before = converse_counts(sims)
    with pytest.raises(client(gateway).exceptions.ResourceNotFoundException) as err:
        client(gateway).converse(modelId="no-such-model", messages=[{"role": "user", "content": [{"text": "x"}]}])
    assert "no-such-model" in err.value.response["Error"]["Message"]
    assert converse_counts(sims) == before


def test_stream_exception_mid_stream_reaches_boto3(stack):
    gateway, sims = stack
    for s in sims:
        harness.set_faults(s.url, {"stream_exception_after": 2, "stream_exception": "throttlingException"})
    try:
        out = client(gateway).converse_stream(modelId="claude", messages=[{"role": "user", "content": [{"text": "x"}]}])
        with pytest.raises(Exception) as err:
            for _ in out["stream"]:
                pass
        assert "Throttling" in type(err.value).__name__ or "throttling" in str(err.value).lower()
    finally:
        for s in sims:
            harness.set_faults(s.url, {})
