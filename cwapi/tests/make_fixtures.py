#!/usr/bin/env python3
"""Writes cwapi/tests/fixtures/requests/: requests of every operation as the installed botocore
serializes them, in each of CloudWatch's three protocols.

For each operation and variant it writes `<Op>.<variant>.body` (the exact HTTP body) and
`<Op>.<variant>.meta.json` (method, path, headers). Variants:
- `cbor`, `json`, `query`: botocore's defaults, what boto3 sends (CBOR and JSON timestamps are
  whole epoch seconds, query timestamps ISO 8601 with microseconds);
- `json-ms`, `query-ms`: millisecond timestamp precision, so fractions survive.
The Rust tests (tests/protocols.rs) decode each and check the typed result member by member.
Rerun after changing the requests below: python3 cwapi/tests/make_fixtures.py
"""

import datetime
import json
import os

import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.serialize import create_serializer

UTC = datetime.timezone.utc
START = datetime.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
END = datetime.datetime(2024, 5, 1, 13, 30, 0, tzinfo=UTC)
STAMP = datetime.datetime(2024, 5, 1, 12, 34, 56, 750000, tzinfo=UTC)

DIMS = [
    {"Name": "InstanceId", "Value": "i-0123456789abcdef0"},
    {"Name": "Env", "Value": "prod & <test> \"quoted\" é"},
]

REQUESTS = {
    "GetMetricStatistics": {
        "Namespace": "AWS/EC2",
        "MetricName": "CPUUtilization",
        "Dimensions": DIMS,
        "StartTime": START,
        "EndTime": END,
        "Period": 60,
        "Statistics": ["Average", "Maximum", "SampleCount"],
        "ExtendedStatistics": ["p99", "p50.5"],
        "Unit": "Percent",
    },
    "GetMetricData": {
        "MetricDataQueries": [
            {
                "Id": "m1",
                "MetricStat": {
                    "Metric": {"Namespace": "AWS/EC2", "MetricName": "CPUUtilization", "Dimensions": DIMS},
                    "Period": 300,
                    "Stat": "Average",
                    "Unit": "Percent",
                },
                "Label": "CPU",
                "ReturnData": False,
            },
            {"Id": "e1", "Expression": "m1 * 2", "Label": "Doubled", "ReturnData": True, "Period": 60},
            {
                "Id": "m3",
                "MetricStat": {
                    "Metric": {"Namespace": "Stratus/Test", "MetricName": "Latency"},
                    "Period": 1,
                    "Stat": "p99",
                },
                "AccountId": "123456789012",
            },
        ],
        "StartTime": START,
        "EndTime": END,
        "NextToken": "token+/=",
        "ScanBy": "TimestampAscending",
        "MaxDatapoints": 1000,
        "LabelOptions": {"Timezone": "+0130"},
    },
    "ListMetrics": {
        "Namespace": "AWS/EC2",
        "MetricName": "CPUUtilization",
        "Dimensions": [{"Name": "InstanceId"}, {"Name": "Env", "Value": "prod"}],
        "NextToken": "next",
        "RecentlyActive": "PT3H",
        "IncludeLinkedAccounts": True,
        "OwningAccount": "123456789012",
    },
    "PutMetricData": {
        "Namespace": "Stratus/Test",
        "MetricData": [
            {
                "MetricName": "Latency",
                "Dimensions": DIMS,
                "Timestamp": STAMP,
                "Value": 12.5,
                "Unit": "Milliseconds",
                "StorageResolution": 1,
            },
            {
                "MetricName": "Sizes",
                "Values": [1.0, 2.5, 1e300, -0.001],
                "Counts": [3.0, 1.0, 2.0, 1.0],
                "Unit": "Bytes",
            },
            {
                "MetricName": "Stats",
                "Timestamp": STAMP,
                "StatisticValues": {"SampleCount": 10.0, "Sum": 55.5, "Minimum": -1.25, "Maximum": 20.0},
                "Unit": "Count",
            },
        ],
        "EntityMetricData": [
            {
                "Entity": {
                    "KeyAttributes": {"Type": "Service", "Name": "checkout", "Environment": "prod"},
                    "Attributes": {"PlatformType": "Generic"},
                },
                "MetricData": [{"MetricName": "Requests", "Value": 7.0, "Unit": "Count"}],
            }
        ],
        "StrictEntityValidation": False,
    },
}

VARIANTS = {
    "cbor": ("smithy-rpc-v2-cbor", "default"),
    "json": ("json", "default"),
    "query": ("query", "default"),
    "json-ms": ("json", "millisecond"),
    "query-ms": ("query", "millisecond"),
}


def main():
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "requests")
    os.makedirs(out_dir, exist_ok=True)
    model = botocore.session.get_session().get_service_model("cloudwatch")
    for op_name, params in REQUESTS.items():
        op = model.operation_model(op_name)
        for variant, (protocol, precision) in VARIANTS.items():
            serializer = create_serializer(protocol, include_validation=True, timestamp_precision=precision)
            req = serializer.serialize_to_request(params, op)
            # The transport's own preparation turns a query dict into the form body.
            prepared = AWSRequest(
                method=req["method"],
                url="https://monitoring.us-east-1.amazonaws.com" + req["url_path"],
                data=req["body"],
                headers=req["headers"],
            ).prepare()
            body = prepared.body or b""
            if isinstance(body, str):
                body = body.encode("utf-8")
            base = os.path.join(out_dir, f"{op_name}.{variant}")
            with open(base + ".body", "wb") as f:
                f.write(body)
            meta = {"method": req["method"], "path": req["url_path"], "headers": dict(prepared.headers)}
            with open(base + ".meta.json", "w") as f:
                json.dump(meta, f, indent=1, sort_keys=True)
                f.write("\n")
    print(f"wrote {len(REQUESTS) * len(VARIANTS)} requests to {out_dir}")


if __name__ == "__main__":
    main()
