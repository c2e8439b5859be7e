#!/usr/bin/env bash
# Benchmark of databricks@0 uploadFiles (issue 13, "Done when"): N files totalling MB
# megabytes (default 300 files, 200 MB) to a Unity Catalog volume of the Databricks emulator,
# with LATENCY_MS per request and the Files API's published rate limit (100 requests/s).
#
# The bound: each worker has one request in flight, so P workers make at most P/latency
# requests per second, and the rate limit caps that at RATE: time >= requests / min(P/latency,
# RATE). A full upload sends one PUT per file plus 3 requests (volume check, manifest read and
# write). A re-run of the unchanged tree lists each of the 10 folders once (plus the volume
# check and the manifest read) and reads and hashes every local file; nothing is sent.
#
# Measures, for parallel 5 (the default) and 10 (the Files API's concurrency limit): a full
# upload, a re-run of the unchanged tree, peak memory.
#
# Usage: scripts/bench/upload-files.sh [N_FILES] [TOTAL_MB]
set -euo pipefail

N=${1:-300}
MB=${2:-200}
LATENCY_MS=${LATENCY_MS:-100}
RATE=100
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
(cd "$ROOT" && cargo build --release --quiet -p databricks-command -p databricks-emulator)
BIN="$ROOT/target/release"

# N files of equal size in 10 folders, random content (incompressible, all different).
SIZE=$(( MB * 1024 * 1024 / N ))
for i in $(seq 0 $((N - 1))); do
  d="$WORK/src/part-$((i % 10))"
  mkdir -p "$d"
  head -c "$SIZE" /dev/urandom >"$d/file-$i.bin"
done

start_emulator() { # → prints URL
  local out="$WORK/emu.out"
  "$BIN/databricks-emulator" --port 0 --token "$TOKEN" --no-python --volume main.bench.files \
    --latency-ms "$LATENCY_MS" --rate-limit "fs/files=$RATE" >"$out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do
    [ -s "$out" ] && { head -1 "$out"; return; }
    sleep 0.1
  done
  echo "the emulator did not start: $(cat "$out")" >&2; exit 1
}

URL=$(start_emulator)

# Runs uploadFiles as the agent would; prints "seconds peak_kib uploaded".
run_upload() { # target parallel
  local target=$1 parallel=$2 log="$WORK/upload.log" tm="$WORK/time.txt"
  mkdir -p "$WORK/agent-temp"
  env -i PATH="$PATH" HOME="$WORK" AGENT_TEMPDIRECTORY="$WORK/agent-temp" \
    SYSTEM_DEFAULTWORKINGDIRECTORY="$WORK" \
    DATABRICKS_HOST="$URL" SECRET_DATABRICKS_TOKEN="$TOKEN" \
    INPUT_COMMAND=uploadFiles INPUT_SOURCEPATH="$WORK/src" INPUT_TARGETPATH="$target" \
    INPUT_PARALLEL="$parallel" \
    /usr/bin/time -v -o "$tm" "$BIN/databricks" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  local secs kib uploaded
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$tm")
  kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tm")
  uploaded=$(grep -o 'variable=uploadedFiles;[^]]*]\S*' "$log" | sed 's/.*]//')
  echo "$secs $kib $uploaded"
}

bound() { # requests parallel → seconds
  awk -v r="$1" -v p="$2" -v l="$LATENCY_MS" -v rate="$RATE" \
    'BEGIN {t = p * 1000 / l; if (t > rate) t = rate; printf "%.2f", r / t}'
}

echo
echo "$N files, $((SIZE * N / 1024 / 1024)) MiB, latency ${LATENCY_MS} ms, fs/files limit ${RATE}/s"
echo
echo "| parallel | full upload | bound | ratio | re-run, unchanged | re-run / full | peak RSS (full / re-run) |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for P in 5 10; do
  read -r FULL_S FULL_KIB FULL_N < <(run_upload "/Volumes/main/bench/files/p$P" "$P")
  read -r RE_S RE_KIB RE_N < <(run_upload "/Volumes/main/bench/files/p$P" "$P")
  [ "$FULL_N" = "$N" ] || { echo "full upload sent $FULL_N files, not $N" >&2; exit 1; }
  [ "$RE_N" = 0 ] || { echo "the re-run sent $RE_N files" >&2; exit 1; }
  FB=$(bound $((N + 3)) "$P")
  echo "| $P | ${FULL_S} s | ${FB} s | $(awk -v a="$FULL_S" -v b="$FB" 'BEGIN{printf "%.2f", a/b}')x | ${RE_S} s | $(awk -v a="$RE_S" -v b="$FULL_S" 'BEGIN{printf "%.0f", 100*a/b}') % | $((FULL_KIB / 1024)) / $((RE_KIB / 1024)) MiB |"
done
