"""Shared by the metrics tests: a gateway over simulated regions with costs set, traffic, scraping."""

import http.client
import json
import re
import socket
import urllib.parse
import urllib.request

import harness

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
CHAT = {"messages": [{"role": "user", "content": [{"text": "Hello there"}]}]}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def target(region, url, key_id=harness.KEY_ID, secret=harness.SECRET, token=None, limits=None):
    token_line = f', aws_session_token: "{token}"' if token else ""
    limits_line = f"\n        limits: {limits}" if limits else ""
    return f"""
      - model:
          provider: bedrock
          name: "{MODEL}"
          options:
            bedrock: {{ aws_region: {region} }}
            upstream_url: {url}
            input_cost: 3.0
            output_cost: 15.0
        auth: {{ aws_access_key_id: {key_id}, aws_secret_access_key: "{secret}"{token_line} }}
        weight: 100{limits_line}"""


def config(targets):
    """One chat route over `targets`, failing over on 429/503 so throttles exercise failover."""
    return f"""
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, drain_grace: 0s, shutdown_timeout: 5s }}
routes:
  - name: claude
    route_type: llm/v1/chat
    balancer:
      retries: 2
      failover_criteria: [error, timeout, http_429, http_503, non_idempotent]
    targets:{"".join(targets)}
"""


def post(base, path, body, headers=None, timeout=30):
    """POSTs JSON; returns (status, headers, body bytes) for errors and successes alike."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", path, data, {"content-type": "application/json", **(headers or {})})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def scrape(admin):
    with urllib.request.urlopen(admin + "/metrics", timeout=10) as r:
        return r.read().decode()


SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def series(text):
    """[(name, {label: value})] for every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SERIES.match(line)
        assert m, f"unparsable metrics line: {line!r}"
        out.append((m.group(1), dict(LABEL.findall(m.group(2) or ""))))
    return out
