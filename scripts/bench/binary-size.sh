#!/usr/bin/env bash
# Measures the release binary of every task crate and estimates the five-platform .vsix.
# Prints a Markdown table to paste into BENCHMARKS.md.
#
#   scripts/bench/binary-size.sh [--no-build] [--bin-dir DIR]
#
#   --no-build   measure what is in the target dir (or DIR) without running cargo
#   --bin-dir    measure the binaries in DIR instead of <target dir>/vsix
#
# The binaries are built as scripts/package.sh builds them: cargo profile `vsix` (the release
# settings, in target/vsix), `--no-default-features`, so without TLS inside (the launcher's
# tunnel provides it), one cargo run per task crate. Also measured, as a reference:
# task-sdk's `minimal-task` (inputs, secrets, a result and one HTTP request on task-http's
# client and tokio), with the estimate of a package whose every task weighs that much.
#
# Columns: raw bytes; DEFLATE level 6 (what tfx-cli's zip writer, JSZip, uses: this is what
# a binary costs inside a plain .vsix); DEFLATE level 9 (`gzip -9`, for comparison); brotli
# quality 11 with a 16 MiB window (what `package.sh --compress always` stores).
#
# Estimate of the .vsix with all five platforms (linux-x64, linux-arm64, win32-x64,
# darwin-x64, darwin-arm64): only linux-x64 is measured here, so
#     estimate = 5 x (sum of the linux-x64 binaries, compressed) x 1.15 + 200 KiB
# The 1.15 allows for the other platforms' binaries being larger than linux-x64 (aarch64
# code and Mach-O/PE layouts of the same Rust program usually land within +-15%); the
# 200 KiB covers everything else in the package (a launcher.js, task.json and icon per task
# folder, the page, manifests, zip headers: 184,191 bytes with ten task folders, measured on
# 2026-12-06 as the .vsix size less its binaries). Each task folder carries its own binaries, so
# nothing is shared between tasks. The limit is 26,214,400 bytes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

build=1
bin_dir=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-build) build=0; shift ;;
    --bin-dir) bin_dir="${2:?--bin-dir needs a folder}"; shift 2 ;;
    -h | --help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "binary-size.sh: unknown argument: $1" >&2; exit 1 ;;
  esac
done

metadata="$(mktemp)"
trap 'rm -f "$metadata"' EXIT
cargo metadata --format-version 1 --no-deps >"$metadata"
# "<package> <binary>" for every bin target of crates/tasks/*.
mapfile -t tasks < <(node -e '
  const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  for (const p of m.packages) {
    if (!/[\\/]crates[\\/]tasks[\\/][^\\/]+[\\/]Cargo\.toml$/.test(p.manifest_path)) continue;
    for (const t of p.targets) if (t.kind.includes("bin")) console.log(p.name, t.name);
  }' "$metadata" | sort)
# The reference binary, if the workspace has it.
reference="$(node -e '
  const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const p = m.packages.find((p) => p.name === "task-sdk");
  if (p && p.targets.some((t) => t.name === "minimal-task")) console.log("task-sdk minimal-task");' "$metadata")"
[[ ${#tasks[@]} -gt 0 ]] || { echo "binary-size.sh: no task crates in crates/tasks/" >&2; exit 1; }

if [[ -z "$bin_dir" ]]; then
  bin_dir="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).target_directory)' "$metadata")/vsix"
fi
if [[ $build -eq 1 ]]; then
  # As scripts/package.sh builds them for the .vsix: no TLS inside (the launcher's tunnel),
  # one cargo run per task crate (so that no binary gets another task's features).
  for pkg in $(for line in "${tasks[@]}"; do echo "${line%% *}"; done | sort -u); do
    cargo build --profile vsix --locked --no-default-features -p "$pkg" >&2
  done
  [[ -n "$reference" ]] && cargo build --profile vsix --locked --no-default-features -p task-sdk --bin minimal-task >&2
fi

files=()
for line in "${tasks[@]}"; do files+=("$bin_dir/${line##* }"); done
# The reference goes last; the report treats it apart.
[[ -n "$reference" && -f "$bin_dir/minimal-task" ]] && files+=("$bin_dir/minimal-task")
for f in "${files[@]}"; do [[ -f "$f" ]] || { echo "binary-size.sh: missing $f" >&2; exit 1; }; done

# Brotli sizes from Node's zlib (the same encoder package.sh uses), one per line.
brotli_sizes="$(node -e '
  const fs = require("fs"), zlib = require("zlib");
  for (const f of process.argv.slice(1)) {
    const data = fs.readFileSync(f);
    console.log(zlib.brotliCompressSync(data, { params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
      [zlib.constants.BROTLI_PARAM_LGWIN]: 24,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length } }).length);
  }' "${files[@]}")"

python3 - "$brotli_sizes" "$(rustc -vV | sed -n 's/^host: //p')" "${#tasks[@]}" "${files[@]}" <<'PY'
import os
import sys
import zlib

brotli = [int(x) for x in sys.argv[1].split()]
host, task_count, files = sys.argv[2], int(sys.argv[3]), sys.argv[4:]
LIMIT = 26_214_400
PLATFORMS, ALLOWANCE, OTHER = 5, 1.15, 200 * 1024


def deflated(data, level):
    # Raw DEFLATE, as stored in a zip entry (no zlib header or checksum).
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return len(c.compress(data) + c.flush())


def mib(n):
    return f"{n / 1048576:.2f} MiB"


rows, totals = [], [0, 0, 0, 0]
for path, br in zip(files, brotli):
    data = open(path, "rb").read()
    sizes = [len(data), deflated(data, 6), deflated(data, 9), br]
    rows.append((os.path.basename(path), sizes))
reference = rows[task_count:]
rows = rows[:task_count]
for _, sizes in rows:
    totals = [t + s for t, s in zip(totals, sizes)]

print(f"Release binaries, {host} (profile vsix = profile.release: opt-level z, LTO, strip, panic=abort):\n")
print("| binary | raw | deflate -6 (.vsix) | deflate -9 | brotli q11 |")
print("| --- | ---: | ---: | ---: | ---: |")
for name, s in rows:
    print(f"| {name} | {s[0]:,} | {s[1]:,} ({s[1] / s[0]:.0%}) | {s[2]:,} | {s[3]:,} ({s[3] / s[0]:.0%}) |")
print(f"| **all {len(rows)}** | {totals[0]:,} | {totals[1]:,} | {totals[2]:,} | {totals[3]:,} |")
for name, s in reference:
    print(f"| reference: {name} (task-sdk: inputs, a result, one request) | {s[0]:,} | {s[1]:,} ({s[1] / s[0]:.0%}) | {s[2]:,} | {s[3]:,} ({s[3] / s[0]:.0%}) |")
print()
print(f"Estimated .vsix, {PLATFORMS} platforms = {PLATFORMS} x linux-x64 x {ALLOWANCE} + {OTHER // 1024} KiB "
      f"(limit {LIMIT:,} bytes = 25 MiB):\n")
print("| binaries, stored as | estimated .vsix | of the limit |")
print("| --- | ---: | ---: |")
cases = [("the task binaries", totals)]
for name, s in reference:
    cases.append((f"{len(rows)} tasks as large as {name}", [x * len(rows) for x in s]))
for what, sizes in cases:
    for label, total in (("plain (DEFLATE 6 by tfx)", sizes[1]), ("brotli (`--compress always`)", sizes[3])):
        est = int(PLATFORMS * total * ALLOWANCE + OTHER)
        flag = "" if est <= LIMIT else " **over**"
        print(f"| {what}, {label} | {est:,} ({mib(est)}) | {est / LIMIT:.0%}{flag} |")
PY
