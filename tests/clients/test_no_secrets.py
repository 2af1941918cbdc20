"""A known secret used as the target's AWS secret key and session token, as a consumer's API key (with
which every request authenticates), and as a key that fails to authenticate, appears in no log line
(JSON, debug level), no metric and no response body over a whole run."""

import os
import tempfile

import harness
import obs_support as o

KEY_ID = "AKIDLEAKCANARY7Q3Z"
SECRET = "s3cr3t-LEAK-CANARY-wJalrXUtnFEMI-K7MDENG"
TOKEN = "t0ken-LEAK-CANARY-FwoGZXIvYXdzEJr"
CLIENT_KEY = "sk-client-LEAK-CANARY-9f8e7d6c"
WRONG_KEY = "sk-wrong-LEAK-CANARY-1a2b3c4d"
CONSUMER = "canary-team"
CANARIES = [SECRET, TOKEN, CLIENT_KEY, WRONG_KEY, "LEAK-CANARY"]


def test_secrets_reach_no_log_metric_or_error_body():
    sim = harness.Process(
        ["sim", "--listen", "127.0.0.1:0", "--region", "us-east-1",
         "--key", f"{KEY_ID}:{SECRET}:{TOKEN}"],
        r"listening on (http://\S+)",
    )
    sim.url = sim.match.group(1)
    fd, path = tempfile.mkstemp(suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(o.config([o.target("us-east-1", sim.url, KEY_ID, SECRET, TOKEN)]))
        f.write(f'consumers:\n  - name: {CONSUMER}\n    api_key: "{CLIENT_KEY}"\n')
    os.environ["RUST_LOG"] = "debug"
    try:
        gw = harness.Process(["--log-format", "json", "serve", "--config", path],
                             r"listening on (http://\S+) \(admin (http://[^)\s]+)\)")
    finally:
        del os.environ["RUST_LOG"]
    gw.url, gw.admin = gw.match.group(1), gw.match.group(2)
    bodies = []
    try:
        harness.wait_ready(gw.admin)
        client = {"authorization": f"Bearer {CLIENT_KEY}", "x-api-key": CLIENT_KEY,
                  "x-amz-security-token": TOKEN}
        calls = [
            ("/model/claude/converse", o.CHAT),
            ("/model/claude/converse-stream", o.CHAT),
            ("/v1/chat/completions", {"model": "claude", "messages": [{"role": "user", "content": "hi"}]}),
            ("/v1/chat/completions", {"model": "claude", "stream": True,
                                      "messages": [{"role": "user", "content": "hi"}]}),
            ("/model/no-such-model/converse", o.CHAT),
            ("/v1/chat/completions", b"{not json"),
            ("/model/claude/converse", {"messages": "wrong shape"}),
        ]
        statuses = []
        for path_, body in calls:
            status, headers, data = o.post(gw.url, path_, body, client)
            statuses.append(status)
            bodies.append(data.decode(errors="replace"))
            bodies.append(repr(headers))
        for wrong in ({"authorization": f"Bearer {WRONG_KEY}"}, {"x-api-key": WRONG_KEY}):
            status, headers, data = o.post(gw.url, "/model/claude/converse", o.CHAT, wrong)
            assert status == 401, (status, data)
            bodies.append(data.decode(errors="replace"))
            bodies.append(repr(headers))
        harness.set_faults(sim.url, {"status": 503})
        status, headers, data = o.post(gw.url, "/model/claude/converse", o.CHAT, client)
        statuses.append(status)
        bodies.append(data.decode(errors="replace"))
        assert statuses[:4] == [200, 200, 200, 200], statuses
        assert 503 in statuses or 502 in statuses, statuses
        metrics = o.scrape(gw.admin)
    finally:
        gw.stop()
        sim.stop()
        os.unlink(path)
    logs = "".join(gw.stderr_lines)
    compact = logs.replace(" ", "")
    assert '"message":"request"' in compact, logs[-2000:]
    # The canary key really went through authentication: the request lines name its consumer.
    assert f'"consumer":"{CONSUMER}"' in compact, logs[-2000:]
    for canary in CANARIES:
        assert canary not in logs, f"{canary} leaked into the gateway's log"
        assert canary not in metrics, f"{canary} leaked into /metrics"
        for body in bodies:
            assert canary not in body, f"{canary} leaked into a response: {body[:300]}"
