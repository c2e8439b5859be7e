"""Unit tests of the data-preparation notebook's functions (the CI job runs them).

A Databricks source notebook is a Python file whose cells are separated by
`# COMMAND ----------`; the first code cell defines the functions and reads no widget,
so the tests run that cell alone, without dbutils.
"""

import pathlib
import unittest

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "prepare-data.py"


def load_functions():
    cells = NOTEBOOK.read_text().split("# COMMAND ----------")
    namespace = {}
    exec(compile(cells[1], str(NOTEBOOK), "exec"), namespace)  # the functions cell
    return namespace


class PrepareDataTest(unittest.TestCase):
    def setUp(self):
        self.nb = load_functions()

    def test_age_bins(self):
        age_bin = self.nb["age_bin"]
        self.assertEqual(age_bin("18"), "18-24")
        self.assertEqual(age_bin(" 34 "), "25-34")
        self.assertEqual(age_bin("65"), "65+")
        self.assertEqual(age_bin("17"), "")
        self.assertEqual(age_bin("unknown"), "")

    def test_prepare_keeps_bad_ages_visible_and_drops_rows_without_id(self):
        rows = [{"driver_id": "1", "age": "40"}, {"driver_id": "2", "age": "x"}, {"driver_id": " ", "age": "30"}]
        prepared = self.nb["prepare"](rows)
        self.assertEqual([r["driver_id"] for r in prepared], ["1", "2"])
        self.assertEqual([r["age_bin"] for r in prepared], ["35-49", ""])


if __name__ == "__main__":
    unittest.main()
