#!/usr/bin/env bash
# Runs every test of bedrock-balancer on a fresh machine: installs what is missing, then the Rust
# suites (unit + integration), lint checks, and the Python client tests (official boto3 / openai).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# Python client libraries live in a project venv; python3-venv is the only system package needed.
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  log "installing python3-venv"
  apt-get update -qq && apt-get install -y -qq python3-venv
fi
# A real Prometheus evaluates the dashboard's queries in tests/clients/test_prometheus.py.
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  log "installing prometheus"
  apt-get update -qq && apt-get install -y -qq prometheus
fi
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
log "installing Python client libraries"
.venv/bin/pip install -q --disable-pip-version-check -r tests/clients/requirements.txt

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
log "cargo build"
cargo build --locked
log "cargo test"
cargo test --locked
log "python client tests"
BEDROCK_BALANCER_BIN="$PWD/target/debug/bedrock-balancer" \
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/clients
