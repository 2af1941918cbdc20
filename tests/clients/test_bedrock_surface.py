"""The whole Bedrock runtime surface through the gateway with the official boto3 clients
(`bedrock-runtime` and `bedrock-agent-runtime`, `endpoint_url` = gateway, dummy credentials): guardrails,
async invocations, InvokeModel's Bedrock headers, rerank, retrieve and retrieve-and-generate, and
the 501 for operations the gateway does not serve. Three simulated regions, each checking every
signature."""

import json
import urllib.request

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
from botocore.config import Config

import harness

REGIONS = ["us-east-1", "us-west-2", "eu-west-1"]
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
REEL = "amazon.nova-reel-v1:0"
RERANK_MODEL = "arn:aws:bedrock:us-east-1::foundation-model/amazon.rerank-v1:0"
ONE_TRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="module")
def stack():
    sims = dict(zip(REGIONS, (harness.start_sim(r) for r in REGIONS)))
    east, west, eu = (sims[r] for r in REGIONS)
    claude = harness.target_yaml(CLAUDE, "us-east-1", east.url)
    # A model id selects one route, so the second Claude route uses the US inference profile.
    locked = harness.target_yaml("us." + CLAUDE, "us-west-2", west.url).replace(
        "bedrock: { aws_region: us-west-2 }",
        "bedrock: { aws_region: us-west-2, invoke_headers: { X-Amzn-Bedrock-GuardrailIdentifier: gr-locked,"
        " X-Amzn-Bedrock-GuardrailVersion: '4' }, invoke_headers_overridable: false }",
    )
    reel = "".join(harness.target_yaml(REEL, r, sims[r].url) for r in ["us-east-1", "eu-west-1"])
    guardrail = harness.region_target_yaml("us-east-1", east.url) + harness.region_target_yaml(
        "us-west-2", west.url, "guardrail_map: { client-gr: { identifier: gr-west, version: '7' } }"
    )
    agent = harness.region_target_yaml("us-east-1", east.url) + harness.region_target_yaml(
        "eu-west-1", eu.url, "knowledge_base_map: { KBCLIENT01: KBEUROPE01 }"
    )
    failover = "{ failover_criteria: [error, timeout, http_503, non_idempotent] }"
    config = f"""
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2 }}
routes:
  - name: claude
    targets:{claude}
  - name: claude-locked
    targets:{locked}
  - name: reel
    targets:{reel}
  - name: guardrails
    route_type: bedrock/guardrail
    balancer: {failover}
    targets:{guardrail}
  - name: knowledge
    route_type: bedrock/agent
    balancer: {failover}
    targets:{agent}
"""
    gateway = harness.start_gateway(config)
    yield gateway, sims
    gateway.stop()
    for s in sims.values():
        s.stop()


@pytest.fixture(autouse=True)
def no_faults(stack):
    _, sims = stack
    yield
    for s in sims.values():
        harness.set_faults(s.url, {})


def client(gateway, service="bedrock-runtime"):
    # Any credentials: the gateway re-signs every request for its targets.
    return boto3.client(
        service,
        endpoint_url=gateway.url,
        region_name="us-east-1",
        aws_access_key_id="CLIENTKEYID",
        aws_secret_access_key="client-secret",
        config=ONE_TRY,
    )


def ops(sim, op):
    return harness.sim_stats(sim.url)["by_operation"].get(op, 0)


def by_resource(sim):
    return harness.sim_stats(sim.url)["by_model"]


def guardrail_content(text):
    return [{"text": {"text": text}}]


def test_apply_guardrail_balances_and_maps_the_guardrail_per_region(stack):
    gateway, sims = stack
    bedrock = client(gateway)
    before = {r: ops(sims[r], "apply-guardrail") for r in ["us-east-1", "us-west-2"]}
    reasons = set()
    for i in range(6):
        out = bedrock.apply_guardrail(
            guardrailIdentifier="client-gr", guardrailVersion="1", source="INPUT",
            content=guardrail_content(f"harmless text {i}"),
        )
        assert out["action"] == "NONE"
        reasons.add(out["actionReason"])
    # Round-robin over the two regions; us-west-2 has its own guardrail for client-gr.
    assert reasons == {"guardrail client-gr version 1 in us-east-1", "guardrail gr-west version 7 in us-west-2"}
    assert {r: ops(sims[r], "apply-guardrail") - before[r] for r in before} == {"us-east-1": 3, "us-west-2": 3}
    assert by_resource(sims["us-west-2"]).get("gr-west:7", {}).get("apply-guardrail", 0) >= 3
    # An unmapped guardrail id passes as sent.
    out = bedrock.apply_guardrail(
        guardrailIdentifier="other-gr", guardrailVersion="DRAFT", source="OUTPUT",
        content=guardrail_content("this is forbidden"),
    )
    assert out["action"] == "GUARDRAIL_INTERVENED"
    assert out["actionReason"].startswith("guardrail other-gr version DRAFT in ")


def test_a_guardrail_region_failing_with_503_is_failed_over(stack):
    gateway, sims = stack
    harness.set_faults(sims["us-east-1"].url, {"status": 503})
    bedrock = client(gateway)
    for i in range(4):
        out = bedrock.apply_guardrail(
            guardrailIdentifier="client-gr", guardrailVersion="1", source="INPUT",
            content=guardrail_content(f"text {i}"),
        )
        assert out["actionReason"] == "guardrail gr-west version 7 in us-west-2"
        assert out["ResponseMetadata"]["HTTPHeaders"]["x-bedrock-balancer-target"] == "us-west-2/bedrock-runtime"


def start(bedrock, token):
    return bedrock.start_async_invoke(
        modelId="reel",
        modelInput={"taskType": "TEXT_VIDEO", "textToVideoParams": {"text": "a cat"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://bucket/out"}},
        clientRequestToken=token,
    )["invocationArn"]


def test_async_invocations_start_by_model_get_by_arn_region_and_list_merged(stack):
    gateway, sims = stack
    bedrock = client(gateway)
    arns = [start(bedrock, f"token-{i}") for i in range(5)]
    regions = {arn.split(":")[3] for arn in arns}
    # Round-robin over the route's two regions.
    assert regions == {"us-east-1", "eu-west-1"}
    gets_before = {r: ops(sims[r], "get-async-invoke") for r in REGIONS}
    for i, arn in enumerate(arns):
        job = bedrock.get_async_invoke(invocationArn=arn)
        assert job["invocationArn"] == arn
        assert job["status"] == "Completed"
        # The token reached Bedrock unchanged.
        assert job["clientRequestToken"] == f"token-{i}"
        assert job["modelArn"].endswith(f"foundation-model/{REEL}")
    gets = {r: ops(sims[r], "get-async-invoke") - gets_before[r] for r in REGIONS}
    assert gets == {r: sum(a.split(":")[3] == r for a in arns) for r in REGIONS}

    # Listed two at a time across both regions, newest first, every job exactly once.
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"maxResults": 2, **({"nextToken": token} if token else {})}
        page = bedrock.list_async_invokes(**kwargs)
        assert len(page["asyncInvokeSummaries"]) <= 2
        seen += page["asyncInvokeSummaries"]
        pages += 1
        token = page.get("nextToken")
        if not token:
            break
        assert pages < 20
    listed = [s["invocationArn"] for s in seen]
    assert sorted(listed) == sorted(set(listed))
    assert set(arns) <= set(listed)
    times = [s["submitTime"] for s in seen]
    assert times == sorted(times, reverse=True)


def test_a_retried_start_with_the_same_token_runs_once(stack):
    gateway, sims = stack
    bedrock = client(gateway)
    first = start(bedrock, "same-token")
    region = first.split(":")[3]
    # The retry that reaches the same region gets the same invocation back.
    retried = set()
    for _ in range(2):
        arn = start(bedrock, "same-token")
        if arn.split(":")[3] == region:
            retried.add(arn)
    assert retried == {first}


def test_get_async_invoke_for_a_region_no_route_has_is_a_validation_error(stack):
    gateway, _ = stack
    with pytest.raises(client(gateway).exceptions.ValidationException) as err:
        client(gateway).get_async_invoke(invocationArn="arn:aws:bedrock:ap-south-1:123456789012:async-invoke/abc")
    assert "ap-south-1" in str(err.value)


def test_invoke_model_headers_arrive_signed(stack):
    gateway, sims = stack
    bedrock = client(gateway)
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    out = bedrock.invoke_model(
        modelId="claude", body=json.dumps(body), guardrailIdentifier="client-gr", guardrailVersion="2",
        trace="ENABLED", performanceConfigLatency="optimized",
    )
    assert json.loads(out["body"].read())["content"][0]["text"].startswith("Hello from us-east-1")
    headers = harness.sim_stats(sims["us-east-1"].url)["last_request_headers"]
    assert headers["x-amzn-bedrock-guardrailidentifier"] == "client-gr"
    assert headers["x-amzn-bedrock-guardrailversion"] == "2"
    assert headers["x-amzn-bedrock-trace"] == "ENABLED"
    assert headers["x-amzn-bedrock-performanceconfig-latency"] == "optimized"
    signed = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    for name in ["x-amzn-bedrock-guardrailidentifier", "x-amzn-bedrock-guardrailversion",
                 "x-amzn-bedrock-trace", "x-amzn-bedrock-performanceconfig-latency"]:
        assert name in signed
    # The gateway's key signed it, not the client's; no other client x-amz header went up.
    assert "CLIENTKEYID" not in headers["authorization"]
    assert not any(n.startswith("x-amz-") and n not in ("x-amz-date", "x-amz-content-sha256") for n in headers)

    # A target that sets its own guardrail and forbids overriding it.
    stream = bedrock.invoke_model_with_response_stream(
        modelId="claude-locked", body=json.dumps(body), guardrailIdentifier="client-gr", trace="ENABLED",
    )
    for _ in stream["body"]:
        pass
    headers = harness.sim_stats(sims["us-west-2"].url)["last_request_headers"]
    assert headers["x-amzn-bedrock-guardrailidentifier"] == "gr-locked"
    assert headers["x-amzn-bedrock-guardrailversion"] == "4"
    assert headers["x-amzn-bedrock-trace"] == "ENABLED"


def test_count_tokens_is_balanced_to_the_model_and_counts(stack):
    gateway, sims = stack
    bedrock = client(gateway)
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
            "messages": [{"role": "user", "content": "count these five words"}]}
    before = ops(sims["us-east-1"], "count-tokens")
    out = bedrock.count_tokens(modelId="claude", input={"invokeModel": {"body": json.dumps(body).encode()}})
    assert out["inputTokens"] > 0
    assert ops(sims["us-east-1"], "count-tokens") == before + 1
    # A model Bedrock cannot count is the model's 400, raised by boto3 as a ValidationException.
    with pytest.raises(bedrock.exceptions.ValidationException):
        bedrock.count_tokens(modelId="reel", input={"converse": {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}})


def test_rerank(stack):
    gateway, _ = stack
    agent = client(gateway, "bedrock-agent-runtime")
    out = agent.rerank(
        queries=[{"type": "TEXT", "textQuery": {"text": "red apples"}}],
        sources=[
            {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": t}}}
            for t in ["blue sky", "red apples grow on trees", "apples"]
        ],
        rerankingConfiguration={
            "type": "BEDROCK_RERANKING_MODEL",
            "bedrockRerankingConfiguration": {"numberOfResults": 2, "modelConfiguration": {"modelArn": RERANK_MODEL}},
        },
    )
    assert [r["index"] for r in out["results"]] == [1, 2]


def test_retrieve_maps_the_knowledge_base_per_region(stack):
    gateway, sims = stack
    agent = client(gateway, "bedrock-agent-runtime")
    texts = set()
    for _ in range(4):
        out = agent.retrieve(knowledgeBaseId="KBCLIENT01", retrievalQuery={"text": "tides"})
        assert len(out["retrievalResults"]) == 3
        texts.add(out["retrievalResults"][0]["content"]["text"])
    assert texts == {
        "Passage 0 of knowledge base KBCLIENT01 in us-east-1 about: tides",
        "Passage 0 of knowledge base KBEUROPE01 in eu-west-1 about: tides",
    }
    assert by_resource(sims["eu-west-1"]).get("KBEUROPE01", {}).get("retrieve", 0) >= 2


def rag_config(kb):
    return {
        "type": "KNOWLEDGE_BASE",
        "knowledgeBaseConfiguration": {"knowledgeBaseId": kb, "modelArn": "anthropic.claude-3-haiku-20240307-v1:0"},
    }


def test_retrieve_and_generate(stack):
    gateway, _ = stack
    agent = client(gateway, "bedrock-agent-runtime")
    answers = set()
    for _ in range(2):
        out = agent.retrieve_and_generate(input={"text": "what is up"}, retrieveAndGenerateConfiguration=rag_config("KBCLIENT01"))
        assert out["sessionId"]
        assert out["citations"][0]["retrievedReferences"][0]["location"]["type"] == "S3"
        answers.add(out["output"]["text"])
    # The body's knowledge base is mapped in eu-west-1 too.
    assert answers == {
        "Answer from knowledge base KBCLIENT01 in us-east-1: what is up",
        "Answer from knowledge base KBEUROPE01 in eu-west-1: what is up",
    }


def test_retrieve_and_generate_stream_is_parsed_by_boto3(stack):
    gateway, sims = stack
    agent = client(gateway, "bedrock-agent-runtime")
    # Slow events prove frames are passed on as they come, not buffered whole.
    for s in sims.values():
        harness.set_faults(s.url, {"inter_token_ms": 20})
    for _ in range(2):
        out = agent.retrieve_and_generate_stream(
            input={"text": "stream me"}, retrieveAndGenerateConfiguration=rag_config("KBCLIENT01"), sessionId="sess-1",
        )
        assert out["sessionId"] == "sess-1"
        text, citations = "", 0
        for event in out["stream"]:
            if "output" in event:
                text += event["output"]["text"]
            if "citation" in event:
                citations += 1
        assert text.startswith("Answer from knowledge base KB") and text.endswith("stream me")
        assert citations == 1


def test_an_agent_region_failing_with_503_is_failed_over(stack):
    gateway, sims = stack
    harness.set_faults(sims["eu-west-1"].url, {"status": 503})
    agent = client(gateway, "bedrock-agent-runtime")
    for _ in range(3):
        out = agent.retrieve(knowledgeBaseId="KBCLIENT01", retrievalQuery={"text": "q"})
        assert "in us-east-1" in out["retrievalResults"][0]["content"]["text"]


def signed_post(url, path, body=b"{}"):
    credentials = botocore.credentials.Credentials("CLIENTKEYID", "client-secret")
    request = botocore.awsrequest.AWSRequest(method="POST", url=url + path, data=body,
                                             headers={"content-type": "application/json"})
    botocore.auth.SigV4Auth(credentials, "bedrock", "us-east-1").add_auth(request)
    prepared = request.prepare()
    return urllib.request.Request(prepared.url, data=body, headers=dict(prepared.headers), method="POST")


def test_bidirectional_stream_is_a_501_naming_the_operation(stack):
    gateway, sims = stack
    before = sum(harness.sim_stats(s.url)["requests_total"] for s in sims.values())
    # boto3 offers no invoke_model_with_bidirectional_stream (HTTP/2 event-stream input), so the
    # request is signed by botocore's own SigV4 signer.
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(signed_post(gateway.url, "/model/claude/invoke-with-bidirectional-stream"), timeout=10)
    assert err.value.code == 501
    assert err.value.headers["x-amzn-errortype"] == "NotImplementedException"
    assert "InvokeModelWithBidirectionalStream" in json.loads(err.value.read())["message"]
    assert sum(harness.sim_stats(s.url)["requests_total"] for s in sims.values()) == before


@pytest.mark.parametrize(
    "service,call,kwargs,name",
    [
        ("bedrock-agent-runtime", "invoke_agent",
         {"agentId": "A1", "agentAliasId": "AL1", "sessionId": "s1", "inputText": "hi"}, "InvokeAgent"),
        ("bedrock-agent-runtime", "invoke_inline_agent",
         {"sessionId": "s1", "foundationModel": "m", "instruction": "You are a helpful assistant who answers briefly.", "inputText": "hi"},
         "InvokeInlineAgent"),
        ("bedrock-agent-runtime", "generate_query",
         {"queryGenerationInput": {"type": "TEXT", "text": "q"},
          "transformationConfiguration": {"mode": "TEXT_TO_SQL", "textToSqlConfiguration": {
              "type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {"knowledgeBaseArn": "arn:aws:bedrock:us-east-1:1:knowledge-base/K"}}}},
         "GenerateQuery"),
        ("bedrock-runtime", "invoke_guardrail_checks",
         {"messages": [{"role": "user", "content": [{"text": "hi"}]}], "checks": {}}, "InvokeGuardrailChecks"),
    ],
)
def test_unserved_operations_are_501s_boto3_raises(stack, service, call, kwargs, name):
    gateway, _ = stack
    api = client(gateway, service)
    with pytest.raises(api.exceptions.ClientError) as err:
        getattr(api, call)(**kwargs)
    response = err.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert name in response["Error"]["Message"]


def test_zero_bad_signatures_at_the_simulators(stack):
    _, sims = stack
    assert [harness.sim_stats(s.url)["bad_signatures"] for s in sims.values()] == [0, 0, 0]
