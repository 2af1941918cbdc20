"""Runs the load benchmark for a second per phase against the debug build, so it cannot rot.
The figures themselves are not judged here: this machine is shared and noisy."""

import os
import re
import pathlib
import shutil
import subprocess
import sys

import pytest

import harness

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by tests/run.sh")
def test_load_benchmark_runs(tmp_path):
    report = tmp_path / "BENCHMARKS.md"
    env = dict(os.environ, BENCH_SECONDS="1", BEDROCK_BALANCER_BIN=harness.BIN, BENCH_TTFB_SAMPLES="20",
               BENCH_STREAMS="50", BENCH_STREAM_SECONDS="1", BENCH_LITELLM="0")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benches" / "load.py"), str(report)],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = report.read_text()
    assert "maximum rate" in text and "req/s" in text
    assert "overhead (difference)" in text
    assert "streams complete (200, every event to `[DONE]`, chunked end) | 50 of 50" in text
    # The Anthropic Messages stream row: measured, and every stream answered.
    assert "`/v1/messages` streaming TTFB overhead" in text
    assert re.search(r"`/v1/messages` stream \(Claude passthrough, SSE\) \| \d+ us \(\d+ streams/s, 0 errors\)", text), text
    # The OpenAI-compatible provider row: measured, and every request answered.
    assert "OpenAI passthrough streaming TTFB overhead" in text
    assert re.search(r"to an `openai` target \(passthrough\) \| \d+ us \(\d+ req/s, 0 errors\)", text), text
