# Databricks notebook source
# Integration test of the data-ingestion pipeline: checks the prepared (binned) data file
# and raises when it is missing, empty or holds rows without a valid age bin, which fails
# the notebook run and so the pipeline's "Wait until the testing is done" step.
#
# Widgets:
#   bin_file_name  the prepared CSV to check: wasbs://<container>@<account>.blob.core.windows.net/<path>
#                  (or a file:/ path)
#   secret_scope   the secret scope whose `storage-key` is the storage account's key

# COMMAND ----------

import csv
import os
import tempfile

VALID_BINS = {"18-24", "25-34", "35-49", "50-64", "65+"}
REQUIRED_COLUMNS = {"driver_id", "age", "age_bin", "target"}

dbutils.widgets.text("bin_file_name", "")
dbutils.widgets.text("secret_scope", "devops-ds")
bin_file_name = dbutils.widgets.get("bin_file_name")
if not bin_file_name:
    raise ValueError("set the widget bin_file_name")
if bin_file_name.startswith("wasbs://"):
    account = bin_file_name.split("@", 1)[1].split(".", 1)[0]
    spark.conf.set(f"fs.azure.account.key.{account}.blob.core.windows.net",
                   dbutils.secrets.get(dbutils.widgets.get("secret_scope"), "storage-key"))

local_copy = os.path.join(tempfile.mkdtemp(), "prepared.csv")
try:
    dbutils.fs.cp(bin_file_name, "file:" + local_copy)
except FileNotFoundError as not_found:
    raise FileNotFoundError(f"the prepared data file does not exist: did data preparation run? ({not_found})")

# COMMAND ----------

with open(local_copy, newline="") as f:
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
