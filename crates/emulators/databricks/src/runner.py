"""Runs one Databricks notebook (or Python file) for the Databricks emulator.

Usage: runner.py MODE PROGRAM PARAMS_JSON OUT_JSON [ARG...]
MODE is "notebook" (cells split on the COMMAND separator, run in one namespace,
with a small dbutils) or "file" (a spark_python_task: the file runs as __main__
with ARG... in sys.argv). The outcome goes to OUT_JSON as
{"result": str|null, "error": str|null, "error_trace": str|null}.

Stdin holds the workspace's context as JSON: {"secrets": {scope: {key: base64}},
"blob_endpoints": {account: url}} (a pipe, so that secret values never touch a file).
Secret values the program reads are shown as [REDACTED] in its output, exit value and
error, as Databricks does.
"""

import base64
import json
import linecache
import sys
import traceback
from collections import namedtuple

import _emulator_storage
from _emulator_storage import FsUtils, SparkSession

REDACTED = "[REDACTED]"

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


class IllegalArgumentException(ValueError):
    """What dbutils.secrets raises for a scope or key that does not exist."""


SecretScope = namedtuple("SecretScope", "name")
SecretMetadata = namedtuple("SecretMetadata", "key")


class SecretsUtils:
    """dbutils.secrets over the workspace's secret scopes (names case-insensitive)."""

    def __init__(self, scopes, redactor):
        self._scopes = {name.lower(): (name, secrets) for name, secrets in scopes.items()}
        self._redactor = redactor

    def _scope(self, scope):
        found = self._scopes.get(str(scope).lower())
        if found is None:
            raise IllegalArgumentException(f"Secret does not exist with scope: {scope}")
        return found[1]

    def getBytes(self, scope, key):
        secrets = self._scope(scope)
        if key not in secrets:
            raise IllegalArgumentException(f"Secret does not exist with scope: {scope} and key: {key}")
        value = base64.b64decode(secrets[key])
        self._redactor.add(value.decode("utf-8", errors="replace"))
        return value

    def get(self, scope, key):
        return self.getBytes(scope, key).decode("utf-8")

    def list(self, scope):
        return [SecretMetadata(key) for key in sorted(self._scope(scope))]

    def listScopes(self):
        return [SecretScope(name) for name, _ in sorted(self._scopes.values())]


class Redactor:
    """Replaces the secret values a program read by [REDACTED] in text it shows."""

    def __init__(self):
        self._values = set()

    def add(self, value):
        if value:
            self._values.add(value)

    def __call__(self, text):
        if text is None:
            return None
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        return text


class RedactingStream:
    """A text stream whose writes are redacted (print output of the program)."""

    def __init__(self, stream, redactor):
        self._stream = stream
        self._redactor = redactor

    def write(self, text):
        return self._stream.write(self._redactor(text))

    def __getattr__(self, name):
        return getattr(self._stream, name)


class DBUtils:
    def __init__(self, params, context, spark, redactor):
        self.widgets = Widgets(params)
        self.notebook = NotebookUtils()
        self.secrets = SecretsUtils(context.get("secrets") or {}, redactor)
        self.fs = FsUtils(spark.conf, context.get("blob_endpoints") or {})


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
    """The traceback without the frames of this runner and of dbutils' own modules."""
    internal = {__file__, _emulator_storage.__file__}
    summary = traceback.TracebackException.from_exception(error)
    summary.stack = traceback.StackSummary.from_list([f for f in summary.stack if f.filename not in internal])
    return "".join(summary.format())


def main():
    mode, program_path, params_path, out_path = sys.argv[1:5]
    with open(params_path, encoding="utf-8") as f:
        params = json.load(f)
    with open(program_path, encoding="utf-8") as f:
        source = f.read()
    context_text = sys.stdin.read()
    context = json.loads(context_text) if context_text.strip() else {}
    redactor = Redactor()
    sys.stdout = RedactingStream(sys.stdout, redactor)
    sys.stderr = RedactingStream(sys.stderr, redactor)
    spark = SparkSession()
    dbutils = DBUtils(params, context, spark, redactor)
    namespace = {
        "__name__": "__main__",
        "dbutils": dbutils,
        "spark": spark,
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
    outcome = {name: redactor(value) for name, value in outcome.items()}
    sys.stdout.flush()
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(outcome, f)


if __name__ == "__main__":
    main()
