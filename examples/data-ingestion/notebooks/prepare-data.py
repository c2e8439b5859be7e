# Databricks notebook source
# Data preparation for the data-ingestion pipeline: reads the raw driver data (CSV), bins
# each driver's age and writes the prepared file that model training reads. Standard
# library only, so that it runs on any cluster (and on the local Databricks emulator).
#
# Widgets:
#   data_file_name    the raw CSV to read
#   output_file_name  where to write the prepared CSV

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

dbutils.widgets.text("data_file_name", "")
dbutils.widgets.text("output_file_name", "")
data_file_name = dbutils.widgets.get("data_file_name")
output_file_name = dbutils.widgets.get("output_file_name")
if not data_file_name or not output_file_name:
    raise ValueError("set the widgets data_file_name and output_file_name")

with open(data_file_name, newline="") as source:
    reader = csv.DictReader(source)
    fields = list(reader.fieldnames or []) + ["age_bin"]
    rows = prepare(reader)

with open(output_file_name, "w", newline="") as target:
    writer = csv.DictWriter(target, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)

print(f"prepared {len(rows)} rows from {data_file_name} into {output_file_name}")

# COMMAND ----------

dbutils.notebook.exit(str(len(rows)))
