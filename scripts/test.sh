#!/usr/bin/env bash
# Runs every check and test of the repository on a fresh machine; this is the README's test
# command and what CI (.ci/run) calls. It installs what the tests need: today only the Rust
# toolchain, which the machine has. Later issues add the npm MCP servers, the Python SDKs and
# PostgreSQL here.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --profile ci
else
  cargo test --workspace --locked
fi

step "doc tests"
cargo test --workspace --doc --locked

step "fuzz targets build, and run briefly without instrumentation"
cargo build -p warden-fuzz --locked
target/debug/canonicalize -runs=100000 >/dev/null 2>&1
target/debug/charter_parser -runs=5000 -max_len=4096 >/dev/null 2>&1

step "benchmarks compile"
cargo bench --workspace --no-run --locked

echo
echo "all checks passed"
