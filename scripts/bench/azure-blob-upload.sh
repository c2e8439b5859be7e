#!/usr/bin/env bash
# Benchmark of azureblob upload (issue 14, "Done when"): 1,000 files / 500 MB in nested folders
# uploaded to Azurite (loopback, the emulator's disk store in a temporary folder), against the
# official Python SDK (PyPI azure-storage-blob) in the same run: its documented `upload_blob`
# loop, one file after another, and the same loop on 8 threads (our default concurrency).
#
# Measures: the full upload, an unchanged re-upload (target: at most 5 % of the full upload's
# time; skipped by size and modification time), a re-upload after touching every file (new
# times, same content: every file is hashed and compared with Content-MD5, as after a fresh
# checkout), and peak RSS (GNU time) of our task; wall time of each Python variant.
#
# Usage: scripts/bench/azure-blob-upload.sh [N_FILES] [TOTAL_MB]
# Needs: cargo, node with `npm ci` done at the top (Azurite), python3 (a venv is made in a
# temporary folder for azure-storage-blob), GNU time.
set -euo pipefail

N=${1:-1000}
TOTAL_MB=${2:-500}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
AZURITE="$ROOT/node_modules/.bin/azurite-blob"
[ -x "$AZURITE" ] || { echo "Azurite is missing: run npm ci at the top" >&2; exit 1; }

echo "building the release binary (no TLS inside, as packaged)…" >&2
(cd "$ROOT" && cargo build --release --quiet --no-default-features -p azure-blob)
BIN="$ROOT/target/release/azure-blob"

echo "making $N files, $TOTAL_MB MB in all…" >&2
python3 - "$WORK/src" "$N" "$TOTAL_MB" <<'PY'
import os, sys
root, n, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) * 1024 * 1024
# Sizes from 4 KiB to ~2 MiB, repeating, scaled to the total; 10 folders x 10 subfolders.
weights = [1 + (i * 37 % 200) for i in range(n)]
scale = total / sum(weights)
for i, w in enumerate(weights):
    d = os.path.join(root, f"part={i % 10}", f"day={i // 10 % 10}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"file-{i:05}.csv"), "wb") as f:
        f.write(os.urandom(max(1, int(w * scale))))
PY
du -sh "$WORK/src" >&2

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/azurite"
"$AZURITE" --blobHost 127.0.0.1 --blobPort "$PORT" --location "$WORK/azurite" \
  --skipApiVersionCheck --loose --silent --disableTelemetry >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.2; done
ACCOUNT=devstoreaccount1
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
CS="DefaultEndpointsProtocol=http;AccountName=$ACCOUNT;AccountKey=$KEY;BlobEndpoint=http://127.0.0.1:$PORT/$ACCOUNT;"

task() { # label container
  env -i PATH="$PATH" TF_BUILD=True AGENT_TEMPDIRECTORY="$WORK" SYSTEM_DEFAULTWORKINGDIRECTORY="$WORK" \
    INPUT_COMMAND=upload INPUT_AUTHENTICATIONTYPE=connectionString INPUT_CONNECTIONSTRING="$CS" \
    INPUT_CONTAINER="$2" INPUT_CREATECONTAINER=true INPUT_PREFIX=raw INPUT_SOURCEPATH="$WORK/src" \
    /usr/bin/time -v "$BIN" >"$WORK/$1.out" 2>"$WORK/$1.time"
  local wall rss
  wall=$(grep 'Elapsed (wall clock)' "$WORK/$1.time" | awk '{print $NF}')
  rss=$(grep 'Maximum resident' "$WORK/$1.time" | awk '{print $NF}')
  grep -E '^Uploaded ' "$WORK/$1.out" >&2
  echo "| azureblob, $1 | $wall | $((rss / 1024)) MiB |"
}

echo "| run | wall time (m:ss) | peak RSS |"
echo "| --- | --- | --- |"
task "full upload" bench
task "unchanged re-upload" bench
find "$WORK/src" -type f -exec touch {} +
task "re-upload after touching every file" bench

python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet --disable-pip-version-check azure-storage-blob==12.31.1
cat >"$WORK/up.py" <<'PY'
import os, sys, time
from concurrent.futures import ThreadPoolExecutor
from azure.storage.blob import BlobServiceClient
cs, src, container, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
service = BlobServiceClient.from_connection_string(cs)
client = service.get_container_client(container)
client.create_container()
files = [os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs]
def up(path):
    name = "raw/" + os.path.relpath(path, src).replace(os.sep, "/")
    with open(path, "rb") as f:
        client.upload_blob(name, f, overwrite=True)
t = time.time()
if threads == 1:
    for p in files:
        up(p)
else:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(up, files))
print(f"{len(files)} files in {time.time() - t:.1f} s", file=sys.stderr)
PY
py() { # label container threads
  /usr/bin/time -v "$WORK/venv/bin/python" "$WORK/up.py" "$CS" "$WORK/src" "$2" "$3" 2>"$WORK/py.time"
  local wall rss
  wall=$(grep 'Elapsed (wall clock)' "$WORK/py.time" | awk '{print $NF}')
  rss=$(grep 'Maximum resident' "$WORK/py.time" | awk '{print $NF}')
  echo "| Python azure-storage-blob, $1 | $wall | $((rss / 1024)) MiB |"
}
py "upload_blob loop" pyseq 1
py "upload_blob on 8 threads" pypar 8
