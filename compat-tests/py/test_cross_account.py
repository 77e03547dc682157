"""Cross-account isolation, as a matrix over every action that takes a resource id.

Account A owns a key pair, a security group with a rule, a running instance, an attached and an
unattached volume, a snapshot and a private image (all tagged), a default VPC and subnet of its
own, and a VPC it made (10.0.0.0/16, as B's) with a subnet, an attached internet gateway and a
route table associated with the subnet. Account B, for every row of `ROWS`, calls the action once with A's id and once with a
fresh id of the same shape that names nothing at all. The two answers must be indistinguishable
(HTTP status, error Code, and the message once the id itself is replaced by a placeholder), B's
answer must name none of A's resources, and A's own view of its resources must be unchanged
afterwards. B's listings, with and without filters naming A's ids, tags and account, must never
show any of A's resources.

One server on libvirt's test driver and one setup serve the whole module. A new action is one
row: `R(action, kinds, call)` where `call(client, value, world)` makes B's request with `value`
in place of A's resource of each kind in `kinds`. With `-rP` every row prints both answers.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError

from conftest import OVN_NETWORK, TEST_DRIVER_HOSTS, create_account, ec2_client, import_image, wait_states
from test_extensions_boto3 import stratus_client
from test_monitoring_boto3 import cloudwatch

FAST = {"Delay": 0.5, "MaxAttempts": 120}
# Any valid OpenSSH public key will do for ImportKeyPair (RFC 8032's first test vector).
ED25519_PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea b@example"
PLACEHOLDER = "<ID>"


# --- the world: A's resources, B's own, and a way to read A's state ---------------------------


@dataclass
class World:
    server: Any
    a_acct: Any
    b_acct: Any
    ca: Any  # A's ec2 client
    cb: Any  # B's ec2 client
    sb: Any  # B's stratus (extensions) client
    zone: str
    public_image: str
    a: dict[str, str]  # kind -> A's value
    b: dict[str, str]  # B's own resources
    a_rule: dict  # A's ingress permission, exactly as authorized
    forbidden: list[str] = field(default_factory=list)  # strings that identify A's resources
    forbidden_tag_key: str = ""
    a_default_group: str = ""
    a_ip: str = ""
    a_mac: str = ""
    cwb: Any = None  # B's CloudWatch client
    a_subnet: str = ""
    a_fingerprint: str = ""
    b_public_key: str = ""
    last_state: dict | None = None
    baseline: dict | None = None


def _wait(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def _volume(client, volume_id) -> dict:
    return client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]


@pytest.fixture(scope="module")
def world(tmp_path_factory, test_image):
    from conftest import retire, start_stratus

    # Every account's default VPC a network of its own, on the machine's OVN (as by default).
    server = start_stratus(tmp_path_factory.mktemp("cross"),
                           config=TEST_DRIVER_HOSTS + OVN_NETWORK + "\n[monitoring]\ninterval_ms = 500\n")
    try:
        yield _build_world(server, test_image)
    finally:
        server.stop()
        retire(server)


def _build_world(server, test_image) -> World:
    public_image = import_image(server, test_image, "cross-account image")
    a_acct = create_account(server, "tenant-a")
    b_acct = create_account(server, "tenant-b")
    ca = ec2_client(server, a_acct.access_key, a_acct.secret_key)
    cb = ec2_client(server, b_acct.access_key, b_acct.secret_key)
    sb = stratus_client(server, b_acct.access_key, b_acct.secret_key)
    admin_ext = stratus_client(server)
    zone = ca.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    marker = secrets.token_hex(6)
    tag = {"Key": f"owner-{marker}", "Value": f"a-{marker}"}

    def spec(kind):
        return [{"ResourceType": kind, "Tags": [tag, {"Key": "Name", "Value": f"a-{kind}-{marker}"}]}]

    a: dict[str, str] = {}
    # Key pair, security group with one ingress rule.
    key = ca.create_key_pair(KeyName=f"a-key-{marker}", KeyType="ed25519", TagSpecifications=spec("key-pair"))
    a["key_id"], a["key_name"] = key["KeyPairId"], key["KeyName"]
    # A launch template with two versions.
    a["lt_name"] = f"a-lt-{marker}"
    a["lt"] = ca.create_launch_template(
        LaunchTemplateName=a["lt_name"], VersionDescription="template of A",
        LaunchTemplateData={"ImageId": public_image, "InstanceType": "t3.nano", "KeyName": a["key_name"]},
        TagSpecifications=spec("launch-template"))["LaunchTemplate"]["LaunchTemplateId"]
    ca.create_launch_template_version(LaunchTemplateId=a["lt"], SourceVersion="1",
                                      LaunchTemplateData={"InstanceType": "t3.micro"})
    a["group_name"] = f"a-sg-{marker}"
    a["group_id"] = ca.create_security_group(GroupName=a["group_name"], Description="group of A",
                                             TagSpecifications=spec("security-group"))["GroupId"]
    a_rule = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
              "IpRanges": [{"CidrIp": "10.1.0.0/16", "Description": "A ssh"}]}
    rules = ca.authorize_security_group_ingress(GroupId=a["group_id"], IpPermissions=[a_rule])
    a["rule_id"] = rules["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    ca.create_tags(Resources=[a["rule_id"]], Tags=[tag])
    # A running instance (with a client token, to see whether B can reuse it).
    a["run_token"] = f"a-run-{uuid.uuid4()}"
    # Its address is one B's own guests never take: with a default VPC per account, the same
    # address in B's would be B's own, not a sight of A's.
    reservation = ca.run_instances(ImageId=public_image, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                   PrivateIpAddress="172.31.7.77",
                                   KeyName=a["key_name"], SecurityGroupIds=[a["group_id"]],
                                   ClientToken=a["run_token"],
                                   TagSpecifications=spec("instance") + spec("volume") + spec("network-interface"))
    a["instance"] = reservation["Instances"][0]["InstanceId"]
    a["reservation"] = reservation["ReservationId"]
    # Volumes: one to attach, one left available (with a client token).
    a["volume_token"] = f"a-vol-{uuid.uuid4()}"
    a["volume"] = ca.create_volume(AvailabilityZone=zone, Size=1, ClientToken=a["volume_token"],
                                   TagSpecifications=spec("volume"))["VolumeId"]
    a["attached_volume"] = ca.create_volume(AvailabilityZone=zone, Size=1,
                                            TagSpecifications=spec("volume"))["VolumeId"]

    # A VPC of A's own with its subnet, gateway and route table.
    a["own_vpc"] = ca.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=spec("vpc"))["Vpc"]["VpcId"]
    a["own_subnet"] = ca.create_subnet(VpcId=a["own_vpc"], CidrBlock="10.0.1.0/24",
                                       TagSpecifications=spec("subnet"))["Subnet"]["SubnetId"]
    a["igw"] = ca.create_internet_gateway(
        TagSpecifications=spec("internet-gateway"))["InternetGateway"]["InternetGatewayId"]
    ca.attach_internet_gateway(InternetGatewayId=a["igw"], VpcId=a["own_vpc"])
    a["rtb"] = ca.create_route_table(VpcId=a["own_vpc"],
                                     TagSpecifications=spec("route-table"))["RouteTable"]["RouteTableId"]
    ca.create_route(RouteTableId=a["rtb"], DestinationCidrBlock="0.0.0.0/0", GatewayId=a["igw"])
    a["rtbassoc"] = ca.associate_route_table(RouteTableId=a["rtb"], SubnetId=a["own_subnet"])["AssociationId"]
    a["acl"] = ca.describe_network_acls(**_f("vpc-id", a["own_vpc"]))["NetworkAcls"][0]["NetworkAclId"]
    # An instance in A's own VPC, with an Elastic IP.
    a["own_instance"] = ca.run_instances(ImageId=public_image, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                         SubnetId=a["own_subnet"],
                                         PrivateIpAddress="10.0.1.77")["Instances"][0]["InstanceId"]
    eip = ca.allocate_address(Domain="vpc", TagSpecifications=spec("elastic-ip"))
    a["eip"], a["public_ip"] = eip["AllocationId"], eip["PublicIp"]
    a["eipassoc"] = ca.associate_address(AllocationId=a["eip"], InstanceId=a["own_instance"])["AssociationId"]
    # A NAT gateway in A's own VPC, with an Elastic IP of its own.
    nat_eip = ca.allocate_address(Domain="vpc")["AllocationId"]
    a["nat"] = ca.create_nat_gateway(SubnetId=a["own_subnet"], AllocationId=nat_eip,
                                     TagSpecifications=spec("natgateway"))["NatGateway"]["NatGatewayId"]
    a["dopt"] = ca.describe_dhcp_options()["DhcpOptions"][0]["DhcpOptionsId"]
    # A network interface of A's own, with a secondary address, attached to A's own instance.
    a["own_eni"] = ca.create_network_interface(
        SubnetId=a["own_subnet"], PrivateIpAddresses=[{"PrivateIpAddress": "10.0.1.30", "Primary": True},
                                                      {"PrivateIpAddress": "10.0.1.31", "Primary": False}],
        TagSpecifications=spec("network-interface"))["NetworkInterface"]["NetworkInterfaceId"]
    wait_states(ca, [a["own_instance"]], "running", timeout=60)
    a["eni_attach"] = ca.attach_network_interface(NetworkInterfaceId=a["own_eni"], InstanceId=a["own_instance"],
                                                  DeviceIndex=1)["AttachmentId"]
    _wait(lambda: ca.describe_network_interfaces(NetworkInterfaceIds=[a["own_eni"]])["NetworkInterfaces"][0]
          .get("Attachment", {}).get("Status") == "attached", "A's interface to attach")

    # B's own resources: a group, a running instance, an available volume, a VPC like A's.
    b: dict[str, str] = {}
    b["vpc"] = cb.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    b["subnet"] = cb.create_subnet(VpcId=b["vpc"], CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    b["rtb"] = cb.create_route_table(VpcId=b["vpc"])["RouteTable"]["RouteTableId"]
    b["igw"] = cb.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    b["eip"] = cb.allocate_address(Domain="vpc")["AllocationId"]
    b["eni"] = cb.create_network_interface(SubnetId=b["subnet"])["NetworkInterface"]["NetworkInterfaceId"]
    b["group_id"] = cb.create_security_group(GroupName=f"b-sg-{secrets.token_hex(6)}",
                                             Description="group of B")["GroupId"]
    b["instance"] = cb.run_instances(ImageId=public_image, InstanceType="t3.nano", MinCount=1,
                                     MaxCount=1)["Instances"][0]["InstanceId"]
    b["volume"] = cb.create_volume(AvailabilityZone=zone, Size=1)["VolumeId"]
    b["attached_volume"] = cb.create_volume(AvailabilityZone=zone, Size=1)["VolumeId"]

    instance = wait_states(ca, [a["instance"]], "running", timeout=60)[0]
    wait_states(cb, [b["instance"]], "running", timeout=60)
    ca.get_waiter("volume_available").wait(VolumeIds=[a["volume"], a["attached_volume"]], WaiterConfig=FAST)
    cb.get_waiter("volume_available").wait(VolumeIds=[b["volume"], b["attached_volume"]], WaiterConfig=FAST)
    # The test driver cannot hot-plug: attach while stopped, as a real host would at the next start.
    for client, owner in ((ca, a), (cb, b)):
        client.stop_instances(InstanceIds=[owner["instance"]], Force=True)
    for client, owner in ((ca, a), (cb, b)):
        wait_states(client, [owner["instance"]], "stopped", timeout=60)
        client.attach_volume(VolumeId=owner["attached_volume"], InstanceId=owner["instance"], Device="/dev/sdf")
        _wait(lambda: (_volume(client, owner["attached_volume"])["Attachments"] or [{}])[0].get("State")
              == "attached", "a volume to attach")
        client.start_instances(InstanceIds=[owner["instance"]])
    for client, owner in ((ca, a), (cb, b)):
        wait_states(client, [owner["instance"]], "running", timeout=60)
    a["snapshot"] = ca.create_snapshot(VolumeId=a["volume"], Description="snapshot of A",
                                       TagSpecifications=spec("snapshot"))["SnapshotId"]
    a["image_name"] = f"a-image-{marker}"
    a["image"] = ca.create_image(InstanceId=a["instance"], Name=a["image_name"], Description="private image of A",
                                 TagSpecifications=spec("image"))["ImageId"]
    ca.get_waiter("snapshot_completed").wait(SnapshotIds=[a["snapshot"]], WaiterConfig=FAST)
    ca.get_waiter("image_available").wait(ImageIds=[a["image"]], WaiterConfig=FAST)
    instance = wait_states(ca, [a["instance"]], "running")[0]
    a["eni"] = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    a["private_ip"] = instance["PrivateIpAddress"]
    # Each account has a default VPC and subnets of its own (B's are different ids).
    a["subnet"], a["vpc"] = instance["SubnetId"], instance["VpcId"]
    a["root_volume"] = next(m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]
                            if m["DeviceName"] == instance["RootDeviceName"])
    image_files = sorted((server.data_dir / "images" / a["image"]).iterdir())
    assert image_files, f"no files under images/{a['image']}"
    a["image_path"] = str(next((f for f in image_files if f.name == "disk.qcow2"), image_files[0]))
    taggable = [a[k] for k in ALL_TAGGABLE.split()]
    tagged = {t["ResourceId"] for t in ca.describe_tags(Filters=[{"Name": "key", "Values": [tag["Key"]]}])["Tags"]}
    assert tagged == set(taggable), f"A's tag is missing on {set(taggable) - tagged}"
    # Not A's: the pool's host (admin-only actions must refuse B alike for a real and a made-up
    # host id), and a migration id: none can exist on a one-host pool, so that row can only
    # compare one made-up id with another.
    a["host"] = admin_ext.describe_hosts()["Hosts"][0]["HostId"]
    a["migration"] = "mig-" + secrets.token_hex(9)[:17]

    assert ca.describe_images(ImageIds=[a["image"]])["Images"][0]["Public"] is False
    w = World(server=server, a_acct=a_acct, b_acct=b_acct, ca=ca, cb=cb, sb=sb, zone=zone,
              public_image=public_image, a=a, b=b, a_rule=a_rule)
    a_default = ca.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    b_default = cb.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    w.b["default_group"] = b_default
    w.a_default_group = a_default
    iface = instance["NetworkInterfaces"][0]
    w.forbidden_tag_key, w.a_fingerprint = tag["Key"], key["KeyFingerprint"]
    w.b_public_key = ED25519_PUBLIC
    w.a_ip, w.a_mac, w.a_subnet = instance["PrivateIpAddress"], iface["MacAddress"], instance["SubnetId"]
    w.forbidden = sorted({v for k, v in a.items() if k not in ("host", "migration", "image_path", "private_ip")}
                         | {a_acct.account_id, marker, key["KeyFingerprint"], instance["PrivateIpAddress"],
                            iface["MacAddress"], instance["PrivateDnsName"]}
                         | ({a_default} if a_default != b_default else set()))
    # Status checks come from the monitoring's samples: settled before A's state is taken.
    for instance_id in (a["instance"], a["own_instance"]):
        ca.get_waiter("instance_status_ok").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    w.cwb = cloudwatch(server, b_acct.access_key, b_acct.secret_key)
    # A custom metric of A's (PutMetricData), named by a dimension value of its own.
    a["custom_metric"] = f"shard-{secrets.token_hex(8)}"
    cloudwatch(server, a_acct.access_key, a_acct.secret_key).put_metric_data(Namespace=CUSTOM_NAMESPACE, MetricData=[
        {"MetricName": "Orders", "Dimensions": [{"Name": "Shard", "Value": a["custom_metric"]}], "Value": 1.0}])
    w.forbidden.append(a["custom_metric"])
    w.baseline = w.last_state = a_state(w)
    assert a_state(w) == w.baseline, "A's state is not stable between two reads: the checks would be noise"
    return w


def _strip(resp: dict) -> dict:
    resp = dict(resp)
    resp.pop("ResponseMetadata", None)
    return resp


def _try(call) -> Any:
    try:
        return _strip(call())
    except ClientError as e:
        return {"error": e.response["Error"]}


def a_state(w: World) -> dict:
    """Everything A can read about its own resources (and which resources A has)."""
    ca, a = w.ca, w.a
    volumes = [a["volume"], a["attached_volume"], a["root_volume"]]
    state = {
        "instance": _try(lambda: ca.describe_instances(InstanceIds=[a["instance"]])),
        "status": _try(lambda: ca.describe_instance_status(InstanceIds=[a["instance"]], IncludeAllInstances=True)),
        "credits": _try(lambda: ca.describe_instance_credit_specifications(InstanceIds=[a["instance"]])),
        "volumes": _try(lambda: ca.describe_volumes(VolumeIds=volumes)),
        "modifications": _try(lambda: ca.describe_volumes_modifications(VolumeIds=volumes)),
        "snapshot": _try(lambda: ca.describe_snapshots(SnapshotIds=[a["snapshot"]])),
        "image": _try(lambda: ca.describe_images(ImageIds=[a["image"]])),
        "key": _try(lambda: ca.describe_key_pairs(KeyPairIds=[a["key_id"]])),
        "groups": _try(lambda: ca.describe_security_groups(GroupIds=[a["group_id"]])),
        "rules": _try(lambda: ca.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [a["group_id"]]}])),
        "eni": _try(lambda: ca.describe_network_interfaces(NetworkInterfaceIds=[a["eni"]])),
        "own_eni": _try(lambda: ca.describe_network_interfaces(NetworkInterfaceIds=[a["own_eni"]])),
        "all_enis": _try(lambda: ca.describe_network_interfaces()),
        "tags": _try(lambda: ca.describe_tags(MaxResults=1000)),
        "ebs_defaults": [_try(ca.get_ebs_encryption_by_default).get("EbsEncryptionByDefault"),
                         _try(ca.get_ebs_default_kms_key_id).get("KmsKeyId")],
        "serial_console": _try(ca.get_serial_console_access_status).get("SerialConsoleAccessEnabled"),
        # Which resources A has: nothing B does may add one to A's account.
        "all_instances": sorted(i["InstanceId"] for r in ca.describe_instances()["Reservations"]
                                for i in r["Instances"]),
        "all_volumes": sorted(v["VolumeId"] for v in ca.describe_volumes()["Volumes"]),
        "all_snapshots": sorted(s["SnapshotId"] for s in ca.describe_snapshots(OwnerIds=["self"])["Snapshots"]),
        "all_images": sorted(i["ImageId"] for i in ca.describe_images(Owners=["self"])["Images"]),
        "all_keys": sorted(k["KeyPairId"] for k in ca.describe_key_pairs()["KeyPairs"]),
        "all_groups": _try(lambda: ca.describe_security_groups()),
        "vpcs": _try(lambda: ca.describe_vpcs()),
        "subnets": _try(lambda: ca.describe_subnets()),
        "gateways": _try(lambda: ca.describe_internet_gateways()),
        "route_tables": _try(lambda: ca.describe_route_tables()),
        "acls": _try(lambda: ca.describe_network_acls()),
        "dhcp": _try(lambda: ca.describe_dhcp_options()),
        "addresses": _try(lambda: ca.describe_addresses()),
        "nat_gateways": _try(lambda: ca.describe_nat_gateways()),
        "launch_templates": _try(lambda: ca.describe_launch_templates()),
        "lt_versions": _try(lambda: ca.describe_launch_template_versions(LaunchTemplateId=a["lt"])),
    }
    for attribute in ("enableDnsSupport", "enableDnsHostnames"):
        state[f"vpc:{attribute}"] = _try(lambda: ca.describe_vpc_attribute(VpcId=a["own_vpc"], Attribute=attribute))
    for attribute in ("instanceType", "userData", "disableApiTermination", "disableApiStop",
                      "instanceInitiatedShutdownBehavior", "groupSet", "sourceDestCheck"):
        state[f"attr:{attribute}"] = _try(
            lambda: ca.describe_instance_attribute(InstanceId=a["instance"], Attribute=attribute))
    for attribute in ("description", "groupSet", "sourceDestCheck", "attachment"):
        state[f"eni:{attribute}"] = _try(
            lambda: ca.describe_network_interface_attribute(NetworkInterfaceId=a["own_eni"], Attribute=attribute))
    state["snapshot:createVolumePermission"] = _try(lambda: ca.describe_snapshot_attribute(
        SnapshotId=a["snapshot"], Attribute="createVolumePermission"))
    for attribute in ("launchPermission", "description"):
        state[f"image:{attribute}"] = _try(lambda: ca.describe_image_attribute(ImageId=a["image"],
                                                                               Attribute=attribute))
    return json.loads(json.dumps(state, default=str, sort_keys=True))


def state_diff(before: Any, after: Any, path: str = "") -> str:
    """Where two reads of A's state differ, as `path: before -> after` lines."""
    if isinstance(before, dict) and isinstance(after, dict):
        return "".join(state_diff(before.get(k), after.get(k), f"{path}.{k}")
                       for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k))
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return "".join(state_diff(b, a, f"{path}[{i}]") for i, (b, a) in enumerate(zip(before, after)) if b != a)
    return f"  {path}: {json.dumps(before, sort_keys=True)[:600]} -> {json.dumps(after, sort_keys=True)[:600]}\n"


# --- answers ------------------------------------------------------------------------------------


def fresh(value: str, kind: str = "") -> str:
    """A value of the same shape that names nothing: every run of 8+ hex digits redrawn."""
    if kind == "private_ip":  # a free address of the default subnet (172.31.0.0/20), far from the used ones
        return f"172.31.15.{100 + secrets.randbelow(150)}"
    if kind == "public_ip":  # an address of the public pool nobody holds (few are allocated, from the bottom)
        return f"198.51.100.{200 + secrets.randbelow(50)}"
    out = re.sub(r"[0-9a-f]{8,}", lambda m: secrets.token_hex(len(m.group()))[:len(m.group())], value)
    assert out != value, value
    return out


def leaks(text: str, forbidden: list[str], except_for: str) -> list[str]:
    """What of A's `text` shows, but for the value B passed in and what it names by itself (an
    address's private DNS name: B's own instance at the same address in B's own VPC has it)."""
    echoes = {except_for}
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", except_for):
        echoes.add(f"ip-{except_for.replace('.', '-')}.ec2.internal")
    for echo in echoes:
        text = text.replace(echo, PLACEHOLDER)
    return [s for s in forbidden
            if s not in echoes and re.search(r"(?<![0-9A-Za-z.])" + re.escape(s) + r"(?![0-9A-Za-z])", text)]


@dataclass
class Answer:
    status: int
    code: str | None
    message: str  # the error message, or the (normalised) success body
    leaked: list[str]

    def key(self):
        return self.status, self.code, self.message

    def __str__(self):
        text = f"{self.status} {self.code or 'OK'}: {self.message[:600]}"
        return text + (f"  [names A's: {self.leaked}]" if self.leaked else "")


def answer(row: "Row", client, value: str, w: World) -> Answer:
    try:
        resp = row.call(client, value, w)
    except ClientError as e:
        err = e.response.get("Error", {})
        message = err.get("Message") or ""
        return Answer(e.response["ResponseMetadata"]["HTTPStatusCode"], err.get("Code"),
                      message.replace(value, PLACEHOLDER), leaks(message, w.forbidden, value))
    body = json.dumps(_strip(resp), default=str, sort_keys=True)
    leaked = leaks(body, w.forbidden, value)
    shown = row.normalize(_strip(resp)) if row.normalize else body
    return Answer(resp["ResponseMetadata"]["HTTPStatusCode"], None, str(shown).replace(value, PLACEHOLDER), leaked)


# --- the table ------------------------------------------------------------------------------------


@dataclass
class Row:
    action: str
    kinds: tuple[str, ...]
    call: Callable[[Any, str, World], dict]  # (B's client, value, world) -> response
    ext: bool = False  # the Stratus extensions client
    normalize: Callable[[dict], Any] | None = None  # for answers that are fresh per call (new ids)
    note: str = ""
    # A known hole, with the issue that closes it: the row must fail until then (strict).
    known_hole: str = ""


CUSTOM_NAMESPACE = "Shop/cross-account"


def _metric_window() -> dict:
    """The last hour, to a minute from now."""
    now = time.time()
    return {"StartTime": now - 3600, "EndTime": now + 60}


def R(action, kinds, call, **kw) -> Row:
    return Row(action, tuple(kinds.split()), call, **kw)


def keys_only(resp: dict) -> Any:
    """A success that creates something of B's own: only its shape can be compared."""
    return sorted(resp)


def _run(c, w, **kw):
    params = dict(ImageId=w.public_image, InstanceType="t3.nano", MinCount=1, MaxCount=1)
    params.update(kw)
    return c.run_instances(**params)


def _run_and_terminate(c, x, w):
    resp = _run(c, w, ClientToken=x)
    try:
        c.terminate_instances(InstanceIds=[i["InstanceId"] for i in resp["Instances"]])
    except ClientError:
        pass  # the answer above is what is compared
    return resp


def _create_key_and_delete(c, x, w):
    resp = c.create_key_pair(KeyName=x, KeyType="ed25519")
    c.delete_key_pair(KeyPairId=resp["KeyPairId"])
    return resp


def _create_group_and_delete(c, x, w, **kw):
    resp = c.create_security_group(GroupName=x, Description="same name as A", **kw)
    c.delete_security_group(GroupId=resp["GroupId"])
    return resp


def _import_key_and_delete(c, x, w):
    resp = c.import_key_pair(KeyName=x, PublicKeyMaterial=w.b_public_key.encode())
    c.delete_key_pair(KeyPairId=resp["KeyPairId"])
    return resp


def _create_template_and_delete(c, x, w):
    resp = c.create_launch_template(LaunchTemplateName=x, LaunchTemplateData={"InstanceType": "t3.nano"})
    c.delete_launch_template(LaunchTemplateId=resp["LaunchTemplate"]["LaunchTemplateId"])
    return resp


def _run_from_template(c, w, **template):
    resp = c.run_instances(MinCount=1, MaxCount=1, LaunchTemplate=template)
    c.terminate_instances(InstanceIds=[i["InstanceId"] for i in resp["Instances"]])
    return resp


def _run_at_ip(c, x, w):
    resp = _run(c, w, PrivateIpAddress=x)
    c.terminate_instances(InstanceIds=[i["InstanceId"] for i in resp["Instances"]])
    return resp


def _name():
    return f"b-{uuid.uuid4().hex[:12]}"


PERM_NEW = [{"IpProtocol": "tcp", "FromPort": 8443, "ToPort": 8443, "IpRanges": [{"CidrIp": "10.9.0.0/16"}]}]
ALL_EGRESS = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
TAG_B = [{"Key": "set-by", "Value": "b"}]
ALL_TAGGABLE = ("instance volume attached_volume root_volume snapshot image key_id group_id rule_id eni own_vpc "
                "own_subnet igw rtb eip nat own_eni lt")

ROWS: list[Row] = [
    # Reads.
    R("DescribeInstances", "instance", lambda c, x, w: c.describe_instances(InstanceIds=[x])),
    R("DescribeInstances(B's and A's)", "instance",
      lambda c, x, w: c.describe_instances(InstanceIds=[w.b["instance"], x])),
    R("DescribeInstances(filter instance-id)", "instance",
      lambda c, x, w: c.describe_instances(Filters=[{"Name": "instance-id", "Values": [x]}])),
    R("DescribeInstances(filter reservation-id)", "reservation",
      lambda c, x, w: c.describe_instances(Filters=[{"Name": "reservation-id", "Values": [x]}])),
    R("DescribeInstances(filter image-id)", "image",
      lambda c, x, w: c.describe_instances(Filters=[{"Name": "image-id", "Values": [x]}])),
    R("DescribeInstances(filter key-name)", "key_name",
      lambda c, x, w: c.describe_instances(Filters=[{"Name": "key-name", "Values": [x]}])),
    R("DescribeInstanceStatus", "instance",
      lambda c, x, w: c.describe_instance_status(InstanceIds=[x], IncludeAllInstances=True)),
    R("DescribeInstanceAttribute(instanceType)", "instance",
      lambda c, x, w: c.describe_instance_attribute(InstanceId=x, Attribute="instanceType")),
    R("DescribeInstanceAttribute(userData)", "instance",
      lambda c, x, w: c.describe_instance_attribute(InstanceId=x, Attribute="userData")),
    R("DescribeInstanceCreditSpecifications", "instance",
      lambda c, x, w: c.describe_instance_credit_specifications(InstanceIds=[x])),
    R("DescribeVolumes", "volume attached_volume root_volume", lambda c, x, w: c.describe_volumes(VolumeIds=[x])),
    R("DescribeVolumes(filter attachment.instance-id)", "instance",
      lambda c, x, w: c.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [x]}])),
    R("DescribeVolumes(filter volume-id)", "volume",
      lambda c, x, w: c.describe_volumes(Filters=[{"Name": "volume-id", "Values": [x]}])),
    R("DescribeVolumesModifications", "volume attached_volume root_volume",
      lambda c, x, w: c.describe_volumes_modifications(VolumeIds=[x])),
    R("DescribeSnapshots", "snapshot", lambda c, x, w: c.describe_snapshots(SnapshotIds=[x])),
    R("DescribeSnapshots(filter volume-id)", "volume",
      lambda c, x, w: c.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [x]}])),
    R("DescribeImages", "image", lambda c, x, w: c.describe_images(ImageIds=[x])),
    R("DescribeImages(filter name)", "image_name",
      lambda c, x, w: c.describe_images(Filters=[{"Name": "name", "Values": [x]}])),
    R("DescribeImageAttribute(launchPermission)", "image",
      lambda c, x, w: c.describe_image_attribute(ImageId=x, Attribute="launchPermission")),
    R("DescribeImageAttribute(description)", "image",
      lambda c, x, w: c.describe_image_attribute(ImageId=x, Attribute="description")),
    R("DescribeKeyPairs(by id)", "key_id", lambda c, x, w: c.describe_key_pairs(KeyPairIds=[x])),
    R("DescribeKeyPairs(by name)", "key_name", lambda c, x, w: c.describe_key_pairs(KeyNames=[x])),
    R("DescribeSecurityGroups(by id)", "group_id", lambda c, x, w: c.describe_security_groups(GroupIds=[x])),
    R("DescribeSecurityGroups(by name)", "group_name",
      lambda c, x, w: c.describe_security_groups(GroupNames=[x])),
    R("DescribeSecurityGroupRules(by id)", "rule_id",
      lambda c, x, w: c.describe_security_group_rules(SecurityGroupRuleIds=[x])),
    R("DescribeSecurityGroupRules(filter group-id)", "group_id",
      lambda c, x, w: c.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [x]}])),
    R("DescribeNetworkInterfaces", "eni own_eni",
      lambda c, x, w: c.describe_network_interfaces(NetworkInterfaceIds=[x])),
    R("DescribeNetworkInterfaces(filter attachment.attachment-id)", "eni_attach",
      lambda c, x, w: c.describe_network_interfaces(Filters=[{"Name": "attachment.attachment-id", "Values": [x]}])),
    *[R(f"DescribeNetworkInterfaceAttribute({attribute})", "eni own_eni",
        (lambda attribute: lambda c, x, w: c.describe_network_interface_attribute(
            NetworkInterfaceId=x, Attribute=attribute))(attribute))
      for attribute in ("description", "groupSet", "sourceDestCheck", "attachment")],
    R("DescribeNetworkInterfaces(filter attachment.instance-id)", "instance",
      lambda c, x, w: c.describe_network_interfaces(Filters=[{"Name": "attachment.instance-id", "Values": [x]}])),
    R("DescribeNetworkInterfaces(filter group-id)", "group_id",
      lambda c, x, w: c.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [x]}])),
    R("DescribeTags(filter resource-id)", ALL_TAGGABLE,
      lambda c, x, w: c.describe_tags(Filters=[{"Name": "resource-id", "Values": [x]}])),
    R("DescribeSubnets", "subnet own_subnet", lambda c, x, w: c.describe_subnets(SubnetIds=[x])),
    R("DescribeSubnets(filter vpc-id)", "vpc", lambda c, x, w: c.describe_subnets(Filters=[{"Name": "vpc-id",
                                                                                            "Values": [x]}])),
    R("DescribeVpcs", "vpc own_vpc", lambda c, x, w: c.describe_vpcs(VpcIds=[x])),
    R("DescribeVpcAttribute", "vpc own_vpc",
      lambda c, x, w: c.describe_vpc_attribute(VpcId=x, Attribute="enableDnsSupport")),
    R("DescribeInternetGateways", "igw", lambda c, x, w: c.describe_internet_gateways(InternetGatewayIds=[x])),
    R("DescribeInternetGateways(filter attachment.vpc-id)", "own_vpc vpc",
      lambda c, x, w: c.describe_internet_gateways(**_f("attachment.vpc-id", x))),
    R("DescribeRouteTables", "rtb", lambda c, x, w: c.describe_route_tables(RouteTableIds=[x])),
    R("DescribeRouteTables(filter vpc-id)", "own_vpc vpc", lambda c, x, w: c.describe_route_tables(**_f("vpc-id", x))),
    R("DescribeRouteTables(filter association id)", "rtbassoc",
      lambda c, x, w: c.describe_route_tables(**_f("association.route-table-association-id", x))),
    R("DescribeRouteTables(filter route.gateway-id)", "igw",
      lambda c, x, w: c.describe_route_tables(**_f("route.gateway-id", x))),
    R("DescribeNetworkAcls", "acl", lambda c, x, w: c.describe_network_acls(NetworkAclIds=[x])),
    R("DescribeNetworkAcls(filter vpc-id)", "own_vpc vpc", lambda c, x, w: c.describe_network_acls(**_f("vpc-id", x))),
    R("DescribeDhcpOptions", "dopt", lambda c, x, w: c.describe_dhcp_options(DhcpOptionsIds=[x])),
    R("DescribeNatGateways", "nat", lambda c, x, w: c.describe_nat_gateways(NatGatewayIds=[x])),
    R("DescribeNatGateways(filter subnet-id)", "own_subnet",
      lambda c, x, w: c.describe_nat_gateways(Filter=[{"Name": "subnet-id", "Values": [x]}])),
    R("CreateNatGateway(A's subnet, B's address)", "own_subnet subnet",
      lambda c, x, w: c.create_nat_gateway(SubnetId=x, AllocationId=w.b["eip"])),
    R("CreateNatGateway(B's subnet, A's address)", "eip",
      lambda c, x, w: c.create_nat_gateway(SubnetId=w.b["subnet"], AllocationId=x)),
    R("CreateRoute(B's table, A's NAT gateway)", "nat", lambda c, x, w: c.create_route(
        RouteTableId=w.b["rtb"], DestinationCidrBlock="192.0.2.0/24", NatGatewayId=x)),
    R("DescribeAddresses", "eip", lambda c, x, w: c.describe_addresses(AllocationIds=[x])),
    R("DescribeAddresses(PublicIps)", "public_ip", lambda c, x, w: c.describe_addresses(PublicIps=[x])),
    R("DescribeAddresses(filter instance-id)", "own_instance",
      lambda c, x, w: c.describe_addresses(**_f("instance-id", x))),
    R("DescribeAddressesAttribute", "eip",
      lambda c, x, w: c.describe_addresses_attribute(AllocationIds=[x], Attribute="domain-name")),
    R("AssociateAddress(A's address, B's instance)", "eip",
      lambda c, x, w: c.associate_address(AllocationId=x, InstanceId=w.b["instance"])),
    R("AssociateAddress(A's public IP, B's instance)", "public_ip",
      lambda c, x, w: c.associate_address(PublicIp=x, InstanceId=w.b["instance"])),
    R("DisassociateAddress", "eipassoc", lambda c, x, w: c.disassociate_address(AssociationId=x)),
    R("DisassociateAddress(PublicIp)", "public_ip", lambda c, x, w: c.disassociate_address(PublicIp=x)),
    R("ReleaseAddress", "eip", lambda c, x, w: c.release_address(AllocationId=x)),
    R("ReleaseAddress(PublicIp)", "public_ip", lambda c, x, w: c.release_address(PublicIp=x)),
    R("DescribeSecurityGroups(filter vpc-id)", "vpc",
      lambda c, x, w: c.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [x]}])),
    R("DescribeInstances(filter subnet-id)", "subnet",
      lambda c, x, w: c.describe_instances(Filters=[{"Name": "subnet-id", "Values": [x]}])),
    R("DescribeInstances(filter vpc-id)", "vpc",
      lambda c, x, w: c.describe_instances(Filters=[{"Name": "vpc-id", "Values": [x]}])),
    R("DescribeNetworkInterfaces(filter subnet-id)", "subnet",
      lambda c, x, w: c.describe_network_interfaces(Filters=[{"Name": "subnet-id", "Values": [x]}])),
    R("GetConsoleOutput", "instance", lambda c, x, w: c.get_console_output(InstanceId=x)),
    R("GetInstanceUefiData", "instance", lambda c, x, w: c.get_instance_uefi_data(InstanceId=x)),
    # Stratus extensions: admin only; B is refused alike whatever the id.
    R("DescribeHosts", "host", lambda c, x, w: c.describe_hosts(HostIds=[x]), ext=True),
    R("ModifyHosts", "host", lambda c, x, w: c.modify_hosts(HostIds=[x], HostMaintenance="on"), ext=True),
    R("MigrateInstance", "instance", lambda c, x, w: c.migrate_instance(InstanceId=x), ext=True),
    R("MigrateInstance(DryRun)", "instance", lambda c, x, w: c.migrate_instance(InstanceId=x, DryRun=True),
      ext=True),
    R("MigrateInstance(B's, to host)", "host",
      lambda c, x, w: c.migrate_instance(InstanceId=w.b["instance"], TargetHostId=x), ext=True),
    R("EstimateInstanceMigration", "instance", lambda c, x, w: c.estimate_instance_migration(InstanceId=x), ext=True),
    R("EstimateInstanceMigration(B's, to host)", "host",
      lambda c, x, w: c.estimate_instance_migration(InstanceId=w.b["instance"], TargetHostId=x), ext=True),
    R("DescribeInstanceMigrations(filter instance-id)", "instance",
      lambda c, x, w: c.describe_instance_migrations(Filters=[{"Name": "instance-id", "Values": [x]}]), ext=True),
    R("DescribeInstanceMigrations", "migration",
      lambda c, x, w: c.describe_instance_migrations(MigrationIds=[x]), ext=True,
      note="no migration can exist on a one-host pool: a made-up id against another"),
    R("CancelInstanceMigration", "migration", lambda c, x, w: c.cancel_instance_migration(MigrationId=x),
      ext=True, note="no migration can exist on a one-host pool: a made-up id against another"),
    R("StartInstanceMigrationPostCopy", "migration",
      lambda c, x, w: c.start_instance_migration_post_copy(MigrationId=x),
      ext=True, note="no migration can exist on a one-host pool: a made-up id against another"),
    # Things B makes from, or with, A's resources.
    R("CreateImage(from A's instance)", "instance", lambda c, x, w: c.create_image(InstanceId=x, Name=_name())),
    R("CreateImage(B's instance, A's image name)", "image_name",
      lambda c, x, w: c.create_image(InstanceId=w.b["instance"], Name=x), normalize=keys_only),
    R("RunInstances(ImageId)", "image", lambda c, x, w: _run(c, w, ImageId=x)),
    R("ModifyInstanceAttribute(Kernel)", "image", lambda c, x, w: c.modify_instance_attribute(
        InstanceId=w.b["instance"], Kernel={"Value": x})),
    R("RunInstances(KeyName)", "key_name", lambda c, x, w: _run(c, w, KeyName=x)),
    R("RunInstances(SubnetId)", "subnet", lambda c, x, w: _run(c, w, SubnetId=x)),
    R("RunInstances(SecurityGroupIds)", "group_id", lambda c, x, w: _run(c, w, SecurityGroupIds=[x])),
    R("RunInstances(SecurityGroups by name)", "group_name", lambda c, x, w: _run(c, w, SecurityGroups=[x])),
    R("RunInstances(a further interface: A's)", "eni own_eni", lambda c, x, w: _run(c, w, NetworkInterfaces=[
        {"DeviceIndex": 0, "SubnetId": w.b["subnet"]}, {"DeviceIndex": 1, "NetworkInterfaceId": x}])),
    R("RunInstances(A's interface as the primary one)", "eni own_eni", lambda c, x, w: _run(
        c, w, NetworkInterfaces=[{"DeviceIndex": 0, "NetworkInterfaceId": x}])),
    R("RunInstances(a further interface in A's subnet)", "own_subnet subnet", lambda c, x, w: _run(
        c, w, NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": w.b["subnet"]}, {"DeviceIndex": 1, "SubnetId": x}])),
    R("RunInstances(ImageId, DryRun)", "image", lambda c, x, w: _run(c, w, ImageId=x, DryRun=True)),
    R("RunInstances(A's ClientToken)", "run_token", _run_and_terminate, normalize=keys_only),
    R("RunInstances(BlockDeviceMappings SnapshotId)", "snapshot", lambda c, x, w: _run(
        c, w, BlockDeviceMappings=[{"DeviceName": "/dev/vda", "Ebs": {"SnapshotId": x}}])),
    R("RunInstances(PrivateIpAddress)", "private_ip", _run_at_ip, normalize=keys_only,
      note="each account's default VPC is a network of its own: A's address is free in B's"),
    R("RunInstances(BlockDeviceMappings SnapshotId, a further device)", "snapshot", lambda c, x, w: _run(
        c, w, BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": x}}])),
    R("CopyImage", "image", lambda c, x, w: c.copy_image(SourceImageId=x, SourceRegion=w.zone[:-1], Name=_name())),
    R("CopySnapshot", "snapshot", lambda c, x, w: c.copy_snapshot(SourceSnapshotId=x, SourceRegion=w.zone[:-1])),
    R("CopySnapshot(Encrypted)", "snapshot", lambda c, x, w: c.copy_snapshot(
        SourceSnapshotId=x, SourceRegion=w.zone[:-1], Encrypted=True)),
    R("CreateVolume(SnapshotId, Encrypted)", "snapshot", lambda c, x, w: c.create_volume(
        AvailabilityZone=w.zone, SnapshotId=x, Encrypted=True)),
    R("CreateSnapshots(A's instance)", "instance",
      lambda c, x, w: c.create_snapshots(InstanceSpecification={"InstanceId": x})),
    R("CreateSnapshots(excluding A's volume)", "attached_volume", lambda c, x, w: c.create_snapshots(
        InstanceSpecification={"InstanceId": w.b["instance"], "ExcludeDataVolumeIds": [x]})),
    R("DescribeSnapshotAttribute", "snapshot", lambda c, x, w: c.describe_snapshot_attribute(
        SnapshotId=x, Attribute="createVolumePermission")),
    R("ModifySnapshotAttribute", "snapshot", lambda c, x, w: c.modify_snapshot_attribute(
        SnapshotId=x, CreateVolumePermission={"Add": [{"UserId": w.b_acct.account_id}]})),
    R("ModifySnapshotAttribute(group all)", "snapshot", lambda c, x, w: c.modify_snapshot_attribute(
        SnapshotId=x, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"])),
    R("ResetSnapshotAttribute", "snapshot", lambda c, x, w: c.reset_snapshot_attribute(
        SnapshotId=x, Attribute="createVolumePermission")),
    R("ModifyImageAttribute(launchPermission)", "image", lambda c, x, w: c.modify_image_attribute(
        ImageId=x, LaunchPermission={"Add": [{"UserId": w.b_acct.account_id}]})),
    R("ModifyImageAttribute(group all)", "image", lambda c, x, w: c.modify_image_attribute(
        ImageId=x, Attribute="launchPermission", OperationType="add", UserGroups=["all"])),
    R("ModifyImageAttribute(description)", "image", lambda c, x, w: c.modify_image_attribute(
        ImageId=x, Description={"Value": "set by b"})),
    R("ResetImageAttribute", "image", lambda c, x, w: c.reset_image_attribute(ImageId=x, Attribute="launchPermission")),
    R("CreateVolume(SnapshotId)", "snapshot",
      lambda c, x, w: c.create_volume(AvailabilityZone=w.zone, SnapshotId=x)),
    R("CreateVolume(A's ClientToken)", "volume_token",
      lambda c, x, w: c.create_volume(AvailabilityZone=w.zone, Size=1, ClientToken=x), normalize=keys_only),
    R("CreateSnapshot", "volume attached_volume root_volume", lambda c, x, w: c.create_snapshot(VolumeId=x)),
    R("CreateKeyPair(A's key name)", "key_name", _create_key_and_delete, normalize=keys_only),
    R("ImportKeyPair(A's key name)", "key_name", _import_key_and_delete, normalize=keys_only),
    R("CreateSecurityGroup(A's group name)", "group_name", _create_group_and_delete, normalize=keys_only),
    R("CreateSecurityGroup(in A's VPC)", "vpc", lambda c, x, w: _create_group_and_delete(c, _name(), w, VpcId=x),
      normalize=keys_only),
    R("RegisterImage(ImageLocation)", "image_path",
      lambda c, x, w: c.register_image(Name=_name(), ImageLocation=x)),
    R("AttachVolume(A's volume to B's instance)", "volume attached_volume root_volume",
      lambda c, x, w: c.attach_volume(VolumeId=x, InstanceId=w.b["instance"], Device="/dev/sdg")),
    R("AttachVolume(B's volume to A's instance)", "instance",
      lambda c, x, w: c.attach_volume(VolumeId=w.b["volume"], InstanceId=x, Device="/dev/sdg")),
    R("AttachVolume(DryRun)", "volume",
      lambda c, x, w: c.attach_volume(VolumeId=x, InstanceId=w.b["instance"], Device="/dev/sdg", DryRun=True)),
    R("AuthorizeSecurityGroupIngress(B's group, source A's group)", "group_id",
      lambda c, x, w: c.authorize_security_group_ingress(GroupId=w.b["group_id"], IpPermissions=[
          {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": x}]}])),
    R("AuthorizeSecurityGroupIngress(B's group, source A's account and group)", "group_id",
      lambda c, x, w: c.authorize_security_group_ingress(GroupId=w.b["group_id"], IpPermissions=[
          {"IpProtocol": "tcp", "FromPort": 5433, "ToPort": 5433,
           "UserIdGroupPairs": [{"GroupId": x, "UserId": w.a_acct.account_id}]}])),
    R("AuthorizeSecurityGroupIngress(B's group, source A's group name)", "group_name",
      lambda c, x, w: c.authorize_security_group_ingress(GroupId=w.b["group_id"], IpPermissions=[
          {"IpProtocol": "tcp", "FromPort": 5434, "ToPort": 5434, "UserIdGroupPairs": [{"GroupName": x}]}])),
    R("RevokeSecurityGroupIngress(B's group, source A's group)", "group_id",
      lambda c, x, w: c.revoke_security_group_ingress(GroupId=w.b["group_id"], IpPermissions=[
          {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": x}]}])),
    R("ModifyInstanceAttribute(B's instance, groupSet A's group)", "group_id",
      lambda c, x, w: c.modify_instance_attribute(InstanceId=w.b["instance"], Groups=[x])),
    # Changes to A's resources.
    R("CreateTags", ALL_TAGGABLE, lambda c, x, w: c.create_tags(Resources=[x], Tags=TAG_B)),
    R("CreateTags(B's and A's)", "instance volume",
      lambda c, x, w: c.create_tags(Resources=[w.b["volume"], x], Tags=TAG_B)),
    R("CreateTags(DryRun)", "instance", lambda c, x, w: c.create_tags(Resources=[x], Tags=TAG_B, DryRun=True)),
    R("DeleteTags(by key)", ALL_TAGGABLE,
      lambda c, x, w: c.delete_tags(Resources=[x], Tags=[{"Key": w.forbidden_tag_key}])),
    R("DeleteTags(all)", ALL_TAGGABLE, lambda c, x, w: c.delete_tags(Resources=[x])),
    R("ModifyInstanceAttribute(disableApiTermination)", "instance",
      lambda c, x, w: c.modify_instance_attribute(InstanceId=x, DisableApiTermination={"Value": True})),
    R("ModifyInstanceAttribute(groupSet)", "instance",
      lambda c, x, w: c.modify_instance_attribute(InstanceId=x, Groups=[w.b["group_id"]])),
    R("ModifyInstanceAttribute(instanceInitiatedShutdownBehavior)", "instance",
      lambda c, x, w: c.modify_instance_attribute(InstanceId=x,
                                                  InstanceInitiatedShutdownBehavior={"Value": "terminate"})),
    R("ModifyInstanceCreditSpecification", "instance",
      lambda c, x, w: c.modify_instance_credit_specification(
          InstanceCreditSpecifications=[{"InstanceId": x, "CpuCredits": "standard"}])),
    R("ModifyInstanceMetadataOptions", "instance",
      lambda c, x, w: c.modify_instance_metadata_options(InstanceId=x, HttpTokens="required")),
    R("ModifyVolume", "volume attached_volume root_volume", lambda c, x, w: c.modify_volume(VolumeId=x, Size=2)),
    R("ModifyVolume(DryRun)", "volume", lambda c, x, w: c.modify_volume(VolumeId=x, Size=2, DryRun=True)),
    R("AuthorizeSecurityGroupIngress", "group_id",
      lambda c, x, w: c.authorize_security_group_ingress(GroupId=x, IpPermissions=PERM_NEW)),
    R("AuthorizeSecurityGroupIngress(by name)", "group_name",
      lambda c, x, w: c.authorize_security_group_ingress(GroupName=x, IpPermissions=PERM_NEW)),
    R("AuthorizeSecurityGroupEgress", "group_id",
      lambda c, x, w: c.authorize_security_group_egress(GroupId=x, IpPermissions=PERM_NEW)),
    R("RevokeSecurityGroupIngress(A's rule)", "group_id",
      lambda c, x, w: c.revoke_security_group_ingress(GroupId=x, IpPermissions=[w.a_rule])),
    R("RevokeSecurityGroupIngress(by name)", "group_name",
      lambda c, x, w: c.revoke_security_group_ingress(GroupName=x, IpPermissions=[w.a_rule])),
    R("RevokeSecurityGroupIngress(rule id, A's group)", "group_id",
      lambda c, x, w: c.revoke_security_group_ingress(GroupId=x, SecurityGroupRuleIds=[w.a["rule_id"]])),
    R("RevokeSecurityGroupIngress(rule id, B's group)", "rule_id",
      lambda c, x, w: c.revoke_security_group_ingress(GroupId=w.b["group_id"], SecurityGroupRuleIds=[x])),
    R("RevokeSecurityGroupEgress", "group_id",
      lambda c, x, w: c.revoke_security_group_egress(GroupId=x, IpPermissions=ALL_EGRESS)),
    R("ModifyVpcAttribute", "vpc own_vpc",
      lambda c, x, w: c.modify_vpc_attribute(VpcId=x, EnableDnsHostnames={"Value": False})),
    R("ModifySubnetAttribute", "subnet own_subnet",
      lambda c, x, w: c.modify_subnet_attribute(SubnetId=x, MapPublicIpOnLaunch={"Value": True})),
    R("CreateSubnet(in A's VPC)", "own_vpc vpc", lambda c, x, w: c.create_subnet(VpcId=x, CidrBlock="10.0.9.0/24")),
    R("CreateRouteTable(in A's VPC)", "own_vpc vpc", lambda c, x, w: c.create_route_table(VpcId=x)),
    R("CreateSecurityGroup(in A's own VPC)", "own_vpc",
      lambda c, x, w: _create_group_and_delete(c, _name(), w, VpcId=x), normalize=keys_only),
    R("RunInstances(A's own SubnetId)", "own_subnet", lambda c, x, w: _run(c, w, SubnetId=x)),
    R("AttachInternetGateway(A's gateway, B's VPC)", "igw",
      lambda c, x, w: c.attach_internet_gateway(InternetGatewayId=x, VpcId=w.b["vpc"])),
    R("AttachInternetGateway(B's gateway, A's VPC)", "own_vpc vpc",
      lambda c, x, w: c.attach_internet_gateway(InternetGatewayId=w.b["igw"], VpcId=x)),
    R("DetachInternetGateway", "igw",
      lambda c, x, w: c.detach_internet_gateway(InternetGatewayId=x, VpcId=w.a["own_vpc"])),
    R("AssociateRouteTable(A's table, B's subnet)", "rtb",
      lambda c, x, w: c.associate_route_table(RouteTableId=x, SubnetId=w.b["subnet"])),
    R("AssociateRouteTable(B's table, A's subnet)", "own_subnet subnet",
      lambda c, x, w: c.associate_route_table(RouteTableId=w.b["rtb"], SubnetId=x)),
    R("ReplaceRouteTableAssociation", "rtbassoc",
      lambda c, x, w: c.replace_route_table_association(AssociationId=x, RouteTableId=w.b["rtb"])),
    R("CreateRoute(A's table)", "rtb", lambda c, x, w: c.create_route(
        RouteTableId=x, DestinationCidrBlock="192.0.2.0/24", GatewayId=w.b["igw"])),
    R("CreateRoute(B's table, A's gateway)", "igw", lambda c, x, w: c.create_route(
        RouteTableId=w.b["rtb"], DestinationCidrBlock="192.0.2.0/24", GatewayId=x)),
    R("CreateRoute(B's table, A's instance)", "instance", lambda c, x, w: c.create_route(
        RouteTableId=w.b["rtb"], DestinationCidrBlock="192.0.2.0/24", InstanceId=x)),
    R("CreateRoute(B's table, A's interface)", "eni", lambda c, x, w: c.create_route(
        RouteTableId=w.b["rtb"], DestinationCidrBlock="192.0.2.0/24", NetworkInterfaceId=x)),
    R("CreateNetworkInterface(in A's subnet)", "own_subnet subnet",
      lambda c, x, w: c.create_network_interface(SubnetId=x)),
    R("CreateNetworkInterface(A's group)", "group_id",
      lambda c, x, w: c.create_network_interface(SubnetId=w.b["subnet"], Groups=[x])),
    R("AttachNetworkInterface(A's interface, B's instance)", "eni own_eni",
      lambda c, x, w: c.attach_network_interface(NetworkInterfaceId=x, InstanceId=w.b["instance"], DeviceIndex=1)),
    R("AttachNetworkInterface(B's interface, A's instance)", "instance own_instance",
      lambda c, x, w: c.attach_network_interface(NetworkInterfaceId=w.b["eni"], InstanceId=x, DeviceIndex=3)),
    R("ModifyNetworkInterfaceAttribute(description)", "eni own_eni",
      lambda c, x, w: c.modify_network_interface_attribute(NetworkInterfaceId=x, Description={"Value": "b"})),
    R("ModifyNetworkInterfaceAttribute(groups)", "eni own_eni",
      lambda c, x, w: c.modify_network_interface_attribute(NetworkInterfaceId=x, Groups=[w.b["default_group"]])),
    R("ModifyNetworkInterfaceAttribute(B's interface, A's group)", "group_id",
      lambda c, x, w: c.modify_network_interface_attribute(NetworkInterfaceId=w.b["eni"], Groups=[x])),
    R("ModifyNetworkInterfaceAttribute(A's attachment)", "eni_attach",
      lambda c, x, w: c.modify_network_interface_attribute(
          NetworkInterfaceId=w.b["eni"], Attachment={"AttachmentId": x, "DeleteOnTermination": True})),
    R("AssignPrivateIpAddresses", "eni own_eni",
      lambda c, x, w: c.assign_private_ip_addresses(NetworkInterfaceId=x, SecondaryPrivateIpAddressCount=1)),
    R("UnassignPrivateIpAddresses", "eni own_eni",
      lambda c, x, w: c.unassign_private_ip_addresses(NetworkInterfaceId=x, PrivateIpAddresses=["10.0.1.31"])),
    R("ReplaceRoute(A's table)", "rtb", lambda c, x, w: c.replace_route(
        RouteTableId=x, DestinationCidrBlock="0.0.0.0/0", GatewayId=w.b["igw"])),
    R("DeleteRoute(A's table)", "rtb", lambda c, x, w: c.delete_route(RouteTableId=x, DestinationCidrBlock="0.0.0.0/0")),
    R("StartInstances", "instance", lambda c, x, w: c.start_instances(InstanceIds=[x])),
    R("RebootInstances", "instance", lambda c, x, w: c.reboot_instances(InstanceIds=[x])),
    R("StopInstances(DryRun)", "instance", lambda c, x, w: c.stop_instances(InstanceIds=[x], DryRun=True)),
    R("StopInstances", "instance", lambda c, x, w: c.stop_instances(InstanceIds=[x], Force=True)),
    R("StopInstances(B's and A's)", "instance",
      lambda c, x, w: c.stop_instances(InstanceIds=[w.b["instance"], x], Force=True)),
    R("DetachVolume", "attached_volume root_volume", lambda c, x, w: c.detach_volume(VolumeId=x, Force=True)),
    R("DetachVolume(B's attached volume, A's instance)", "instance",
      lambda c, x, w: c.detach_volume(VolumeId=w.b["attached_volume"], InstanceId=x)),
    # Deletions, last.
    R("DeleteVolume(DryRun)", "volume", lambda c, x, w: c.delete_volume(VolumeId=x, DryRun=True)),
    R("DeleteVolume", "volume attached_volume root_volume", lambda c, x, w: c.delete_volume(VolumeId=x)),
    R("DeleteSnapshot(DryRun)", "snapshot", lambda c, x, w: c.delete_snapshot(SnapshotId=x, DryRun=True)),
    R("DeleteSnapshot", "snapshot", lambda c, x, w: c.delete_snapshot(SnapshotId=x)),
    R("DeregisterImage(DryRun)", "image", lambda c, x, w: c.deregister_image(ImageId=x, DryRun=True)),
    R("DeregisterImage", "image", lambda c, x, w: c.deregister_image(ImageId=x)),
    R("DescribeLaunchTemplates(by id)", "lt", lambda c, x, w: c.describe_launch_templates(LaunchTemplateIds=[x])),
    R("DescribeLaunchTemplates(by name)", "lt_name",
      lambda c, x, w: c.describe_launch_templates(LaunchTemplateNames=[x])),
    R("DescribeLaunchTemplateVersions(by id)", "lt",
      lambda c, x, w: c.describe_launch_template_versions(LaunchTemplateId=x)),
    R("DescribeLaunchTemplateVersions(by name)", "lt_name",
      lambda c, x, w: c.describe_launch_template_versions(LaunchTemplateName=x, Versions=["$Latest"])),
    R("RunInstances(LaunchTemplate by id)", "lt", lambda c, x, w: _run_from_template(c, w, LaunchTemplateId=x)),
    R("RunInstances(LaunchTemplate by name)", "lt_name",
      lambda c, x, w: _run_from_template(c, w, LaunchTemplateName=x, Version="$Latest")),
    R("CreateLaunchTemplateVersion(by id)", "lt", lambda c, x, w: c.create_launch_template_version(
        LaunchTemplateId=x, SourceVersion="1", LaunchTemplateData={"InstanceType": "t3.large"})),
    R("CreateLaunchTemplateVersion(by name)", "lt_name", lambda c, x, w: c.create_launch_template_version(
        LaunchTemplateName=x, LaunchTemplateData={"InstanceType": "t3.large"})),
    R("ModifyLaunchTemplate(by id)", "lt", lambda c, x, w: c.modify_launch_template(
        LaunchTemplateId=x, DefaultVersion="2")),
    R("ModifyLaunchTemplate(by name)", "lt_name", lambda c, x, w: c.modify_launch_template(
        LaunchTemplateName=x, DefaultVersion="2")),
    R("DeleteLaunchTemplateVersions", "lt", lambda c, x, w: c.delete_launch_template_versions(
        LaunchTemplateId=x, Versions=["2"])),
    R("CreateLaunchTemplate(A's name)", "lt_name", _create_template_and_delete, normalize=keys_only),
    R("DeleteLaunchTemplate(by id)", "lt", lambda c, x, w: c.delete_launch_template(LaunchTemplateId=x)),
    R("DeleteLaunchTemplate(by name)", "lt_name", lambda c, x, w: c.delete_launch_template(LaunchTemplateName=x)),
    R("DeleteKeyPair(by id)", "key_id", lambda c, x, w: c.delete_key_pair(KeyPairId=x)),
    R("DeleteKeyPair(by name)", "key_name", lambda c, x, w: c.delete_key_pair(KeyName=x)),
    R("DeleteSecurityGroup(DryRun)", "group_id", lambda c, x, w: c.delete_security_group(GroupId=x, DryRun=True)),
    R("DeleteSecurityGroup(by id)", "group_id", lambda c, x, w: c.delete_security_group(GroupId=x)),
    R("DeleteSecurityGroup(by name)", "group_name", lambda c, x, w: c.delete_security_group(GroupName=x)),
    R("DisassociateRouteTable", "rtbassoc", lambda c, x, w: c.disassociate_route_table(AssociationId=x)),
    R("DetachNetworkInterface", "eni_attach", lambda c, x, w: c.detach_network_interface(AttachmentId=x, Force=True)),
    R("DeleteNetworkInterface", "eni own_eni", lambda c, x, w: c.delete_network_interface(NetworkInterfaceId=x)),
    R("DeleteNatGateway", "nat", lambda c, x, w: c.delete_nat_gateway(NatGatewayId=x)),
    R("DeleteSubnet", "own_subnet subnet", lambda c, x, w: c.delete_subnet(SubnetId=x)),
    R("DeleteRouteTable", "rtb", lambda c, x, w: c.delete_route_table(RouteTableId=x)),
    R("DeleteInternetGateway", "igw", lambda c, x, w: c.delete_internet_gateway(InternetGatewayId=x)),
    R("DeleteVpc", "own_vpc vpc", lambda c, x, w: c.delete_vpc(VpcId=x)),
    R("TerminateInstances(DryRun)", "instance", lambda c, x, w: c.terminate_instances(InstanceIds=[x], DryRun=True)),
    R("TerminateInstances(B's and A's)", "instance",
      lambda c, x, w: c.terminate_instances(InstanceIds=[w.b["instance"], x])),
    R("TerminateInstances", "instance", lambda c, x, w: c.terminate_instances(InstanceIds=[x])),
    # CloudWatch: A's instance's metrics are as absent as a made-up instance's.
    R("GetMetricStatistics(InstanceId)", "instance",
      lambda c, x, w: w.cwb.get_metric_statistics(**_metric_window(), Namespace="AWS/EC2", MetricName="CPUUtilization",
                                                  Dimensions=[{"Name": "InstanceId", "Value": x}], Period=3600,
                                                  Statistics=["SampleCount"])),
    R("GetMetricStatistics(ImageId)", "image",
      lambda c, x, w: w.cwb.get_metric_statistics(**_metric_window(), Namespace="AWS/EC2",
                                                  MetricName="StatusCheckFailed",
                                                  Dimensions=[{"Name": "ImageId", "Value": x}], Period=3600,
                                                  Statistics=["SampleCount"])),
    R("GetMetricData(InstanceId)", "instance",
      lambda c, x, w: w.cwb.get_metric_data(**_metric_window(), MetricDataQueries=[
          {"Id": "q", "MetricStat": {"Metric": {"Namespace": "AWS/EC2", "MetricName": "NetworkIn",
                                                "Dimensions": [{"Name": "InstanceId", "Value": x}]},
                                     "Period": 60, "Stat": "Sum"}}])),
    R("GetMetricStatistics(custom)", "custom_metric",
      lambda c, x, w: w.cwb.get_metric_statistics(**_metric_window(), Namespace=CUSTOM_NAMESPACE, MetricName="Orders",
                                                  Dimensions=[{"Name": "Shard", "Value": x}], Period=60,
                                                  Statistics=["SampleCount"])),
    R("ListMetrics(custom)", "custom_metric",
      lambda c, x, w: w.cwb.list_metrics(Namespace=CUSTOM_NAMESPACE, Dimensions=[{"Name": "Shard", "Value": x}])),
    R("ListMetrics(InstanceId)", "instance",
      lambda c, x, w: w.cwb.list_metrics(Dimensions=[{"Name": "InstanceId", "Value": x}])),
    R("GetMetricStatistics(HostId)", "host",
      lambda c, x, w: w.cwb.get_metric_statistics(**_metric_window(), Namespace="Stratus/Host", MetricName="Instances",
                                                  Dimensions=[{"Name": "HostId", "Value": x}], Period=3600,
                                                  Statistics=["Maximum"])),
]

PARAMS = [
    pytest.param(row, kind, id=f"{row.action}[{kind}]",
                 marks=[pytest.mark.xfail(strict=True, reason=row.known_hole)] if row.known_hole else [])
    for row in ROWS for kind in row.kinds
]


# --- the tests -------------------------------------------------------------------------------------


def test_default_groups_are_per_account(world):
    assert world.a_default_group != world.b["default_group"], "A and B share one default security group"


def _all(client, op: str, key: str, **kw) -> list:
    if client.can_paginate(op):
        return [x for page in client.get_paginator(op).paginate(**kw) for x in page[key]]
    return getattr(client, op)(**kw)[key]


def _f(name: str, *values: str) -> dict:
    return {"Filters": [{"Name": name, "Values": list(values)}]}


# B's listings, plain and filtered on what names A's resources.
LISTINGS: list[tuple[str, Callable[[World], Any]]] = [
    ("DescribeInstances", lambda w: _all(w.cb, "describe_instances", "Reservations")),
    ("ListMetrics", lambda w: _all(w.cwb, "list_metrics", "Metrics")),
    ("ListMetrics(Stratus/Host)", lambda w: _all(w.cwb, "list_metrics", "Metrics", Namespace="Stratus/Host")),
    ("ListMetrics(A's namespace)", lambda w: _all(w.cwb, "list_metrics", "Metrics", Namespace=CUSTOM_NAMESPACE)),
    *[(f"DescribeInstances({n})", (lambda n, v: lambda w: _all(w.cb, "describe_instances", "Reservations",
                                                                **_f(n, v(w))))(n, v))
      for n, v in [("instance-id", lambda w: w.a["instance"]), ("owner-id", lambda w: w.a_acct.account_id),
                   ("key-name", lambda w: w.a["key_name"]), ("image-id", lambda w: w.public_image),
                   ("reservation-id", lambda w: w.a["reservation"]),
                   ("private-ip-address", lambda w: w.a_ip), ("tag-key", lambda w: w.forbidden_tag_key),
                   ("subnet-id", lambda w: w.a_subnet)]],
    ("DescribeInstances(tag)", lambda w: _all(w.cb, "describe_instances", "Reservations",
                                              **_f("tag:" + w.forbidden_tag_key, "*"))),
    ("DescribeInstanceStatus", lambda w: _all(w.cb, "describe_instance_status", "InstanceStatuses",
                                              IncludeAllInstances=True)),
    ("DescribeInstanceCreditSpecifications",
     lambda w: _all(w.cb, "describe_instance_credit_specifications", "InstanceCreditSpecifications")),
    ("DescribeVolumes", lambda w: _all(w.cb, "describe_volumes", "Volumes")),
    ("DescribeVolumes(attachment.instance-id)",
     lambda w: _all(w.cb, "describe_volumes", "Volumes", **_f("attachment.instance-id", w.a["instance"]))),
    ("DescribeVolumes(tag-key)", lambda w: _all(w.cb, "describe_volumes", "Volumes",
                                                **_f("tag-key", w.forbidden_tag_key))),
    ("DescribeVolumesModifications", lambda w: _all(w.cb, "describe_volumes_modifications", "VolumesModifications")),
    ("DescribeSnapshots", lambda w: _all(w.cb, "describe_snapshots", "Snapshots")),
    ("DescribeSnapshots(OwnerIds=A)", lambda w: _all(w.cb, "describe_snapshots", "Snapshots",
                                                     OwnerIds=[w.a_acct.account_id])),
    ("DescribeSnapshots(RestorableBy B)", lambda w: _all(w.cb, "describe_snapshots", "Snapshots",
                                                         RestorableByUserIds=[w.b_acct.account_id])),
    ("DescribeSnapshots(RestorableBy A)", lambda w: _all(w.cb, "describe_snapshots", "Snapshots",
                                                         RestorableByUserIds=[w.a_acct.account_id])),
    ("DescribeImages(ExecutableBy A)", lambda w: _all(w.cb, "describe_images", "Images",
                                                      ExecutableUsers=[w.a_acct.account_id])),
    ("DescribeSnapshots(owner-id)", lambda w: _all(w.cb, "describe_snapshots", "Snapshots",
                                                   **_f("owner-id", w.a_acct.account_id))),
    ("DescribeSnapshots(snapshot-id)", lambda w: _all(w.cb, "describe_snapshots", "Snapshots",
                                                      **_f("snapshot-id", w.a["snapshot"]))),
    ("DescribeImages", lambda w: _all(w.cb, "describe_images", "Images")),
    ("DescribeImages(Owners=A)", lambda w: _all(w.cb, "describe_images", "Images", Owners=[w.a_acct.account_id])),
    ("DescribeImages(ExecutableBy B)", lambda w: _all(w.cb, "describe_images", "Images",
                                                      ExecutableUsers=[w.b_acct.account_id])),
    ("DescribeImages(ExecutableBy all)", lambda w: _all(w.cb, "describe_images", "Images", ExecutableUsers=["all"])),
    ("DescribeImages(image-id)", lambda w: _all(w.cb, "describe_images", "Images", **_f("image-id", w.a["image"]))),
    ("DescribeImages(name)", lambda w: _all(w.cb, "describe_images", "Images", **_f("name", "a-image-*"))),
    ("DescribeImages(owner-id)", lambda w: _all(w.cb, "describe_images", "Images",
                                                **_f("owner-id", w.a_acct.account_id))),
    ("DescribeKeyPairs", lambda w: _all(w.cb, "describe_key_pairs", "KeyPairs")),
    ("DescribeKeyPairs(key-name)", lambda w: _all(w.cb, "describe_key_pairs", "KeyPairs",
                                                  **_f("key-name", w.a["key_name"]))),
    ("DescribeKeyPairs(fingerprint)", lambda w: _all(w.cb, "describe_key_pairs", "KeyPairs",
                                                     **_f("fingerprint", w.a_fingerprint))),
    ("DescribeSecurityGroups", lambda w: _all(w.cb, "describe_security_groups", "SecurityGroups")),
    ("DescribeSecurityGroups(group-id)", lambda w: _all(w.cb, "describe_security_groups", "SecurityGroups",
                                                        **_f("group-id", w.a["group_id"], w.a_default_group))),
    ("DescribeSecurityGroups(group-name)", lambda w: _all(w.cb, "describe_security_groups", "SecurityGroups",
                                                          **_f("group-name", w.a["group_name"]))),
    ("DescribeSecurityGroups(owner-id)", lambda w: _all(w.cb, "describe_security_groups", "SecurityGroups",
                                                        **_f("owner-id", w.a_acct.account_id))),
    ("DescribeSecurityGroups(ip-permission.cidr)",
     lambda w: _all(w.cb, "describe_security_groups", "SecurityGroups", **_f("ip-permission.cidr", "10.1.0.0/16"))),
    ("DescribeSecurityGroupRules", lambda w: _all(w.cb, "describe_security_group_rules", "SecurityGroupRules")),
    ("DescribeSecurityGroupRules(group-id)",
     lambda w: _all(w.cb, "describe_security_group_rules", "SecurityGroupRules",
                    **_f("group-id", w.a["group_id"], w.a_default_group))),
    ("DescribeSecurityGroupRules(security-group-rule-id)",
     lambda w: _all(w.cb, "describe_security_group_rules", "SecurityGroupRules",
                    **_f("security-group-rule-id", w.a["rule_id"]))),
    ("DescribeNetworkInterfaces", lambda w: _all(w.cb, "describe_network_interfaces", "NetworkInterfaces")),
    *[(f"DescribeNetworkInterfaces({n})",
       (lambda n, v: lambda w: _all(w.cb, "describe_network_interfaces", "NetworkInterfaces", **_f(n, v(w))))(n, v))
      for n, v in [("attachment.instance-id", lambda w: w.a["instance"]), ("group-id", lambda w: w.a["group_id"]),
                   ("network-interface-id", lambda w: w.a["eni"]), ("private-ip-address", lambda w: w.a_ip),
                   ("mac-address", lambda w: w.a_mac), ("subnet-id", lambda w: w.a_subnet)]],
    ("DescribeTags", lambda w: _all(w.cb, "describe_tags", "Tags")),
    ("DescribeTags(resource-id)", lambda w: _all(w.cb, "describe_tags", "Tags",
                                                 **_f("resource-id", *[w.a[k] for k in ALL_TAGGABLE.split()]))),
    ("DescribeTags(key)", lambda w: _all(w.cb, "describe_tags", "Tags", **_f("key", w.forbidden_tag_key))),
    ("DescribeTags(value)", lambda w: _all(w.cb, "describe_tags", "Tags", **_f("value", "a-*"))),
    ("DescribeHosts", lambda w: w.sb.describe_hosts()["Hosts"]),
    ("DescribeVpcs", lambda w: w.cb.describe_vpcs()["Vpcs"]),
    ("DescribeSubnets", lambda w: w.cb.describe_subnets()["Subnets"]),
    ("DescribeSubnets(vpc-id)", lambda w: w.cb.describe_subnets(**_f("vpc-id", w.a["vpc"]))["Subnets"]),
    ("DescribeVpcs(owner-id)", lambda w: w.cb.describe_vpcs(**_f("owner-id", w.a_acct.account_id))["Vpcs"]),
    ("DescribeVpcs(cidr)", lambda w: w.cb.describe_vpcs(**_f("cidr", "10.0.0.0/16"))["Vpcs"]),
    ("DescribeVpcs(tag-key)", lambda w: w.cb.describe_vpcs(**_f("tag-key", w.forbidden_tag_key))["Vpcs"]),
    ("DescribeSubnets(cidr-block)", lambda w: w.cb.describe_subnets(**_f("cidr-block", "10.0.1.0/24"))["Subnets"]),
    ("DescribeInternetGateways", lambda w: _all(w.cb, "describe_internet_gateways", "InternetGateways")),
    ("DescribeInternetGateways(attachment.vpc-id)", lambda w: _all(
        w.cb, "describe_internet_gateways", "InternetGateways", **_f("attachment.vpc-id", w.a["own_vpc"]))),
    ("DescribeRouteTables", lambda w: _all(w.cb, "describe_route_tables", "RouteTables")),
    ("DescribeRouteTables(association.subnet-id)", lambda w: _all(
        w.cb, "describe_route_tables", "RouteTables", **_f("association.subnet-id", w.a["own_subnet"]))),
    ("DescribeRouteTables(route.destination-cidr-block)", lambda w: _all(
        w.cb, "describe_route_tables", "RouteTables", **_f("route.destination-cidr-block", "0.0.0.0/0"))),
    ("DescribeNetworkAcls", lambda w: _all(w.cb, "describe_network_acls", "NetworkAcls")),
    ("DescribeNetworkAcls(association.subnet-id)", lambda w: _all(
        w.cb, "describe_network_acls", "NetworkAcls", **_f("association.subnet-id", w.a["own_subnet"]))),
    ("DescribeDhcpOptions", lambda w: _all(w.cb, "describe_dhcp_options", "DhcpOptions")),
    ("DescribeNatGateways", lambda w: _all(w.cb, "describe_nat_gateways", "NatGateways")),
    ("DescribeNatGateways(vpc-id)", lambda w: _all(w.cb, "describe_nat_gateways", "NatGateways",
                                                  Filter=[{"Name": "vpc-id", "Values": [w.a["own_vpc"]]}])),
    ("DescribeAddresses", lambda w: w.cb.describe_addresses()["Addresses"]),
    ("DescribeLaunchTemplates", lambda w: _all(w.cb, "describe_launch_templates", "LaunchTemplates")),
    ("DescribeLaunchTemplates(launch-template-name)", lambda w: _all(
        w.cb, "describe_launch_templates", "LaunchTemplates", **_f("launch-template-name", w.a["lt_name"]))),
    ("DescribeLaunchTemplateVersions($Latest)", lambda w: w.cb.describe_launch_template_versions(
        Versions=["$Latest", "$Default"])["LaunchTemplateVersions"]),
    ("DescribeAddresses(public-ip)", lambda w: w.cb.describe_addresses(**_f("public-ip", w.a["public_ip"]))["Addresses"]),
    ("DescribeAddresses(instance-id)",
     lambda w: w.cb.describe_addresses(**_f("instance-id", w.a["own_instance"]))["Addresses"]),
    ("DescribeDhcpOptions(owner-id)", lambda w: _all(
        w.cb, "describe_dhcp_options", "DhcpOptions", **_f("owner-id", w.a_acct.account_id))),
]


@pytest.mark.parametrize("name,call", [pytest.param(n, c, id=n) for n, c in LISTINGS])
def test_listings_never_show_a(world, name, call):
    try:
        found = call(world)
    except ClientError as e:
        pytest.fail(f"{name} refused: {e.response['Error']}")
    text = json.dumps(found, default=str, sort_keys=True)
    leaked = leaks(text, world.forbidden, except_for="\0")
    assert not leaked, f"{name} shows A's {leaked}:\n{text[:3000]}"


@pytest.mark.parametrize("row,kind", PARAMS)
def test_other_accounts_id_answers_like_a_missing_one(world, row, kind):
    w = world
    client = w.sb if row.ext else w.cb
    mine = w.a[kind]
    other = fresh(mine, kind)
    theirs = answer(row, client, mine, w)
    missing = answer(row, client, other, w)
    print(f"A's {kind}: {theirs}\nmade-up:  {missing}")  # shown with -rP
    problems = []
    if theirs.key() != missing.key():
        problems.append(f"answers differ\n  A's {kind} {mine}: {theirs}\n  made-up {other}: {missing}")
    if theirs.leaked or missing.leaked:
        problems.append(f"B's answer names A's resources\n  A's: {theirs}\n  made-up: {missing}")
    now = a_state(w)
    if now != w.last_state:
        problems.append("A's resources changed:\n" + state_diff(w.last_state, now))
        w.last_state = now
    if problems and row.note:
        problems.append(f"note: {row.note}")
    assert not problems, "\n".join(problems)


def test_describe_instance_migrations_is_refused_to_b(world):
    with pytest.raises(ClientError) as e:
        world.sb.describe_instance_migrations()
    assert e.value.response["Error"]["Code"] == "UnauthorizedOperation"


def test_a_is_unchanged_at_the_end(world):
    time.sleep(1.0)  # a few sweeps: anything B set in motion has landed
    now = a_state(world)
    assert now == world.baseline, "A's resources changed during the module:\n" + state_diff(world.baseline, now)
    instance = now["instance"]["Reservations"][0]["Instances"][0]
    assert instance["State"]["Name"] == "running"


def test_b_cannot_count_a_s_addresses(world):
    """B's subnet counts only B's addresses: A launching an instance must not show in B's subnet."""
    w = world

    def available():
        return sorted((s["SubnetId"], s["AvailableIpAddressCount"]) for s in w.cb.describe_subnets()["Subnets"])

    before = available()
    extra = _run(w.ca, w)["Instances"][0]["InstanceId"]
    try:
        wait_states(w.ca, [extra], "running")
        after = available()
    finally:
        w.ca.terminate_instances(InstanceIds=[extra])
        wait_states(w.ca, [extra], "terminated")
    assert after == before, f"B's subnets before A's launch {before}, after {after}"


def test_b_s_ebs_encryption_settings_are_its_own(world):
    """The account-wide EBS switches (Enable/DisableEbsEncryptionByDefault, Modify/Reset
    EbsDefaultKmsKeyId) change B's account only: A reads what it read before, and A's new
    volumes stay as A asks."""
    w = world
    before = a_state(w)
    key = "arn:aws:kms:us-east-1:%s:key/1234abcd-12ab-34cd-56ef-1234567890ab" % w.b_acct.account_id
    try:
        assert w.cb.enable_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
        assert w.cb.modify_ebs_default_kms_key_id(KmsKeyId=key)["KmsKeyId"] == key
        assert w.cb.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
        assert a_state(w)["ebs_defaults"] == before["ebs_defaults"] == [False, "alias/aws/ebs"]
        mine = w.ca.create_volume(AvailabilityZone=w.zone, Size=1)
        try:
            assert mine["Encrypted"] is False and "KmsKeyId" not in mine
        finally:
            w.ca.get_waiter("volume_available").wait(VolumeIds=[mine["VolumeId"]], WaiterConfig=FAST)
            w.ca.delete_volume(VolumeId=mine["VolumeId"])
    finally:
        w.cb.reset_ebs_default_kms_key_id()
        w.cb.disable_ebs_encryption_by_default()
    assert w.cb.get_ebs_default_kms_key_id()["KmsKeyId"] == "alias/aws/ebs"


def test_b_s_serial_console_access_is_its_own(world):
    """Enable/DisableSerialConsoleAccess change B's account only; A's stays off (the console's
    WebSocket, which needs it, is walled in test_console_browser.py)."""
    w = world
    before = a_state(w)
    try:
        assert w.cb.enable_serial_console_access()["SerialConsoleAccessEnabled"] is True
        status = w.cb.get_serial_console_access_status()
        assert (status["SerialConsoleAccessEnabled"], status["ManagedBy"]) == (True, "account")
        assert a_state(w)["serial_console"] is before["serial_console"] is False
    finally:
        assert w.cb.disable_serial_console_access()["SerialConsoleAccessEnabled"] is False


HOST_ROWS = [
    R("DescribeHosts(HostId)", "host", lambda c, x, w: c.describe_hosts(HostIds=[x])),
    R("RunInstances(Placement.HostId)", "host", lambda c, x, w: _run(c, w, Placement={"HostId": x})),
    R("ModifyHosts(AutoPlacement)", "host", lambda c, x, w: c.modify_hosts(HostIds=[x], AutoPlacement="off")),
    R("ReleaseHosts", "host", lambda c, x, w: c.release_hosts(HostIds=[x])),
    R("CreateTags(host)", "host", lambda c, x, w: c.create_tags(Resources=[x], Tags=TAG_B)),
]


def test_b_cannot_see_or_use_a_s_dedicated_host(world):
    """Last: A takes the pool's one host as a dedicated host (once B's instances are gone, since
    a host another account uses is not free), and B's every call naming it answers as for a
    host that does not exist."""
    w = world
    w.cb.terminate_instances(InstanceIds=[w.b["instance"]])
    wait_states(w.cb, [w.b["instance"]], "terminated")
    host = w.ca.allocate_hosts(AvailabilityZone=w.zone, InstanceFamily="t3", Quantity=1)["HostIds"][0]
    try:
        assert host == w.a["host"], "the pool's one host"
        problems = []
        for row in HOST_ROWS:
            theirs, missing = answer(row, w.cb, host, w), answer(row, w.cb, fresh(host), w)
            if theirs.key() != missing.key() or theirs.leaked:
                problems.append(f"{row.action}: A's host {theirs} / made-up {missing}")
        assert not problems, "\n".join(problems)
        listed = json.dumps(w.cb.describe_hosts()["Hosts"])
        assert host not in listed and w.a_acct.account_id not in listed
    finally:
        w.ca.release_hosts(HostIds=[host])
