"""Stratus's extension actions through boto3 (the `stratus` service from Stratus's botocore model),
on libvirt's test driver: hosts, maintenance, and every way MigrateInstance and its siblings say
no. Real migrations between real hosts are in test_lab_aws_cli.py and backend/tests/lab.rs."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import REGION, TEST_DRIVER_CONFIG, create_account, ec2_client, import_image, wait_states

MODELS = Path(__file__).resolve().parents[2] / "ec2api/model"


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def stratus_client(server, access_key=None, secret_key=None):
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id=access_key or server.access_key,
                                    aws_secret_access_key=secret_key or server.secret_key, region_name=REGION)
    session._session.get_component("data_loader").search_paths.insert(0, str(MODELS))
    return session.client("stratus", endpoint_url=server.endpoint,
                          config=Config(retries={"max_attempts": 1, "mode": "legacy"}))


@pytest.fixture(scope="module")
def pool(tmp_path_factory, test_image):
    from conftest import start_stratus

    server = start_stratus(tmp_path_factory.mktemp("pool"), config=TEST_DRIVER_CONFIG)
    yield server, ec2_client(server), stratus_client(server), import_image(server, test_image, "pool image")
    server.stop()


def test_hosts_and_maintenance(pool):
    server, ec2, stratus, image_id = pool
    instance_id = ec2.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1,
                                    MaxCount=1)["Instances"][0]["InstanceId"]
    wait_states(ec2, [instance_id], "running", timeout=30)
    hosts = stratus.describe_hosts()["Hosts"]
    assert len(hosts) == 1
    host = hosts[0]
    assert host["HostId"].startswith("h-") and host["Uri"] == "test:///default"
    assert host["State"] == "available" and host["HostMaintenance"] == "off"
    assert host["HostProperties"]["TotalVCpus"] == 32 and host["AvailableCapacity"]["AvailableVCpus"] == 30
    assert [i["InstanceId"] for i in host["Instances"]] == [instance_id]
    assert host["Utilization"]["InstancesRunning"] == 1 and host["Utilization"]["MemoryUsedMiB"] == 512
    assert host["Utilization"]["Reachable"] is True
    assert [h["HostId"] for h in stratus.describe_hosts(HostIds=[host["HostId"]])["Hosts"]] == [host["HostId"]]
    # Admins see the control plane too: on redb, this one process, which leads.
    plane = stratus.describe_hosts()["ControlPlane"]
    assert plane["Store"] == "redb" and plane["LeaderId"].endswith(f"/127.0.0.1:{server.port}")
    assert [(r["ReplicaId"], r["State"]) for r in plane["Replicas"]] == [(plane["LeaderId"], "leader")]
    with pytest.raises(ClientError) as e:
        stratus.describe_hosts(HostIds=["h-0123456789abcdef0"])
    assert error_code(e) == "InvalidHostID.NotFound"

    # In maintenance the only host takes nothing new; out of it, it does again.
    answer = stratus.modify_hosts(HostIds=[host["HostId"], "h-0123456789abcdef0"], HostMaintenance="on")
    assert answer["Successful"] == [host["HostId"]]
    assert answer["Unsuccessful"][0]["ResourceId"] == "h-0123456789abcdef0"
    assert answer["Unsuccessful"][0]["Error"]["Code"] == "InvalidHostID.NotFound"
    assert stratus.describe_hosts(Filter=[{"Name": "host-maintenance", "Values": ["on"]}])["Hosts"][0][
        "HostMaintenance"] == "on"
    with pytest.raises(ClientError) as e:
        ec2.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)
    assert error_code(e) == "InsufficientInstanceCapacity"
    stratus.modify_hosts(HostIds=[host["HostId"]], HostMaintenance="off")
    second = ec2.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]
    # Auto-placement is a dedicated host's (AllocateHosts): a pool host dedicated to no one has none.
    refused = stratus.modify_hosts(HostIds=[host["HostId"]], AutoPlacement="off")["Unsuccessful"]
    assert [u["Error"]["Code"] for u in refused] == ["InvalidHostID.NotFound"]
    ec2.terminate_instances(InstanceIds=[instance_id, second["InstanceId"]])
    wait_states(ec2, [instance_id, second["InstanceId"]], "terminated")


def test_migration_refusals(pool):
    server, ec2, stratus, image_id = pool
    instance_id = ec2.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1,
                                    MaxCount=1)["Instances"][0]["InstanceId"]
    wait_states(ec2, [instance_id], "running", timeout=30)
    host_id = stratus.describe_hosts()["Hosts"][0]["HostId"]
    cases = [
        ({"InstanceId": instance_id}, "InsufficientInstanceCapacity"),  # no other host
        ({"InstanceId": instance_id, "TargetHostId": host_id}, "InvalidParameterValue"),
        ({"InstanceId": instance_id, "TargetHostId": "h-0123456789abcdef0"}, "InvalidHostID.NotFound"),
        ({"InstanceId": "i-0123456789abcdef0"}, "InvalidInstanceID.NotFound"),
        ({"InstanceId": "vol-0123456789abcdef0"}, "InvalidInstanceID.Malformed"),
        ({"InstanceId": instance_id, "BandwidthMiBps": -1}, "InvalidParameterValue"),
        ({"InstanceId": instance_id, "TimeoutSeconds": 0}, "InvalidParameterValue"),
        ({"InstanceId": instance_id, "MaxDowntimeMillis": 0}, "InvalidParameterValue"),
        ({"InstanceId": instance_id, "DryRun": True}, "DryRunOperation"),
    ]
    for params, code in cases:
        with pytest.raises(ClientError) as e:
            stratus.migrate_instance(**params)
        assert error_code(e) == code, params
        # EstimateInstanceMigration takes the same options and refuses alike.
        with pytest.raises(ClientError) as e:
            stratus.estimate_instance_migration(**params)
        assert error_code(e) == code, params
    with pytest.raises(ClientError) as e:
        stratus.describe_instance_migrations(MigrationIds=["mig-0123456789abcdef0"])
    assert error_code(e) == "InvalidMigrationID.NotFound"
    with pytest.raises(ClientError) as e:
        stratus.cancel_instance_migration(MigrationId="mig-0123456789abcdef0")
    assert error_code(e) == "InvalidMigrationID.NotFound"
    assert stratus.describe_instance_migrations(Filters=[{"Name": "status", "Values": ["completed"]}])[
        "Migrations"] == []

    ec2.stop_instances(InstanceIds=[instance_id], Force=True)
    wait_states(ec2, [instance_id], "stopped", timeout=30)
    for call in (stratus.migrate_instance, stratus.estimate_instance_migration):
        with pytest.raises(ClientError) as e:
            call(InstanceId=instance_id)
        assert error_code(e) == "IncorrectInstanceState"

    # Accounts that are not admins see no hosts and may not migrate, not even as a dry run.
    user = create_account(server, "extension-outsider")
    outsider = stratus_client(server, user.access_key, user.secret_key)
    assert outsider.describe_hosts()["Hosts"] == []
    assert "ControlPlane" not in outsider.describe_hosts()
    for call in (lambda: outsider.migrate_instance(InstanceId=instance_id),
                 lambda: outsider.migrate_instance(InstanceId=instance_id, DryRun=True),
                 lambda: outsider.estimate_instance_migration(InstanceId=instance_id),
                 lambda: outsider.describe_instance_migrations(),
                 lambda: outsider.modify_hosts(HostIds=[host_id], HostMaintenance="on")):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "UnauthorizedOperation"
    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_states(ec2, [instance_id], "terminated")
