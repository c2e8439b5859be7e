# Databricks notebook source
# Run by tests/vsix/azure-pipelines.yml (executenotebook + waitexecution from an unzipped
# .vsix): greets the widget `name` and ends with that greeting as the run's exit value.

# COMMAND ----------

dbutils.widgets.text("name", "")
name = dbutils.widgets.get("name")
if not name:
    raise ValueError("set the widget name")
dbutils.notebook.exit(f"greetings from {name}")
