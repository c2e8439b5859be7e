#!/usr/bin/env bash
# How long azp-local takes to load and expand a templated pipeline: `azp-local expand` and
# `azp-local check` of the largest pipeline of the template corpus (tests/pipelines/templates),
# R times each, median and slowest reported. `check` also builds and checks the model (tasks,
# dependencies, conditions); both include process start-up.
# Prints a Markdown table for BENCHMARKS.md.
#
#   scripts/bench/azp-local-expand.sh [--runs R] [--debug]
#
#   --runs   repetitions of each command (default 20)
#   --debug  measure the debug build instead of a release build
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

runs=20
profile=release
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs="${2:?}"; shift 2 ;;
    --debug) profile=debug; shift ;;
    -h | --help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "azp-local-expand.sh: unknown argument: $1" >&2; exit 1 ;;
  esac
done

if [[ "$profile" == release ]]; then
  cargo build --release --locked -p runner --bin azp-local >&2
else
  cargo build --locked -p runner --bin azp-local >&2
fi
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
azp="$target_dir/$profile/azp-local"
[[ -x "$azp" ]] || { echo "azp-local-expand.sh: $azp was not built" >&2; exit 1; }

corpus=tests/pipelines/templates
# The corpus's template repository, for the pipelines that declare it.
repo_args() {
  if grep -q 'repository: shared' "$1/azure-pipelines.yml"; then
    echo "--repo shared=$corpus/shared-templates"
  fi
}
# The largest pipeline: the most lines once expanded.
largest=""
largest_lines=0
for dir in "$corpus"/*/; do
  name="$(basename "$dir")"
  [[ -f "$dir/azure-pipelines.yml" && "$name" != errors ]] || continue
  lines="$("$azp" expand "$dir/azure-pipelines.yml" --sources-dir "$dir" $(repo_args "$dir") \
    2>/dev/null | wc -l)"
  if (( lines > largest_lines )); then
    largest="$name"
    largest_lines=$lines
  fi
done
[[ -n "$largest" ]] || { echo "azp-local-expand.sh: no corpus pipeline expands" >&2; exit 1; }
dir="$corpus/$largest"
files="$(find "$dir" -name "*.yml" | wc -l)"

# Milliseconds of one run of "$@", output discarded; fails if the command fails.
time_ms() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null 2>&1
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}

measure() {
  local samples=() i
  for ((i = 0; i < runs; i++)); do
    samples+=("$(time_ms "$@")")
  done
  printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%d | %d", a[int((NR+1)/2)], a[NR]}'
}

read -r -a extra <<<"$(repo_args "$dir")"
args=("$dir/azure-pipelines.yml" --sources-dir "$dir" "${extra[@]}")
"$azp" check "${args[@]}" >/dev/null
echo "| pipeline | YAML files | expanded lines | command | median ms | slowest ms |"
echo "| --- | ---: | ---: | --- | ---: | ---: |"
echo "| $largest | $files | $largest_lines | \`azp-local expand\` ($profile) | $(measure "$azp" expand "${args[@]}") |"
echo "| $largest | $files | $largest_lines | \`azp-local check\` ($profile) | $(measure "$azp" check "${args[@]}") |"
echo "| – | – | – | \`azp-local --version\` (start-up only) | $(measure "$azp" --version) |"
