#!/usr/bin/env bash
# Installs the legacy Databricks CLI (PyPI databricks-cli 0.18.0, what the old marketplace
# extension ran) into a virtualenv at DIR, for the deploy-notebooks benchmark.
# Usage: legacy-databricks-cli.sh DIR
set -euo pipefail
dir=$1
if [ ! -x "$dir/bin/databricks" ]; then
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet 'databricks-cli==0.18.0'
fi
"$dir/bin/databricks" --version
