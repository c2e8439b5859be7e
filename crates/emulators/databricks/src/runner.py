"""Runs one Databricks notebook (or Python file) for the Databricks emulator.

Usage: runner.py MODE PROGRAM PARAMS_JSON OUT_JSON [ARG...]
MODE is "notebook" (cells split on the COMMAND separator, run in one namespace,
with a small dbutils) or "file" (a spark_python_task: the file runs as __main__
with ARG... in sys.argv). The outcome goes to OUT_JSON as
{"result": str|null, "error": str|null, "error_trace": str|null}.
"""

import json
import linecache
import sys
import traceback

SEPARATOR = "# COMMAND ----------"


class NotebookExit(BaseException):
    """Raised by dbutils.notebook.exit to stop the notebook with a value."""

    def __init__(self, value):
        super().__init__(value)
        self.value = value


class InputWidgetNotDefined(Exception):
    """What the real dbutils raises for a widget that is neither defined nor passed."""


class Widgets:
    def __init__(self, params):
        self._params = params
        self._defaults = {}

    def _define(self, name, default_value):
        self._defaults.setdefault(name, "" if default_value is None else str(default_value))

    def text(self, name, defaultValue="", label=None):
        self._define(name, defaultValue)

    def dropdown(self, name, defaultValue, choices=None, label=None):
        self._define(name, defaultValue)

    def combobox(self, name, defaultValue, choices=None, label=None):
        self._define(name, defaultValue)

    def multiselect(self, name, defaultValue, choices=None, label=None):
        self._define(name, defaultValue)

    def get(self, name):
        if name in self._params:
            return self._params[name]
        if name in self._defaults:
            return self._defaults[name]
        raise InputWidgetNotDefined(f"No input widget named {name} is defined")

    def getArgument(self, name, defaultValue=None):
        try:
            return self.get(name)
        except InputWidgetNotDefined:
            if defaultValue is None:
                raise
            return defaultValue

    def getAll(self):
        merged = dict(self._defaults)
        merged.update(self._params)
        return merged

    def remove(self, name):
        self._defaults.pop(name, None)

    def removeAll(self):
        self._defaults.clear()


class NotebookUtils:
    def exit(self, value):
        raise NotebookExit(value)

    def run(self, path, timeout_seconds=0, arguments=None):
        raise NotImplementedError("dbutils.notebook.run is not supported by the Databricks emulator")


class DBUtils:
    def __init__(self, params):
        self.widgets = Widgets(params)
        self.notebook = NotebookUtils()


def split_cells(source):
    cells, current = [], []
    for line in source.splitlines(keepends=True):
        if line.rstrip() == SEPARATOR:
            cells.append("".join(current))
            current = []
        else:
            current.append(line)
    cells.append("".join(current))
    return cells


def run_cells(cells, namespace):
    for index, cell in enumerate(cells, start=1):
        if not cell.strip():
            continue
        name = f"<command-{index}>"
        # Register the source so tracebacks show the failing line, as notebooks do.
        linecache.cache[name] = (len(cell), None, cell.splitlines(keepends=True), name)
        exec(compile(cell, name, "exec"), namespace)


def user_traceback(error):
    """The traceback without this runner's own frames."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))


def main():
    mode, program_path, params_path, out_path = sys.argv[1:5]
    with open(params_path, encoding="utf-8") as f:
        params = json.load(f)
    with open(program_path, encoding="utf-8") as f:
        source = f.read()
    dbutils = DBUtils(params)
    namespace = {
        "__name__": "__main__",
        "dbutils": dbutils,
        "getArgument": dbutils.widgets.getArgument,
        "display": print,
        "displayHTML": print,
    }
    outcome = {"result": None, "error": None, "error_trace": None}
    try:
        if mode == "file":
            sys.argv = [program_path] + sys.argv[5:]
            run_cells([source], namespace)
        else:
            run_cells(split_cells(source), namespace)
    except NotebookExit as done:
        outcome["result"] = "" if done.value is None else str(done.value)
    except BaseException as error:  # the notebook's failure, whatever it is, is the run's
        outcome["error"] = "".join(traceback.format_exception_only(type(error), error)).strip()
        outcome["error_trace"] = user_traceback(error)
    sys.stdout.flush()
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(outcome, f)


if __name__ == "__main__":
    main()
