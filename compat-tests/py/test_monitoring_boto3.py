"""CloudWatch through boto3 and the aws cli, on libvirt's test driver sampled five times a
second: an instance's metrics are listed and read in each of the three protocols botocore
speaks to CloudWatch (JSON 1.0, its choice; Smithy RPC v2 CBOR; the query protocol), with the
same answers; GetMetricData pages; errors come in CloudWatch's codes; another account sees
none of it; hosts' metrics are the admin's."""

from __future__ import annotations

import dataclasses
import json
import re
import time

import pytest

from conftest import (BOOT_MARKER, QEMU_CONFIG, REGION, TEST_DRIVER_CONFIG, aws, create_account, ec2_client,
                      error_of, import_image, require_qemu, start_stratus, wait_console, wait_states)

CONFIG = TEST_DRIVER_CONFIG + "\n[monitoring]\ninterval_ms = 200\n"
PROTOCOLS = ["smithy-rpc-v2-cbor", "json", "query"]


def cloudwatch(server, access_key=None, secret_key=None, protocol: str | None = None):
    """A boto3 CloudWatch client, speaking `protocol` instead of botocore's choice when given."""
    import boto3
    from botocore import serialize
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id=access_key or server.access_key,
                                    aws_secret_access_key=secret_key or server.secret_key, region_name=REGION)
    client = session.client("cloudwatch", endpoint_url=server.endpoint,
                            config=Config(retries={"max_attempts": 1}))
    if protocol is not None:
        # botocore picks the protocol once per model and caches it; the endpoint's parser and
        # the client's serializer both follow what is cached.
        client.meta.service_model.__dict__["resolved_protocol"] = protocol
        client._serializer = serialize.create_serializer(protocol, include_validation=True)
    return client


@pytest.fixture(scope="module")
def cloud(tmp_path_factory, test_image):
    server = start_stratus(tmp_path_factory.mktemp("cloudwatch"), config=CONFIG)
    image = import_image(server, test_image, "watched image")
    a, b = create_account(server, "watched"), create_account(server, "watcher")
    ca = ec2_client(server, a.access_key, a.secret_key)
    instance = ca.run_instances(ImageId=image, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]
    wait_states(ca, [instance["InstanceId"]], "running")
    yield server, a, b, instance["InstanceId"], image
    server.stop()


def signed(server, account, service: str, method: str, path: str, body: bytes, headers: dict):
    """Sends a request signed by hand for `service`'s scope: (status, error code or None, body)."""
    import urllib.error
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=server.endpoint + path, data=body or None, headers=headers)
    SigV4Auth(Credentials(account.access_key, account.secret_key), service, REGION).add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, data=prepared.body or None, headers=dict(prepared.headers),
                                 method=method)
    try:
        with urllib.request.urlopen(raw, timeout=10) as response:
            return response.status, None, response.read().decode()
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        code = e.headers.get("x-amzn-query-error", "").split(";")[0] or (re.findall(r"<Code>([^<]+)</Code>", text)
                                                                       or [None])[0]
        return e.code, code, text


def one_period() -> dict:
    """A window of one period that ends hours from now: the samples of the last seconds never
    straddle two periods, whatever the clock."""
    now = time.time()
    return {"StartTime": now - 3 * 3600, "EndTime": now + 3600, "Period": 86400}


def status_points(client, instance_id, statistics=("Sum", "SampleCount", "Maximum")):
    now = time.time()
    return client.get_metric_statistics(
        Namespace="AWS/EC2", MetricName="StatusCheckFailed", Dimensions=[{"Name": "InstanceId", "Value": instance_id}],
        StartTime=now - 3600, EndTime=now + 60, Period=3600, Statistics=list(statistics))


def wait_for_samples(client, instance_id, at_least=3, timeout=30.0):
    deadline = time.time() + timeout
    while True:
        points = status_points(client, instance_id)["Datapoints"]
        if points and sum(p["SampleCount"] for p in points) >= at_least:
            return points
        assert time.time() < deadline, f"no samples of {instance_id} after {timeout}s: {points}"
        time.sleep(0.3)


def test_an_instance_s_metrics_in_every_protocol(cloud):
    server, a, _, instance_id, image = cloud
    default = cloudwatch(server, a.access_key, a.secret_key)
    # The model offers CBOR first, but botocore ranks the protocols it speaks and takes JSON.
    assert default.meta.service_model.resolved_protocol == "json", "botocore's choice"
    points = wait_for_samples(default, instance_id)
    assert all(p["Sum"] == 0.0 and p["Maximum"] == 0.0 and p["Unit"] == "Count" for p in points), points
    # DescribeInstanceStatus tells the same checks.
    [status] = ec2_client(server, a.access_key, a.secret_key).describe_instance_status(
        InstanceIds=[instance_id])["InstanceStatuses"]
    assert (status["SystemStatus"]["Status"], status["InstanceStatus"]["Status"]) == ("ok", "ok")

    # The twelve instance metrics, under its id; its type and image group it too.
    listed = default.list_metrics(Namespace="AWS/EC2", Dimensions=[{"Name": "InstanceId", "Value": instance_id}])
    names = sorted(m["MetricName"] for m in listed["Metrics"])
    assert names == sorted([
        "CPUUtilization", "NetworkIn", "NetworkOut", "NetworkPacketsIn", "NetworkPacketsOut", "DiskReadBytes",
        "DiskWriteBytes", "DiskReadOps", "DiskWriteOps", "StatusCheckFailed", "StatusCheckFailed_Instance",
        "StatusCheckFailed_System"])
    by_type = default.list_metrics(MetricName="CPUUtilization", Dimensions=[{"Name": "InstanceType"}])["Metrics"]
    assert by_type == [{"Namespace": "AWS/EC2", "MetricName": "CPUUtilization",
                        "Dimensions": [{"Name": "InstanceType", "Value": "t3.nano"}]}]
    assert default.list_metrics(Namespace="Stratus/Host")["Metrics"] == [], "hosts are for admins"

    # The same question in each protocol gets the same answer. Samples keep coming: ask for
    # figures they do not change (a passed check's maximum) and try again across a new minute.
    def ask(protocol):
        client = cloudwatch(server, a.access_key, a.secret_key, protocol)
        now = time.time()
        got = client.get_metric_statistics(
            Namespace="AWS/EC2", MetricName="StatusCheckFailed_System",
            Dimensions=[{"Name": "InstanceId", "Value": instance_id}], StartTime=now - 3600, EndTime=now + 60,
            Period=60, Statistics=["Maximum", "Minimum"])
        assert all(p["Timestamp"].timestamp() % 60 == 0 for p in got["Datapoints"])
        return sorted((p["Timestamp"], p["Maximum"], p["Minimum"], p["Unit"]) for p in got["Datapoints"])

    for _ in range(3):
        answers = {protocol: ask(protocol) for protocol in PROTOCOLS}
        if answers["json"] == answers["smithy-rpc-v2-cbor"] == answers["query"]:
            break
    assert answers["json"] == answers["smithy-rpc-v2-cbor"] == answers["query"]
    assert answers["json"] and answers["json"][-1][1:] == (0.0, 0.0, "Count"), answers

    # Percentiles: every bucket of a status check holds one value, so they are exact.
    p = cloudwatch(server, a.access_key, a.secret_key).get_metric_statistics(
        Namespace="AWS/EC2", MetricName="StatusCheckFailed", Dimensions=[{"Name": "InstanceId", "Value": instance_id}],
        **one_period(), ExtendedStatistics=["p50", "p99.9"])
    assert [d["ExtendedStatistics"] for d in p["Datapoints"]] == [{"p50": 0.0, "p99.9": 0.0}]

    # GetMetricData: several queries, one of them hidden, paged one datapoint at a time.
    for protocol in PROTOCOLS:
        client = cloudwatch(server, a.access_key, a.secret_key, protocol)
        end = time.time() + 60
        queries = [
            {"Id": "status", "Label": "status checks",
             "MetricStat": {"Metric": {"Namespace": "AWS/EC2", "MetricName": "StatusCheckFailed",
                                       "Dimensions": [{"Name": "InstanceId", "Value": instance_id}]},
                            "Period": 60, "Stat": "Maximum"}},
            {"Id": "hidden", "ReturnData": False,
             "MetricStat": {"Metric": {"Namespace": "AWS/EC2", "MetricName": "NetworkIn"}, "Period": 60,
                            "Stat": "Sum"}},
            {"Id": "byimage",
             "MetricStat": {"Metric": {"Namespace": "AWS/EC2", "MetricName": "StatusCheckFailed_Instance",
                                       "Dimensions": [{"Name": "ImageId", "Value": image}]},
                            "Period": 300, "Stat": "Maximum"}},
        ]
        whole = client.get_metric_data(MetricDataQueries=queries, StartTime=end - 3600, EndTime=end)
        assert [r["Id"] for r in whole["MetricDataResults"]] == ["status", "byimage"]
        status = whole["MetricDataResults"][0]
        assert status["Label"] == "status checks" and status["StatusCode"] == "Complete"
        assert status["Timestamps"] == sorted(status["Timestamps"], reverse=True), "newest first by default"
        assert len(status["Timestamps"]) == len(status["Values"]) >= 1
        assert "NextToken" not in whole
        paged, token = [], None
        while True:
            extra = {"NextToken": token} if token else {}
            page = client.get_metric_data(MetricDataQueries=queries, StartTime=end - 3600, EndTime=end,
                                          MaxDatapoints=1, **extra)
            paged.extend((r["Id"], t, v) for r in page["MetricDataResults"]
                         for t, v in zip(r["Timestamps"], r["Values"]))
            token = page.get("NextToken")
            if not token:
                break
        expected = [(r["Id"], t, v) for r in whole["MetricDataResults"] for t, v in zip(r["Timestamps"], r["Values"])]
        # A minute may begin between the pages: then the first page's newest point is new.
        assert paged == expected or paged[1:] == expected or paged == expected[1:], (protocol, paged, expected)
        assert len(paged) >= 2 and all(v == 0.0 for _, _, v in paged)



def test_custom_metrics_with_put_metric_data(cloud):
    """PutMetricData in every protocol (a large batch gzipped, as botocore sends it): values,
    value lists with counts and statistic sets fold into one series per exact set of
    dimensions; the data reads back with its unit; AWS/ namespaces are refused; nobody else
    sees any of it."""
    server, a, b, _, _ = cloud
    now = time.time()
    minute = now - now % 60 - 120  # a minute that is over, two ago
    for protocol in PROTOCOLS:
        client = cloudwatch(server, a.access_key, a.secret_key, protocol)
        namespace = f"Shop/{protocol}"
        dims = [{"Name": "Service", "Value": "checkout"}, {"Name": "Az", "Value": "us-east-1a"}]
        client.put_metric_data(Namespace=namespace, MetricData=[
            {"MetricName": "Latency", "Dimensions": dims, "Timestamp": minute + 5, "Value": 10.0,
             "Unit": "Milliseconds"},
            {"MetricName": "Latency", "Dimensions": list(reversed(dims)), "Timestamp": minute + 15,
             "Values": [20.0, 40.0], "Counts": [1.0, 2.0], "Unit": "Milliseconds"},
            {"MetricName": "Latency", "Dimensions": dims, "Timestamp": minute + 25,
             "StatisticValues": {"SampleCount": 2, "Sum": 3.0, "Minimum": 1.0, "Maximum": 2.0},
             "Unit": "Milliseconds"},
            {"MetricName": "Latency", "Dimensions": dims[:1], "Timestamp": minute + 5, "Value": 999.0},
        ])
        got = client.get_metric_statistics(Namespace=namespace, MetricName="Latency", Dimensions=dims,
                                           StartTime=minute, EndTime=minute + 60, Period=60,
                                           Statistics=["SampleCount", "Sum", "Minimum", "Maximum", "Average"])
        [point] = got["Datapoints"]
        assert (point["SampleCount"], point["Sum"], point["Minimum"], point["Maximum"]) == (6.0, 113.0, 1.0, 40.0)
        assert point["Average"] == pytest.approx(113.0 / 6) and point["Unit"] == "Milliseconds", point
        # Exactly these dimensions: the datum with one of them is a metric of its own.
        [alone] = client.get_metric_statistics(Namespace=namespace, MetricName="Latency", Dimensions=dims[:1],
                                               StartTime=minute, EndTime=minute + 60, Period=60,
                                               Statistics=["Maximum"])["Datapoints"]
        assert alone["Maximum"] == 999.0
        assert client.get_metric_statistics(Namespace=namespace, MetricName="Latency", Dimensions=dims,
                                            StartTime=minute, EndTime=minute + 60, Period=60,
                                            Statistics=["Sum"], Unit="Seconds")["Datapoints"] == []
        listed = client.list_metrics(Namespace=namespace)["Metrics"]
        assert sorted(len(m["Dimensions"]) for m in listed) == [1, 2]
        assert all(m["MetricName"] == "Latency" for m in listed)
        data = client.get_metric_data(StartTime=minute, EndTime=minute + 60, MetricDataQueries=[
            {"Id": "p", "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": "Latency",
                                                  "Dimensions": dims}, "Period": 60, "Stat": "Maximum"}}])
        assert data["MetricDataResults"][0]["Values"] == [40.0]

        assert error_of(lambda: client.put_metric_data(Namespace="AWS/EC2", MetricData=[
            {"MetricName": "CPUUtilization", "Value": 1.0}]))[0] == "InvalidParameterValue"
        assert error_of(lambda: client.put_metric_data(Namespace=namespace, MetricData=[
            {"MetricName": "X", "Value": 1.0, "StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 1,
                                                                  "Maximum": 1}}]))[0] == \
            "InvalidParameterCombination"
        assert error_of(lambda: client.put_metric_data(Namespace=namespace, MetricData=[
            {"MetricName": "X", "Value": 1.0, "Timestamp": now - 30 * 86400}]))[0] == "InvalidParameterValue"

        other = cloudwatch(server, b.access_key, b.secret_key, protocol)
        assert other.list_metrics(Namespace=namespace)["Metrics"] == []
        assert other.get_metric_statistics(Namespace=namespace, MetricName="Latency", Dimensions=dims,
                                           StartTime=minute, EndTime=minute + 60, Period=60,
                                           Statistics=["Sum"])["Datapoints"] == []

    # A thousand data: botocore gzips a body this large; every one is counted.
    client = cloudwatch(server, a.access_key, a.secret_key)
    sent = []
    client.meta.events.register("before-send.cloudwatch.PutMetricData",
                                lambda request, **_: sent.append(request.headers.get("Content-Encoding")))
    client.put_metric_data(Namespace="Shop/bulk", MetricData=[
        {"MetricName": "Orders", "Dimensions": [{"Name": "Shard", "Value": "s1"}], "Timestamp": minute + 1,
         "Value": float(i)} for i in range(1000)])
    [bulk] = client.get_metric_statistics(Namespace="Shop/bulk", MetricName="Orders",
                                          Dimensions=[{"Name": "Shard", "Value": "s1"}], StartTime=minute,
                                          EndTime=minute + 60, Period=60, Statistics=["SampleCount", "Sum"])["Datapoints"]
    assert (bulk["SampleCount"], bulk["Sum"]) == (1000.0, sum(range(1000)))
    assert sent == [b"gzip"] or sent == ["gzip"], sent

def test_cloudwatch_errors_in_cloudwatch_s_codes(cloud):
    server, a, _, instance_id, _ = cloud
    now = time.time()
    for protocol in PROTOCOLS:
        client = cloudwatch(server, a.access_key, a.secret_key, protocol)

        def stats(**over):
            args = dict(Namespace="AWS/EC2", MetricName="CPUUtilization", StartTime=now - 600, EndTime=now,
                        Period=60, Statistics=["Average"])
            args.update(over)
            return client.get_metric_statistics(**{k: v for k, v in args.items() if v is not None})

        assert error_of(lambda: stats(Statistics=None))[0] == "InvalidParameterCombination", protocol
        assert error_of(lambda: stats(Period=61))[0] == "InvalidParameterValue", protocol
        assert error_of(lambda: stats(StartTime=now, EndTime=now - 60))[0] == "InvalidParameterValue", protocol
        code, message = error_of(lambda: stats(StartTime=now - 86400 * 2))
        assert code == "InvalidParameterCombination" and "1440" in message, (protocol, message)
        assert error_of(lambda: stats(Statistics=["p50"]))[0] == "InvalidParameterValue", protocol
        # A unit other than the metric's matches no data.
        assert stats(Unit="Bytes")["Datapoints"] == []
        bad_token = lambda: client.get_metric_data(  # noqa: E731
            MetricDataQueries=[{"Id": "q", "MetricStat": {"Metric": {"Namespace": "AWS/EC2",
                                                                     "MetricName": "CPUUtilization"},
                                                          "Period": 60, "Stat": "Average"}}],
            StartTime=now - 600, EndTime=now, NextToken="bm90LWEtdG9rZW4")
        assert error_of(bad_token)[0] == "InvalidNextToken", protocol
        assert error_of(lambda: client.list_metrics(NextToken="garbage"))[0] == "InvalidNextToken", protocol

    # With a wrong secret: refused.
    wrong = cloudwatch(server, a.access_key, "not-the-secret")
    assert error_of(lambda: wrong.list_metrics())[0] == "SignatureDoesNotMatch"

    # Signed for EC2's scope, a CloudWatch request is refused; signed for CloudWatch's, an EC2
    # action is no CloudWatch operation. A query request may come as a signed GET.
    assert signed(server, a, "ec2", "POST", "/", b"{}", {
        "X-Amz-Target": "GraniteServiceVersion20100801.ListMetrics",
        "Content-Type": "application/x-amz-json-1.0"})[:2] == (403, "SignatureDoesNotMatch")
    assert signed(server, a, "monitoring", "POST", "/", b"Action=DescribeInstances&Version=2016-11-15", {
        "Content-Type": "application/x-www-form-urlencoded"})[:2] == (400, "InvalidAction")
    status, _, body = signed(server, a, "monitoring", "GET", "/?Action=ListMetrics&Version=2010-08-01", b"", {})
    assert status == 200 and "<ListMetricsResponse" in body, body


def test_another_account_sees_nothing(cloud):
    server, a, b, instance_id, image = cloud
    wait_for_samples(cloudwatch(server, a.access_key, a.secret_key), instance_id)
    for protocol in PROTOCOLS:
        other = cloudwatch(server, b.access_key, b.secret_key, protocol)
        assert other.list_metrics()["Metrics"] == []
        assert status_points(other, instance_id)["Datapoints"] == []
        for dimensions in ([{"Name": "ImageId", "Value": image}], [{"Name": "InstanceType", "Value": "t3.nano"}], []):
            now = time.time()
            got = other.get_metric_statistics(Namespace="AWS/EC2", MetricName="StatusCheckFailed",
                                              Dimensions=dimensions, StartTime=now - 3600, EndTime=now + 60,
                                              Period=3600, Statistics=["SampleCount"])
            assert got["Datapoints"] == [], dimensions
        assert other.list_metrics(Namespace="Stratus/Host")["Metrics"] == []


def test_hosts_metrics_are_the_admin_s(cloud):
    server, *_ = cloud
    admin = cloudwatch(server)
    hosts = admin.list_metrics(Namespace="Stratus/Host", MetricName="Instances")["Metrics"]
    assert len(hosts) == 2, hosts  # the host, and all hosts together
    [host] = [m["Dimensions"][0]["Value"] for m in hosts if m["Dimensions"]]
    got = admin.get_metric_statistics(Namespace="Stratus/Host", MetricName="Instances",
                                      Dimensions=[{"Name": "HostId", "Value": host}], **one_period(),
                                      Statistics=["Maximum"])
    assert [p["Maximum"] for p in got["Datapoints"]] == [1.0]
    assert got["Datapoints"][0]["Unit"] == "Count"


def test_the_aws_cli_reads_metrics(cloud):
    server, a, _, instance_id, _ = cloud
    wait_for_samples(cloudwatch(server, a.access_key, a.secret_key), instance_id)
    creds = server.creds_file.parent / "watched-creds"
    from conftest import write_credentials
    write_credentials(creds, a.access_key, a.secret_key)
    now = int(time.time())
    code, out, err = aws(server, "get-metric-statistics", "--namespace", "AWS/EC2", "--metric-name",
                         "StatusCheckFailed", "--dimensions", f"Name=InstanceId,Value={instance_id}",
                         "--start-time", str(now - 3 * 3600), "--end-time", str(now + 3600), "--period", "86400",
                         "--statistics", "SampleCount", "Maximum", creds=creds, service="cloudwatch")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["Label"] == "StatusCheckFailed"
    assert [p["Maximum"] for p in answer["Datapoints"]] == [0.0] and answer["Datapoints"][0]["SampleCount"] >= 3
    code, out, err = aws(server, "list-metrics", "--namespace", "AWS/EC2", "--metric-name", "CPUUtilization",
                         creds=creds, service="cloudwatch")
    assert code == 0, err
    dimensions = [m["Dimensions"] for m in json.loads(out)["Metrics"]]
    assert [{"Name": "InstanceId", "Value": instance_id}] in dimensions


def test_a_real_guest_s_cpu_load_shows_in_cpu_utilization(server_factory, test_image, tmp_path):
    """Two real guests on the local daemon: one keeps a vCPU busy (`stratus.dirty`), one idles.
    Over a whole minute after both booted, the aws cli's CPUUtilization shows the busy one's
    load (one of t3.nano's two vCPUs flat out: about half) and the idle one's quiet."""
    require_qemu()
    server = server_factory(config=QEMU_CONFIG + "\n[monitoring]\ninterval_ms = 1000\n")
    client = ec2_client(server)
    busy_image = import_image(server, dataclasses.replace(test_image, cmdline=f"{test_image.cmdline} stratus.dirty=8"),
                              "busy image")
    idle_image = import_image(server, test_image, "idle image")
    ids = []
    try:
        for image in (busy_image, idle_image):
            ids.append(client.run_instances(ImageId=image, InstanceType="t3.nano", MinCount=1,
                                            MaxCount=1)["Instances"][0]["InstanceId"])
        busy, idle = ids
        wait_states(client, ids, "running", timeout=120)
        # The busy guest's dirtier floods its console: its passes say it runs.
        wait_console(client, busy, r"stratus-dirty pass=\d+", timeout=180)
        wait_console(client, idle, re.escape(BOOT_MARKER), timeout=180)
        # The first minute that starts after both booted, once it is over.
        start = (int(time.time()) // 60 + 1) * 60
        time.sleep(max(0.0, start + 60 + 3 - time.time()))

        def average(instance_id):
            code, out, err = aws(server, "get-metric-statistics", "--namespace", "AWS/EC2", "--metric-name",
                                 "CPUUtilization", "--dimensions", f"Name=InstanceId,Value={instance_id}",
                                 "--start-time", str(start), "--end-time", str(start + 60), "--period", "60",
                                 "--statistics", "Average", "SampleCount", service="cloudwatch")
            assert code == 0, err
            [point] = json.loads(out)["Datapoints"]
            assert point["Unit"] == "Percent" and point["SampleCount"] >= 30, point
            return point["Average"]

        loaded, quiet = average(busy), average(idle)
        print(f"CPUUtilization over one minute: busy guest {loaded:.1f} %, idle guest {quiet:.1f} %")
        # The busy vCPU gets what the machine's two cores leave it: the suite runs another
        # compat file beside this one (the console's browser and lab tests among them), and a
        # busy minute measured 33 % then. What must hold is that the load shows, and only on
        # the guest that makes it.
        assert 20.0 <= loaded <= 100.0, loaded
        assert quiet < loaded / 2, (quiet, loaded)
    finally:
        if ids:
            client.terminate_instances(InstanceIds=ids)
            wait_states(client, ids, "terminated", timeout=120)


def scrape(server) -> dict:
    """The metrics listener's families, parsed by the Prometheus project's own parser."""
    import urllib.request

    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples_of(families: dict, name: str, **labels) -> list:
    return [s for s in families[name].samples if all(s.labels.get(k) == v for k, v in labels.items())]


def test_prometheus_metrics_parse_and_move(cloud):
    server, a, _, instance_id, _ = cloud
    wait_for_samples(cloudwatch(server, a.access_key, a.secret_key), instance_id)
    families = scrape(server)
    [host_up] = families["stratus_host_up"].samples
    assert host_up.value == 1
    host_id = host_up.labels["host_id"]
    [cpu] = samples_of(families, "stratus_instance_cpu_seconds", instance_id=instance_id)
    assert families["stratus_instance_cpu_seconds"].type == "counter"
    assert cpu.labels == {"instance_id": instance_id, "host_id": host_id, "account_id": a.account_id,
                          "instance_type": "t3.nano"}
    assert [s.value for s in samples_of(families, "stratus_instance_running", instance_id=instance_id)] == [1]
    assert [s.value for s in samples_of(families, "stratus_host_instances", host_id=host_id)] == [1]
    assert samples_of(families, "stratus_host_call_seconds", host_id=host_id, call="sample")
    assert [s.value for s in families["stratus_store_bytes"].samples][0] > 0
    # The heap, as jemalloc sees it: live data within the pages that hold it, within what is resident.
    heap = {name: families[f"stratus_heap_{name}_bytes"].samples[0].value for name in ("allocated", "active", "resident")}
    assert 0 < heap["allocated"] <= heap["active"] <= heap["resident"], heap
    for name in ("stratus_sweep_seconds", "stratus_conductor_queue_depth", "stratus_conductor_work_seconds",
                 "stratus_metrics_collect_seconds", "stratus_migration_downtime_seconds"):
        assert name in families, name

    def described() -> float:
        found = samples_of(scrape(server), "stratus_api_request_seconds", action="DescribeInstances", code="OK")
        return next((s.value for s in found if s.name.endswith("_count")), 0.0)

    # Counters move: requests by action and code.
    client = ec2_client(server, a.access_key, a.secret_key)
    before = described()
    for _ in range(3):
        client.describe_instances()
    assert described() >= before + 3
    assert error_of(lambda: client.describe_instances(InstanceIds=["i-00000000000000000"]))[0] == \
        "InvalidInstanceID.NotFound"
    failed = samples_of(scrape(server), "stratus_api_request_seconds", action="DescribeInstances",
                        code="InvalidInstanceID.NotFound")
    assert any(s.name.endswith("_count") and s.value >= 1 for s in failed)
    # And the sampling counts: every collection is one more host call.
    calls = lambda: sum(s.value for s in samples_of(scrape(server), "stratus_host_call_seconds",  # noqa: E731
                                                    host_id=host_id, call="sample") if s.name.endswith("_count"))
    first = calls()
    time.sleep(1)
    assert calls() > first

    # Not on the API's port.
    import urllib.error
    import urllib.request
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(server.endpoint + "/metrics", timeout=10)
