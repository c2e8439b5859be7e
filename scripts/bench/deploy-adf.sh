#!/usr/bin/env bash
# Benchmark of deployadf (issue 15, "Done when"): a generated factory of 300 objects (20 linked
# services, 80 datasets, 200 pipelines in ExecutePipeline chains of 10) deployed to the Azure
# emulator with 100 ms latency, then redeployed unchanged. Prints the full deploy time against
# the bound set by dependency depth x latency, the redeploy's share of it and peak RSS; then the
# same with Azure Resource Manager's write throttling emulated (bucket of 200, 10/s), against
# the bound that sets.
#
# Usage: scripts/bench/deploy-adf.sh [--release]   (env: DEPLOYADF_CONCURRENCY, default 8)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
cd "$ROOT"
cargo test ${1:-} -p deploy-adf --test bench -- --ignored --nocapture --test-threads 1 2>&1 \
  | grep -E 'deployadf benchmark|^(full deploy|depth bound|throttle bound|unchanged redeploy)|FAILED|panicked'
