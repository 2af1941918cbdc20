"""Starts the real bedrock-balancer binary (gateway or simulator) on free loopback ports."""

import os
import pathlib
import re
import subprocess
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("BEDROCK_BALANCER_BIN", str(ROOT / "target" / "debug" / "bedrock-balancer"))
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
START_TIMEOUT = 30


class Process:
    """A child process whose first stdout line announcing its address was matched."""

    def __init__(self, args, pattern):
        self.proc = subprocess.Popen(
            [BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.stderr_lines = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.match = self._wait_for(re.compile(pattern))

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def _wait_for(self, pattern):
        found = {}

        def read():
            for line in self.proc.stdout:
                m = pattern.search(line)
                if m:
                    found["m"] = m
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        if "m" not in found:
            self.stop()
            raise RuntimeError(f"{BIN} did not start: {''.join(self.stderr_lines)[-2000:]}")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        return found["m"]

    def stop(self, sig=None):
        if self.proc.poll() is None:
            self.proc.terminate() if sig is None else self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_sim(region, *flags):
    """A simulator; `flags` are more `sim` options, e.g. `--provider openai --api-key KEY`."""
    p = Process(
        ["sim", "--listen", "127.0.0.1:0", "--region", region, *flags], r"listening on (http://\S+)"
    )
    p.url = p.match.group(1)
    return p


def target_yaml(model, region, url, weight=100):
    return f"""
      - model:
          provider: bedrock
          name: "{model}"
          options:
            bedrock: {{ aws_region: {region} }}
            upstream_url: {url}
        auth: {{ aws_access_key_id: {KEY_ID}, aws_secret_access_key: "{SECRET}" }}
        weight: {weight}"""


def anthropic_target(url, model, key, priority=None):
    """A target on the (simulated) Anthropic API, sending `key` as its `x-api-key`."""
    tier = f"\n        priority: {priority}" if priority is not None else ""
    return f"""
      - model:
          provider: anthropic
          name: {model}
          options: {{ upstream_url: "{url}" }}
        auth: {{ header_name: x-api-key, header_value: "{key}" }}{tier}"""


def openai_target(url, model, key):
    """A target on a (simulated) OpenAI-compatible server, sending `key` as a Bearer token."""
    return f"""
      - model:
          provider: openai
          name: {model}
          options: {{ upstream_url: "{url}" }}
        auth: {{ header_name: Authorization, header_value: "Bearer {key}" }}"""


def start_gateway(config_text):
    """Writes the config to a temp file and runs `serve` on it."""
    fd, path = tempfile.mkstemp(suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(config_text)
    p = Process(
        ["--log-format", "text", "serve", "--config", path],
        r"listening on (http://\S+) \(admin (http://[^)\s]+)\)",
    )
    p.url, p.admin = p.match.group(1), p.match.group(2)
    p.config_path = path
    wait_ready(p.admin)
    return p


def wait_ready(admin_url):
    import urllib.request

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(admin_url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError("gateway never became ready")


def wait_for(what, check, limit=10):
    """Polls `check` until it holds; a stream's metrics are recorded when it ends, which may be
    just after the client read its last byte."""
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def sim_stats(sim_url):
    import json
    import urllib.request

    with urllib.request.urlopen(sim_url + "/_sim/stats", timeout=5) as r:
        return json.load(r)


def set_faults(sim_url, faults):
    import json
    import urllib.request

    req = urllib.request.Request(
        sim_url + "/_sim/faults",
        data=json.dumps(faults).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status


def region_target_yaml(region, url, bedrock_extra=""):
    """A target of a `bedrock/guardrail` or `bedrock/agent` route: a region, no model `name`."""
    extra = f", {bedrock_extra}" if bedrock_extra else ""
    return f"""
      - model:
          provider: bedrock
          options:
            bedrock: {{ aws_region: {region}{extra} }}
            upstream_url: {url}
        auth: {{ aws_access_key_id: {KEY_ID}, aws_secret_access_key: "{SECRET}" }}"""
