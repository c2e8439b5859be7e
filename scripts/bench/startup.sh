#!/usr/bin/env bash
# Start-up time of a task, side by side in one run:
#   - our way: `node launcher.js` finding and spawning a native task binary;
#   - our way, first run of a brotli-compressed binary (expansion included);
#   - the usual way: a minimal Node task on azure-pipelines-task-lib
#     (scripts/bench/tasklib-minimal: reads an input, calls setResult);
#   - the native binary alone, and `node -e 0`, as the floors.
# Both tasks read one input and report success. Prints a Markdown table for BENCHMARKS.md.
#
#   scripts/bench/startup.sh [--runs N] [--binary PATH]
#
#   --binary  the task binary to launch (default: task-sdk's minimal-task, built here: a task
#             on the full task-sdk stack, with input `mode=succeed`)
#
# Uses hyperfine (installed from Debian if missing and possible), else a plain loop timer.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

runs=30
binary=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs="${2:?}"; shift 2 ;;
    --binary) binary="${2:?}"; shift 2 ;;
    -h | --help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "startup.sh: unknown argument: $1" >&2; exit 1 ;;
  esac
done

if [[ -z "$binary" ]]; then
  cargo build --profile vsix --locked --no-default-features -p task-sdk --bin minimal-task >&2
  target_dir="$(cargo metadata --format-version 1 --no-deps | node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).target_directory)')"
  binary="$target_dir/vsix/minimal-task"
fi
[[ -x "$binary" ]] || { echo "startup.sh: $binary is not an executable" >&2; exit 1; }

tasklib="$ROOT/scripts/bench/tasklib-minimal"
if [[ ! -d "$tasklib/node_modules/azure-pipelines-task-lib" ]]; then
  (cd "$tasklib" && npm ci --no-audit --no-fund >&2)
fi

# Two task folders laid out as package.sh does: one plain, one with bin/<plat>/<name>.br.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
plat="$(node -p 'process.platform + "-" + process.arch')"
name="$(basename "$binary")"
for kind in plain compressed; do
  mkdir -p "$work/$kind/bin/$plat"
  cp launcher/launcher.js "$work/$kind/"
  printf '{"binary":"%s"}\n' "$name" >"$work/$kind/launcher.json"
done
cp "$binary" "$work/plain/bin/$plat/$name"
node -e '
  const fs = require("fs"), zlib = require("zlib");
  fs.writeFileSync(process.argv[2], zlib.brotliCompressSync(fs.readFileSync(process.argv[1]), { params: {
    [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_LGWIN]: 24 } }));' \
  "$binary" "$work/compressed/bin/$plat/$name.br"

# The inputs each task reads; nothing else from the agent is needed to start.
export INPUT_MODE=succeed INPUT_NAME=world
export AGENT_TEMPDIRECTORY="$work" SYSTEM_DEFAULTWORKINGDIRECTORY="$work"

declare -a names commands
names+=("launcher.js + native binary");      commands+=("node $work/plain/launcher.js")
names+=("launcher.js, brotli first run");    commands+=("node $work/compressed/launcher.js")
names+=("azure-pipelines-task-lib task");    commands+=("node $tasklib/index.js")
names+=("native binary alone");              commands+=("$binary")
names+=("node -e 0");                        commands+=("node -e 0")
# Each run of the compressed case starts from the packaged state.
reset_compressed="rm -f $work/compressed/bin/$plat/$name"

echo "startup.sh: $name ($(wc -c <"$binary" | tr -d ' ') bytes), node $(node --version), $(nproc) cores" >&2

if ! command -v hyperfine >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y hyperfine >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y hyperfine >/dev/null 2>&1; } || true
fi

if command -v hyperfine >/dev/null 2>&1; then
  args=(--warmup 3 --runs "$runs" -N --export-markdown "$work/startup.md")
  for i in "${!commands[@]}"; do
    prepare=true
    [[ $i -eq 1 ]] && prepare="$reset_compressed"
    args+=(--prepare "$prepare" -n "${names[$i]}" "${commands[$i]}")
  done
  hyperfine "${args[@]}" >&2
  cat "$work/startup.md"
else
  echo "startup.sh: hyperfine not available; timing with a plain loop ($runs runs each)" >&2
  echo "| Command | Mean [ms] |"
  echo "|:---|---:|"
  for i in "${!commands[@]}"; do
    total=0
    for ((r = 0; r < runs; r++)); do
      [[ $i -eq 1 ]] && $reset_compressed
      start=$(date +%s%N)
      ${commands[$i]} >/dev/null 2>&1
      total=$((total + $(date +%s%N) - start))
    done
    awk -v n="${names[$i]}" -v t="$total" -v r="$runs" 'BEGIN { printf "| `%s` | %.1f |\n", n, t / r / 1e6 }'
  done
fi
