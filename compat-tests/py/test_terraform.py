"""terraform + hashicorp/aws (from the local filesystem mirror) against a running stratus."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import clean_env

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


def test_terraform_key_pair_and_zones(stratus, ec2, tmp_path):
    terraform = shutil.which("terraform")
    assert terraform, "terraform is not installed (it is needed for this test; nothing is skipped)"
    mirror = find_mirror_root()
    cli_config = tmp_path / "terraform.rc"
    cli_config.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["registry.terraform.io/hashicorp/*"]\n  }}\n'
        '  direct {\n    exclude = ["registry.terraform.io/hashicorp/*"]\n  }\n'
        "}\n"
    )
    work = tmp_path / "tf"
    work.mkdir()
    key_name = f"tf-{uuid.uuid4().hex[:10]}"
    public_key = public_key_line(tmp_path)
    (work / "main.tf").write_text(CONFIG % {
        "access_key": stratus.access_key,
        "secret_key": stratus.secret_key,
        "endpoint": stratus.endpoint,
        "key_name": key_name,
        "public_key": public_key,
    })
    env = clean_env(
        TF_CLI_CONFIG_FILE=str(cli_config),
        CHECKPOINT_DISABLE="1",
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        AWS_EC2_METADATA_DISABLED="true",
    )
    env = {k: v for k, v in env.items() if not k.startswith("TF_") or k in
           ("TF_CLI_CONFIG_FILE", "TF_IN_AUTOMATION", "TF_INPUT")}

    def tf(*args: str, expect: tuple[int, ...] = (0,), timeout: float = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run([terraform, *args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode in expect, (
            f"terraform {' '.join(args)} exited {proc.returncode} (expected {expect})\n"
            f"stdout:\n{proc.stdout[-6000:]}\nstderr:\n{proc.stderr[-6000:]}"
        )
        return proc

    tf("init", "-input=false", "-no-color")
    applied = False
    try:
        tf("apply", "-auto-approve", "-input=false", "-no-color")
        applied = True

        outputs = json.loads(tf("output", "-json").stdout)
        assert "us-east-1a" in outputs["zone_names"]["value"], outputs

        pairs = ec2.describe_key_pairs(KeyNames=[key_name])["KeyPairs"]
        assert len(pairs) == 1, pairs
        kp = pairs[0]
        assert kp["KeyPairId"] == outputs["key_pair_id"]["value"]
        assert kp["KeyFingerprint"] == outputs["fingerprint"]["value"]
        assert kp["KeyType"] == "ed25519"
        assert sorted((t["Key"], t["Value"]) for t in kp.get("Tags", [])) == [("Env", "compat"), ("Name", key_name)]
        with_pub = ec2.describe_key_pairs(KeyNames=[key_name], IncludePublicKey=True)["KeyPairs"][0]
        assert with_pub["PublicKey"].split()[:2] == public_key.split()[:2]

        # a second plan sees no changes
        plan = tf("plan", "-detailed-exitcode", "-input=false", "-no-color", expect=(0, 2))
        assert plan.returncode == 0, f"second plan wants changes:\n{plan.stdout[-6000:]}"

        tf("destroy", "-auto-approve", "-input=false", "-no-color")
        applied = False
        with pytest.raises(ClientError) as excinfo:
            ec2.describe_key_pairs(KeyNames=[key_name])
        assert excinfo.value.response["Error"]["Code"] == "InvalidKeyPair.NotFound"
    finally:
        if applied:
            subprocess.run([terraform, "destroy", "-auto-approve", "-input=false", "-no-color"],
                           cwd=work, env=env, capture_output=True, timeout=600)
