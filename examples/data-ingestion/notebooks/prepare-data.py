# Databricks notebook source
# Data preparation for the data-ingestion pipeline (the Data Factory pipeline runs it): reads
# the raw driver data (CSV) from the input blob container, bins each driver's age and writes
# the prepared file that model training reads to the output container. Standard library and
# dbutils only, so that it runs on any cluster (and on the local Databricks emulator).
#
# Widgets:
#   data_file_name    the raw CSV to read: wasbs://<container>@<account>.blob.core.windows.net/<path>
#                     (or a file:/ path)
#   output_file_name  where to write the prepared CSV (same forms)
#   secret_scope      the secret scope whose `storage-key` is the storage account's key

# COMMAND ----------

import csv

AGE_BINS = [(18, 25, "18-24"), (25, 35, "25-34"), (35, 50, "35-49"), (50, 65, "50-64"), (65, 120, "65+")]
UNKNOWN_BIN = ""


def age_bin(raw_age):
    """The age bin label of a raw age value, or UNKNOWN_BIN when it is not a valid age."""
    try:
        age = int(str(raw_age).strip())
    except ValueError:
        return UNKNOWN_BIN
    for low, high, label in AGE_BINS:
        if low <= age < high:
            return label
    return UNKNOWN_BIN


def prepare(rows):
    """Adds `age_bin` to each row and keeps rows with a driver id; bad ages stay visible
    (an empty bin) so that the data test catches them instead of silently dropping them."""
    prepared = []
    for row in rows:
        if not (row.get("driver_id") or "").strip():
            continue
        out = dict(row)
        out["age_bin"] = age_bin(row.get("age", ""))
        prepared.append(out)
    return prepared


# COMMAND ----------

import os
import tempfile

dbutils.widgets.text("data_file_name", "")
dbutils.widgets.text("output_file_name", "")
dbutils.widgets.text("secret_scope", "devops-ds")
data_file_name = dbutils.widgets.get("data_file_name")
output_file_name = dbutils.widgets.get("output_file_name")
secret_scope = dbutils.widgets.get("secret_scope")
if not data_file_name or not output_file_name:
    raise ValueError("set the widgets data_file_name and output_file_name")

# The storage account key from the secret scope, for the wasbs:// paths.
for url in (data_file_name, output_file_name):
    if url.startswith("wasbs://"):
        account = url.split("@", 1)[1].split(".", 1)[0]
        spark.conf.set(f"fs.azure.account.key.{account}.blob.core.windows.net",
                       dbutils.secrets.get(secret_scope, "storage-key"))

# COMMAND ----------

work = tempfile.mkdtemp()
local_input = os.path.join(work, "input.csv")
local_output = os.path.join(work, "prepared.csv")
dbutils.fs.cp(data_file_name, "file:" + local_input)

with open(local_input, newline="") as source:
    reader = csv.DictReader(source)
    fields = list(reader.fieldnames or []) + ["age_bin"]
    rows = prepare(reader)

with open(local_output, "w", newline="") as target:
    writer = csv.DictWriter(target, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)

dbutils.fs.cp("file:" + local_output, output_file_name)
print(f"prepared {len(rows)} rows from {data_file_name} into {output_file_name}")

# COMMAND ----------

dbutils.notebook.exit(str(len(rows)))
