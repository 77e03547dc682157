#!/usr/bin/env python3
"""Parses the replies tests/protocols.rs wrote with botocore's own parsers and checks them.

Usage: check_replies.py DIR

DIR holds `<name>.body` and `<name>.meta.json` pairs. A meta names the protocol, the operation,
the request id, the status and headers, and either `expected` (the output as the canonical tree:
the model's member names, timestamps as epoch seconds) or `error` (code, message, type, shape).
Outputs must parse to exactly the expected values; errors must give botocore's `Error.Code` as
the query code (e.g. InvalidParameterValue, via x-amzn-query-error for CBOR and JSON), and for
the model's errors the modeled exception must be found from it as the client does.
"""

import datetime
import glob
import json
import os
import sys

import botocore.session
from botocore.awsrequest import HeadersDict
from botocore.parsers import create_parser


def plain(value):
    """botocore's parsed values in the canonical tree's terms (datetimes as epoch seconds)."""
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def same(expected, got, path="$"):
    if isinstance(expected, dict):
        assert isinstance(got, dict), f"{path}: expected a map, got {got!r}"
        assert set(expected) == set(got), f"{path}: members {sorted(got)} != {sorted(expected)}"
        for k in expected:
            same(expected[k], got[k], f"{path}.{k}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), f"{path}: {got!r} != {expected!r}"
        for i, (e, g) in enumerate(zip(expected, got)):
            same(e, g, f"{path}[{i}]")
    elif isinstance(expected, float) or isinstance(got, float):
        # Timestamps go through milliseconds in XML; every other number must be exact.
        assert abs(float(expected) - float(got)) <= 0.0005 if "Timestamp" in path else float(expected) == float(got), (
            f"{path}: {got!r} != {expected!r}"
        )
    else:
        assert expected == got, f"{path}: {got!r} != {expected!r}"


def main():
    directory = sys.argv[1]
    model = botocore.session.get_session().get_service_model("cloudwatch")
    checked = 0
    for meta_path in sorted(glob.glob(os.path.join(directory, "*.meta.json"))):
        name = os.path.basename(meta_path)[: -len(".meta.json")]
        with open(meta_path) as f:
            meta = json.load(f)
        with open(os.path.join(directory, name + ".body"), "rb") as f:
            body = f.read()
        headers = HeadersDict()
        for k, v in meta["headers"].items():
            headers[k] = v
        response = {"body": body, "headers": headers, "status_code": meta["status"], "context": {}}
        op = model.operation_model(meta["operation"])
        parser = create_parser(meta["protocol"])
        try:
            parsed = parser.parse(response, op.output_shape)
            if "error" in meta:
                check_error(model, parser, response, parsed, meta)
            else:
                assert meta["status"] == 200
                metadata = parsed.pop("ResponseMetadata")
                # botocore's RPC v2 parser reads the request id only for operations with an
                # output shape (PutMetricData has none), so it is checked where it is read.
                if op.output_shape is not None or meta["protocol"] != "smithy-rpc-v2-cbor":
                    assert metadata.get("RequestId") == meta["request_id"], metadata
                same(meta["expected"], plain(parsed))
                if meta["operation"] == "GetMetricStatistics":
                    # Values that must survive escaping and number formatting exactly.
                    assert parsed["Label"] == 'CPUUtilization <&> "quoted"\r\nline é', repr(parsed["Label"])
                    assert parsed["Datapoints"][0]["Sum"] == 1e300
                    assert parsed["Datapoints"][0]["Maximum"] == 123456789.12345679
                    assert parsed["Datapoints"][0]["Timestamp"] == datetime.datetime(
                        2024, 5, 1, 12, 0, 0, 250000, tzinfo=datetime.timezone.utc
                    ), parsed["Datapoints"][0]["Timestamp"]
        except Exception as e:  # noqa: BLE001 - report which reply failed, then fail
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            print(f"  body: {body[:600]!r}")
            sys.exit(1)
        checked += 1
        print(f"ok {name}")
    if checked == 0:
        print("no replies found")
        sys.exit(1)
    print(f"{checked} replies checked")


def check_error(model, parser, response, parsed, meta):
    want = meta["error"]
    err = parsed["Error"]
    assert err["Code"] == want["code"], err
    assert err["Message"] == want["message"], err
    assert parsed["ResponseMetadata"].get("RequestId") == meta["request_id"], parsed["ResponseMetadata"]
    assert response["status_code"] == meta["status"]
    if meta["protocol"] == "query":
        assert err["Type"] == want["type"], err
    else:
        # The query-compatible header gives Code and Type; the body's __type gives QueryErrorCode.
        assert err["Type"] == want["type"], err
        assert err["QueryErrorCode"] == want["shape"], err
    # What botocore's endpoint does next: find the modeled error from Code and parse its fields.
    shape = model.shape_for_error_code(err["Code"])
    if shape is not None:
        assert shape.name == want["shape"], (shape.name, want["shape"])
        fields = parser.parse(response, shape)
        # The query XML carries <Message>; the model's synthetic error shapes name the member
        # `message`, so botocore's modeled parse finds it there only in CBOR and JSON (and for
        # InternalServiceFault, whose member is `Message`). Error.Message is right regardless.
        if meta["protocol"] != "query" or "Message" in shape.members:
            message = fields.get("message", fields.get("Message"))
            assert message == want["message"], fields
    elif want["shape"] in ("InvalidParameterValueException", "MissingRequiredParameterException",
                           "InvalidParameterCombinationException", "InvalidNextToken", "InternalServiceFault"):
        raise AssertionError(f"botocore found no modeled error for {err['Code']}")


if __name__ == "__main__":
    main()
