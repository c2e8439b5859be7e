# Databricks notebook source
# Doubles its `rows` widget and exits with JSON: Data Factory hands it to later activities as
# activity('Notebook').output.runOutput.

# COMMAND ----------

import json

dbutils.widgets.text("rows", "")
rows = int(dbutils.widgets.get("rows"))
dbutils.notebook.exit(json.dumps({"rows": rows * 2, "by": "notebook"}))
