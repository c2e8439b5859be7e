"""Conformance of the Databricks emulator with the official Python SDK (`databricks-sdk`).

Starts the emulator binary (target/debug/databricks-emulator, or $DATABRICKS_EMULATOR_BIN),
reads its base URL from the first stdout line and drives it with `WorkspaceClient`.
Run: python3 -m pytest tests/python
"""

import base64
import io
import os
import subprocess
import time
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import (InvalidParameterValue, InvalidState, NotFound, OperationFailed, PermissionDenied,
                                   ResourceAlreadyExists)
from databricks.sdk.service import compute
from databricks.sdk.service import jobs
from databricks.sdk.service.workspace import ExportFormat, ImportFormat, Language, ObjectType

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "dapi-emulator-test"
CLUSTER = "0000-000000-emulator"
# A terminated cluster whose start fails for quota.
QUOTA_CLUSTER = "0000-000000-quota"


@pytest.fixture(scope="module")
def emulator_url():
    binary = os.environ.get("DATABRICKS_EMULATOR_BIN", str(ROOT / "target" / "debug" / "databricks-emulator"))
    if not Path(binary).exists():
        pytest.fail(f"emulator binary not found at {binary}; run `cargo build -p databricks-emulator` first")
    proc = subprocess.Popen(
        [binary, "--port", "0", "--token", TOKEN, "--run-delay-ms", "100", "--volume", "main.default.landing",
         "--failing-library", "no-such-package", "--library-delay-ms", "100",
         "--failing-cluster", QUOTA_CLUSTER, "--cluster-name", f"{QUOTA_CLUSTER}=quota-cluster",
         "--cluster-start-ms", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), f"unexpected first line {url!r}"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def w(emulator_url):
    return WorkspaceClient(host=emulator_url, token=TOKEN)


def b64(text):
    return base64.b64encode(text.encode()).decode()


NOTEBOOKS = {
    Language.PYTHON: "# Databricks notebook source\nprint('hello')\n",
    Language.SCALA: "// Databricks notebook source\nprintln(\"hello\")\n",
    Language.SQL: "-- Databricks notebook source\nSELECT 1\n",
    Language.R: "# Databricks notebook source\nprint('hello')\n",
}


def test_current_user(w):
    assert w.current_user.me().user_name


def test_import_list_status_export_delete(w):
    base = "/Shared/sdk"
    w.workspace.mkdirs(base)
    for language, source in NOTEBOOKS.items():
        path = f"{base}/nb_{language.value.lower()}"
        w.workspace.import_(path, content=b64(source), format=ImportFormat.SOURCE, language=language)
        info = w.workspace.get_status(path)
        assert info.object_type == ObjectType.NOTEBOOK
        assert info.language == language
        exported = w.workspace.export(path, format=ExportFormat.SOURCE)
        assert base64.b64decode(exported.content).decode() == source
    # A plain workspace file, through the multipart upload the SDK's `upload` uses.
    w.workspace.upload(f"{base}/data.csv", io.BytesIO(b"a,b\n1,2\n"), format=ImportFormat.AUTO)
    assert w.workspace.get_status(f"{base}/data.csv").object_type == ObjectType.FILE
    with w.workspace.download(f"{base}/data.csv") as f:
        assert f.read() == b"a,b\n1,2\n"
    # RAW is a file too.
    w.workspace.import_(f"{base}/raw.txt", content=b64("raw bytes"), format=ImportFormat.RAW)
    assert w.workspace.get_status(f"{base}/raw.txt").object_type == ObjectType.FILE

    names = sorted(o.path for o in w.workspace.list(base))
    assert names == sorted(
        [f"{base}/nb_{lang.value.lower()}" for lang in NOTEBOOKS] + [f"{base}/data.csv", f"{base}/raw.txt"]
    )
    w.workspace.delete(base, recursive=True)
    with pytest.raises(NotFound):
        w.workspace.get_status(base)


def test_auto_strips_notebook_extension(w):
    w.workspace.mkdirs("/Shared/auto")
    w.workspace.import_("/Shared/auto/job.py", content=b64(NOTEBOOKS[Language.PYTHON]), format=ImportFormat.AUTO)
    assert w.workspace.get_status("/Shared/auto/job").object_type == ObjectType.NOTEBOOK
    with pytest.raises(NotFound):
        w.workspace.get_status("/Shared/auto/job.py")


def test_errors_map_to_sdk_exceptions(w):
    with pytest.raises(NotFound):
        w.workspace.get_status("/Shared/does-not-exist")
    with pytest.raises(NotFound):
        w.workspace.export("/Shared/does-not-exist")
    w.workspace.mkdirs("/Shared/errs")
    path = "/Shared/errs/nb"
    w.workspace.import_(path, content=b64("x = 1\n"), format=ImportFormat.SOURCE, language=Language.PYTHON)
    with pytest.raises(ResourceAlreadyExists):
        w.workspace.import_(path, content=b64("x = 2\n"), format=ImportFormat.SOURCE, language=Language.PYTHON)
    w.workspace.import_(
        path, content=b64("x = 2\n"), format=ImportFormat.SOURCE, language=Language.PYTHON, overwrite=True
    )
    # The service answers 400 INVALID_PARAMETER_VALUE "Run … does not exist."; the SDK
    # turns that into ResourceDoesNotExist, a NotFound.
    with pytest.raises(NotFound):
        w.jobs.get_run(987654321)


def test_bad_token_is_permission_denied(emulator_url):
    bad = WorkspaceClient(host=emulator_url, token="not-a-valid-token")
    with pytest.raises(PermissionDenied):
        bad.workspace.get_status("/Shared")


def submit_notebook(w, path, params):
    return w.jobs.submit(
        run_name="sdk-conformance",
        tasks=[
            jobs.SubmitTask(
                task_key="main",
                existing_cluster_id=CLUSTER,
                notebook_task=jobs.NotebookTask(notebook_path=path, base_parameters=params),
            )
        ],
    ).result()


def test_notebook_run_with_parameters_and_exit_value(w):
    w.workspace.mkdirs("/Shared/runs")
    source = (
        "# Databricks notebook source\n"
        'dbutils.widgets.text("greeting", "hello")\n'
        'name = dbutils.widgets.get("name")\n'
        "\n# COMMAND ----------\n\n"
        'dbutils.notebook.exit(dbutils.widgets.get("greeting") + " " + name)\n'
    )
    w.workspace.import_("/Shared/runs/ok", content=b64(source), format=ImportFormat.SOURCE, language=Language.PYTHON)
    run = submit_notebook(w, "/Shared/runs/ok", {"name": "world"})
    assert run.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED
    assert run.state.result_state == jobs.RunResultState.SUCCESS
    assert run.run_page_url
    task_run_id = run.tasks[0].run_id
    output = w.jobs.get_run_output(task_run_id)
    assert output.notebook_output.result == "hello world"
    with pytest.raises(InvalidParameterValue):
        w.jobs.get_run_output(run.run_id)


def test_failing_notebook_reports_error_and_trace(w):
    w.workspace.mkdirs("/Shared/runs")
    source = "# Databricks notebook source\nx = 1\n\n# COMMAND ----------\n\n1 / 0\n"
    w.workspace.import_("/Shared/runs/bad", content=b64(source), format=ImportFormat.SOURCE, language=Language.PYTHON)
    run = submit_notebook(w, "/Shared/runs/bad", {})
    assert run.state.result_state == jobs.RunResultState.FAILED
    output = w.jobs.get_run_output(run.tasks[0].run_id)
    assert output.error == "ZeroDivisionError: division by zero"
    assert "Traceback" in output.error_trace and "1 / 0" in output.error_trace


def test_missing_notebook_fails_the_run(w):
    run = submit_notebook(w, "/Shared/runs/nowhere", {})
    assert run.state.result_state == jobs.RunResultState.FAILED
    assert "/Shared/runs/nowhere" in run.tasks[0].state.state_message


def test_job_run_now_overrides_parameters(w):
    w.workspace.mkdirs("/Shared/runs")
    source = '# Databricks notebook source\ndbutils.notebook.exit(dbutils.widgets.get("p"))\n'
    w.workspace.import_("/Shared/runs/echo", content=b64(source), format=ImportFormat.SOURCE, language=Language.PYTHON)
    job = w.jobs.create(
        name="echo",
        tasks=[
            jobs.Task(
                task_key="echo",
                existing_cluster_id=CLUSTER,
                notebook_task=jobs.NotebookTask(notebook_path="/Shared/runs/echo", base_parameters={"p": "base"}),
            )
        ],
    )
    assert w.jobs.get(job.job_id).settings.name == "echo"
    run = w.jobs.run_now(job.job_id, notebook_params={"p": "override"}).result()
    assert run.state.result_state == jobs.RunResultState.SUCCESS
    assert w.jobs.get_run_output(run.tasks[0].run_id).notebook_output.result == "override"


def test_cancel_run(w):
    w.workspace.mkdirs("/Shared/runs")
    source = "# Databricks notebook source\nimport time\ntime.sleep(30)\n"
    w.workspace.import_("/Shared/runs/slow", content=b64(source), format=ImportFormat.SOURCE, language=Language.PYTHON)
    waiter = w.jobs.submit(
        run_name="slow",
        tasks=[jobs.SubmitTask(task_key="slow", notebook_task=jobs.NotebookTask(notebook_path="/Shared/runs/slow"))],
    )
    time.sleep(0.5)
    run = w.jobs.cancel_run(waiter.run_id).result()
    assert run.state.result_state == jobs.RunResultState.CANCELED


def test_cluster_get_and_start(w):
    cluster = w.clusters.get(CLUSTER)
    assert cluster.state.value == "RUNNING"
    with pytest.raises(Exception) as err:
        w.clusters.start(CLUSTER)
    assert "unexpected state Running" in str(err.value)


def test_sdk_retries_rate_limited_imports():
    """At 5 imports/s the emulator answers 429 + Retry-After; the SDK waits and retries."""
    binary = os.environ.get("DATABRICKS_EMULATOR_BIN", str(ROOT / "target" / "debug" / "databricks-emulator"))
    proc = subprocess.Popen(
        [binary, "--token", TOKEN, "--rate-limit", "import=5"], stdout=subprocess.PIPE, text=True
    )
    try:
        url = proc.stdout.readline().strip()
        client = WorkspaceClient(host=url, token=TOKEN)
        client.workspace.mkdirs("/Shared/limited")
        for i in range(12):
            client.workspace.import_(
                f"/Shared/limited/f{i}", content=b64("x"), format=ImportFormat.RAW, overwrite=True
            )
        assert len(list(client.workspace.list("/Shared/limited"))) == 12
        import json
        import urllib.request

        with urllib.request.urlopen(f"{url}/emulator/state") as response:
            counts = json.load(response)["request_counts"]
        assert counts["import"] > 12, "some imports were throttled and retried"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_secret_scopes_secrets_and_acls(w):
    from databricks.sdk.service.workspace import AclPermission

    w.secrets.create_scope(scope="sdk-scope")
    with pytest.raises(ResourceAlreadyExists):
        w.secrets.create_scope(scope="SDK-scope")
    with pytest.raises(InvalidParameterValue):
        w.secrets.create_scope(scope="no spaces allowed")
    assert "sdk-scope" in [s.name for s in w.secrets.list_scopes()]
    w.secrets.put_secret(scope="sdk-scope", key="db-password", string_value="s3cr3t")
    assert [s.key for s in w.secrets.list_secrets(scope="sdk-scope")] == ["db-password"]
    with pytest.raises(NotFound):
        w.secrets.put_secret(scope="missing-scope", key="k", string_value="v")
    w.secrets.put_acl(scope="sdk-scope", principal="data-engineers", permission=AclPermission.READ)
    assert w.secrets.get_acl(scope="sdk-scope", principal="data-engineers").permission == AclPermission.READ
    assert "data-engineers" in [a.principal for a in w.secrets.list_acls(scope="sdk-scope")]
    w.secrets.delete_acl(scope="sdk-scope", principal="data-engineers")
    w.secrets.delete_secret(scope="sdk-scope", key="db-password")
    with pytest.raises(NotFound):
        w.secrets.delete_secret(scope="sdk-scope", key="db-password")
    w.secrets.delete_scope(scope="sdk-scope")
    with pytest.raises(NotFound):
        w.secrets.delete_scope(scope="sdk-scope")


def test_files_api_on_volumes(w):
    from databricks.sdk.errors import AlreadyExists

    path = "/Volumes/main/default/landing/in/data.csv"
    w.files.upload(path, io.BytesIO(b"a,b\n1,2\n"), overwrite=False)
    with pytest.raises(AlreadyExists):
        w.files.upload(path, io.BytesIO(b"x"), overwrite=False)
    w.files.upload(path, io.BytesIO(b"a,b\n3,4\n"), overwrite=True)
    assert w.files.download(path).contents.read() == b"a,b\n3,4\n"
    meta = w.files.get_metadata(path)
    assert meta.content_length == 8 and meta.last_modified
    w.files.get_directory_metadata("/Volumes/main/default/landing/in")
    names = [e.name for e in w.files.list_directory_contents("/Volumes/main/default/landing")]
    assert names == ["in"]
    with pytest.raises(NotFound):
        w.files.upload("/Volumes/main/default/nope/a.txt", io.BytesIO(b"x"))
    w.files.create_directory("/Volumes/main/default/landing/empty")
    w.files.delete(path)
    with pytest.raises(NotFound):
        w.files.get_metadata(path)


def test_dbfs_put_limit_and_streaming(w):
    from databricks.sdk.errors import BadRequest

    small = b"x" * 1000
    w.dbfs.put("/FileStore/sdk/small.bin", contents=base64.b64encode(small).decode(), overwrite=True)
    with pytest.raises(BadRequest) as err:
        w.dbfs.put("/FileStore/sdk/big.bin", contents=base64.b64encode(b"y" * (1024 * 1024 + 1)).decode())
    assert err.value.error_code == "MAX_BLOCK_SIZE_EXCEEDED"
    handle = w.dbfs.create("/FileStore/sdk/big.bin", overwrite=True).handle
    for _ in range(3):
        w.dbfs.add_block(handle, base64.b64encode(b"y" * (1024 * 1024)).decode())
    w.dbfs.close(handle)
    status = w.dbfs.get_status("/FileStore/sdk/big.bin")
    assert status.file_size == 3 * 1024 * 1024 and not status.is_dir
    with pytest.raises(ResourceAlreadyExists):
        w.dbfs.create("/FileStore/sdk/big.bin", overwrite=False)
    with pytest.raises(NotFound):
        w.dbfs.get_status("/FileStore/sdk/none.bin")
    assert sorted(f.path for f in w.dbfs.list("/FileStore/sdk")) == ["/FileStore/sdk/big.bin", "/FileStore/sdk/small.bin"]
    assert base64.b64decode(w.dbfs.read("/FileStore/sdk/small.bin", length=10).data) == b"x" * 10


def test_libraries_install_fail_and_uninstall(w):
    from databricks.sdk.service.compute import Library, LibraryInstallStatus, PythonPyPiLibrary

    good = Library(pypi=PythonPyPiLibrary(package="requests==2.32.3"))
    bad = Library(pypi=PythonPyPiLibrary(package="no-such-package"))
    missing = Library(whl="/Volumes/main/default/landing/missing.whl")
    w.libraries.install(CLUSTER, [good, bad, missing])
    deadline = time.time() + 10
    while True:
        statuses = {str(s.library.as_dict()): s for s in w.libraries.cluster_status(CLUSTER)}
        if all(s.status in (LibraryInstallStatus.INSTALLED, LibraryInstallStatus.FAILED) for s in statuses.values()):
            break
        assert time.time() < deadline, statuses
        time.sleep(0.05)
    assert statuses[str(good.as_dict())].status == LibraryInstallStatus.INSTALLED
    assert statuses[str(bad.as_dict())].status == LibraryInstallStatus.FAILED
    assert "no-such-package" in statuses[str(bad.as_dict())].messages[0]
    assert "missing.whl" in statuses[str(missing.as_dict())].messages[0]
    w.libraries.uninstall(CLUSTER, [good])
    after = {str(s.library.as_dict()): s.status for s in w.libraries.cluster_status(CLUSTER)}
    assert after[str(good.as_dict())] == LibraryInstallStatus.UNINSTALL_ON_RESTART
    with pytest.raises(InvalidParameterValue):
        w.libraries.install("no-such-cluster", [good])


def test_repos_create_update_and_unknown_branch(w):
    repo = w.repos.create(url="https://github.com/acme/etl.git", provider="gitHub", path="/Repos/ci/etl")
    assert repo.branch == "main" and len(repo.head_commit_id) == 40
    assert w.repos.get(repo.id).path == "/Repos/ci/etl"
    assert [r.id for r in w.repos.list(path_prefix="/Repos/ci")] == [repo.id]
    with pytest.raises(InvalidParameterValue):
        w.repos.update(repo.id, branch="does-not-exist")
    w.repos.update(repo.id, branch="main")
    with pytest.raises(ResourceAlreadyExists):
        w.repos.create(url="https://github.com/acme/etl.git", provider="gitHub", path="/Repos/ci/etl")
    w.repos.delete(repo.id)
    with pytest.raises(NotFound):
        w.repos.get(repo.id)


def greet_job(name, path, who="base"):
    return dict(
        name=name,
        tasks=[jobs.Task(task_key="main", existing_cluster_id=CLUSTER,
                         notebook_task=jobs.NotebookTask(notebook_path=path, base_parameters={"who": who}))],
    )


def test_jobs_list_by_name_reset_and_run_now_with_job_parameters(w):
    from datetime import timedelta
    w.workspace.mkdirs("/Shared/sdk-jobs")
    path = "/Shared/sdk-jobs/greet"
    w.workspace.import_(path, content=b64("# Databricks notebook source\ndbutils.notebook.exit('hello ' + getArgument('who'))\n"),
                        format=ImportFormat.SOURCE, language=Language.PYTHON, overwrite=True)
    created = w.jobs.create(**greet_job("sdk-Deploy-Me", path))
    for i in range(3):
        w.jobs.create(**greet_job(f"sdk-page-{i}", path))
    # The name filter is exact and ignores case; pages follow next_page_token.
    named = list(w.jobs.list(name="SDK-deploy-me"))
    assert [j.job_id for j in named] == [created.job_id]
    assert not named[0].settings.tasks, "list leaves tasks out unless expand_tasks"
    paged = [j.settings.name for j in w.jobs.list(limit=1) if j.settings.name.startswith("sdk-page-")]
    assert paged == ["sdk-page-0", "sdk-page-1", "sdk-page-2"]
    with pytest.raises(InvalidParameterValue):
        list(w.jobs.list(limit=101))
    # Reset replaces every setting.
    settings = greet_job("sdk-Deploy-Me", path, who="reset")
    w.jobs.reset(created.job_id, new_settings=jobs.JobSettings(
        parameters=[jobs.JobParameterDefinition(name="who", default="default")], **settings))
    got = w.jobs.get(created.job_id)
    assert got.settings.tasks[0].notebook_task.base_parameters == {"who": "reset"}
    assert got.settings.parameters[0].default == "default"
    with pytest.raises(InvalidParameterValue, match="does not exist"):
        w.jobs.reset(424242, new_settings=jobs.JobSettings(**settings))
    # Job parameters reach the notebook; the idempotency token returns the same run.
    waiter = w.jobs.run_now(created.job_id, job_parameters={"who": "sdk"}, idempotency_token="sdk-run-1")
    again = w.jobs.run_now(created.job_id, job_parameters={"who": "sdk"}, idempotency_token="sdk-run-1")
    assert waiter.run_id == again.run_id
    run = waiter.result(timeout=timedelta(seconds=60))
    assert run.state.result_state == jobs.RunResultState.SUCCESS
    assert [(p.name, p.default, p.value) for p in run.job_parameters] == [("who", "default", "sdk")]
    out = w.jobs.get_run_output(run.tasks[0].run_id)
    assert out.notebook_output.result == "hello sdk"


def test_clusters_restart_events_and_a_start_that_fails(w):
    from datetime import timedelta
    names = {c.cluster_id: c.cluster_name for c in w.clusters.list()}
    assert names[QUOTA_CLUSTER] == "quota-cluster"
    terminated = w.clusters.get(QUOTA_CLUSTER)
    assert terminated.state == compute.State.TERMINATED
    assert terminated.termination_reason.code == compute.TerminationReasonCode.INACTIVITY
    # A terminated cluster cannot be restarted (databricks-sdk-py#422).
    with pytest.raises(InvalidState, match="unexpected state Terminated"):
        w.clusters.restart(QUOTA_CLUSTER)
    with pytest.raises(OperationFailed, match="TERMINATED"):
        w.clusters.start(QUOTA_CLUSTER).result(timeout=timedelta(seconds=30))
    failed = w.clusters.get(QUOTA_CLUSTER)
    assert failed.termination_reason.code == compute.TerminationReasonCode.CLOUD_PROVIDER_LAUNCH_FAILURE
    assert failed.termination_reason.type == compute.TerminationReasonType.CLOUD_FAILURE
    kinds = [e.type for e in w.clusters.events(QUOTA_CLUSTER, order=compute.GetEventsOrder.ASC, limit=1)]
    assert kinds == [compute.EventType.STARTING, compute.EventType.TERMINATING]
    newest = next(iter(w.clusters.events(QUOTA_CLUSTER)))
    assert newest.details.reason.code == compute.TerminationReasonCode.CLOUD_PROVIDER_LAUNCH_FAILURE

    running = w.clusters.restart_and_wait(CLUSTER, timeout=timedelta(seconds=30))
    assert running.state == compute.State.RUNNING
    restarts = [e for e in w.clusters.events(CLUSTER, event_types=[compute.EventType.RESTARTING])]
    assert len(restarts) == 1 and restarts[0].details.user

