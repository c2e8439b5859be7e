#!/usr/bin/env bash
# azp-local's own overhead per step: a pipeline of N `bash` steps that do nothing (`true`)
# run through `azp-local run`, against the same N steps as bare `bash --noprofile --norc`
# processes started from a shell loop (what a step costs without azp-local). The difference,
# divided by N, is what azp-local adds per step: writing the script file, building the
# step's environment, reading its output for logging commands, masking, the log and table.
# Prints a Markdown table for BENCHMARKS.md.
#
#   scripts/bench/azp-local-overhead.sh [--steps N] [--runs R] [--debug]
#
#   --steps  steps in the pipeline (default 100)
#   --runs   repetitions of each side; the median is reported (default 5)
#   --debug  measure the debug build instead of a release build
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

steps=100
runs=5
profile=release
while [[ $# -gt 0 ]]; do
  case "$1" in
    --steps) steps="${2:?}"; shift 2 ;;
    --runs) runs="${2:?}"; shift 2 ;;
    --debug) profile=debug; shift ;;
    -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "azp-local-overhead.sh: unknown argument: $1" >&2; exit 1 ;;
  esac
done

if [[ "$profile" == release ]]; then
  cargo build --release --locked -p runner --bin azp-local >&2
else
  cargo build --locked -p runner --bin azp-local >&2
fi
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
azp="$target_dir/$profile/azp-local"
[[ -x "$azp" ]] || { echo "azp-local-overhead.sh: $azp was not built" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
{
  echo "steps:"
  for ((i = 1; i <= steps; i++)); do
    echo "- bash: 'true'"
  done
} >"$work/pipeline.yml"
printf 'true\n' >"$work/step.sh"

now() { date +%s%N; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

azp_times=()
bash_times=()
for ((r = 0; r < runs; r++)); do
  t0=$(now)
  NO_COLOR=1 XDG_STATE_HOME="$work/state" "$azp" run "$work/pipeline.yml" \
    --sources-dir "$work" --work-dir "$work/w" >/dev/null
  t1=$(now)
  for ((i = 1; i <= steps; i++)); do
    bash --noprofile --norc "$work/step.sh"
  done
  t2=$(now)
  azp_times+=($(((t1 - t0) / 1000)))
  bash_times+=($(((t2 - t1) / 1000)))
done
azp_us=$(printf '%s\n' "${azp_times[@]}" | median)
bash_us=$(printf '%s\n' "${bash_times[@]}" | median)
per_step_us=$(((azp_us - bash_us) / steps))

echo "| what ($steps steps, median of $runs, $profile build) | total | per step |"
echo "| --- | ---: | ---: |"
printf '| `azp-local run` of %d `bash: true` steps | %d ms | %d.%02d ms |\n' \
  "$steps" $((azp_us / 1000)) $((azp_us / steps / 1000)) $((azp_us / steps / 10 % 100))
printf '| %d bare `bash --noprofile --norc step.sh` | %d ms | %d.%02d ms |\n' \
  "$steps" $((bash_us / 1000)) $((bash_us / steps / 1000)) $((bash_us / steps / 10 % 100))
printf '| **azp-local'"'"'s own overhead** | %d ms | **%d.%02d ms** |\n' \
  $(((azp_us - bash_us) / 1000)) $((per_step_us / 1000)) $((per_step_us / 10 % 100))
