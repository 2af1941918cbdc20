#!/usr/bin/env bash
# Runs every test of bedrock-balancer on a fresh machine: installs what is missing, then the Rust
# suites (unit + integration), lint checks, and the client tests (official boto3 / openai, the
# Claude Code CLI).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# System packages a fresh machine may lack, installed in one apt run: python3-venv for the client
# libraries' venv, a real Prometheus (test_prometheus.py evaluates the dashboard's queries), wrk
# (the load benchmark's smoke test) and redis-server (tests/shared_limits.rs starts its own on a
# free port: limits shared by three replicas), curl (tests/cli.rs runs the demo's printed curl
# commands) and Node's npm for the Claude Code CLI.
missing=()
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
log "installing Python client libraries"
.venv/bin/pip install -q --disable-pip-version-check -r tests/clients/requirements.txt
# The Claude Code CLI for tests/clients/test_claude_code.py, into a git-ignored folder. The package
# installs a native binary (its `engines` asks for a newer Node than the machine's 20, but only its
# install script runs on Node).
if [ ! -x tests/.claude-code/node_modules/.bin/claude ]; then
  log "installing the Claude Code CLI"
  npm install --prefix tests/.claude-code --no-audit --no-fund @anthropic-ai/claude-code
fi

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
