"""Fixtures for testing the simulator with the official AWS SDK for Python.

The simulator binary is started once per session on a free port; its first stdout line says where.
"""

import json
import os
import pathlib
import queue
import subprocess
import threading
import urllib.request

import boto3
import pytest
from botocore.config import Config

REPO = pathlib.Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCESS_KEY_ID = "AKIDEXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
# Enough for a debug build to bind on a loaded machine.
STARTUP_TIMEOUT_SECONDS = 30
ANNOUNCEMENT = "bedrock-sim listening on "


@pytest.fixture(scope="session")
def sim_url():
    binary = os.environ.get(
        "BEDROCK_BALANCER_BIN", str(REPO / "target" / "debug" / "bedrock-balancer")
    )
    proc = subprocess.Popen(
        [binary, "sim", "--listen", "127.0.0.1:0", "--region", REGION],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = queue.Queue()
    threading.Thread(
        target=lambda: lines.put(proc.stdout.readline()), daemon=True
    ).start()
    try:
        line = lines.get(timeout=STARTUP_TIMEOUT_SECONDS)
        assert line.startswith(ANNOUNCEMENT), f"unexpected first line: {line!r}"
        yield line[len(ANNOUNCEMENT) :].strip()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def control(sim_url, method, path, body=None):
    """Calls a /_sim control endpoint and returns its JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        sim_url + path,
        data=data,
        method=method,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def sim(sim_url):
    """The simulator's URL, with faults and stats reset before and after each test."""
    for path in ("/_sim/faults", "/_sim/stats"):
        control(sim_url, "DELETE", path)
    yield sim_url
    control(sim_url, "DELETE", "/_sim/faults")


def make_client(sim_url, secret=SECRET_ACCESS_KEY):
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=sim_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=secret,
        # One attempt in all, so an injected error reaches the test instead of being retried away.
        # (botocore reads `max_attempts` here as retries after the first try, so it cannot be 1.)
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture
def client(sim):
    return make_client(sim)
