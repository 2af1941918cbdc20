#!/usr/bin/env bash
# The load benchmark: release build, wrk from Debian, two simulated regions with zero latency, the
# gateway in front; writes BENCHMARKS.md. `BENCH_SECONDS` sets each phase's length (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --locked
exec python3 benches/load.py "$@"
