#!/usr/bin/env bash
# Writes N small notebooks in nested folders under DIR (10 top folders × 3 subfolders,
# a third of them one level deeper), mixed Python, SQL and Scala.
# Usage: deploy-notebooks-tree.sh DIR N
set -euo pipefail
dir=$1 n=$2
for i in $(seq 0 $((n - 1))); do
  top=$((i % 10)) sub=$(((i / 10) % 3))
  folder="$dir/area$top/part$sub"
  [ $((i % 3)) = 0 ] && folder="$folder/deep"
  mkdir -p "$folder"
  case $((i % 3)) in
    0) printf '# Databricks notebook source\nprint("notebook %d")\n\n# COMMAND ----------\nx = %d\n' "$i" "$i" >"$folder/nb$i.py" ;;
    1) printf -- '-- Databricks notebook source\nSELECT %d AS n\n' "$i" >"$folder/q$i.sql" ;;
    2) printf '// Databricks notebook source\nval n = %d\n' "$i" >"$folder/s$i.scala" ;;
  esac
done
