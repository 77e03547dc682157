"""Dedicated hosts through boto3, on libvirt's test driver (one pool host): account A
allocates the host, its instances of `host` tenancy run there, and while it is A's nobody
else's instance is placed on it — not even A's own of default tenancy. B never sees A's host:
every call naming it answers as for a host that does not exist. Released, the host takes
anyone's instances again."""

from __future__ import annotations

import pytest

from conftest import ec2_client, error_of, two_tenants, wait_states

FAST = {"Delay": 0.5, "MaxAttempts": 120}


@pytest.fixture(scope="module")
def pool(tmp_path_factory, test_image):
    server, image, (a, ca), (_, cb) = two_tenants(tmp_path_factory.mktemp("dedicated"), test_image)
    yield server, image, a, (ca, cb), ec2_client(server)
    server.stop()


def test_a_dedicated_host_is_its_account_s_alone(pool):
    _, image, a, (ca, cb), admin = pool
    zone = ca.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]

    def run(client, **placement):
        return client.run_instances(ImageId=image, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                    **({"Placement": placement} if placement else {}))["Instances"][0]

    [host] = ca.allocate_hosts(AvailabilityZone=zone, InstanceFamily="t3", Quantity=1, AutoPlacement="on",
                               TagSpecifications=[{"ResourceType": "dedicated-host",
                                                   "Tags": [{"Key": "team", "Value": "a"}]}])["HostIds"]
    [seen] = ca.describe_hosts()["Hosts"]
    assert (seen["HostId"], seen["OwnerId"], seen["AutoPlacement"], seen["State"]) == (host, a.account_id, "on",
                                                                                       "available")
    assert seen["HostProperties"]["InstanceFamily"] == "t3" and seen["Tags"] == [{"Key": "team", "Value": "a"}]
    assert "AllocationTime" in seen
    assert ca.describe_hosts(Filters=[{"Name": "tag:team", "Values": ["a"]}])["Hosts"][0]["HostId"] == host
    assert error_of(lambda: ca.allocate_hosts(AvailabilityZone=zone, InstanceFamily="t3", Quantity=1))[0] == \
        "InsufficientHostCapacity"

    # B sees nothing of it; its launches find no room, and naming the host finds no host.
    assert cb.describe_hosts()["Hosts"] == []
    assert error_of(lambda: cb.describe_hosts(HostIds=[host]))[0] == "InvalidHostID.NotFound"
    assert error_of(lambda: run(cb))[0] == "InsufficientInstanceCapacity"
    assert error_of(lambda: run(cb, HostId=host))[0] == "InvalidHostID.NotFound"
    refused = cb.modify_hosts(HostIds=[host], AutoPlacement="off")["Unsuccessful"]
    assert [(u["ResourceId"], u["Error"]["Code"]) for u in refused] == [(host, "InvalidHostID.NotFound")]
    assert error_of(lambda: cb.modify_hosts(HostIds=[host], HostMaintenance="on"))[0] == "UnauthorizedOperation"
    refused = cb.release_hosts(HostIds=[host])["Unsuccessful"]
    assert [u["Error"]["Code"] for u in refused] == ["InvalidHostID.NotFound"]

    # A's default tenancy stays off it; host tenancy lands there, auto-placed or named.
    assert error_of(lambda: run(ca))[0] == "InsufficientInstanceCapacity"
    auto = run(ca, Tenancy="host")
    pinned = run(ca, HostId=host, Affinity="host")
    for instance in (auto, pinned):
        assert (instance["Placement"]["Tenancy"], instance["Placement"]["HostId"]) == ("host", host)
    assert pinned["Placement"]["Affinity"] == "host"
    ids = [auto["InstanceId"], pinned["InstanceId"]]
    wait_states(ca, ids, "running")
    listed = ca.describe_instances(Filters=[{"Name": "host-id", "Values": [host]},
                                            {"Name": "tenancy", "Values": ["host"]}])["Reservations"]
    assert sorted(i["InstanceId"] for r in listed for i in r["Instances"]) == sorted(ids)
    assert sorted(i["InstanceId"] for i in ca.describe_hosts(HostIds=[host])["Hosts"][0]["Instances"]) == sorted(ids)

    # Auto-placement off: only launches naming the host land there.
    assert ca.modify_hosts(HostIds=[host], AutoPlacement="off")["Successful"] == [host]
    assert error_of(lambda: run(ca, Tenancy="host"))[0] == "InsufficientCapacityOnHost"
    assert error_of(lambda: run(ca, Tenancy="dedicated"))[0] == "UnsupportedOperation"

    # The admin sees the pool host, and whose it is.
    [pool_host] = [h for h in admin.describe_hosts()["Hosts"] if h["HostId"] == host]
    assert pool_host["OwnerId"] == a.account_id

    # Not released while A's instances are on it; released after, anyone's again.
    refused = ca.release_hosts(HostIds=[host])["Unsuccessful"]
    assert [u["Error"]["Code"] for u in refused] == ["IncorrectState"]
    ca.terminate_instances(InstanceIds=ids)
    ca.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig=FAST)
    assert ca.release_hosts(HostIds=[host])["Successful"] == [host]
    assert ca.describe_hosts()["Hosts"] == []
    b_instance = run(cb)["InstanceId"]
    wait_states(cb, [b_instance], "running")
    assert error_of(lambda: ca.allocate_hosts(AvailabilityZone=zone, InstanceFamily="t3", Quantity=1))[0] == \
        "InsufficientHostCapacity", "a host B's instance runs on is not free to dedicate"
    cb.terminate_instances(InstanceIds=[b_instance])
