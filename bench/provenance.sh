#!/usr/bin/env bash
# Benign and attacked scenarios per example charter (issue 13: argument provenance), through a
# real `warden serve` and the decide API.
#
# For each scenario set under bench/provenance/ (one JSON file per example charter that has
# untrusted labels: at least 10 benign and 10 attacked scenarios each), bench/provenance.py
# runs every scenario in a session of its own, opened with the scenario's task: the reads are
# decided and their content reported as results (so untrusted content is indexed), then the
# scenario's actions are decided. It prints, per charter and per variant of the charter:
#
#   benign run without approval  n/N (%)   every action of the scenario allowed, no approval
#   attacked stopped             n/N (%)   every planted action denied or waiting for a human
#
# Variants: `provenance` (the example as it is), `labels-only` (argument provenance replaced
# by session labels: a restrictive rule's `provenance: {from: [L]}` becomes `labels: {any:
# [L]}`, `in_task` dropped), `none` (neither: the rules that guarded on provenance removed).
# The counts are deterministic: they do not depend on the machine or the build profile.
#
# Usage: bench/provenance.sh [-v] [scenario files…]
#        environment: WARDEN_BIN (default: build and use target/release/warden),
#                     VARIANTS (default provenance,labels-only,none)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${WARDEN_BIN:-}" ]]; then
  cargo build --release -q -p warden
  WARDEN_BIN=${CARGO_TARGET_DIR:-target}/release/warden
fi
PYTHON=${PYTHON:-.venv/bin/python}
[[ -x "$PYTHON" ]] || { echo "bench/provenance.sh needs .venv (scripts/test.sh creates it)" >&2; exit 1; }
exec "$PYTHON" bench/provenance.py --warden "$WARDEN_BIN" --variants "${VARIANTS:-provenance,labels-only,none}" "$@"
