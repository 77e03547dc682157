"""terraform + hashicorp/aws (from the local filesystem mirror) against a running stratus: a whole
web-server configuration (key pair, security group, instance, EBS volume and attachment, a
launch template and an instance from it with an extra EBS device, data sources) against real
QEMU guests, and a VPC configuration (key pair and zones, VPC, subnets,
internet and NAT gateways, route tables, groups, an instance with an Elastic IP) on the test
driver, and a dedicated host with an instance on it beside a shared copy of an image."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import (BOOT_MARKER, QEMU_CONFIG, clean_env, create_account, ec2_client, forget_ovn_installation,
                      import_image, require_qemu)

PREFERRED_MIRROR = Path("/opt/tf-plugins")


def find_mirror_root() -> Path:
    """The directory holding `registry.terraform.io/` (the provider filesystem mirror)."""
    if (PREFERRED_MIRROR / "registry.terraform.io").is_dir():
        return PREFERRED_MIRROR
    res = subprocess.run(["find", "/", "-xdev", "-type", "d", "-name", "registry.terraform.io"],
                         capture_output=True, text=True, timeout=300)
    for line in res.stdout.splitlines():
        path = Path(line.strip())
        if (path / "hashicorp" / "aws").is_dir():
            return path.parent
    pytest.fail("no terraform provider mirror (a directory named registry.terraform.io holding hashicorp/aws) was found")


def public_key_line(tmp_path: Path) -> str:
    if shutil.which("ssh-keygen"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tf@test", "-f", str(tmp_path / "id_tf")], check=True)
        return (tmp_path / "id_tf.pub").read_text().strip()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    line = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return line.decode() + " tf@test"


CONFIG = """
terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "%(access_key)s"
  secret_key                  = "%(secret_key)s"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true

  endpoints {
    ec2 = "%(endpoint)s"
  }
}

resource "aws_key_pair" "deployer" {
  key_name   = "%(key_name)s"
  public_key = "%(public_key)s"

  tags = {
    Name = "%(key_name)s"
    Env  = "compat"
  }
}

data "aws_availability_zones" "all" {}

output "zone_names" {
  value = data.aws_availability_zones.all.names
}

output "key_pair_id" {
  value = aws_key_pair.deployer.key_pair_id
}

output "fingerprint" {
  value = aws_key_pair.deployer.fingerprint
}
"""


class Terraform:
    """terraform in its own folder, with the provider from the mirror and no network."""

    def __init__(self, tmp_path: Path, main_tf: str):
        self.bin = shutil.which("terraform")
        assert self.bin, "terraform is not installed (it is needed for this test; nothing is skipped)"
        mirror = find_mirror_root()
        cli_config = tmp_path / "terraform.rc"
        cli_config.write_text(
            "provider_installation {\n"
            f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["registry.terraform.io/hashicorp/*"]\n  }}\n'
            '  direct {\n    exclude = ["registry.terraform.io/hashicorp/*"]\n  }\n'
            "}\n"
        )
        self.work = tmp_path / "tf"
        self.work.mkdir()
        (self.work / "main.tf").write_text(main_tf)
        env = clean_env(
            TF_CLI_CONFIG_FILE=str(cli_config),
            CHECKPOINT_DISABLE="1",
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            AWS_EC2_METADATA_DISABLED="true",
        )
        self.env = {k: v for k, v in env.items() if not k.startswith("TF_") or k in
                    ("TF_CLI_CONFIG_FILE", "TF_IN_AUTOMATION", "TF_INPUT")}

    def __call__(self, *args: str, expect: tuple[int, ...] = (0,), timeout: float = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.bin, *args], cwd=self.work, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        # What took long, for a slow run to show where its time went (with pytest -s).
        for line in proc.stdout.splitlines():
            took = re.search(r"(?:Creation|Destruction|Modifications) complete after (?:(\d+)m)?(\d+)s", line)
            if took and int(took.group(1) or 0) * 60 + int(took.group(2)) >= 5:
                print(f"terraform {args[0]}: {line.strip()}", flush=True)
        assert proc.returncode in expect, (
            f"terraform {' '.join(args)} exited {proc.returncode} (expected {expect})\n"
            f"stdout:\n{proc.stdout[-6000:]}\nstderr:\n{proc.stderr[-6000:]}"
        )
        return proc

    def outputs(self) -> dict:
        """The applied configuration's outputs, by name."""
        return {k: v["value"] for k, v in json.loads(self("output", "-json").stdout).items()}

    def assert_no_changes(self) -> None:
        """A second plan finds everything as applied."""
        plan = self("plan", "-detailed-exitcode", "-input=false", "-no-color", expect=(0, 2))
        assert plan.returncode == 0, f"second plan wants changes:\n{plan.stdout[-6000:]}"

    def destroy_quietly(self) -> None:
        subprocess.run([self.bin, "destroy", "-auto-approve", "-input=false", "-no-color"],
                       cwd=self.work, env=self.env, capture_output=True, timeout=600)


WEB_CONFIG = CONFIG.split('resource "aws_key_pair"')[0] + """
data "aws_ami" "guest" {
  filter {
    name   = "image-id"
    values = ["%(image_id)s"]
  }
}

resource "aws_key_pair" "deployer" {
  key_name   = "%(key_name)s"
  public_key = "%(public_key)s"
}

resource "aws_security_group" "web" {
  name        = "%(key_name)s-web"
  description = "web servers"

  ingress {
    description = "SSH"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = {
    Name = "web"
  }
}

resource "aws_instance" "web" {
  ami                    = data.aws_ami.guest.id
  instance_type          = "t3.nano"
  key_name               = aws_key_pair.deployer.key_name
  vpc_security_group_ids = [aws_security_group.web.id]
  user_data              = "#!/bin/sh\\necho hello from terraform\\n"

  tags = {
    Name    = "tf-web"
    Role    = "web"
    Project = "%(key_name)s"
  }
}

resource "aws_ebs_volume" "data" {
  availability_zone = aws_instance.web.availability_zone
  size              = 2
  type              = "gp3"

  tags = {
    Name = "tf-data"
  }
}

resource "aws_volume_attachment" "data" {
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data.id
  instance_id = aws_instance.web.id
}

resource "aws_ebs_volume" "sealed" {
  availability_zone = aws_instance.web.availability_zone
  size              = 1
  encrypted         = true

  tags = {
    Name = "tf-sealed"
  }
}

resource "aws_volume_attachment" "sealed" {
  device_name = "/dev/sdg"
  volume_id   = aws_ebs_volume.sealed.id
  instance_id = aws_instance.web.id
}

resource "aws_launch_template" "app" {
  name          = "%(key_name)s-app"
  description   = "app servers"
  image_id      = data.aws_ami.guest.id
  instance_type = "t3.micro"
  key_name      = aws_key_pair.deployer.key_name

  vpc_security_group_ids = [aws_security_group.web.id]

  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }

  tags = {
    Name = "tf-app-template"
  }
}

# Terraform reads every volume but the root back into `ebs_block_device` (on AWS too), so a
# template's further volumes would show as drift of an instance that lists its own, its
# instance tags as drift of the instance's `tags`, and its user data as drift of `user_data`
# (the provider hashes the hash it keeps again): all three are tested with boto3.
resource "aws_instance" "app" {
  instance_type = "t3.nano"

  launch_template {
    id      = aws_launch_template.app.id
    version = "$Latest"
  }

  ebs_block_device {
    device_name = "/dev/sdh"
    volume_size = 3
    volume_type = "gp3"
  }

  tags = {
    Name = "tf-app"
  }
}

data "aws_instances" "web" {
  instance_tags = {
    Role    = "web"
    Project = "%(key_name)s"
  }
  instance_state_names = ["running", "pending"]
  depends_on           = [aws_instance.web]
}

output "instance_id" {
  value = aws_instance.web.id
}

output "volume_id" {
  value = aws_ebs_volume.data.id
}

output "sealed_volume_id" {
  value = aws_ebs_volume.sealed.id
}

output "group_id" {
  value = aws_security_group.web.id
}

output "app_instance_id" {
  value = aws_instance.app.id
}

output "template_id" {
  value = aws_launch_template.app.id
}

output "found_instances" {
  value = data.aws_instances.web.ids
}
"""


def test_terraform_web_server_on_real_guests(server_factory, test_image, tmp_path):
    require_qemu()
    server = server_factory(config=QEMU_CONFIG)
    ec2 = ec2_client(server)
    image_id = import_image(server, test_image, "terraform image")
    key_name = f"tf-{uuid.uuid4().hex[:10]}"
    tf = Terraform(tmp_path, WEB_CONFIG % {
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "endpoint": server.endpoint,
        "key_name": key_name,
        "public_key": public_key_line(tmp_path),
        "image_id": image_id,
    })
    tf("init", "-input=false", "-no-color")
    applied = False
    try:
        tf("apply", "-auto-approve", "-input=false", "-no-color")
        applied = True
        outputs = tf.outputs()
        instance_id, volume_id, group_id = outputs["instance_id"], outputs["volume_id"], outputs["group_id"]
        assert outputs["found_instances"] == [instance_id]

        instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        assert instance["State"]["Name"] == "running" and instance["KeyName"] == key_name
        assert instance["SecurityGroups"] == [{"GroupId": group_id, "GroupName": f"{key_name}-web"}]
        assert sorted(m["DeviceName"] for m in instance["BlockDeviceMappings"]) == ["/dev/sdf", "/dev/sdg", "/dev/vda"]
        attachment = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Attachments"][0]
        assert (attachment["InstanceId"], attachment["State"]) == (instance_id, "attached")
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        assert [(p["IpProtocol"], p.get("FromPort")) for p in group["IpPermissions"]] == [("tcp", 22)]
        assert [p["IpProtocol"] for p in group["IpPermissionsEgress"]] == ["-1"]
        # The encrypted volume is LUKS inside qcow2 on disk, under the account's AWS-managed key.
        [sealed] = ec2.describe_volumes(VolumeIds=[outputs["sealed_volume_id"]])["Volumes"]
        assert sealed["Encrypted"] is True and sealed["KmsKeyId"].startswith("arn:aws:kms:us-east-1:"), sealed
        info = subprocess.run(["qemu-img", "info", "-U", "--output=json",
                               str(server.data_dir / "volumes" / f"{sealed['VolumeId']}.qcow2")],
                              capture_output=True, text=True, check=True)
        assert json.loads(info.stdout)["encrypted"] is True
        # The guest runs and sees both attached volumes.
        deadline = time.monotonic() + 120
        while True:
            console = ec2.get_console_output(InstanceId=instance_id).get("Output", "")
            lines = re.findall(r"stratus-disks ([^\r\n]*)", console)
            seen = sorted(int(v) for k, v in re.findall(r"(vd[a-z])=(\d+)", lines[-1]) if k != "vda") if lines else []
            if seen == [1 << 30, 2 << 30]:
                break
            assert time.monotonic() < deadline, f"the guest did not show both volumes: {console[-2000:]}"
            time.sleep(1)
        assert BOOT_MARKER in console

        # The instance from the launch template: the template's image, key, groups, metadata
        # options, the request's type and extra volume, which the guest sees.
        app = ec2.describe_instances(InstanceIds=[outputs["app_instance_id"]])["Reservations"][0]["Instances"][0]
        assert (app["ImageId"], app["InstanceType"], app["KeyName"]) == (image_id, "t3.nano", key_name)
        assert [g["GroupId"] for g in app["SecurityGroups"]] == [group_id]
        assert app["MetadataOptions"]["HttpTokens"] == "required"
        tags = {t["Key"]: t["Value"] for t in app["Tags"]}
        assert tags["aws:ec2launchtemplate:id"] == outputs["template_id"], tags
        assert [m["DeviceName"] for m in app["BlockDeviceMappings"]] == ["/dev/vda", "/dev/sdh"]
        deadline = time.monotonic() + 180
        while True:
            console = ec2.get_console_output(InstanceId=app["InstanceId"]).get("Output", "")
            disks = dict(re.findall(r"(vd[a-z])=(\d+)", console.split("stratus-disks")[-1].splitlines()[0])) \
                if "stratus-disks" in console else {}
            if sorted(int(v) for k, v in disks.items() if k != "vda") == [3 << 30]:
                break
            assert time.monotonic() < deadline, f"the guest did not show its launch volume: {console[-2000:]}"
            time.sleep(1)

        tf.assert_no_changes()

        tf("destroy", "-auto-approve", "-input=false", "-no-color")
        applied = False
        assert ec2.describe_launch_templates(Filters=[
            {"Name": "launch-template-name", "Values": [f"{key_name}-app"]}])["LaunchTemplates"] == []
        assert ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
            "State"]["Name"] == "terminated"
        for call, kwargs, code in [
            (ec2.describe_volumes, {"VolumeIds": [volume_id]}, "InvalidVolume.NotFound"),
            (ec2.describe_security_groups, {"GroupIds": [group_id]}, "InvalidGroup.NotFound"),
            (ec2.describe_key_pairs, {"KeyNames": [key_name]}, "InvalidKeyPair.NotFound"),
        ]:
            with pytest.raises(ClientError) as excinfo:
                call(**kwargs)
            assert excinfo.value.response["Error"]["Code"] == code
    finally:
        if applied:
            tf.destroy_quietly()


VPC_CONFIG = CONFIG.split('resource "aws_key_pair"')[0] + """
data "aws_ami" "guest" {
  filter {
    name   = "image-id"
    values = ["%(image_id)s"]
  }
}

resource "aws_key_pair" "deployer" {
  key_name   = "%(name)s"
  public_key = "%(public_key)s"

  tags = {
    Name = "%(name)s"
    Env  = "compat"
  }
}

data "aws_availability_zones" "all" {}

resource "aws_vpc" "main" {
  cidr_block           = "10.0.0.0/16"
  enable_dns_hostnames = true

  tags = {
    Name = "%(name)s"
  }
}

resource "aws_subnet" "public" {
  vpc_id                  = aws_vpc.main.id
  cidr_block              = "10.0.1.0/24"
  availability_zone       = "us-east-1a"
  map_public_ip_on_launch = true

  tags = {
    Name = "%(name)s-public"
    Tier = "public"
  }
}

resource "aws_subnet" "private" {
  vpc_id            = aws_vpc.main.id
  cidr_block        = "10.0.2.0/24"
  availability_zone = "us-east-1a"

  tags = {
    Name = "%(name)s-private"
    Tier = "private"
  }
}

resource "aws_internet_gateway" "gw" {
  vpc_id = aws_vpc.main.id

  tags = {
    Name = "%(name)s"
  }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id

  tags = {
    Name = "%(name)s-public"
  }
}

resource "aws_route" "internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.gw.id
}

resource "aws_route_table_association" "public" {
  subnet_id      = aws_subnet.public.id
  route_table_id = aws_route_table.public.id
}

resource "aws_security_group" "web" {
  name        = "%(name)s-web"
  description = "web servers"
  vpc_id      = aws_vpc.main.id

  ingress {
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_security_group" "app" {
  name        = "%(name)s-app"
  description = "application servers, reached from the web tier"
  vpc_id      = aws_vpc.main.id

  ingress {
    from_port       = 8080
    to_port         = 8080
    protocol        = "tcp"
    security_groups = [aws_security_group.web.id]
  }
}

resource "aws_instance" "app" {
  ami                    = data.aws_ami.guest.id
  instance_type          = "t3.nano"
  subnet_id              = aws_subnet.private.id
  private_ip             = "10.0.2.10"
  key_name               = aws_key_pair.deployer.key_name
  vpc_security_group_ids = [aws_security_group.app.id]

  tags = {
    Name = "%(name)s-app"
  }
}

resource "aws_network_interface" "second" {
  subnet_id       = aws_subnet.private.id
  private_ips     = ["10.0.2.20", "10.0.2.21"]
  security_groups = [aws_security_group.web.id]
  description     = "second leg"

  tags = {
    Name = "%(name)s-second"
  }
}

resource "aws_network_interface_attachment" "second" {
  instance_id          = aws_instance.app.id
  network_interface_id = aws_network_interface.second.id
  device_index         = 1
}

resource "aws_eip" "nat" {
  domain     = "vpc"
  depends_on = [aws_internet_gateway.gw]
}

resource "aws_nat_gateway" "out" {
  allocation_id = aws_eip.nat.id
  subnet_id     = aws_subnet.public.id

  tags = {
    Name = "%(name)s"
  }

  depends_on = [aws_internet_gateway.gw]
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.main.id

  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.out.id
  }
}

resource "aws_route_table_association" "private" {
  subnet_id      = aws_subnet.private.id
  route_table_id = aws_route_table.private.id
}

resource "aws_eip" "app" {
  domain = "vpc"

  tags = {
    Name = "%(name)s-app"
  }
}

resource "aws_eip_association" "app" {
  instance_id   = aws_instance.app.id
  allocation_id = aws_eip.app.id
}

data "aws_subnets" "private" {
  filter {
    name   = "vpc-id"
    values = [aws_vpc.main.id]
  }

  tags = {
    Tier = "private"
  }

  depends_on = [aws_subnet.private]
}

output "zone_names" {
  value = data.aws_availability_zones.all.names
}

output "key_pair_id" {
  value = aws_key_pair.deployer.key_pair_id
}

output "fingerprint" {
  value = aws_key_pair.deployer.fingerprint
}

output "vpc_id" {
  value = aws_vpc.main.id
}

output "main_route_table" {
  value = aws_vpc.main.main_route_table_id
}

output "default_network_acl" {
  value = aws_vpc.main.default_network_acl_id
}

output "default_security_group" {
  value = aws_vpc.main.default_security_group_id
}

output "private_subnets" {
  value = data.aws_subnets.private.ids
}

output "app_ip" {
  value = aws_instance.app.private_ip
}

output "app_public_ip" {
  value = aws_eip.app.public_ip
}

output "second_interface" {
  value = aws_network_interface.second.id
}

output "second_attachment" {
  value = aws_network_interface_attachment.second.attachment_id
}

output "nat_gateway" {
  value = aws_nat_gateway.out.id
}
"""


def test_terraform_vpc_network(server_factory, test_image, tmp_path):
    """A key pair and the zones, and a VPC with public and private subnets, an internet gateway, a route table with its route
    and association, a NAT gateway with its Elastic IP and the private subnet's table routed to
    it, two groups (one referring to the other), an instance at a fixed private address in the
    private subnet with an Elastic IP of its own and a second network interface attached: apply,
    a second plan with no changes, destroy, on a real guest (QEMU) whose VPC is on OVN: the
    second interface is hot-plugged into it and answers on its address."""
    from ovn_helpers import CONFIG as OVN_CONFIG, require_ovn

    require_qemu()
    require_ovn()
    # A public network of its own (RFC 6598's shared space), so that the VPC scenarios'
    # documentation ranges may run beside it.
    server = server_factory(config=OVN_CONFIG + 'public_cidr = "100.64.0.0/24"\n')
    ec2 = ec2_client(server)
    image_id = import_image(server, test_image, "tf vpc image")
    name = f"tf-vpc-{uuid.uuid4().hex[:8]}"
    public_key = public_key_line(tmp_path)
    tf = Terraform(tmp_path, VPC_CONFIG % {
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "endpoint": server.endpoint,
        "image_id": image_id,
        "name": name,
        "public_key": public_key,
    })
    tf("init", "-input=false", "-no-color")
    applied = False
    try:
        tf("apply", "-auto-approve", "-input=false", "-no-color")
        applied = True
        outputs = tf.outputs()
        # The key pair and the zones, as Terraform made and read them.
        assert "us-east-1a" in outputs["zone_names"], outputs
        [pair] = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]
        assert (pair["KeyPairId"], pair["KeyFingerprint"], pair["KeyType"]) == (
            outputs["key_pair_id"], outputs["fingerprint"], "ed25519")
        assert sorted((t["Key"], t["Value"]) for t in pair.get("Tags", [])) == [("Env", "compat"), ("Name", name)]
        with_public = ec2.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"][0]
        assert with_public["PublicKey"].split()[:2] == public_key.split()[:2]
        vpc_id = outputs["vpc_id"]
        [vpc] = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]
        assert (vpc["CidrBlock"], vpc["IsDefault"]) == ("10.0.0.0/16", False)
        assert ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"] == {
            "Value": True}
        [main] = ec2.describe_route_tables(RouteTableIds=[outputs["main_route_table"]])["RouteTables"]
        assert main["VpcId"] == vpc_id and main["Associations"][0]["Main"]
        assert outputs["default_network_acl"].startswith("acl-")
        [default_group] = ec2.describe_security_groups(GroupIds=[outputs["default_security_group"]])["SecurityGroups"]
        assert (default_group["GroupName"], default_group["VpcId"]) == ("default", vpc_id)
        subnets = {s["CidrBlock"]: s for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]}
        assert subnets["10.0.1.0/24"]["MapPublicIpOnLaunch"] and not subnets["10.0.2.0/24"]["MapPublicIpOnLaunch"]
        assert outputs["private_subnets"] == [subnets["10.0.2.0/24"]["SubnetId"]]
        [routed] = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id",
                                                       "Values": [subnets["10.0.1.0/24"]["SubnetId"]]}])["RouteTables"]
        gateway = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])
        [gateway] = gateway["InternetGateways"]
        assert {r["DestinationCidrBlock"]: r.get("GatewayId") for r in routed["Routes"]} == {
            "10.0.0.0/16": "local", "0.0.0.0/0": gateway["InternetGatewayId"]}
        [instance] = [i for r in ec2.describe_instances(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Reservations"]
                      for i in r["Instances"]]
        assert (instance["PrivateIpAddress"], instance["SubnetId"]) == ("10.0.2.10", subnets["10.0.2.0/24"]["SubnetId"])
        assert outputs["app_ip"] == "10.0.2.10"
        described = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]["Instances"][0]
        assert described["PublicIpAddress"] == outputs["app_public_ip"]
        [nat] = ec2.describe_nat_gateways(NatGatewayIds=[outputs["nat_gateway"]])["NatGateways"]
        assert (nat["State"], nat["SubnetId"]) == ("available", subnets["10.0.1.0/24"]["SubnetId"])
        [private_table] = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id",
                                                              "Values": [subnets["10.0.2.0/24"]["SubnetId"]]}])["RouteTables"]
        assert {r["DestinationCidrBlock"]: r.get("NatGatewayId") for r in private_table["Routes"]}["0.0.0.0/0"] == nat[
            "NatGatewayId"]

        [second] = ec2.describe_network_interfaces(NetworkInterfaceIds=[outputs["second_interface"]])["NetworkInterfaces"]
        assert [a["PrivateIpAddress"] for a in second["PrivateIpAddresses"]] == ["10.0.2.20", "10.0.2.21"]
        assert (second["Attachment"]["InstanceId"], second["Attachment"]["DeviceIndex"]) == (
            instance["InstanceId"], 1)
        assert second["Attachment"]["AttachmentId"] == outputs["second_attachment"]
        assert second["Description"] == "second leg" and second["Status"] == "in-use"
        # The real guest has the second NIC, and its address from OVN's DHCP.
        wanted = f"={second['MacAddress']}/10.0.2.20"
        deadline = time.monotonic() + 120
        while wanted not in (console := ec2.get_console_output(InstanceId=instance["InstanceId"]).get("Output", "")):
            assert time.monotonic() < deadline, f"the guest never had its second NIC's address: {console[-1500:]}"
            time.sleep(2)

        tf.assert_no_changes()

        tf("destroy", "-auto-approve", "-input=false", "-no-color")
        applied = False
        with pytest.raises(ClientError) as excinfo:
            ec2.describe_network_interfaces(NetworkInterfaceIds=[outputs["second_interface"]])
        assert excinfo.value.response["Error"]["Code"] == "InvalidNetworkInterfaceID.NotFound"
        with pytest.raises(ClientError) as excinfo:
            ec2.describe_vpcs(VpcIds=[vpc_id])
        assert excinfo.value.response["Error"]["Code"] == "InvalidVpcID.NotFound"
        assert not ec2.describe_internet_gateways(Filters=[{"Name": "tag:Name", "Values": [name]}])["InternetGateways"]
        with pytest.raises(ClientError) as excinfo:
            ec2.describe_key_pairs(KeyNames=[name])
        assert excinfo.value.response["Error"]["Code"] == "InvalidKeyPair.NotFound"
    finally:
        if applied:
            tf.destroy_quietly()
        server.stop()
        forget_ovn_installation((server.data_dir / "installation").read_text().strip())


ENI_CONFIG = CONFIG.split('resource "aws_key_pair"')[0] + """
resource "aws_vpc" "main" {
  cidr_block = "10.20.0.0/16"
}

resource "aws_subnet" "a" {
  vpc_id            = aws_vpc.main.id
  cidr_block        = "10.20.1.0/24"
  availability_zone = "us-east-1a"
}

resource "aws_network_interface" "front" {
  subnet_id   = aws_subnet.a.id
  private_ips = ["10.20.1.50", "10.20.1.51"]
  description = "front"

  tags = {
    Name = "front"
  }
}

resource "aws_instance" "on_interface" {
  ami           = "%(image_id)s"
  instance_type = "t3.nano"

  network_interface {
    network_interface_id = aws_network_interface.front.id
    device_index         = 0
  }
}

resource "aws_instance" "with_secondaries" {
  ami                   = "%(image_id)s"
  instance_type         = "t3.nano"
  subnet_id             = aws_subnet.a.id
  private_ip            = "10.20.1.60"
  secondary_private_ips = ["10.20.1.61", "10.20.1.62"]
}

output "on_interface" {
  value = aws_instance.on_interface.id
}

output "with_secondaries" {
  value = aws_instance.with_secondaries.id
}
"""


def test_terraform_instances_on_an_interface_and_with_secondary_addresses(server_factory, test_image, tmp_path):
    """`aws_instance` with a `network_interface` block (an `aws_network_interface` at device
    index 0) and one with `secondary_private_ips`, on libvirt's test driver: apply, a second plan
    with no changes, destroy (the interface outlives its instance until Terraform deletes it)."""
    from conftest import TEST_DRIVER_CONFIG

    server = server_factory(config=TEST_DRIVER_CONFIG)
    ec2 = ec2_client(server)
    tf = Terraform(tmp_path, ENI_CONFIG % {
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "endpoint": server.endpoint,
        "image_id": import_image(server, test_image, "tf eni image"),
    })
    tf("init", "-input=false", "-no-color")
    applied = False
    try:
        tf("apply", "-auto-approve", "-input=false", "-no-color")
        applied = True
        outputs = tf.outputs()
        [on_interface] = ec2.describe_instances(InstanceIds=[outputs["on_interface"]])["Reservations"][0]["Instances"]
        primary = on_interface["NetworkInterfaces"][0]
        assert (on_interface["PrivateIpAddress"], primary["Description"]) == ("10.20.1.50", "front"), primary
        assert [a["PrivateIpAddress"] for a in primary["PrivateIpAddresses"]] == ["10.20.1.50", "10.20.1.51"]
        [secondaries] = ec2.describe_instances(
            InstanceIds=[outputs["with_secondaries"]])["Reservations"][0]["Instances"]
        held = sorted(a["PrivateIpAddress"] for a in secondaries["NetworkInterfaces"][0]["PrivateIpAddresses"])
        assert held == ["10.20.1.60", "10.20.1.61", "10.20.1.62"], held
        tf.assert_no_changes()
    finally:
        if applied:
            tf("destroy", "-auto-approve", "-input=false", "-no-color")
    assert not ec2.describe_network_interfaces(
        Filters=[{"Name": "description", "Values": ["front"]}])["NetworkInterfaces"], "destroyed"


HOST_CONFIG = CONFIG.split('resource "aws_key_pair"')[0] + """
resource "aws_ec2_host" "dedicated" {
  availability_zone = "%(zone)s"
  instance_family   = "t3"
  auto_placement    = "on"
  host_recovery     = "off"

  tags = {
    Name = "tf-dedicated"
  }
}

resource "aws_instance" "on_host" {
  ami           = "%(image_id)s"
  instance_type = "t3.nano"
  tenancy       = "host"
  host_id       = aws_ec2_host.dedicated.id
}

# The tenant's own copy of the public image, shared with another account.
resource "aws_ami_copy" "mine" {
  name              = "tf-copy"
  description       = "a copy of the pool's image"
  source_ami_id     = "%(image_id)s"
  source_ami_region = "us-east-1"
}

resource "aws_ami_launch_permission" "friend" {
  image_id   = aws_ami_copy.mine.id
  account_id = "123456789012"
}

# The account's EBS switches, and a volume encrypted under the chosen key.
resource "aws_ebs_encryption_by_default" "on" {
  enabled = true
}

resource "aws_ebs_default_kms_key" "chosen" {
  key_arn = "%(kms_key)s"
}

resource "aws_ebs_volume" "sealed" {
  availability_zone = "%(zone)s"
  size              = 1
  encrypted         = true
  kms_key_id        = "%(kms_key)s"
}

output "sealed_volume_id" {
  value = aws_ebs_volume.sealed.id
}

output "copy_id" {
  value = aws_ami_copy.mine.id
}

output "host_id" {
  value = aws_ec2_host.dedicated.id
}

output "instance_id" {
  value = aws_instance.on_host.id
}
"""


def test_terraform_dedicated_host_and_a_shared_image_copy(server_factory, test_image, tmp_path):
    """`aws_ec2_host` and an `aws_instance` on it (tenancy host), an `aws_ami_copy` of the
    pool's image shared by `aws_ami_launch_permission`, and the account's EBS encryption
    switches with an encrypted `aws_ebs_volume`, on libvirt's test driver: apply, a
    second plan with no changes, destroy (the host goes back to the pool, the copy goes)."""
    from conftest import TEST_DRIVER_CONFIG

    server = server_factory(config=TEST_DRIVER_CONFIG)
    # A tenant's: admins see the whole pool in DescribeHosts, a tenant its dedicated hosts.
    tenant = create_account(server, "tf-host-tenant")
    ec2 = ec2_client(server, tenant.access_key, tenant.secret_key)
    kms_key = f"arn:aws:kms:us-east-1:{tenant.account_id}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    tf = Terraform(tmp_path, HOST_CONFIG % {
        "access_key": tenant.access_key,
        "secret_key": tenant.secret_key,
        "endpoint": server.endpoint,
        "zone": ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"],
        "image_id": import_image(server, test_image, "tf host image"),
        "kms_key": kms_key,
    })
    tf("init", "-input=false", "-no-color")
    applied = False
    try:
        tf("apply", "-auto-approve", "-input=false", "-no-color")
        applied = True
        outputs = tf.outputs()
        instance = ec2.describe_instances(InstanceIds=[outputs["instance_id"]])["Reservations"][0]["Instances"][0]
        assert (instance["Placement"]["Tenancy"], instance["Placement"]["HostId"]) == ("host", outputs["host_id"])
        [host] = ec2.describe_hosts(HostIds=[outputs["host_id"]])["Hosts"]
        assert [i["InstanceId"] for i in host["Instances"]] == [outputs["instance_id"]]
        assert host["Tags"] == [{"Key": "Name", "Value": "tf-dedicated"}]
        copy = ec2.describe_images(ImageIds=[outputs["copy_id"]])["Images"][0]
        assert (copy["State"], copy["OwnerId"], copy["Name"]) == ("available", tenant.account_id, "tf-copy")
        shared = ec2.describe_image_attribute(ImageId=outputs["copy_id"], Attribute="launchPermission")
        assert shared["LaunchPermissions"] == [{"UserId": "123456789012"}]
        assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
        assert ec2.get_ebs_default_kms_key_id()["KmsKeyId"] == kms_key
        [sealed] = ec2.describe_volumes(VolumeIds=[outputs["sealed_volume_id"]])["Volumes"]
        assert (sealed["Encrypted"], sealed["KmsKeyId"]) == (True, kms_key)
        tf.assert_no_changes()
    finally:
        if applied:
            tf("destroy", "-auto-approve", "-input=false", "-no-color")
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False, "destroy turns it off"
    assert ec2.get_ebs_default_kms_key_id()["KmsKeyId"] == "alias/aws/ebs", "and resets the key"
    assert ec2.describe_hosts()["Hosts"] == [], "released to the pool"
    assert ec2.describe_images(Owners=["self"])["Images"] == [], "the copy is deregistered"
