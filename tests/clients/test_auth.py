"""Consumer authentication with the official SDKs: the openai SDK with a consumer's API key, boto3
with a consumer's key pair (SigV4 over plain HTTP). A refused request must reach no region.

botocore's own Bearer support (`AWS_BEARER_TOKEN_BEDROCK`) refuses plain-HTTP endpoints
("Bearer authorization requires an HTTPS endpoint"), so no SDK sends a Bearer key to the
Bedrock-native routes here: `tests/auth.rs` covers that path."""

import json
import urllib.error
import urllib.request

import boto3
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import harness

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
API_KEY = "sk-team-a-pytest-4f1c2b"
WRONG_KEY = "sk-team-a-pytest-WRONG"
KEY_ID = "AKIDBATCHPYTEST"
SECRET = "batch-pytest/secret+key"
WRONG_SECRET = "batch-pytest/WRONG+secret"
TIMEOUT = 20
MESSAGES = [{"role": "user", "content": [{"text": "hello"}]}]


@pytest.fixture(scope="module")
def stack():
    sim = harness.start_sim("us-east-1")
    try:
        gateway = harness.start_gateway(f"""
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2 }}
consumers:
  - {{ name: team-a, api_key: "{API_KEY}" }}
  - {{ name: batch-jobs, aws_access_key_id: {KEY_ID}, aws_secret_access_key: "{SECRET}" }}
routes:
  - name: claude
    balancer: {{ retries: 0 }}
    targets:{harness.target_yaml(MODEL, "us-east-1", sim.url)}
""")
    except BaseException:
        sim.stop()
        raise
    yield gateway, sim
    gateway.stop()
    sim.stop()


def reached_sim(sim):
    return harness.sim_stats(sim.url)["requests_total"]


def openai_client(gateway, key):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=TIMEOUT)


def bedrock(gateway, secret, key_id=KEY_ID):
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=gateway.url,
        region_name="eu-west-1",  # the gateway accepts a signature for any region
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def test_openai_sdk_with_the_consumers_key(stack):
    gateway, _ = stack
    client = openai_client(gateway, API_KEY)
    out = client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content.startswith("Hello from")
    chunks = client.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "Hello from" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert [m.id for m in client.models.list()] == ["claude"]


def test_openai_sdk_with_a_wrong_key_raises_authentication_error(stack):
    gateway, sim = stack
    before = reached_sim(sim)
    with pytest.raises(openai.AuthenticationError) as err:
        openai_client(gateway, WRONG_KEY).chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.status_code == 401
    assert err.value.body["type"] == "authentication_error"
    assert err.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        openai_client(gateway, WRONG_KEY).models.list()
    assert reached_sim(sim) == before


def test_boto3_with_the_consumers_key_pair(stack):
    gateway, _ = stack
    client = bedrock(gateway, SECRET)
    out = client.converse(modelId="claude", messages=MESSAGES)
    assert out["stopReason"] == "end_turn"
    assert out["output"]["message"]["content"][0]["text"].startswith("Hello from")
    stream = client.converse_stream(modelId=MODEL, messages=MESSAGES)
    text = "".join(
        e["contentBlockDelta"]["delta"]["text"] for e in stream["stream"] if "contentBlockDelta" in e
    )
    assert "Hello from" in text


@pytest.mark.parametrize("key_id, secret", [(KEY_ID, WRONG_SECRET), ("AKIDNOSUCHKEY", SECRET)])
def test_boto3_with_a_wrong_key_pair_gets_401_and_reaches_no_region(stack, key_id, secret):
    gateway, sim = stack
    before = reached_sim(sim)
    client = bedrock(gateway, secret, key_id)
    for call in (
        lambda: client.converse(modelId="claude", messages=MESSAGES),
        lambda: client.converse_stream(modelId="claude", messages=MESSAGES),
    ):
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    assert reached_sim(sim) == before


def native_post(gateway, headers):
    request = urllib.request.Request(
        gateway.url + "/model/claude/converse",
        data=json.dumps({"messages": MESSAGES}).encode(),
        headers={"content-type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def test_refusals_are_logged_without_credentials(stack):
    gateway, _ = stack
    native_post(gateway, {"authorization": f"Bearer {WRONG_KEY}", "x-api-key": WRONG_KEY})
    with pytest.raises(ClientError):
        bedrock(gateway, WRONG_SECRET).converse(modelId="claude", messages=MESSAGES)
    log = "".join(gateway.stderr_lines)
    assert "authentication failed" in log
    assert "bad_signature" in log and "batch-jobs" in log
    for secret in (API_KEY, WRONG_KEY, SECRET, WRONG_SECRET, "Bearer ", "AWS4-HMAC-SHA256"):
        assert secret not in log
