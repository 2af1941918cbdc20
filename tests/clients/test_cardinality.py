"""10,000 requests with random model names and random credentials must not grow /metrics beyond
a bound computed from the config: label values only ever come from config or small fixed sets."""

import concurrent.futures
import http.client
import json
import secrets
import urllib.parse

import harness
import obs_support as o

REQUESTS = 10_000
THREADS = 4
# Histogram series per label set: the buckets (at most 17 here) plus +Inf, _sum and _count.
HISTOGRAM_SERIES = 20
# Distinct status codes a run can produce, generously (200, 4xx, 5xx the gateway or sims return).
CODES = 12
KINDS = {"throttling", "unavailable", "timeout", "connect", "validation", "access_denied",
         "model_error", "stream_error", "other"}


def hammer(base, n):
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    for i in range(n):
        model = "m-" + secrets.token_hex(8)
        key = "sk-" + secrets.token_hex(16)
        headers = {"content-type": "application/json", "authorization": f"Bearer {key}",
                   "x-api-key": key, "x-amz-security-token": secrets.token_hex(12)}
        if i % 3 == 0:
            path, body = "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "x"}]}
        elif i % 50 == 1:
            path, body = "/model/claude/converse", o.CHAT  # some real traffic too
        else:
            path, body = f"/model/{model}/converse", o.CHAT
        conn.request("POST", path, json.dumps(body), headers)
        r = conn.getresponse()
        r.read()
        if r.getheader("connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.close()


def test_random_models_and_keys_do_not_create_series():
    sims = [harness.start_sim(r) for r in ("us-east-1", "us-west-2")]
    gw = None
    try:
        targets = [o.target(s_region, s.url) for s_region, s in zip(("us-east-1", "us-west-2"), sims)]
        gw = harness.start_gateway(o.config(targets))
        per_thread = REQUESTS // THREADS
        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda _: hammer(gw.url, per_thread), range(THREADS)))
        text = o.scrape(gw.admin)
    finally:
        if gw:
            gw.stop()
        for s in sims:
            s.stop()

    routes, labels = {"claude"}, {f"us-east-1/{o.MODEL}", f"us-west-2/{o.MODEL}"}
    r, t = len(routes) + 1, len(labels) + 1  # + other / none
    allowed = {
        "route": routes | {"other"}, "target": labels | {"none"}, "provider": {"bedrock", "none"},
        "from": labels, "to": labels,
        "region": {"us-east-1", "us-west-2"}, "model": {o.MODEL}, "kind": KINDS,
        "token_type": {"prompt", "completion", "cache_read", "cache_write"}, "scope": {"consumer", "target", "all_targets"},
        "result": {"success", "failure"}, "limit": {"rpm", "tpm"},
        "reason": {"missing", "invalid_key", "unknown_access_key", "bad_signature", "expired", "malformed"},
    }
    all_series = o.series(text)
    for name, lbls in all_series:
        for k, v in lbls.items():
            if k == "le":
                continue
            if k == "code":
                assert v.isdigit() and len(v) == 3, (name, lbls)
                continue
            assert v in allowed[k], f"{name}: label {k}={v!r} is not from config"
    n_targets = len(labels)
    bound = (
        r * t * CODES                       # requests_total
        + r * HISTOGRAM_SERIES              # request_duration_seconds
        + 3 * n_targets * HISTOGRAM_SERIES  # upstream, ttft, per-token histograms
        + HISTOGRAM_SERIES                  # overhead_seconds
        + 4 * n_targets + n_targets         # tokens_total, cost_total
        + n_targets                         # anthropic_betas_dropped_total
        + r + n_targets * n_targets         # retries_total, failovers_total
        + n_targets * len(KINDS)            # upstream_errors_total
        + 3 + 2                             # rate_limited_total, config_reloads_total
        + 6                                 # auth_failures_total
        + 4 * len(routes) * n_targets       # the four target gauges
        + 2 * n_targets                     # limit_remaining
    )
    assert len(all_series) <= bound, f"{len(all_series)} series > bound {bound}"
    assert "m-" not in text and "sk-" not in text
    requests = [l for n, l in all_series if n == "bedrock_balancer_requests_total"]
    assert any(l["route"] == "other" and l["code"] == "404" for l in requests)
    assert any(l["route"] == "claude" and l["code"] == "200" for l in requests)
    counted = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith("bedrock_balancer_requests_total{"))
    assert counted == REQUESTS
