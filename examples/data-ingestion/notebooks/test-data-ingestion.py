# Databricks notebook source
# Integration test of the data-ingestion pipeline: checks the prepared (binned) data file
# and raises when it is missing, empty or holds rows without a valid age bin, which fails
# the notebook run and so the pipeline's "Wait until the testing is done" step.
#
# Widgets:
#   bin_file_name  the prepared CSV to check

# COMMAND ----------

import csv
import os

VALID_BINS = {"18-24", "25-34", "35-49", "50-64", "65+"}
REQUIRED_COLUMNS = {"driver_id", "age", "age_bin", "target"}

dbutils.widgets.text("bin_file_name", "")
bin_file_name = dbutils.widgets.get("bin_file_name")
if not bin_file_name:
    raise ValueError("set the widget bin_file_name")
if not os.path.isfile(bin_file_name):
    raise FileNotFoundError(f"the prepared data file {bin_file_name} does not exist: did data preparation run?")

# COMMAND ----------

with open(bin_file_name, newline="") as f:
    reader = csv.DictReader(f)
    missing = REQUIRED_COLUMNS - set(reader.fieldnames or [])
    if missing:
        raise AssertionError(f"{bin_file_name} lacks the columns {sorted(missing)}")
    rows = list(reader)

if not rows:
    raise AssertionError(f"{bin_file_name} holds no rows")

bad = [row["driver_id"] for row in rows if row["age_bin"] not in VALID_BINS]
if bad:
    raise AssertionError(f"{len(bad)} of {len(rows)} rows have no valid age bin (drivers {', '.join(bad)})")

print(f"{bin_file_name}: {len(rows)} rows, all binned")

# COMMAND ----------

dbutils.notebook.exit(f"OK: {len(rows)} rows")
