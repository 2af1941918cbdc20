#!/usr/bin/env bash
# The load benchmark: release build, wrk from Debian, two simulated regions with zero latency, the
# gateway in front, then LiteLLM's proxy in front of the same simulators; writes BENCHMARKS.md.
# `BENCH_SECONDS` sets each phase's length (default 10). LiteLLM lives in its own virtualenv
# (benches/.litellm-venv, git-ignored), installed on the first run.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
if [ ! -x benches/.litellm-venv/bin/litellm ]; then
  python3 -m venv benches/.litellm-venv
  benches/.litellm-venv/bin/pip install -q 'litellm[proxy]'
fi
cargo build --release --locked
exec python3 benches/load.py --litellm "$@"
