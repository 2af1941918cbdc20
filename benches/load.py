"""Load benchmark of bedrock-balancer against its own simulator (see benches/load.sh).

Phases:
  1. maximum rate: wrk, 32 connections, OpenAI chat through the gateway;
  2. overhead at half that rate: the same rate through the gateway and straight at a simulator,
     latency percentiles of each and their difference, plus the gateway's own `overhead_seconds`;
  3. streaming time to first byte, direct and through the gateway;
  4. CPU seconds per request (from /proc) and RSS idle and after load.
Results go to BENCHMARKS.md (or the path given as the first argument).
"""

import json
import os
import pathlib
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = os.environ.get("BEDROCK_BALANCER_BIN", str(ROOT / "target" / "release" / "bedrock-balancer"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = 32
KEY_ID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
OUT = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "BENCHMARKS.md"


def start(args, pattern):
    proc = subprocess.Popen([BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = re.search(pattern, line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, m
    proc.kill()
    raise RuntimeError(f"{args} did not start")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_BODY")
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
function delay() return delay_ms end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %f %f %f %f\\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, 0,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.mean))
end
"""


def wrk(url, body, seconds=SECONDS, connections=CONNECTIONS, delay_ms=0):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT)
        script = f.name
    env = dict(os.environ, BENCH_BODY=body, BENCH_DELAY_MS=str(delay_ms))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script, url],
        capture_output=True, text=True, env=env, timeout=seconds + 60,
    ).stdout
    m = re.search(r"RESULT (\d+) (\d+) (\d+) \d+ ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)", out)
    requests, errors, duration_us = int(m.group(1)), int(m.group(2)), int(m.group(3))
    return {
        "requests": requests,
        "errors": errors,
        "rps": requests / (duration_us / 1e6),
        "p50_ms": float(m.group(4)) / 1000,
        "p99_ms": float(m.group(5)) / 1000,
        "p999_ms": float(m.group(6)) / 1000,
    }


def ttfb_ms(url, body, n=int(os.environ.get("BENCH_TTFB_SAMPLES", "200"))):
    """Time from sending to the first streamed body byte, per request, sequentially."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    path = "/" + url.split("//")[1].split("/", 1)[1]
    samples = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)))
        request = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}").encode()
        started = time.perf_counter()
        s.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(65536)
        rest = head.split(b"\r\n\r\n", 1)[1]
        while len(rest) < 8:  # chunk size line plus the first bytes of the first frame
            rest += s.recv(65536)
        samples.append((time.perf_counter() - started) * 1000)
        s.close()
    samples.sort()
    return {"p50": samples[len(samples) // 2], "p99": samples[int(len(samples) * 0.99) - 1]}


def overhead_histogram(admin):
    text = urllib.request.urlopen(admin + "/metrics", timeout=5).read().decode()
    buckets = []
    for line in text.splitlines():
        m = re.match(r'bedrock_balancer_overhead_seconds_bucket\{le="([^"]+)"\} (\d+)', line)
        if m:
            le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            buckets.append((le, int(m.group(2))))
    total = buckets[-1][1] if buckets else 0

    def quantile(q):
        for le, count in buckets:
            if count >= q * total:
                return le * 1000
        return float("nan")

    return {"count": total, "p50_ms_le": quantile(0.5), "p99_ms_le": quantile(0.99), "p999_ms_le": quantile(0.999)}


def main():
    sims = [start(["sim", "--listen", "127.0.0.1:0", "--region", r, "--workers", "1"], r"listening on (http://\S+)")
            for r in ("us-east-1", "us-west-2")]
    # The direct baseline: a third simulator that also takes unsigned requests, since wrk cannot
    # sign. It still runs the verifier, so its per-request work equals the others'.
    baseline, bm = start(["sim", "--listen", "127.0.0.1:0", "--region", "us-east-1", "--workers", "1",
                          "--accept-unsigned"], r"listening on (http://\S+)")
    direct = bm.group(1)
    targets = "".join(f"""
      - model: {{ provider: bedrock, name: "{MODEL}", options: {{ bedrock: {{ aws_region: {r} }}, upstream_url: {m.group(1)} }} }}
        auth: {{ aws_access_key_id: {KEY_ID}, aws_secret_access_key: "{SECRET}" }}"""
                      for r, (_, m) in zip(("us-east-1", "us-west-2"), sims))
    config = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    config.write(f"""
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 1, drain_grace: 0s }}
routes:
  - name: claude
    targets:{targets}
""")
    config.close()
    gateway, m = start(["serve", "--config", config.name], r"listening on (http://\S+) \(admin (http://[^)\s]+)\)")
    base, admin = m.group(1), m.group(2)
    time.sleep(1)
    chat = json.dumps({"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "Say hello to the benchmark"}]})
    converse = json.dumps({"messages": [{"role": "user", "content": [{"text": "Say hello to the benchmark"}]}], "inferenceConfig": {"maxTokens": 64}})
    converse_url = f"/model/{MODEL.replace(':', '%3A')}/converse"
    r = {"rss_idle_mb": rss_mb(gateway.pid)}

    # Phase 1: maximum rate through the gateway (and the simulator's own for reference).
    cpu0 = cpu_seconds(gateway.pid)
    r["max"] = wrk(f"{base}/v1/chat/completions", chat)
    cpu1 = cpu_seconds(gateway.pid)
    r["cpu_us_per_request"] = (cpu1 - cpu0) / max(r["max"]["requests"], 1) * 1e6
    r["rss_loaded_mb"] = rss_mb(gateway.pid)
    r["direct_max"] = wrk(f"{direct}{converse_url}", converse)

    # Phase 2: the same rate, half the gateway's maximum, through the gateway and direct.
    delay_ms = max(int(CONNECTIONS * 1000 / (r["max"]["rps"] / 2)), 1)
    r["half"] = wrk(f"{base}/v1/chat/completions", chat, delay_ms=delay_ms)
    r["direct_half"] = wrk(f"{direct}{converse_url}", converse, delay_ms=delay_ms)
    r["overhead"] = overhead_histogram(admin)

    # Phase 3: streaming time to first byte, direct and through the gateway.
    stream_body = json.dumps({"messages": [{"role": "user", "content": [{"text": "stream"}]}]})
    r["ttfb_direct"] = ttfb_ms(f"{direct}/model/{MODEL.replace(':', '%3A')}/converse-stream", stream_body)
    r["ttfb_gateway"] = ttfb_ms(f"{base}/model/claude/converse-stream", stream_body)

    # Phase 4: CPU per streamed request.
    cpu0 = cpu_seconds(gateway.pid)
    r["stream"] = wrk(f"{base}/model/claude/converse-stream", stream_body, seconds=max(SECONDS // 2, 3))
    cpu1 = cpu_seconds(gateway.pid)
    r["cpu_us_per_stream"] = (cpu1 - cpu0) / max(r["stream"]["requests"], 1) * 1e6

    for proc in [gateway, baseline] + [p for p, _ in sims]:
        proc.terminate()
        proc.wait(15)
    write_report(r)
    print(json.dumps(r, indent=2))


def write_report(r):
    cpu = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", cpu)
    OUT.write_text(f"""# Benchmarks

Measured by `benches/load.sh` (load) and `cargo bench --bench hot_path` (micro) on this machine:
{os.cpu_count()} cores, {model.group(1) if model else platform.processor()}, {platform.system()} {platform.release()}.
Gateway: release build, 1 worker, two simulated regions (`bedrock-balancer sim`, 1 worker each, zero
latency) on loopback, round-robin, SigV4 signing, metrics on. Load generator: wrk, 2 threads,
{CONNECTIONS} connections, {SECONDS} s per phase. The simulators share the same 2 cores, so every
figure includes their cost too: the gateway alone is faster than these numbers.

## Load

| figure | value |
|---|---|
| maximum rate, OpenAI chat -> signed Converse, no errors | **{r['max']['rps']:.0f} req/s** ({r['max']['errors']} errors in {r['max']['requests']} requests) |
| latency at max rate p50 / p99 / p99.9 | {r['max']['p50_ms']:.2f} / {r['max']['p99_ms']:.2f} / {r['max']['p999_ms']:.2f} ms |
| the simulator's own maximum (direct, unsigned Converse) | {r['direct_max']['rps']:.0f} req/s |
| rate at "half" (wrk per-connection delay), gateway / direct | {r['half']['rps']:.0f} / {r['direct_half']['rps']:.0f} req/s, {r['half']['errors']} errors |
| latency at half rate through the gateway p50 / p99 / p99.9 | {r['half']['p50_ms']:.2f} / {r['half']['p99_ms']:.2f} / {r['half']['p999_ms']:.2f} ms |
| latency at half rate direct p50 / p99 / p99.9 | {r['direct_half']['p50_ms']:.2f} / {r['direct_half']['p99_ms']:.2f} / {r['direct_half']['p999_ms']:.2f} ms |
| **overhead (difference) p50 / p99 / p99.9** | **{r['half']['p50_ms'] - r['direct_half']['p50_ms']:.2f} / {r['half']['p99_ms'] - r['direct_half']['p99_ms']:.2f} / {r['half']['p999_ms'] - r['direct_half']['p999_ms']:.2f} ms** |
| gateway self time (`overhead_seconds`, bucket upper bounds) p50 / p99 / p99.9 | <= {r['overhead']['p50_ms_le']:.2f} / <= {r['overhead']['p99_ms_le']:.2f} / <= {r['overhead']['p999_ms_le']:.2f} ms over {r['overhead']['count']} requests |
| gateway CPU per non-streaming chat request | {r['cpu_us_per_request']:.0f} us |
| gateway CPU per streamed request (native ConverseStream) | {r['cpu_us_per_stream']:.0f} us ({r['stream']['rps']:.0f} streams/s) |
| streaming time to first byte, direct p50 / p99 | {r['ttfb_direct']['p50']:.2f} / {r['ttfb_direct']['p99']:.2f} ms |
| streaming time to first byte through the gateway p50 / p99 | {r['ttfb_gateway']['p50']:.2f} / {r['ttfb_gateway']['p99']:.2f} ms |
| **streaming TTFB overhead p50 / p99** | **{r['ttfb_gateway']['p50'] - r['ttfb_direct']['p50']:.2f} / {r['ttfb_gateway']['p99'] - r['ttfb_direct']['p99']:.2f} ms** |
| RSS idle / after the max-rate phase | {r['rss_idle_mb']:.1f} / {r['rss_loaded_mb']:.1f} MB |
""")


if __name__ == "__main__":
    main()
