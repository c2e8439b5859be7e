#!/usr/bin/env bash
# Benchmark of deploynotebooks (issue 4, "Done when"): 300 notebooks in nested folders,
# deployed to the Databricks emulator with 100 ms latency and an import rate limit of 30/s.
#
# Measures: a full deploy (target: within 1.15x of the rate-limit bound N/30 s), a redeploy of
# the unchanged tree (target: within 10% of the full deploy's time), peak memory (target:
# under 30 MiB), and the legacy Databricks CLI (`databricks workspace import_dir -o`, PyPI
# databricks-cli 0.18) on the same emulator in the same run. The legacy CLI only talks to
# ports 80/443, so a second emulator listens on port 80 (needs root, or set LEGACY=0).
#
# Usage: scripts/bench/deploy-notebooks.sh [N_NOTEBOOKS]   (env: LEGACY=0 skips the CLI)
set -euo pipefail

N=${1:-300}
LATENCY_MS=100
RATE=30
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
TOKEN=dapi-bench-token-0000000000
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }

echo "building release binaries…" >&2
(cd "$ROOT" && cargo build --release --quiet -p deploy-notebooks -p databricks-emulator)
BIN="$ROOT/target/release"

# N notebooks: 10 top folders × 3 subfolders, the rest spread evenly; mixed languages.
"$ROOT/scripts/bench/deploy-notebooks-tree.sh" "$WORK/src" "$N"

start_emulator() { # port → prints URL
  local port=$1 out="$WORK/emu-$1.out"
  "$BIN/databricks-emulator" --port "$port" --token "$TOKEN" --no-python \
    --latency-ms "$LATENCY_MS" --rate-limit "import=$RATE" >"$out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do
    [ -s "$out" ] && { head -1 "$out"; return; }
    sleep 0.1
  done
  echo "the emulator did not start: $(cat "$out")" >&2; exit 1
}

URL=$(start_emulator 0)

# Runs deploy-notebooks as the agent would; prints "seconds peak_kib uploaded".
run_deploy() { # target
  local target=$1 log="$WORK/deploy.log" tm="$WORK/time.txt"
  mkdir -p "$WORK/agent-temp"
  env -i PATH="$PATH" HOME="$WORK" AGENT_TEMPDIRECTORY="$WORK/agent-temp" \
    SYSTEM_DEFAULTWORKINGDIRECTORY="$WORK" \
    DATABRICKS_HOST="$URL" SECRET_DATABRICKS_TOKEN="$TOKEN" \
    INPUT_NOTEBOOKSFOLDERPATH="$WORK/src" INPUT_WORKSPACEFOLDER="$target" \
    /usr/bin/time -v -o "$tm" "$BIN/deploy-notebooks" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  local secs kib uploaded
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$tm")
  kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tm")
  uploaded=$(grep -o 'variable=uploadedCount;[^]]*]\S*' "$log" | sed 's/.*]//')
  echo "$secs $kib $uploaded"
}

read -r FULL_S FULL_KIB FULL_N < <(run_deploy /Shared/bench)
read -r RE_S RE_KIB RE_N < <(run_deploy /Shared/bench)
BOUND=$(awk -v n="$N" -v r="$RATE" 'BEGIN {printf "%.2f", n/r}')

LEGACY_S="-"
if [ "${LEGACY:-1}" != 0 ]; then
  "$ROOT/scripts/bench/legacy-databricks-cli.sh" "$WORK/venv" >&2
  start_emulator 80 >/dev/null
  start=$(date +%s.%N)
  DATABRICKS_HOST=http://127.0.0.1 DATABRICKS_TOKEN="$TOKEN" \
    "$WORK/venv/bin/databricks" workspace import_dir -o "$WORK/src" /Shared/legacy >"$WORK/legacy.log" 2>&1 \
    || { cat "$WORK/legacy.log" >&2; exit 1; }
  LEGACY_S=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.2f", e-s}')
fi

echo
echo "| measure | value | target |"
echo "| --- | ---: | --- |"
echo "| notebooks | $N | |"
echo "| rate-limit bound (N/$RATE s) | ${BOUND} s | |"
echo "| full deploy | ${FULL_S} s ($(awk -v a="$FULL_S" -v b="$BOUND" 'BEGIN{printf "%.2f", a/b}')x bound), $FULL_N uploaded | ≤ 1.15x |"
echo "| redeploy, unchanged | ${RE_S} s ($(awk -v a="$RE_S" -v b="$FULL_S" 'BEGIN{printf "%.0f", 100*a/b}')% of full), $RE_N uploaded | ≤ 10% |"
echo "| peak RSS (full / redeploy) | $((FULL_KIB / 1024)) MiB / $((RE_KIB / 1024)) MiB | < 30 MiB |"
if [ "$LEGACY_S" != "-" ]; then
  echo "| legacy databricks-cli import_dir -o | ${LEGACY_S} s ($(awk -v a="$LEGACY_S" -v b="$FULL_S" 'BEGIN{printf "%.1f", a/b}')x ours) | |"
fi
