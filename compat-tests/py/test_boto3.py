"""boto3 / botocore against a running stratus: shapes, accounts, errors, SigV4, persistence."""

from __future__ import annotations

import datetime
import os
import re
import socket
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path

import conftest
import pytest
from botocore.exceptions import ClientError

from conftest import (
    admin_env,
    FORM_CONTENT_TYPE,
    RawResponse,
    create_account,
    ec2_client,
    free_port,
    list_accounts,
    send,
    sign,
    signed_request,
    strip_ns,
    xml_error,
)

KEY_PAIR_ID_RE = re.compile(r"^key-[0-9a-f]{17}$")
# AWS's catalogue, as backend/data/instance_types.tsv holds it (scripts/regen-instance-types).
CATALOGUE = Path(__file__).resolve().parents[2] / "backend" / "data" / "instance_types.tsv"
ALL_TYPES = {line.split("\t", 1)[0] for line in CATALOGUE.read_text().splitlines()[2:]}
VERSION = "Version=2016-11-15"


def unique(prefix: str = "b3") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def assert_client_error(code: str, fn, *args, **kw) -> ClientError:
    with pytest.raises(ClientError) as excinfo:
        fn(*args, **kw)
    assert error_code(excinfo) == code, excinfo.value.response
    return excinfo.value


def assert_raw_error(resp: RawResponse, code: str, status: int | None = None) -> None:
    assert resp.error_code == code, f"expected {code}, got HTTP {resp.status}: {resp.body[:2000]!r}"
    if status is not None:
        assert resp.status == status, f"{code}: expected HTTP {status}, got {resp.status}"


# --- key pair round trip ------------------------------------------------------------------


def test_key_pair_round_trip(ec2):
    name = unique("rt")
    created = ec2.create_key_pair(KeyName=name, KeyType="ed25519")
    assert created["KeyName"] == name
    assert KEY_PAIR_ID_RE.match(created["KeyPairId"]), created
    assert created["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", created["KeyFingerprint"]), created["KeyFingerprint"]
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert created["ResponseMetadata"].get("RequestId"), created["ResponseMetadata"]

    pairs = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]
    assert len(pairs) == 1
    kp = pairs[0]
    assert kp["KeyName"] == name
    assert kp["KeyPairId"] == created["KeyPairId"]
    assert kp["KeyFingerprint"] == created["KeyFingerprint"]
    assert kp["KeyType"] == "ed25519"
    assert isinstance(kp["CreateTime"], datetime.datetime)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - kp["CreateTime"]).total_seconds()) < 300, kp["CreateTime"]
    assert "KeyMaterial" not in kp

    by_id = ec2.describe_key_pairs(KeyPairIds=[created["KeyPairId"]])["KeyPairs"]
    assert [k["KeyName"] for k in by_id] == [name]

    deleted = ec2.delete_key_pair(KeyPairId=created["KeyPairId"])
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert_client_error("InvalidKeyPair.NotFound", ec2.describe_key_pairs, KeyNames=[name])


def test_rsa_key_pair_shapes(ec2):
    name = unique("rsa")
    created = ec2.create_key_pair(KeyName=name)
    try:
        assert created["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----")
        assert re.fullmatch(r"([0-9a-f]{2}:){19}[0-9a-f]{2}", created["KeyFingerprint"]), created["KeyFingerprint"]
        kp = ec2.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"][0]
        assert kp["KeyType"] == "rsa"
        assert kp["PublicKey"].startswith("ssh-rsa ")
    finally:
        ec2.delete_key_pair(KeyName=name)


def test_describe_key_pairs_tag_filters(ec2):
    a, b, c = unique("tf-a"), unique("tf-b"), unique("tf-c")
    ec2.create_key_pair(KeyName=a, KeyType="ed25519",
                        TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "Env", "Value": "dev"}]}])
    kb = ec2.create_key_pair(KeyName=b, KeyType="ed25519")
    ec2.create_tags(Resources=[kb["KeyPairId"]], Tags=[{"Key": "Env", "Value": "prod"}, {"Key": "Owner", "Value": "me"}])
    ec2.create_key_pair(KeyName=c, KeyType="ed25519")
    try:
        names = [a, b, c]

        def names_for(filters):
            pairs = ec2.describe_key_pairs(KeyNames=names, Filters=filters)["KeyPairs"]
            return sorted(k["KeyName"] for k in pairs)

        assert names_for([{"Name": "tag:Env", "Values": ["d*"]}]) == [a]
        assert names_for([{"Name": "tag:Env", "Values": ["d*", "prod"]}]) == [a, b]
        assert names_for([{"Name": "tag-key", "Values": ["Env"]}]) == [a, b]
        assert names_for([{"Name": "tag-key", "Values": ["Own*"]}]) == [b]
        assert names_for([{"Name": "tag-value", "Values": ["me"]}]) == [b]
        assert names_for([{"Name": "tag:Env", "Values": ["*"]}, {"Name": "tag-key", "Values": ["Owner"]}]) == [b]
        assert names_for([{"Name": "key-name", "Values": [c]}]) == [c]
        assert names_for([{"Name": "key-pair-id", "Values": [kb["KeyPairId"]]}]) == [b]
        assert names_for([{"Name": "tag:Env", "Values": ["nothing"]}]) == []
        tagged = ec2.describe_key_pairs(KeyNames=[b])["KeyPairs"][0]["Tags"]
        assert sorted((t["Key"], t["Value"]) for t in tagged) == [("Env", "prod"), ("Owner", "me")]
    finally:
        for n in (a, b, c):
            ec2.delete_key_pair(KeyName=n)


def test_import_key_pair_with_tags(ec2):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    line = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    name = unique("imp")
    out = ec2.import_key_pair(KeyName=name, PublicKeyMaterial=line + b" c@d",
                              TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "Name", "Value": name}]}])
    try:
        assert out["KeyName"] == name
        assert KEY_PAIR_ID_RE.match(out["KeyPairId"])
        assert out["Tags"] == [{"Key": "Name", "Value": name}]
        kp = ec2.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"][0]
        assert kp["PublicKey"].split()[:2] == line.decode().split()[:2]
        assert kp["KeyFingerprint"] == out["KeyFingerprint"]
    finally:
        ec2.delete_key_pair(KeyName=name)


def test_import_key_pair_in_every_format_ec2_takes(ec2, tmp_path):
    """OpenSSH, RFC 4716 (`ssh-keygen -e`), PEM (SubjectPublicKeyInfo and PKCS#1) and base64
    DER: one key, one fingerprint, EC2's for imported RSA keys (MD5 of the DER public key)."""
    import base64
    import hashlib

    from cryptography.hazmat.primitives import serialization

    key = tmp_path / "id_rsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "me@laptop", "-f", str(key)],
                   check=True)
    pub = key.with_suffix(".pub")

    def exported(*mode):
        return subprocess.run(["ssh-keygen", "-e", *mode, "-f", str(pub)], check=True, capture_output=True).stdout

    public = serialization.load_ssh_public_key(pub.read_bytes())
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    expected = ":".join(f"{b:02x}" for b in hashlib.md5(der).digest())
    formats = {"openssh": pub.read_bytes(), "rfc4716": exported(), "pkcs8": exported("-m", "PKCS8"),
               "pkcs1": exported("-m", "PEM"), "der": base64.b64encode(der)}
    assert formats["rfc4716"].startswith(b"---- BEGIN SSH2 PUBLIC KEY ----"), formats["rfc4716"]
    names = []
    try:
        for kind, material in formats.items():
            name = unique(f"fmt-{kind}")
            out = ec2.import_key_pair(KeyName=name, PublicKeyMaterial=material)
            names.append(name)
            assert out["KeyFingerprint"] == expected, (kind, out["KeyFingerprint"], expected)
            shown = ec2.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"][0]
            assert shown["PublicKey"].split()[:2] == pub.read_text().split()[:2], kind
        with pytest.raises(ClientError) as e:
            ec2.import_key_pair(KeyName=unique("fmt-bad"), PublicKeyMaterial=b"---- BEGIN SSH2 PUBLIC KEY ----\nAAAA")
        assert e.value.response["Error"]["Code"] == "InvalidKey.Format"
    finally:
        for name in names:
            ec2.delete_key_pair(KeyName=name)


# --- accounts -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def second_account(stratus):
    return create_account(stratus, unique("acct"))


def test_account_list_shows_created_account(stratus, second_account):
    listing = list_accounts(stratus)
    lines = [line for line in listing.splitlines() if second_account.account_id in line]
    assert len(lines) == 1, listing
    assert second_account.name in lines[0], listing
    if stratus.account_id:
        assert stratus.account_id in listing
        assert stratus.account_id != second_account.account_id


def test_admin_credentials_name_the_admin_account(stratus):
    assert stratus.account_id, f"no 12-digit account id in {stratus.creds_file}:\n{stratus.creds_file.read_text()}"
    lines = [line for line in list_accounts(stratus).splitlines() if stratus.account_id in line]
    assert len(lines) == 1, lines
    assert stratus.access_key in lines[0], lines


def test_create_admin_account(stratus):
    admin = create_account(stratus, unique("adm"), admin=True)
    client = ec2_client(stratus, admin.access_key, admin.secret_key)
    assert "us-east-1" in {r["RegionName"] for r in client.describe_regions()["Regions"]}
    assert client.describe_key_pairs()["KeyPairs"] == []
    lines = [line for line in list_accounts(stratus).splitlines() if admin.account_id in line]
    assert len(lines) == 1 and admin.name in lines[0], lines


def test_accounts_are_isolated(stratus, ec2, second_account):
    other = ec2_client(stratus, second_account.access_key, second_account.secret_key)
    name = unique("iso")
    mine = ec2.create_key_pair(KeyName=name, KeyType="ed25519",
                               TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "Owner", "Value": "first"}]}])
    try:
        assert other.describe_key_pairs()["KeyPairs"] == []
        assert_client_error("InvalidKeyPair.NotFound", other.describe_key_pairs, KeyNames=[name])
        assert_client_error("InvalidKeyPair.NotFound", other.describe_key_pairs, KeyPairIds=[mine["KeyPairId"]])
        assert other.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"] == []
        assert other.describe_tags(Filters=[{"Name": "resource-id", "Values": [mine["KeyPairId"]]}])["Tags"] == []

        with pytest.raises(ClientError) as excinfo:
            other.create_tags(Resources=[mine["KeyPairId"]], Tags=[{"Key": "Owner", "Value": "second"}])
        assert error_code(excinfo) == "InvalidKeyPair.NotFound", excinfo.value.response

        # a delete from the other account never touches ours (EC2 answers a missing name with success)
        other.delete_key_pair(KeyName=name)
        try:
            other.delete_key_pair(KeyPairId=mine["KeyPairId"])
        except ClientError as e:
            assert e.response["Error"]["Code"] == "InvalidKeyPair.NotFound", e.response

        still = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]
        assert [k["KeyPairId"] for k in still] == [mine["KeyPairId"]]
        assert still[0]["Tags"] == [{"Key": "Owner", "Value": "first"}]

        # both accounts can have a key of the same name
        theirs = other.create_key_pair(KeyName=name, KeyType="ed25519")
        assert theirs["KeyPairId"] != mine["KeyPairId"]
        assert [k["KeyPairId"] for k in other.describe_key_pairs()["KeyPairs"]] == [theirs["KeyPairId"]]
        assert [k["KeyPairId"] for k in ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]] == [mine["KeyPairId"]]
        other.delete_key_pair(KeyName=name)
        assert other.describe_key_pairs()["KeyPairs"] == []
        assert [k["KeyPairId"] for k in ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]] == [mine["KeyPairId"]]
    finally:
        ec2.delete_key_pair(KeyName=name)


def test_second_account_sees_shared_topology(stratus, second_account):
    other = ec2_client(stratus, second_account.access_key, second_account.secret_key)
    assert "us-east-1" in {r["RegionName"] for r in other.describe_regions()["Regions"]}


# --- error codes ----------------------------------------------------------------------------


def test_unknown_filter_name(ec2):
    assert_client_error("InvalidParameterValue", ec2.describe_key_pairs, Filters=[{"Name": "no-such-filter", "Values": ["x"]}])


def test_max_results_out_of_range(stratus):
    # botocore itself refuses MaxResults < 5 for this action; switch that off to reach the server
    unchecked = ec2_client(stratus, validate=False)
    assert_client_error("InvalidParameterValue", unchecked.describe_instance_types, MaxResults=2)
    assert_client_error("InvalidParameterValue", unchecked.describe_instance_types, MaxResults=101)


def test_bad_next_token(ec2):
    assert_client_error("InvalidParameterValue", ec2.describe_instance_types, NextToken="garbage!!")
    assert_client_error("InvalidParameterValue", ec2.describe_tags, NextToken="bm90IGEgdG9rZW4")


def test_missing_parameter(stratus):
    assert_raw_error(signed_request(stratus, f"Action=CreateKeyPair&{VERSION}"), "MissingParameter", 400)


def test_unknown_parameter(stratus):
    assert_raw_error(signed_request(stratus, f"Action=DescribeRegions&{VERSION}&Foo=bar"), "UnknownParameter", 400)


def test_unknown_action(stratus):
    assert_raw_error(signed_request(stratus, f"Action=NoSuchThing&{VERSION}"), "InvalidAction", 400)


def test_no_authorization_header(stratus):
    body = f"Action=DescribeRegions&{VERSION}".encode()
    resp = send(stratus.endpoint + "/", body, {"Content-Type": FORM_CONTENT_TYPE})
    assert_raw_error(resp, "MissingAuthenticationToken")
    assert 400 <= resp.status < 500


def test_unknown_scope_region(stratus):
    resp = signed_request(stratus, f"Action=DescribeRegions&{VERSION}", region="xx-nowhere-1")
    assert_raw_error(resp, "AuthFailure", 401)


def sign_with_skew(stratus, monkeypatch, skew: datetime.timedelta):
    """Signs a DescribeRegions with botocore's clock moved by `skew`."""
    import botocore.auth

    real = botocore.auth.get_current_datetime
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **kw: real(*a, **kw) + skew)
    signed = sign(stratus, f"Action=DescribeRegions&{VERSION}")
    monkeypatch.undo()
    return signed


def test_old_request_date_is_expired(stratus, monkeypatch):
    url, data, headers = sign_with_skew(stratus, monkeypatch, -datetime.timedelta(minutes=10))
    stamp = datetime.datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    age = datetime.datetime.now(datetime.timezone.utc) - stamp
    assert datetime.timedelta(minutes=9) < age < datetime.timedelta(minutes=11), headers  # the patch took
    assert_raw_error(send(url, data, headers), "RequestExpired", 400)


def test_future_request_date_is_expired(stratus, monkeypatch):
    url, data, headers = sign_with_skew(stratus, monkeypatch, datetime.timedelta(minutes=10))
    assert_raw_error(send(url, data, headers), "RequestExpired", 400)


def test_slightly_skewed_date_is_accepted(stratus, monkeypatch):
    url, data, headers = sign_with_skew(stratus, monkeypatch, -datetime.timedelta(minutes=2))
    resp = send(url, data, headers)
    assert resp.status == 200, resp.body[:2000]


def test_garbled_authorization_header(stratus):
    url, data, headers = sign(stratus, f"Action=DescribeRegions&{VERSION}")
    headers["Authorization"] = "AWS4-HMAC-SHA256 garbage"
    assert_raw_error(send(url, data, headers), "IncompleteSignature", 400)


def test_tampered_body(stratus):
    url, data, headers = sign(stratus, f"Action=DescribeKeyPairs&{VERSION}&KeyName.1=aaaa")
    tampered = data.replace(b"aaaa", b"bbbb")
    assert_raw_error(send(url, tampered, headers), "SignatureDoesNotMatch", 403)


def test_tampered_signed_header(stratus):
    url, data, headers = sign(stratus, f"Action=DescribeRegions&{VERSION}")
    signed = re.search(r"SignedHeaders=([^,]+)", headers["Authorization"]).group(1).split(";")
    assert "content-type" in signed, headers["Authorization"]
    headers["Content-Type"] = "application/x-www-form-urlencoded; charset=UTF-8"
    assert_raw_error(send(url, data, headers), "SignatureDoesNotMatch", 403)


def test_signed_request_succeeds(stratus):
    """The control for the raw-request tests above: the untouched request works."""
    resp = signed_request(stratus, f"Action=DescribeRegions&{VERSION}")
    assert resp.status == 200, resp.body[:2000]
    root = strip_ns(resp.xml)
    assert "us-east-1" in [e.text for e in root.iter("regionName")]


def test_reserved_and_non_ascii_characters_are_signed_correctly(ec2):
    """SigV4 over percent-encoded bodies: the server hashes the raw bytes it got."""
    odd = "a b/c+d=e&f~*\u00fc%20'\"<>"
    assert ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [odd]}])["KeyPairs"] == []
    name = unique("odd")
    kp = ec2.create_key_pair(KeyName=name, KeyType="ed25519")
    try:
        value = "x y+z/\u00fc & <tag> \u2603"
        ec2.create_tags(Resources=[kp["KeyPairId"]], Tags=[{"Key": "odd key/\u00e9", "Value": value}])
        tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [kp["KeyPairId"]]}])["Tags"]
        assert [(t["Key"], t["Value"]) for t in tags] == [("odd key/\u00e9", value)]
        found = ec2.describe_key_pairs(Filters=[{"Name": "tag:odd key/\u00e9", "Values": ["x y+z/*"]}])["KeyPairs"]
        assert [k["KeyName"] for k in found] == [name]
    finally:
        ec2.delete_key_pair(KeyName=name)


def test_parameter_order_does_not_matter(stratus):
    """The Go SDK sorts keys (Action and Version land anywhere); botocore puts them first."""
    resp = signed_request(stratus, "Filter.1.Name=zone-name&Filter.1.Value.1=us-east-1a&Version=2016-11-15"
                                   "&Action=DescribeAvailabilityZones", content_type="application/x-www-form-urlencoded")
    assert resp.status == 200, resp.body[:2000]
    assert [e.text for e in strip_ns(resp.xml).iter("zoneName")] == ["us-east-1a"]


def test_empty_next_token_is_absent(ec2):
    """`--starting-token ''` sends `NextToken=`: treat it as no token."""
    out = ec2.describe_instance_types(NextToken="")
    assert [t["InstanceType"] for t in out["InstanceTypes"]] == sorted(ALL_TYPES)[:100]


# --- presigned URLs -------------------------------------------------------------------------


def test_presigned_get(stratus, ec2):
    url = ec2.generate_presigned_url("describe_regions", Params={}, HttpMethod="GET")
    assert "X-Amz-Signature=" in url
    resp = send(url, None, {}, method="GET")
    assert resp.status == 200, resp.body[:2000]
    root = strip_ns(resp.xml)
    assert "us-east-1" in [e.text for e in root.iter("regionName")]

    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    altered = []
    for k, v in query:
        if k == "X-Amz-Signature":
            v = v[:-1] + ("0" if v[-1] != "0" else "1")
        altered.append((k, v))
    bad_url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(altered)))
    assert_raw_error(send(bad_url, None, {}, method="GET"), "SignatureDoesNotMatch", 403)


# --- the error envelope ---------------------------------------------------------------------


def _assert_envelope(resp: RawResponse, code: str, status: int) -> None:
    assert_raw_error(resp, code, status)
    ctype = {k.lower(): v for k, v in resp.headers.items()}.get("content-type", "")
    assert ctype.lower().startswith("text/xml"), ctype
    root = strip_ns(resp.xml)
    assert root.tag == "Response"
    assert (root.findtext("RequestID") or "").strip(), resp.body
    assert (root.findtext("./Errors/Error/Message") or "").strip(), resp.body


def test_error_envelope(stratus):
    body = f"Action=DescribeRegions&{VERSION}"
    _assert_envelope(signed_request(stratus, body, access_key="AKIAIOSFODNN7EXAMPLE"), "AuthFailure", 401)
    _assert_envelope(signed_request(stratus, body, secret_key="y" * 40), "SignatureDoesNotMatch", 403)
    _assert_envelope(signed_request(stratus, f"Action=CreateKeyPair&{VERSION}&KeyName={unique('dry')}&DryRun=true"),
                     "DryRunOperation", 412)
    _assert_envelope(signed_request(stratus, f"Action=DescribeKeyPairs&{VERSION}&KeyName.1={unique('nf')}"),
                     "InvalidKeyPair.NotFound", 400)
    _assert_envelope(signed_request(stratus, f"Action=NoSuchThing&{VERSION}"), "InvalidAction", 400)


def test_success_envelope(stratus):
    resp = signed_request(stratus, f"Action=DescribeRegions&{VERSION}")
    assert resp.status == 200
    ctype = {k.lower(): v for k, v in resp.headers.items()}.get("content-type", "")
    assert ctype.lower().startswith("text/xml"), ctype
    root = resp.xml
    assert root.tag.endswith("DescribeRegionsResponse"), root.tag
    assert root.tag.startswith("{http://ec2.amazonaws.com/doc/2016-11-15"), root.tag
    assert (strip_ns(root).findtext("requestId") or "").strip(), resp.body


def _raw_http(port: int, head: bytes, body: bytes, timeout: float = 30) -> bytes:
    """Sends a request over a plain socket (tolerating an early close) and returns the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        try:
            s.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer before reading everything
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        except socket.timeout:
            pass
        return b"".join(chunks)


def test_oversized_body(stratus, ec2):
    body = f"Action=DescribeRegions&{VERSION}&Foo=".encode() + b"a" * (1024 * 1024 + 4096)
    url, data, headers = sign(stratus, body)
    head = "POST / HTTP/1.1\r\n" + f"Host: 127.0.0.1:{stratus.port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    answer = _raw_http(stratus.port, head.encode(), data)
    assert answer, "no answer at all to a >1 MiB body (connection closed or reset before any response)"
    status_line, _, rest = answer.partition(b"\r\n")
    status = int(status_line.split()[1])
    assert 400 <= status < 500, answer[:2000]
    _, _, payload = rest.partition(b"\r\n\r\n")
    code, message = xml_error(payload)
    assert code, f"not an EC2 error envelope: {answer[:2000]!r}"
    # the server still answers
    assert "us-east-1" in {r["RegionName"] for r in ec2.describe_regions()["Regions"]}


# --- pagination -----------------------------------------------------------------------------


def test_describe_instance_types_paginator(ec2):
    pages = list(ec2.get_paginator("describe_instance_types").paginate(PaginationConfig={"PageSize": 100}))
    assert len(pages) > 10
    seen = [t["InstanceType"] for p in pages for t in p["InstanceTypes"]]
    for p in pages:
        assert len(p["InstanceTypes"]) <= 100
    assert sorted(seen) == sorted(ALL_TYPES), seen
    assert len(seen) == len(set(seen))
    assert "NextToken" not in pages[-1]


def test_describe_instance_types_full_list_and_filters(ec2):
    """AWS's catalogue, with the facts and filters EC2 answers: a page of 100 without
    MaxResults, as EC2 gives."""
    first = ec2.describe_instance_types()
    assert len(first["InstanceTypes"]) == 100 and first["NextToken"]
    assert len(ALL_TYPES) > 1000 and {"t2.micro", "t1.micro", "m1.small", "t3a.nano", "a1.large", "m5d.xlarge",
                                       "p3dn.24xlarge"} <= ALL_TYPES

    def names(*filters, **extra):
        pages = ec2.get_paginator("describe_instance_types").paginate(
            Filters=[{"Name": n, "Values": v} for n, v in filters], **extra)
        return {t["InstanceType"] for p in pages for t in p["InstanceTypes"]}

    burst = names(("burstable-performance-supported", ["true"]))
    assert {"t2.micro", "t3.nano", "t3a.nano"} <= burst and all(n.startswith("t") for n in burst), burst
    assert names(("instance-type", ["t2.*"])) == {t for t in ALL_TYPES if t.startswith("t2.")}
    two = names(("vcpu-info.default-vcpus", ["2"]), ("memory-info.size-in-mib", ["1024"]))
    assert "t3.micro" in two and "t2.micro" not in two, two
    arm = names(("processor-info.supported-architecture", ["arm64"]), ("instance-type", ["a1.*"]))
    assert "a1.large" in arm and not any(n.startswith("t2.") for n in arm)
    metal = names(("bare-metal", ["true"]))
    assert "c5.metal" in metal and "c5.large" not in metal
    old = names(("current-generation", ["false"]), ("instance-type", ["m1.*", "t1.*"]))
    assert {"m1.small", "t1.micro"} <= old
    [p3dn] = ec2.describe_instance_types(InstanceTypes=["p3dn.24xlarge"])["InstanceTypes"]
    assert (p3dn["VCpuInfo"]["DefaultVCpus"], p3dn["VCpuInfo"]["DefaultCores"], p3dn["MemoryInfo"]["SizeInMiB"]) == (
        96, 48, 786432)
    assert p3dn["GpuInfo"]["Gpus"][0]["Name"] == "V100" and p3dn["GpuInfo"]["TotalGpuMemoryInMiB"] == 262144
    assert p3dn["InstanceStorageInfo"]["TotalSizeInGB"] == 1800 and p3dn["Hypervisor"] == "nitro"
    [micro] = ec2.describe_instance_types(InstanceTypes=["t2.micro"])["InstanceTypes"]
    assert (micro["VCpuInfo"]["DefaultVCpus"], micro["MemoryInfo"]["SizeInMiB"], micro["Hypervisor"]) == (1, 1024, "xen")
    assert micro["ProcessorInfo"]["SupportedArchitectures"] == ["i386", "x86_64"]


def test_next_token_is_reusable(ec2):
    first = ec2.describe_instance_types(MaxResults=5)
    token = first["NextToken"]
    again = ec2.describe_instance_types(MaxResults=5, NextToken=token)
    again2 = ec2.describe_instance_types(MaxResults=5, NextToken=token)
    assert again["InstanceTypes"] == again2["InstanceTypes"]
    assert not {t["InstanceType"] for t in again["InstanceTypes"]} & {t["InstanceType"] for t in first["InstanceTypes"]}


# --- persistence and locking ----------------------------------------------------------------


def test_data_survives_restart(server_factory):
    first = server_factory(name="first")
    client = ec2_client(first)
    name = unique("persist")
    created = client.create_key_pair(KeyName=name, KeyType="ed25519",
                                     TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "K", "Value": "V"}]}])
    token = client.describe_instance_types(MaxResults=5)["NextToken"]
    expected_rest = client.describe_instance_types(MaxResults=5, NextToken=token)["InstanceTypes"]
    keys = (first.access_key, first.secret_key)
    first.stop()

    second = server_factory(data_dir=first.data_dir, name="second")
    assert (second.access_key, second.secret_key) == keys, "admin credentials changed across a restart"
    client = ec2_client(second)
    kp = client.describe_key_pairs(KeyNames=[name])["KeyPairs"]
    assert len(kp) == 1, kp
    assert kp[0]["KeyPairId"] == created["KeyPairId"]
    assert kp[0]["KeyFingerprint"] == created["KeyFingerprint"]
    assert kp[0]["Tags"] == [{"Key": "K", "Value": "V"}]
    # a token from before the restart still works
    assert client.describe_instance_types(MaxResults=5, NextToken=token)["InstanceTypes"] == expected_rest
    second.stop()


def test_second_server_on_same_data_dir_is_refused(server_factory, tmp_path):
    if os.environ.get("STRATUS_TEST_STORE") == "postgres":
        pytest.skip("on PostgreSQL a second server is a replica (test_replicas_postgres.py)")
    first = server_factory(name="first")
    client = ec2_client(first)
    port = free_port()
    cmd = [str(first.bin), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(first.data_dir)]
    started = time.monotonic()
    # With the first's config: the same store (its redb file, or its PostgreSQL database).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env=admin_env(first))
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"a second `stratus serve` on {first.data_dir} kept running:\n{out}\n{err}")
    elapsed = time.monotonic() - started
    assert proc.returncode != 0, f"second serve exited 0:\n{out}\n{err}"
    assert elapsed < 10
    text = (out + err).lower()
    assert str(first.data_dir).lower() in text or "another" in text or "lock" in text, text
    # the first keeps serving
    assert "us-east-1" in {r["RegionName"] for r in client.describe_regions()["Regions"]}
    name = unique("still")
    client.create_key_pair(KeyName=name, KeyType="ed25519")
    assert client.describe_key_pairs(KeyNames=[name])["KeyPairs"][0]["KeyName"] == name
    first.stop()


def test_admin_credentials_file_is_private(stratus):
    import os
    import stat

    mode = stat.S_IMODE(os.stat(stratus.creds_file).st_mode)
    assert mode == 0o600, oct(mode)


def test_the_state_moves_to_postgres_and_back(server_factory, tmp_path):
    """`stratus store copy` moves an installation from its redb file to a PostgreSQL database and
    back: each copy is verified record by record, and the server started on the copy answers
    as the original did."""
    if not os.environ.get("STRATUS_TEST_POSTGRES") or os.environ.get("STRATUS_TEST_STORE") == "postgres":
        pytest.skip("needs the tests' PostgreSQL (scripts/test starts it), and a server on redb to start from")
    first = server_factory(name="first")
    client = ec2_client(first)
    client.create_key_pair(KeyName=unique("moved"), KeyType="ed25519",
                           TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "K", "Value": "V"}]}])
    client.create_vpc(CidrBlock="10.9.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "moved"}]}])
    tenant = create_account(first, unique("tenant"))

    def seen(server):
        c = ec2_client(server)
        return (sorted((k["KeyName"], k["KeyPairId"], str(k.get("Tags"))) for k in c.describe_key_pairs()["KeyPairs"]),
                sorted((v["VpcId"], v["CidrBlock"], str(v.get("Tags"))) for v in c.describe_vpcs()["Vpcs"]),
                ec2_client(server, tenant.access_key, tenant.secret_key).describe_vpcs()["Vpcs"][0]["VpcId"])

    before = seen(first)
    first.stop()
    database = conftest.postgres_database_name(tmp_path / "moved")
    url = conftest.postgres_database(tmp_path / "moved")
    pg_config = tmp_path / "pg.toml"
    pg_config.write_text(first.config.read_text() + f'\n[storage]\nbackend = "postgres"\nurl = "{url}"\n')

    def copy(*args):
        out = subprocess.run([str(first.bin), "store", "copy", "--data-dir", str(first.data_dir), *args],
                             capture_output=True, text=True, timeout=120, env=conftest.server_env())
        assert out.returncode == 0 and "copied and verified" in out.stdout, out.stdout + out.stderr
        return out.stdout

    try:
        copy("--config", str(first.config), "--to-config", str(pg_config))
        # A second copy into the same database is refused: it holds an installation now.
        again = subprocess.run([str(first.bin), "store", "copy", "--data-dir", str(first.data_dir), "--config",
                                str(first.config), "--to-config", str(pg_config)],
                               capture_output=True, text=True, timeout=120, env=conftest.server_env())
        assert again.returncode != 0 and "not empty" in again.stderr, again.stderr
        second = server_factory(data_dir=first.data_dir, name="second", config=pg_config.read_text())
        assert seen(second) == before
        second.stop()
        # And back, into a fresh redb file in the same data dir.
        (first.data_dir / "stratus.redb").unlink()
        # (The server on PostgreSQL changed the store as it ran: each copy is checked against
        # its own source, by `store copy` itself.)
        copy("--config", str(pg_config), "--to-config", str(first.config))
        third = server_factory(data_dir=first.data_dir, name="third")
        assert seen(third) == before
    finally:
        subprocess.run([str(conftest.REPO / "scripts" / "postgres"), "dropdb", database], capture_output=True,
                       timeout=60)
