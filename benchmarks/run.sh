#!/usr/bin/env bash
# Reproduce the README's benchmark: train and export every model, then bench-model
# them all on every backend. Writes benchmarks/results.json and docs/bench.png.
# Take figures on an otherwise idle machine: check `uptime` first.
#   usage: benchmarks/run.sh [ARTIFACTS_DIR] [extra bench-model options...]
set -euo pipefail
cd "$(dirname "$0")/.."
artifacts=${1:-/tmp/bench-art}
shift || true
[ -f "$artifacts/convnet/manifest.json" ] || {
  train-model all --artifacts "$artifacts"
  export-model all --format all --artifacts "$artifacts"
}
uptime
bench-model all --artifacts "$artifacts" --json benchmarks/results.json --plot docs/bench.png "$@"
