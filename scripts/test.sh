#!/usr/bin/env bash
# The test command from the README: every unit, integration and e2e test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo nextest run --workspace --no-fail-fast "$@"
