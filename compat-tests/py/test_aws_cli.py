"""The real aws cli (v1) against a running stratus."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

from conftest import aws, write_credentials

ERROR_RE = re.compile(r"An error occurred \(([^)]+)\) when calling the (\w+) operation: (.*)")
KEY_PAIR_ID_RE = re.compile(r"^key-[0-9a-f]{17}$")


def unique(prefix: str = "cli") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ok(stratus, *args, **kw):
    """Runs the cli, asserts success, returns the parsed JSON output (or None if empty)."""
    rc, out, err = aws(stratus, *args, **kw)
    assert rc == 0, f"aws ec2 {' '.join(args)} exited {rc}\nstdout: {out}\nstderr: {err}"
    return json.loads(out) if out.strip() else None


def fails(stratus, *args, code: str, operation: str | None = None, **kw) -> str:
    """Runs the cli, asserts exit 255 and `An error occurred (CODE) ...`; returns the message."""
    rc, out, err = aws(stratus, *args, **kw)
    m = ERROR_RE.search(err)
    assert rc == 255 and m, f"aws ec2 {' '.join(args)}: expected error {code}, got exit {rc}\nstdout: {out}\nstderr: {err}"
    assert m.group(1) == code, f"expected {code}, got {m.group(1)}: {err}"
    if operation:
        assert m.group(2) == operation, err
    return m.group(3)


def sha256_b64_of_openssh_line(line: str) -> str:
    blob = base64.b64decode(line.split()[1])
    return base64.b64encode(hashlib.sha256(blob).digest()).decode()


def ssh_keygen_fingerprint(path: Path) -> str:
    """`ssh-keygen -lf` prints `256 SHA256:<b64 without padding> comment (ED25519)`."""
    path.chmod(0o600)
    out = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True, check=True).stdout
    m = re.search(r"SHA256:([A-Za-z0-9+/]+)", out)
    assert m, out
    return m.group(1)


def md5_of_spki(openssh_line: str) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_public_key(openssh_line.encode())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return ":".join(f"{b:02x}" for b in hashlib.md5(der).digest())


def describe_key(stratus, name: str, *extra: str) -> dict:
    out = ok(stratus, "describe-key-pairs", "--key-names", name, *extra)
    assert len(out["KeyPairs"]) == 1, out
    return out["KeyPairs"][0]


# --- regions, zones, account ----------------------------------------------------------------


def test_describe_regions(stratus):
    out = ok(stratus, "describe-regions")
    regions = {r["RegionName"]: r for r in out["Regions"]}
    assert "us-east-1" in regions, out
    r = regions["us-east-1"]
    assert r.get("Endpoint"), r
    assert r.get("OptInStatus") in {"opt-in-not-required", "opted-in", "not-opted-in"}, r


def test_describe_availability_zones(stratus):
    out = ok(stratus, "describe-availability-zones")
    zones = {z["ZoneName"]: z for z in out["AvailabilityZones"]}
    assert "us-east-1a" in zones, out
    z = zones["us-east-1a"]
    assert z["ZoneId"] == "use1-az1", z
    assert z["State"] == "available", z
    assert z["RegionName"] == "us-east-1", z


def test_describe_account_attributes(stratus):
    out = ok(stratus, "describe-account-attributes")
    attrs = {a["AttributeName"]: [v["AttributeValue"] for v in a.get("AttributeValues", [])] for a in out["AccountAttributes"]}
    assert "VPC" in attrs.get("supported-platforms", []), out
    default_vpc = attrs.get("default-vpc", [])
    assert len(default_vpc) == 1 and re.fullmatch(r"vpc-[0-9a-f]+", default_vpc[0]), out


# --- key pairs --------------------------------------------------------------------------------


def test_create_rsa_key_pair_fingerprint_matches_openssl(stratus, tmp_path):
    assert shutil.which("openssl"), "openssl is needed for this test"
    name = unique("rsa")
    out = ok(stratus, "create-key-pair", "--key-name", name)
    assert out["KeyName"] == name
    assert KEY_PAIR_ID_RE.match(out["KeyPairId"]), out["KeyPairId"]
    material = out["KeyMaterial"]
    assert material.startswith("-----BEGIN RSA PRIVATE KEY-----"), material[:60]
    pem = tmp_path / "key.pem"
    pem.write_text(material if material.endswith("\n") else material + "\n")
    pipeline = f"openssl pkcs8 -in {pem} -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c"
    res = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    expected = res.stdout.strip().split("= ", 1)[1]
    assert out["KeyFingerprint"] == expected

    desc = describe_key(stratus, name)
    assert desc["KeyType"] == "rsa"
    assert desc["KeyFingerprint"] == expected
    assert desc["KeyPairId"] == out["KeyPairId"]
    ok(stratus, "delete-key-pair", "--key-name", name)


def test_create_ed25519_key_pair_fingerprint_matches_ssh_keygen(stratus, tmp_path):
    name = unique("ed")
    out = ok(stratus, "create-key-pair", "--key-name", name, "--key-type", "ed25519")
    material = out["KeyMaterial"]
    assert material.startswith("-----BEGIN OPENSSH PRIVATE KEY-----"), material[:60]
    fp = out["KeyFingerprint"]
    assert fp.endswith("="), f"AWS keeps the base64 padding: {fp}"

    desc = describe_key(stratus, name, "--include-public-key")
    assert desc["KeyType"] == "ed25519"
    assert desc["PublicKey"].startswith("ssh-ed25519 "), desc
    # the public key shown belongs to the private key handed out, and the fingerprint is AWS's
    assert fp == sha256_b64_of_openssh_line(desc["PublicKey"])
    if shutil.which("ssh-keygen"):
        pem = tmp_path / "key.pem"
        pem.write_text(material if material.endswith("\n") else material + "\n")
        assert fp == ssh_keygen_fingerprint(pem) + "="
        derived = subprocess.run(["ssh-keygen", "-y", "-f", str(pem)], capture_output=True, text=True, check=True).stdout
        assert derived.split()[:2] == desc["PublicKey"].split()[:2]
    ok(stratus, "delete-key-pair", "--key-name", name)


def test_describe_key_pairs_by_name_id_filter_and_public_key(stratus):
    prefix = unique("pfx")
    names = [f"{prefix}-a", f"{prefix}-b"]
    created = [ok(stratus, "create-key-pair", "--key-name", n, "--key-type", "ed25519") for n in names]
    other = unique("other")
    ok(stratus, "create-key-pair", "--key-name", other, "--key-type", "ed25519")
    ids = [c["KeyPairId"] for c in created]
    try:
        by_name = ok(stratus, "describe-key-pairs", "--key-names", *names)["KeyPairs"]
        assert sorted(k["KeyName"] for k in by_name) == names
        for k in by_name:
            assert KEY_PAIR_ID_RE.match(k["KeyPairId"]), k
            assert k["KeyType"] == "ed25519", k
            assert k.get("CreateTime"), k
            assert k.get("KeyFingerprint"), k
            assert "PublicKey" not in k, "PublicKey only with --include-public-key"

        by_id = ok(stratus, "describe-key-pairs", "--key-pair-ids", ids[1])["KeyPairs"]
        assert [k["KeyName"] for k in by_id] == [names[1]]

        by_filter = ok(stratus, "describe-key-pairs", "--filters", f"Name=key-name,Values={prefix}-*")["KeyPairs"]
        assert sorted(k["KeyName"] for k in by_filter) == names

        with_pub = ok(stratus, "describe-key-pairs", "--key-names", names[0], "--include-public-key")["KeyPairs"]
        assert with_pub[0]["PublicKey"].startswith("ssh-ed25519 "), with_pub

        everything = ok(stratus, "describe-key-pairs")["KeyPairs"]
        assert {names[0], names[1], other} <= {k["KeyName"] for k in everything}
    finally:
        for n in names + [other]:
            ok(stratus, "delete-key-pair", "--key-name", n)


def test_rsa_public_key_is_openssh(stratus):
    name = unique("rsapub")
    ok(stratus, "create-key-pair", "--key-name", name)
    try:
        k = describe_key(stratus, name, "--include-public-key")
        assert k["PublicKey"].startswith("ssh-rsa "), k
        assert k["KeyType"] == "rsa"
    finally:
        ok(stratus, "delete-key-pair", "--key-name", name)


def _public_key(tmp_path: Path, kind: str) -> Path:
    """An OpenSSH public key file from ssh-keygen (or python cryptography)."""
    pub = tmp_path / f"id_{kind}.pub"
    if shutil.which("ssh-keygen"):
        args = ["-t", "ed25519"] if kind == "ed25519" else ["-t", "rsa", "-b", "2048"]
        subprocess.run(["ssh-keygen", "-q", *args, "-N", "", "-C", "me@host", "-f", str(tmp_path / f"id_{kind}")], check=True)
        return pub
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else rsa.generate_private_key(65537, 2048)
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    pub.write_bytes(line + b" me@host\n")
    return pub


def test_import_ed25519_key_pair(stratus, tmp_path):
    pub = _public_key(tmp_path, "ed25519")
    line = pub.read_text().strip()
    name = unique("imp-ed")
    out = ok(stratus, "import-key-pair", "--key-name", name, "--public-key-material", f"fileb://{pub}")
    assert out["KeyName"] == name
    assert KEY_PAIR_ID_RE.match(out["KeyPairId"]), out
    expected = sha256_b64_of_openssh_line(line)
    assert out["KeyFingerprint"] == expected
    if shutil.which("ssh-keygen"):
        assert expected == ssh_keygen_fingerprint(pub) + "="
    k = describe_key(stratus, name, "--include-public-key")
    assert k["KeyType"] == "ed25519"
    assert k["KeyFingerprint"] == expected
    assert k["PublicKey"].split()[:2] == line.split()[:2]
    ok(stratus, "delete-key-pair", "--key-name", name)


def test_import_rsa_key_pair(stratus, tmp_path):
    pub = _public_key(tmp_path, "rsa")
    line = pub.read_text().strip()
    name = unique("imp-rsa")
    out = ok(stratus, "import-key-pair", "--key-name", name, "--public-key-material", f"fileb://{pub}")
    expected = md5_of_spki(line)
    assert out["KeyFingerprint"] == expected
    if shutil.which("openssl") and shutil.which("ssh-keygen"):
        pipeline = f"ssh-keygen -f {pub} -e -m PKCS8 | openssl pkey -pubin -outform DER | openssl md5 -c"
        res = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip().split("= ", 1)[1] == expected
    k = describe_key(stratus, name, "--include-public-key")
    assert k["KeyType"] == "rsa"
    assert k["KeyFingerprint"] == expected
    assert k["PublicKey"].split()[:2] == line.split()[:2]
    ok(stratus, "delete-key-pair", "--key-name", name)


def test_import_garbage_is_rejected(stratus, tmp_path):
    junk = tmp_path / "junk.pub"
    junk.write_text("this is not a key\n")
    msg = fails(stratus, "import-key-pair", "--key-name", unique("junk"), "--public-key-material", f"fileb://{junk}",
                code="InvalidKey.Format", operation="ImportKeyPair")
    assert msg


def test_key_pair_errors(stratus):
    name = unique("dup")
    ok(stratus, "create-key-pair", "--key-name", name, "--key-type", "ed25519")
    try:
        msg = fails(stratus, "create-key-pair", "--key-name", name, code="InvalidKeyPair.Duplicate", operation="CreateKeyPair")
        assert name in msg, msg
    finally:
        ok(stratus, "delete-key-pair", "--key-name", name)
    missing = unique("missing")
    msg = fails(stratus, "describe-key-pairs", "--key-names", missing, code="InvalidKeyPair.NotFound", operation="DescribeKeyPairs")
    assert missing in msg, msg
    fails(stratus, "describe-key-pairs", "--key-pair-ids", "key-0123456789abcdef0", code="InvalidKeyPair.NotFound")
    # EC2 answers a delete of a missing name with success
    ok(stratus, "delete-key-pair", "--key-name", missing)
    # the deleted key is gone
    fails(stratus, "describe-key-pairs", "--key-names", name, code="InvalidKeyPair.NotFound")


def test_create_key_pair_with_tag_specifications(stratus):
    name = unique("tagspec")
    out = ok(stratus, "create-key-pair", "--key-name", name, "--key-type", "ed25519",
             "--tag-specifications", "ResourceType=key-pair,Tags=[{Key=Name,Value=x},{Key=Env,Value=dev}]")
    try:
        k = describe_key(stratus, name)
        assert sorted((t["Key"], t["Value"]) for t in k.get("Tags", [])) == [("Env", "dev"), ("Name", "x")]
        tags = ok(stratus, "describe-tags", "--filters", f"Name=resource-id,Values={out['KeyPairId']}")["Tags"]
        assert sorted((t["Key"], t["Value"], t["ResourceType"]) for t in tags) == [
            ("Env", "dev", "key-pair"), ("Name", "x", "key-pair")]
    finally:
        ok(stratus, "delete-key-pair", "--key-name", name)


# --- tags -------------------------------------------------------------------------------------


def _tags(out) -> list[tuple[str, str]]:
    return sorted((t["Key"], t["Value"]) for t in out["Tags"])


def test_create_describe_delete_tags(stratus):
    name = unique("tags")
    kp = ok(stratus, "create-key-pair", "--key-name", name, "--key-type", "ed25519")
    rid = kp["KeyPairId"]
    try:
        ok(stratus, "create-tags", "--resources", rid, "--tags", "Key=Env,Value=dev", "Key=Team,Value=core", "Key=Empty,Value=")
        by_id = ok(stratus, "describe-tags", "--filters", f"Name=resource-id,Values={rid}")
        assert _tags(by_id) == [("Empty", ""), ("Env", "dev"), ("Team", "core")]
        for t in by_id["Tags"]:
            assert t["ResourceId"] == rid and t["ResourceType"] == "key-pair", t

        def f(*filters):
            return _tags(ok(stratus, "describe-tags", "--filters", f"Name=resource-id,Values={rid}", *filters))

        assert f("Name=resource-type,Values=key-pair") == [("Empty", ""), ("Env", "dev"), ("Team", "core")]
        assert f("Name=resource-type,Values=instance") == []
        assert f("Name=key,Values=Te*") == [("Team", "core")]
        assert f("Name=key,Values=E*") == [("Empty", ""), ("Env", "dev")]
        assert f("Name=value,Values=d?v") == [("Env", "dev")]
        assert f("Name=value,Values=*or*") == [("Team", "core")]
        assert f("Name=key,Values=Env,Team", "Name=value,Values=c*") == [("Team", "core")]
        assert f("Name=key,Values=nomatch*") == []
        # resource-id with a wildcard finds our resource too
        assert f"{rid}" in {t["ResourceId"] for t in ok(stratus, "describe-tags", "--filters", f"Name=resource-id,Values={rid[:8]}*")["Tags"]}

        # overwrite a value
        ok(stratus, "create-tags", "--resources", rid, "--tags", "Key=Env,Value=prod")
        assert f("Name=key,Values=Env") == [("Env", "prod")]
        # delete with a non-matching value keeps the tag; with the key alone removes it
        ok(stratus, "delete-tags", "--resources", rid, "--tags", "Key=Team,Value=other")
        assert f("Name=key,Values=Team") == [("Team", "core")]
        ok(stratus, "delete-tags", "--resources", rid, "--tags", "Key=Team")
        ok(stratus, "delete-tags", "--resources", rid, "--tags", "Key=Env,Value=prod")
        assert f() == [("Empty", "")]
        k = describe_key(stratus, name)
        assert [(t["Key"], t["Value"]) for t in k.get("Tags", [])] == [("Empty", "")]
    finally:
        ok(stratus, "delete-key-pair", "--key-name", name)
    # tags go with their resource
    assert ok(stratus, "describe-tags", "--filters", f"Name=resource-id,Values={rid}")["Tags"] == []


def test_create_tags_on_unknown_resources(stratus):
    fails(stratus, "create-tags", "--resources", "i-0123456789abcdef0", "--tags", "Key=a,Value=b",
          code="InvalidInstanceID.NotFound", operation="CreateTags")
    fails(stratus, "create-tags", "--resources", "bogus", "--tags", "Key=a,Value=b", code="InvalidID", operation="CreateTags")


def test_describe_tags_pagination(stratus):
    name = unique("page")
    rid = ok(stratus, "create-key-pair", "--key-name", name, "--key-type", "ed25519")["KeyPairId"]
    expected = sorted((f"k{i}", f"v{i}") for i in range(7))
    try:
        ok(stratus, "create-tags", "--resources", rid, "--tags", *[f"Key={k},Value={v}" for k, v in expected])
        flt = ["--filters", f"Name=resource-id,Values={rid}"]

        # the cli follows NextToken across server pages of 5
        assert _tags(ok(stratus, "describe-tags", *flt, "--page-size", "5")) == expected

        # --max-items cuts the output and prints a NextToken; --starting-token continues
        first = ok(stratus, "describe-tags", *flt, "--max-items", "3")
        assert len(first["Tags"]) == 3 and first.get("NextToken"), first
        rest = ok(stratus, "describe-tags", *flt, "--starting-token", first["NextToken"])
        assert "NextToken" not in rest, rest
        assert sorted(_tags(first) + _tags(rest)) == expected

        # across a server page boundary: 5 + 1 on the first call, the last 1 after the token
        first = ok(stratus, "describe-tags", *flt, "--page-size", "5", "--max-items", "6")
        assert len(first["Tags"]) == 6 and first.get("NextToken"), first
        rest = ok(stratus, "describe-tags", *flt, "--page-size", "5", "--starting-token", first["NextToken"])
        assert sorted(_tags(first) + _tags(rest)) == expected
        assert len(rest["Tags"]) == 1
    finally:
        ok(stratus, "delete-key-pair", "--key-name", name)


# --- instance types ---------------------------------------------------------------------------


def test_describe_instance_types(stratus):
    out = ok(stratus, "describe-instance-types", "--instance-types", "t3.micro")
    assert len(out["InstanceTypes"]) == 1, out
    t = out["InstanceTypes"][0]
    assert t["InstanceType"] == "t3.micro"
    assert t["VCpuInfo"]["DefaultVCpus"] == 2
    assert t["MemoryInfo"]["SizeInMiB"] == 1024
    assert t["BurstablePerformanceSupported"] is True
    m5 = ok(stratus, "describe-instance-types", "--instance-types", "m5.large")["InstanceTypes"][0]
    assert m5["BurstablePerformanceSupported"] is False
    assert m5["MemoryInfo"]["SizeInMiB"] == 8192
    fails(stratus, "describe-instance-types", "--instance-types", "t3.nonesuch", code="InvalidInstanceType",
          operation="DescribeInstanceTypes")


def test_describe_instance_type_offerings(stratus):
    out = ok(stratus, "describe-instance-type-offerings")
    offers = {o["InstanceType"]: o for o in out["InstanceTypeOfferings"]}
    assert "t3.micro" in offers, out
    assert offers["t3.micro"]["Location"] == "us-east-1"
    assert offers["t3.micro"]["LocationType"] == "region"

    out = ok(stratus, "describe-instance-type-offerings", "--location-type", "availability-zone")
    t3 = [o for o in out["InstanceTypeOfferings"] if o["InstanceType"] == "t3.micro"]
    assert [(o["Location"], o["LocationType"]) for o in t3] == [("us-east-1a", "availability-zone")], out

    # What this machine's one host can hold (its CPUs with the 4× overcommit, its memory), no more.
    out = ok(stratus, "describe-instance-type-offerings", "--filters", "Name=instance-type,Values=c5.*")
    offered = {o["InstanceType"] for o in out["InstanceTypeOfferings"]}
    assert "c5.large" in offered and all(t.startswith("c5.") for t in offered), offered
    assert not offered & {"c5.24xlarge", "c5.metal"}, offered


# --- dry run and auth -------------------------------------------------------------------------


def test_dry_run_creates_nothing(stratus):
    name = unique("dry")
    msg = fails(stratus, "create-key-pair", "--key-name", name, "--dry-run", code="DryRunOperation", operation="CreateKeyPair")
    assert "would have succeeded" in msg.lower(), msg
    fails(stratus, "describe-key-pairs", "--key-names", name, code="InvalidKeyPair.NotFound")


def test_wrong_secret_is_signature_does_not_match(stratus, tmp_path):
    creds = write_credentials(tmp_path / "creds", stratus.access_key, "x" * 40)
    fails(stratus, "describe-regions", code="SignatureDoesNotMatch", operation="DescribeRegions", creds=creds)


def test_unknown_access_key_is_auth_failure(stratus, tmp_path):
    creds = write_credentials(tmp_path / "creds", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    fails(stratus, "describe-regions", code="AuthFailure", operation="DescribeRegions", creds=creds)
