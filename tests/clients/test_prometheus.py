"""A real Prometheus scrapes the gateway under simulated traffic (a throttled region, streams, a
route to the Anthropic API); every PromQL expression in dashboards/*.json must then return data,
the by-provider panels a series per provider, and dashboards/prometheus.yml must pass promtool."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import harness
import obs_support as o

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
DASHBOARDS = harness.ROOT / "dashboards"
DEADLINE_SECONDS = 60
# Grafana's template variables, replaced the way Grafana would at a 1 s scrape interval.
VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
ANTHROPIC_KEY = "sk-ant-upstream-0123456789"
# The traffic reaches two providers; a by-provider panel must show each.
PROVIDERS = {"bedrock", "anthropic"}


def dashboard_exprs():
    exprs = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                exprs.append(node["expr"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for path in sorted(DASHBOARDS.glob("*.json")):
        walk(json.loads(path.read_text()))
    return exprs


def substitute(expr):
    for k, v in VARIABLES.items():
        expr = expr.replace(k, v)
    assert "$" not in expr, f"unknown template variable in {expr}"
    return expr


def test_promtool_accepts_the_compose_scrape_config():
    out = subprocess.run([PROMTOOL, "check", "config", str(DASHBOARDS / "prometheus.yml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def query(base, expr):
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def anthropic_route(url):
    """A second route, to the (simulated) Anthropic API."""
    return f"""
  - name: claude-api
    targets:
      - model:
          provider: anthropic
          name: claude-sonnet-4-5
          options: {{ upstream_url: "{url}", input_cost: 3.0, output_cost: 15.0 }}
        auth: {{ header_name: x-api-key, header_value: "{ANTHROPIC_KEY}" }}
"""


def shows_data(expr, result):
    """Whether a query's result is what its panel needs: any series, and for a by-provider panel
    a series for each provider the traffic reached."""
    if not result:
        return False
    if "by (provider" not in expr:
        return True
    return {r["metric"].get("provider") for r in result} >= PROVIDERS


def traffic(gateway_url, stop):
    """Converse (one Claude Code session among it), streams, Messages to the Anthropic API and an
    unknown model, until told to stop."""
    chat = {"model": "claude", "messages": [{"role": "user", "content": "Tell me something"}]}
    messages = {"model": "claude-api", "max_tokens": 50,
                "messages": [{"role": "user", "content": "Tell me something"}]}
    while not stop.is_set():
        o.post(gateway_url, "/model/claude/converse", o.CHAT)
        o.post(gateway_url, "/model/claude/converse", o.CHAT, {"x-claude-code-session-id": "s-1"})
        o.post(gateway_url, "/model/claude/converse-stream", o.CHAT)
        o.post(gateway_url, "/v1/chat/completions", {**chat, "stream": True})
        o.post(gateway_url, "/v1/chat/completions", chat)
        o.post(gateway_url, "/v1/messages", messages)
        o.post(gateway_url, "/v1/messages", {**messages, "stream": True})
        o.post(gateway_url, "/model/not-configured/converse", o.CHAT)
        stop.wait(0.05)


def test_every_dashboard_query_returns_data():
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    assert sum("by (provider" in e for e in exprs) >= 2, "requests and tokens by provider"
    regions = ("us-east-1", "us-west-2", "eu-west-1")
    sims = [harness.start_sim(r) for r in regions]
    api = harness.start_sim("us-east-1", "--provider", "anthropic", "--api-key", ANTHROPIC_KEY)
    # us-east-1 throttles every second request: upstream 429s, cooldowns and failovers.
    harness.set_faults(sims[0].url, {"status": 429, "fail_every_nth": 2, "retry_after": 1})
    gw = prom = None
    stop = threading.Event()
    tmp = tempfile.mkdtemp(prefix="prom-")
    try:
        # eu-west-1 has a quota (generous: it must not refuse), so its remaining-quota gauges exist.
        limits = {"eu-west-1": "{ rpm: 100000, tpm: 100000000 }"}
        gw = harness.start_gateway(o.config(
            [o.target(r, s.url, limits=limits.get(r)) for r, s in zip(regions, sims)])
            + anthropic_route(api.url))
        admin = urllib.parse.urlsplit(gw.admin)
        config = pathlib.Path(tmp, "prometheus.yml")
        config.write_text(
            "global: { scrape_interval: 1s, evaluation_interval: 1s }\n"
            "scrape_configs:\n"
            "  - job_name: bedrock-balancer\n"
            f"    static_configs: [{{ targets: ['{admin.hostname}:{admin.port}'] }}]\n"
        )
        port = o.free_port()
        prom = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        base = f"http://127.0.0.1:{port}"
        worker = threading.Thread(target=traffic, args=(gw.url, stop), daemon=True)
        worker.start()

        deadline = time.monotonic() + DEADLINE_SECONDS
        pending = {e: substitute(e) for e in exprs}
        while pending and time.monotonic() < deadline:
            for original, expr in list(pending.items()):
                try:
                    if shows_data(expr, query(base, expr)):
                        del pending[original]
                except OSError:
                    break  # Prometheus still starting
            time.sleep(1)
        assert not pending, "no data (or not every provider) for:\n" + "\n".join(pending)
    finally:
        stop.set()
        if prom:
            prom.terminate()
            try:
                prom.wait(15)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait(5)
        if gw:
            gw.stop()
        for s in (*sims, api):
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
