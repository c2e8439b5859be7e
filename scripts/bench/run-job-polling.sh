#!/usr/bin/env bash
# Benchmark of databricks@0 runJob (issue 13, "Done when"): API calls per minute of waiting.
# A job whose notebook sleeps WAIT_SECONDS runs through the databricks task binary against the
# Databricks emulator; the emulator counts every request by endpoint (GET /emulator/state).
#
# Usage: scripts/bench/run-job-polling.sh [WAIT_SECONDS] [MAX_POLL_INTERVAL_SECONDS]
#        (defaults: 180 and the task's default, 15)
# Request counts do not depend on the build profile, so the debug binaries are used.
set -euo pipefail

WAIT=${1:-180}
MAX_POLL=${2:-15}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
TOKEN=dapi-bench-token-0000000000
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && cargo build --quiet -p databricks-command -p databricks-emulator)
BIN="$ROOT/target/debug"

"$BIN/databricks-emulator" --port 0 --token "$TOKEN" >"$WORK/emu.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$WORK/emu.out" ] && break; sleep 0.1; done
URL=$(head -1 "$WORK/emu.out")

api() { # method path [json]
  curl -sf -X "$1" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "$URL$2"
}
NOTEBOOK=$(printf '# Databricks notebook source\nimport time\ntime.sleep(%s)\ndbutils.notebook.exit("waited")\n' "$WAIT" | base64 -w0)
api POST /api/2.0/workspace/mkdirs '{"path": "/Shared/bench"}' >/dev/null
api POST /api/2.0/workspace/import "{\"path\": \"/Shared/bench/wait\", \"format\": \"SOURCE\", \"language\": \"PYTHON\", \"overwrite\": true, \"content\": \"$NOTEBOOK\"}" >/dev/null
api POST /api/2.2/jobs/create '{"name": "bench-wait", "tasks": [{"task_key": "main", "existing_cluster_id": "0000-000000-emulator", "notebook_task": {"notebook_path": "/Shared/bench/wait"}}]}' >/dev/null

mkdir -p "$WORK/agent-temp"
start=$(date +%s.%N)
env -i PATH="$PATH" HOME="$WORK" AGENT_TEMPDIRECTORY="$WORK/agent-temp" \
  SYSTEM_DEFAULTWORKINGDIRECTORY="$WORK" SYSTEM_PLANID=bench SYSTEM_JOBID=bench SYSTEM_TASKINSTANCEID=bench \
  DATABRICKS_HOST="$URL" SECRET_DATABRICKS_TOKEN="$TOKEN" \
  INPUT_COMMAND=runJob INPUT_JOB=bench-wait INPUT_MAXPOLLINTERVALSECONDS="$MAX_POLL" \
  "$BIN/databricks" >"$WORK/task.log" 2>&1 || { cat "$WORK/task.log" >&2; exit 1; }
end=$(date +%s.%N)

api GET /emulator/state | python3 -c '
import json, sys
counts = json.load(sys.stdin)["request_counts"]
start, end, wait = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
minutes = (end - start) / 60
polls = counts.get("runs/get", 0)
total = sum(v for k, v in counts.items() if k not in ("import", "mkdirs", "jobs/create"))
print(f"notebook sleeps {wait} s; the task waited {end - start:.1f} s")
print("requests by the task: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k not in ("import", "mkdirs", "jobs/create")))
print(f"runs/get polls: {polls} = {polls / minutes:.1f} per minute; all task requests: {total} = {total / minutes:.1f} per minute")
' "$start" "$end" "$WAIT"
