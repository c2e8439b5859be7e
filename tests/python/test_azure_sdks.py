"""Conformance of the Azure emulator with Microsoft's official Python SDKs.

Starts the emulator binary (target/debug/azure-emulator, or $AZURE_EMULATOR_BIN), reads its
base URL from the first stdout line (its CA goes to the file given with --ca-out), and drives
it with `azure-identity` (client secret, authority at the emulator), `azure-mgmt-resource`
(resource groups), `azure-mgmt-resource-deployments` (template deployments) and
`azure-mgmt-datafactory` (factories, every factory object type, trigger start/stop, pipelines,
runs), as a user's script would drive Azure.
Run: python3 -m pytest tests/python
"""

import datetime
import os
import subprocess
import time
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.datafactory import DataFactoryManagementClient
from azure.mgmt.datafactory import models as adf
from azure.mgmt.resource.deployments import DeploymentsMgmtClient
from azure.mgmt.resource.deployments import models as dep
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.resources import models as res

ROOT = Path(__file__).resolve().parents[2]
# The emulator's fixed test identity (azure_emulator::Options::default()).
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "8f2b9c4e-1d3a-4f5b-9e6c-7a8b9c0d1e2f"
CLIENT_SECRET = "emulator-client-secret"
SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
RG = "rg-sdk"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    binary = os.environ.get("AZURE_EMULATOR_BIN", str(ROOT / "target" / "debug" / "azure-emulator"))
    if not Path(binary).exists():
        pytest.fail(f"emulator binary not found at {binary}; run `cargo build -p azure-emulator` first")
    ca = tmp_path_factory.mktemp("azure-emulator") / "ca.pem"
    proc = subprocess.Popen(
        [binary, "--port", "0", "--ca-out", str(ca), "--retry-after", "0", "--steps", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("https://127.0.0.1:"), f"unexpected first line {url!r}"
        assert proc.stdout.readline().strip() == str(ca)
        # msal (inside azure-identity) uses requests directly: it trusts the CA through this.
        previous = os.environ.get("REQUESTS_CA_BUNDLE")
        os.environ["REQUESTS_CA_BUNDLE"] = str(ca)
        yield url, str(ca)
        if previous is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = previous
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def credential(emulator):
    url, ca = emulator
    return ClientSecretCredential(
        TENANT,
        CLIENT_ID,
        CLIENT_SECRET,
        authority=url,
        disable_instance_discovery=True,
        connection_verify=ca,
    )


def client(cls, emulator, credential):
    url, ca = emulator
    return cls(credential, SUBSCRIPTION, base_url=url, connection_verify=ca, polling_interval=0)


@pytest.fixture(scope="module")
def resources(emulator, credential):
    c = client(ResourceManagementClient, emulator, credential)
    c.resource_groups.create_or_update(RG, res.ResourceGroup(location="westeurope"))
    return c


@pytest.fixture(scope="module")
def deployments(emulator, credential, resources):
    return client(DeploymentsMgmtClient, emulator, credential)


@pytest.fixture(scope="module")
def factory(emulator, credential, resources):
    return client(DataFactoryManagementClient, emulator, credential)


def test_token_from_the_emulator_authority(credential):
    token = credential.get_token("https://management.azure.com/.default")
    assert token.token and token.expires_on > datetime.datetime.now().timestamp()


def test_a_wrong_secret_is_refused(emulator):
    url, ca = emulator
    wrong = ClientSecretCredential(
        TENANT, CLIENT_ID, "wrong", authority=url, disable_instance_discovery=True, connection_verify=ca
    )
    with pytest.raises(Exception, match="AADSTS7000215"):
        wrong.get_token("https://management.azure.com/.default")


def test_resource_groups(resources):
    assert resources.resource_groups.check_existence(RG)
    assert not resources.resource_groups.check_existence("rg-missing")
    group = resources.resource_groups.get(RG)
    assert (group.name, group.location, group.properties.provisioning_state) == (RG, "westeurope", "Succeeded")
    assert RG in [g.name for g in resources.resource_groups.list()]
    with pytest.raises(ResourceNotFoundError) as e:
        resources.resource_groups.get("rg-missing")
    assert e.value.error.code == "ResourceGroupNotFound"


TEMPLATE = {
    "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
    "contentVersion": "1.0.0.0",
    "parameters": {"name": {"type": "string"}},
    "resources": [
        {
            "type": "Microsoft.Storage/storageAccounts",
            "apiVersion": "2023-01-01",
            "name": "[parameters('name')]",
            "location": "westeurope",
            "kind": "StorageV2",
            "sku": {"name": "Standard_LRS"},
            "properties": {},
        }
    ],
    "outputs": {"name": {"type": "string", "value": "[parameters('name')]"}},
}


def properties(name):
    return dep.DeploymentProperties(mode="Incremental", template=TEMPLATE, parameters={"name": {"value": name}})


def test_deployment_create_get_operations(deployments):
    done = deployments.deployments.begin_create_or_update(
        RG, "sdk-deploy", dep.Deployment(properties=properties("stsdk"))
    ).result()
    assert done.properties.provisioning_state == "Succeeded"
    assert done.properties.outputs["name"]["value"] == "stsdk"
    got = deployments.deployments.get(RG, "sdk-deploy")
    assert got.name == "sdk-deploy" and got.properties.correlation_id
    assert "sdk-deploy" in [d.name for d in deployments.deployments.list_by_resource_group(RG)]
    assert deployments.deployments.check_existence(RG, "sdk-deploy")
    assert not deployments.deployments.check_existence(RG, "no-such-deployment")
    assert deployments.deployments.export_template(RG, "sdk-deploy").template == TEMPLATE
    # The SDKs read operations at .../resourcegroups/{rg}/deployments/{name}/operations.
    operations = list(deployments.deployment_operations.list(RG, "sdk-deploy"))
    targets = [op.properties.target_resource.resource_name for op in operations if op.properties.target_resource]
    assert targets == ["stsdk"]
    assert all(op.properties.provisioning_state == "Succeeded" for op in operations)
    one = deployments.deployment_operations.get(RG, "sdk-deploy", operations[0].operation_id)
    assert one.operation_id == operations[0].operation_id
    with pytest.raises(ResourceNotFoundError) as e:
        deployments.deployments.get(RG, "no-such-deployment")
    assert e.value.error.code == "DeploymentNotFound"


def test_deployment_validate_and_what_if(deployments):
    valid = deployments.deployments.begin_validate(
        RG, "sdk-validate", dep.Deployment(properties=properties("stvalid"))
    ).result()
    assert valid.properties.provisioning_state == "Succeeded"
    bad = dict(TEMPLATE, resources=[{"type": "Microsoft.Storage/storageAccounts"}])
    with pytest.raises(HttpResponseError) as e:
        deployments.deployments.begin_validate(
            RG, "sdk-invalid", dep.Deployment(properties=dep.DeploymentProperties(mode="Incremental", template=bad))
        ).result()
    assert e.value.error.code in ("InvalidTemplate", "InvalidTemplateDeployment")
    what_if = deployments.deployments.begin_what_if(
        RG,
        "sdk-whatif",
        dep.DeploymentWhatIf(
            properties=dep.DeploymentWhatIfProperties(
                mode="Incremental", template=TEMPLATE, parameters={"name": {"value": "stnew"}}
            )
        ),
    ).result()
    assert what_if.status == "Succeeded"
    changes = {c.resource_id.rsplit("/", 1)[-1]: c.change_type for c in what_if.changes}
    assert changes.get("stnew") == "Create", changes


PIPELINE = adf.PipelineResource(
    parameters={"file": adf.ParameterSpecification(type="String")},
    activities=[adf.WaitActivity(name="Wait1", wait_time_in_seconds=1)],
)


def test_factory_and_pipeline_create_or_update(factory):
    created = factory.factories.create_or_update(RG, "sdk-adf", adf.Factory(location="westeurope"))
    assert created.name == "sdk-adf"
    assert created.provisioning_state == "Succeeded"
    assert created.create_time is not None and created.version and created.e_tag
    got = factory.factories.get(RG, "sdk-adf")
    assert (got.name, got.location) == ("sdk-adf", "westeurope")
    pipeline = factory.pipelines.create_or_update(RG, "sdk-adf", "ingest", PIPELINE)
    assert pipeline.name == "ingest" and pipeline.etag
    assert pipeline.id.endswith("/factories/sdk-adf/pipelines/ingest")
    assert [a.name for a in factory.pipelines.get(RG, "sdk-adf", "ingest").activities] == ["Wait1"]
    assert [p.name for p in factory.pipelines.list_by_factory(RG, "sdk-adf")] == ["ingest"]
    assert "sdk-adf" in [f.name for f in factory.factories.list_by_resource_group(RG)]
    factory.pipelines.delete(RG, "sdk-adf", "ingest")
    with pytest.raises(ResourceNotFoundError):
        factory.pipelines.get(RG, "sdk-adf", "ingest")
    factory.factories.delete(RG, "sdk-adf")
    with pytest.raises(ResourceNotFoundError):
        factory.factories.get(RG, "sdk-adf")


def window():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now - datetime.timedelta(minutes=10), now + datetime.timedelta(minutes=10)


def test_pipeline_runs(factory):
    factory.factories.create_or_update(RG, "sdk-runs", adf.Factory(location="westeurope"))
    factory.pipelines.create_or_update(RG, "sdk-runs", "ingest", PIPELINE)
    run_id = factory.pipelines.create_run(RG, "sdk-runs", "ingest", parameters={"file": "a.csv"}).run_id
    statuses = []
    for _ in range(10):
        run = factory.pipeline_runs.get(RG, "sdk-runs", run_id)
        statuses.append(run.status)
        if run.status in ("Succeeded", "Failed", "Cancelled"):
            break
    assert statuses[0] == "Queued" and statuses[-1] == "Succeeded", statuses
    assert (run.pipeline_name, run.parameters) == ("ingest", {"file": "a.csv"})
    after, before = window()
    found = factory.pipeline_runs.query_by_factory(
        RG,
        "sdk-runs",
        adf.RunFilterParameters(
            last_updated_after=after,
            last_updated_before=before,
            filters=[adf.RunQueryFilter(operand="PipelineName", operator="Equals", values_property=["ingest"])],
        ),
    )
    assert [r.run_id for r in found.value] == [run_id]
    activities = factory.activity_runs.query_by_pipeline_run(
        RG, "sdk-runs", run_id, adf.RunFilterParameters(last_updated_after=after, last_updated_before=before)
    )
    assert [(a.activity_name, a.status) for a in activities.value] == [("Wait1", "Succeeded")]

    second = factory.pipelines.create_run(RG, "sdk-runs", "ingest", parameters={"file": "b.csv"}).run_id
    factory.pipeline_runs.cancel(RG, "sdk-runs", second, is_recursive=True)
    for _ in range(5):
        status = factory.pipeline_runs.get(RG, "sdk-runs", second).status
        if status == "Cancelled":
            break
    assert status == "Cancelled"
    with pytest.raises(HttpResponseError) as e:
        factory.pipelines.create_run(RG, "sdk-runs", "no-such-pipeline")
    assert e.value.status_code == 404
    with pytest.raises(ResourceNotFoundError):
        factory.pipeline_runs.get(RG, "sdk-runs", "00000000-0000-0000-0000-000000000000")



# Wait, then SetVariable from a parameter, then an If Condition whose true branch is a Fail
# activity with the variable as its message: the run fails, as Data Factory's rule says.
CONTROL_FLOW = adf.PipelineResource(
    {
        "properties": {
            "parameters": {"file": {"type": "String"}},
            "variables": {"msg": {"type": "String", "defaultValue": ""}},
            "activities": [
                {"name": "Wait1", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 1}},
                {
                    "name": "SetMsg",
                    "type": "SetVariable",
                    "dependsOn": [{"activity": "Wait1", "dependencyConditions": ["Succeeded"]}],
                    "typeProperties": {
                        "variableName": "msg",
                        "value": {"value": "@concat('bad file ', pipeline().parameters.file)", "type": "Expression"},
                    },
                },
                {
                    "name": "Check",
                    "type": "IfCondition",
                    "dependsOn": [{"activity": "SetMsg", "dependencyConditions": ["Succeeded"]}],
                    "typeProperties": {
                        "expression": {"value": "@startsWith(variables('msg'), 'bad')", "type": "Expression"},
                        "ifTrueActivities": [
                            {
                                "name": "Stop",
                                "type": "Fail",
                                "typeProperties": {
                                    "message": {"value": "@variables('msg')", "type": "Expression"},
                                    "errorCode": "E42",
                                },
                            }
                        ],
                        "ifFalseActivities": [],
                    },
                },
            ],
        }
    }
)


def test_activity_runs_of_a_failed_control_flow_run(factory):
    f = "sdk-activities"
    factory.factories.create_or_update(RG, f, adf.Factory(location="westeurope"))
    factory.pipelines.create_or_update(RG, f, "control", CONTROL_FLOW)
    run_id = factory.pipelines.create_run(RG, f, "control", parameters={"file": "a.csv"}).run_id
    for _ in range(200):
        run = factory.pipeline_runs.get(RG, f, run_id)
        if run.status in ("Succeeded", "Failed", "Cancelled"):
            break
        time.sleep(0.05)
    assert run.status == "Failed", run.status
    # The run as PipelineRun parses it.
    assert run.run_id == run_id and run.run_group_id and run.is_latest is True
    assert run.pipeline_name == "control" and run.parameters == {"file": "a.csv"}
    assert run.invoked_by.invoked_by_type == "Manual" and run.invoked_by.name == "Manual"
    assert isinstance(run.run_start, datetime.datetime) and isinstance(run.run_end, datetime.datetime)
    assert isinstance(run.last_updated, datetime.datetime)
    assert run.run_end >= run.run_start and run.duration_in_ms >= 1000
    assert run.message == (
        "Operation on target Check failed: Activity failed because an inner activity failed; "
        "Inner activity name: Stop, Error: bad file a.csv"
    ), run.message

    after, before = window()

    def activities(*filters, after=after, before=before):
        return factory.activity_runs.query_by_pipeline_run(
            RG,
            f,
            run_id,
            adf.RunFilterParameters(
                last_updated_after=after,
                last_updated_before=before,
                filters=[adf.RunQueryFilter(operand=o, operator=op, values_property=v) for o, op, v in filters],
            ),
        )

    found = activities()
    assert isinstance(found, adf.ActivityRunsQueryResponse)
    runs = sorted(found.value, key=lambda a: a.activity_run_start)
    assert [(a.activity_name, a.activity_type, a.status) for a in runs] == [
        ("Wait1", "Wait", "Succeeded"),
        ("SetMsg", "SetVariable", "Succeeded"),
        ("Check", "IfCondition", "Failed"),
        ("Stop", "Fail", "Failed"),
    ]
    for a in runs:
        assert isinstance(a, adf.ActivityRun)
        assert (a.pipeline_name, a.pipeline_run_id) == ("control", run_id)
        assert a.activity_run_id and isinstance(a.activity_run_start, datetime.datetime)
        assert isinstance(a.activity_run_end, datetime.datetime) and a.activity_run_end >= a.activity_run_start
        assert isinstance(a.duration_in_ms, int) and a.linked_service_name == ""
        assert isinstance(a.input, dict) and isinstance(a.output, dict) and isinstance(a.error, dict)
        assert a.error["target"] == a.activity_name
    wait, set_msg, check, stop = runs
    assert wait.duration_in_ms >= 1000 and wait.input == {"waitTimeInSeconds": 1}
    assert set_msg.output == {"name": "msg", "value": "bad file a.csv"}
    assert set_msg.error["errorCode"] == "" and set_msg.error["message"] == ""
    assert stop.error["errorCode"] == "E42" and stop.error["message"] == "bad file a.csv"
    assert stop.error["failureType"] == "UserError"
    assert check.error["message"] == "Activity failed because an inner activity failed; Inner activity name: Stop, Error: bad file a.csv"

    # The filters the service takes for activity runs, and the lastUpdated window.
    only = activities(("ActivityType", "In", ["Fail", "Wait"]))
    assert sorted(a.activity_name for a in only.value) == ["Stop", "Wait1"]
    failed = activities(("Status", "Equals", ["Failed"]))
    assert sorted(a.activity_name for a in failed.value) == ["Check", "Stop"]
    assert activities(after=after - datetime.timedelta(days=1), before=after).value == []
    with pytest.raises(HttpResponseError) as e:
        activities(("PipelineName", "Equals", ["x"]))
    assert e.value.status_code == 400

    # The failed run among the factory's runs, by status.
    by_status = factory.pipeline_runs.query_by_factory(
        RG,
        f,
        adf.RunFilterParameters(
            last_updated_after=after,
            last_updated_before=before,
            filters=[adf.RunQueryFilter(operand="Status", operator="Equals", values_property=["Failed"])],
        ),
    )
    assert [(r.run_id, r.status, r.message) for r in by_status.value] == [(run_id, "Failed", run.message)]


# azure-mgmt-datafactory 10.0.0 leaves the `type` discriminator out of most leaf models it
# serializes (AzureBlobFSLinkedService(...) goes out without "type": "AzureBlobFS"; a
# ScheduleTrigger goes out as "MultiplePipelineTrigger"), so these objects are built from their
# wire form, as Data Factory's own JSON (and ADF Studio's Git files) write them.
def lsref(name):
    return {"referenceName": name, "type": "LinkedServiceReference"}


def test_factory_objects_of_every_type(factory):
    f = "sdk-objects"
    factory.factories.create_or_update(RG, f, adf.Factory(location="westeurope"))
    vnet = factory.managed_virtual_networks.create_or_update(
        RG, f, "default", adf.ManagedVirtualNetworkResource(properties=adf.ManagedVirtualNetwork())
    )
    assert vnet.name == "default" and vnet.etag
    pe = factory.managed_private_endpoints.create_or_update(
        RG,
        f,
        "default",
        "pe-lake",
        adf.ManagedPrivateEndpointResource(
            properties=adf.ManagedPrivateEndpoint(
                private_link_resource_id=f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/stlake",
                group_id="dfs",
            )
        ),
    )
    assert pe.name == "pe-lake" and pe.properties.group_id == "dfs"
    assert [p.name for p in factory.managed_private_endpoints.list_by_factory(RG, f, "default")] == ["pe-lake"]
    ir = factory.integration_runtimes.create_or_update(
        RG,
        f,
        "ir-vnet",
        adf.IntegrationRuntimeResource(
            {
                "properties": {
                    "type": "Managed",
                    "managedVirtualNetwork": {"type": "ManagedVirtualNetworkReference", "referenceName": "default"},
                }
            }
        ),
    )
    assert ir.name == "ir-vnet" and isinstance(ir.properties, adf.ManagedIntegrationRuntime)
    ls = factory.linked_services.create_or_update(
        RG,
        f,
        "ls-lake",
        adf.LinkedServiceResource(
            {
                "properties": {
                    "type": "AzureBlobFS",
                    "typeProperties": {"url": "https://stlake.dfs.core.windows.net"},
                    "connectVia": {"type": "IntegrationRuntimeReference", "referenceName": "ir-vnet"},
                }
            }
        ),
    )
    assert ls.name == "ls-lake" and ls.etag
    got = factory.linked_services.get(RG, f, "ls-lake").properties
    assert isinstance(got, adf.AzureBlobFSLinkedService) and got.url == "https://stlake.dfs.core.windows.net"
    ds = factory.datasets.create_or_update(
        RG,
        f,
        "ds-raw",
        adf.DatasetResource(
            {
                "properties": {
                    "type": "Parquet",
                    "linkedServiceName": lsref("ls-lake"),
                    "typeProperties": {"location": {"type": "AzureBlobFSLocation", "fileSystem": "raw"}},
                }
            }
        ),
    )
    assert ds.name == "ds-raw" and isinstance(ds.properties, adf.ParquetDataset)
    assert [d.name for d in factory.datasets.list_by_factory(RG, f)] == ["ds-raw"]
    flow = factory.data_flows.create_or_update(
        RG,
        f,
        "df-copy",
        adf.DataFlowResource(
            {
                "properties": {
                    "type": "MappingDataFlow",
                    "typeProperties": {
                        "sources": [{"name": "src", "dataset": {"type": "DatasetReference", "referenceName": "ds-raw"}}],
                        "script": "source() ~> src",
                    },
                }
            }
        ),
    )
    assert flow.name == "df-copy" and isinstance(flow.properties, adf.MappingDataFlow)
    # A reference to an object that does not exist: Data Factory's BadRequest naming it.
    with pytest.raises(HttpResponseError) as e:
        factory.datasets.create_or_update(
            RG,
            f,
            "ds-orphan",
            adf.DatasetResource({"properties": {"type": "Parquet", "linkedServiceName": lsref("ls-missing")}}),
        )
    assert e.value.status_code == 400
    assert e.value.error.code == "BadRequest"
    assert "invalid reference 'ls-missing'" in e.value.error.message
    with pytest.raises(ResourceNotFoundError):
        factory.datasets.get(RG, f, "ds-orphan")
    factory.data_flows.delete(RG, f, "df-copy")
    factory.datasets.delete(RG, f, "ds-raw")
    assert list(factory.datasets.list_by_factory(RG, f)) == []


DAILY = adf.TriggerResource(
    {
        "properties": {
            "type": "ScheduleTrigger",
            "pipelines": [
                {
                    "pipelineReference": {"type": "PipelineReference", "referenceName": "ingest"},
                    "parameters": {"file": "daily.csv"},
                }
            ],
            "typeProperties": {
                "recurrence": {"frequency": "Day", "interval": 1, "startTime": "2026-01-01T03:00:00Z", "timeZone": "UTC"}
            },
        }
    }
)


def test_triggers_start_stop_and_a_started_trigger_is_not_updated(factory):
    f = "sdk-triggers"
    factory.factories.create_or_update(RG, f, adf.Factory(location="westeurope"))
    factory.pipelines.create_or_update(RG, f, "ingest", PIPELINE)
    created = factory.triggers.create_or_update(RG, f, "daily", DAILY)
    assert created.name == "daily" and created.properties.runtime_state == "Stopped"
    assert created.properties["type"] == "ScheduleTrigger"
    factory.triggers.begin_start(RG, f, "daily").result()
    assert factory.triggers.get(RG, f, "daily").properties.runtime_state == "Started"
    with pytest.raises(HttpResponseError) as e:
        factory.triggers.create_or_update(RG, f, "daily", DAILY)
    assert e.value.status_code == 400 and e.value.error.code == "TriggerEnabledCannotUpdate"
    with pytest.raises(HttpResponseError) as e:
        factory.triggers.delete(RG, f, "daily")
    assert e.value.error.code == "TriggerEnabledCannotUpdate"
    factory.triggers.begin_stop(RG, f, "daily").result()
    assert [t.properties.runtime_state for t in factory.triggers.list_by_factory(RG, f)] == ["Stopped"]
    factory.triggers.create_or_update(RG, f, "daily", DAILY)
    factory.triggers.delete(RG, f, "daily")
    with pytest.raises(ResourceNotFoundError):
        factory.triggers.get(RG, f, "daily")
