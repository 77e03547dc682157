"""The web console (`/console/`) in a real headless Chromium: Debian's `chromium`, driven through
Debian's `chromedriver` by Selenium (nothing downloads a browser).

- Sessions and their walls, over plain HTTP: sign-in checks the secret, the cookie is HttpOnly and
  SameSite=Strict (Secure behind TLS), every state change needs the CSRF token and the console's
  own origin, sign-out and expiry end the session, and a tenant gets the API's refusals.
- In the browser on the test driver: a tenant's view has no admin pages, another account's
  instance cannot be opened by URL, a tag cannot become markup, an expired session returns to
  the sign-in form.
- On a real guest: a tenant launches from the form, watches it boot, reads its console output,
  adds a security-group rule, stops and terminates it.
- On the two-host lab: an admin migrates a running guest from the dialog and watches the
  progress pushed by the server end with the measured downtime.

Screenshots of each main page go to target/console-screenshots/.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from conftest import (BOOT_MARKER, DEFAULT_PUBLIC_CIDR, QEMU_CONFIG, TEST_DRIVER_CONFIG, create_account, ec2_client,
                      forget_ovn_installation, free_port, import_image, private_public_network, require_qemu,
                      server_env, signed_request, wait_for_binary, wait_states, with_public_network)

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "target" / "console-screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


# --- HTTP, as a browser's requests look -------------------------------------------------------

class Client:
    """One browser-like client of the console: keeps its cookie, sends what a page sends."""

    def __init__(self, server):
        self.host, self.port = "127.0.0.1", server.port
        self.cookie = None
        self.csrf = None

    def call(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        sent = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        if self.cookie:
            sent["Cookie"] = self.cookie
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def sign_in(self, key, secret, headers=None):
        status, headers, data = self.call("POST", "/console/api/session",
                                          json.dumps({"accessKeyId": key, "secretAccessKey": secret}),
                                          {"Content-Type": "application/json", **(headers or {})})
        if status == 200:
            self.cookie = headers["set-cookie"].split(";")[0]
            self.csrf = json.loads(data)["csrfToken"]
        return status, headers, data

    def ec2(self, action, params=None, csrf=True, headers=None):
        body = urlencode({"Action": action, "Version": "2016-11-15", **(params or {})})
        sent = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        if csrf and self.csrf:
            sent["X-CSRF-Token"] = self.csrf
        return self.call("POST", "/console/api/ec2", body, sent)

    def serial(self, instance_id, origin=True, csrf=None, upgrade=True):
        """Asks for the serial console's WebSocket: the status and body of a refusal (101 when
        the upgrade is granted)."""
        headers = {}
        if upgrade:
            headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                       "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
        if origin:
            headers["Origin"] = origin if isinstance(origin, str) else f"http://{self.host}:{self.port}"
        query = urlencode({"csrf": self.csrf if csrf is None else csrf})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        sent = {"Host": f"{self.host}:{self.port}", **headers}
        if self.cookie:
            sent["Cookie"] = self.cookie
        conn.request("GET", f"/console/api/instances/{instance_id}/serial?{query}", headers=sent)
        response = conn.getresponse()
        data = b"" if response.status == 101 else response.read()
        conn.close()
        return response.status, data


def serial_socket(client: Client, instance_id: str):
    """The instance's serial console as a page opens it: a WebSocket with the session's cookie,
    its token and the console's origin (websocket-client, which Selenium brings)."""
    import websocket

    query = urlencode({"csrf": client.csrf})
    return websocket.create_connection(f"ws://{client.host}:{client.port}/console/api/instances/{instance_id}/serial?{query}",
                                       origin=f"http://{client.host}:{client.port}", cookie=client.cookie, timeout=60)


def serial_read(socket, until: bytes, timeout: float = 60) -> tuple[bytes, str | None]:
    """What the guest writes, until `until` shows or the server closes: (bytes, close reason)."""
    seen, deadline = b"", time.monotonic() + timeout
    while until not in seen:
        assert time.monotonic() < deadline, f"no {until!r} from the serial console: {seen[-2000:]!r}"
        opcode, data = socket.recv_data(control_frame=True)
        if opcode == 0x8:
            return seen, data[2:].decode()
        if opcode in (0x1, 0x2):
            seen += data
    return seen, None


def code_of(data: bytes) -> str:
    text = data.decode()
    if text.startswith("{"):
        return json.loads(text).get("code", "")
    start = text.find("<Code>")
    return text[start + 6:text.find("</Code>")] if start >= 0 else ""


# --- the browser ------------------------------------------------------------------------------

@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        pytest.fail("chromium and chromium-driver are not installed: run scripts/setup-tools")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="stratus-chromium-")
    # Headless as root, and quiet: this machine refuses connections to the outside world.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield Page(driver)
    finally:
        driver.quit()
        # Each run's profile is a few MiB: left behind, every suite run added eight of them.
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    def __init__(self, driver):
        from selenium.webdriver.common.by import By

        self.d = driver
        self.By = By
        self.base = None

    def open(self, server, route="#/instances"):
        self.base = f"http://127.0.0.1:{server.port}/console/"
        self.d.get(self.base + route)

    def go(self, route):
        self.d.execute_script("location.hash = arguments[0]", route)

    def find(self, css, timeout=20):
        return self.wait(lambda: self.d.find_element(self.By.CSS_SELECTOR, css), timeout, f"no {css}")

    def all(self, css):
        return self.d.find_elements(self.By.CSS_SELECTOR, css)

    def text(self, css="#main"):
        try:
            return self.d.find_element(self.By.CSS_SELECTOR, css).text
        except Exception:
            return ""

    def wait(self, until, timeout=20, what="condition"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                value = until()
                if value:
                    return value
            except Exception as e:  # the element is not there yet, or was just replaced
                last = e
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what} (last: {last}); page says:\n{self.text()}")

    def wait_text(self, text, css="#main", timeout=20):
        return self.wait(lambda: text in self.text(css), timeout, f"{text!r} in {css}")

    def click(self, css, timeout=20):
        self.wait(lambda: self.d.find_element(self.By.CSS_SELECTOR, css).is_enabled(), timeout, f"{css} enabled")
        self.d.find_element(self.By.CSS_SELECTOR, css).click()

    def press(self, row_css, label, timeout=20):
        """Clicks the button labelled `label` in the element `row_css`."""
        def button():
            row = self.d.find_element(self.By.CSS_SELECTOR, row_css)
            return next(b for b in row.find_elements(self.By.TAG_NAME, "button") if b.text == label)
        self.wait(button, timeout, f"{label!r} in {row_css}").click()

    def confirm(self):
        """Presses the dialog's action button (the last one)."""
        self.wait(lambda: self.d.find_element(self.By.CSS_SELECTOR, "dialog[open]"), 10, "a dialog")
        self.d.find_elements(self.By.CSS_SELECTOR, "dialog[open] .actions button")[-1].click()

    def sign_in(self, key, secret):
        for css, value in (("#access-key", key), ("#secret-key", secret)):
            field = self.find(css)
            field.clear()
            field.send_keys(value)
        self.click("#sign-in button[type=submit]")

    def enter(self, server, key, secret):
        """Opens the console and signs in; answers when the instance list is there."""
        self.open(server)
        self.sign_in(key, secret)
        self.wait_text("Instances")

    def new_volume(self, client, size_gib):
        """Creates a volume from the volumes page: its id, once the store says it is available."""
        self.go("#/volumes")
        self.find("#volume-size")
        before = {v["VolumeId"] for v in client.describe_volumes()["Volumes"]}
        field = self.find("#volume-size")
        field.clear()
        field.send_keys(str(size_gib))
        self.click("#volume-size ~ button[type=submit]")

        def made():
            return next((v for v in (r.get_attribute("data-volume") for r in self.all("tr[data-volume]"))
                         if v not in before), None)
        volume_id = self.wait(made, 20, "the new volume")
        self.wait(lambda: client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available", 30,
                  "the new volume available")
        # Drawn again, with the row's buttons for an available volume.
        self.go("#/instances")
        self.go("#/volumes")
        return volume_id

    def shot(self, name):
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.d.execute_script("window.scrollTo(0, 0)")
        self.d.save_screenshot(str(SHOTS / f"{name}.png"))

    def errors(self):
        """The page's script errors (network refusals the test provoked are not errors)."""
        return [e for e in self.d.get_log("browser") if e["level"] == "SEVERE" and e.get("source") != "network"]


# --- sessions, over HTTP ----------------------------------------------------------------------

def test_sign_in_cookie_csrf_origin_and_sign_out(server_factory):
    server = server_factory(config=TEST_DRIVER_CONFIG)
    tenant = create_account(server, "console-tenant")
    admin = Client(server)

    # The page itself: built in, under a policy that runs only its own scripts.
    status, headers, data = admin.call("GET", "/console/")
    assert status == 200 and b"app.js" in data, (status, data[:200])
    assert "script-src 'self'" in headers["content-security-policy"], headers
    assert headers["x-frame-options"] == "DENY"
    status, headers, _ = admin.call("GET", "/console")
    assert status == 308 and headers["location"] == "/console/"
    status, headers, _ = admin.call("GET", "/console/assets/app.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert admin.call("GET", "/console/assets/app.js", headers={"If-None-Match": headers["etag"]})[0] == 304

    # No session: nothing but the sign-in.
    assert admin.call("GET", "/console/api/session")[0] == 401
    status, _, data = admin.ec2("DescribeInstances")
    assert status == 401 and code_of(data) == "SignedOut"

    # A wrong secret, an unknown key, a form instead of JSON.
    # (Its last character changed: a secret that ends in "x" gets a "y".)
    wrong = server.secret_key[:-1] + ("y" if server.secret_key.endswith("x") else "x")
    assert admin.sign_in(server.access_key, wrong)[0] == 401
    assert admin.sign_in("AKIANOSUCHKEY0000000", server.secret_key)[0] == 401
    assert admin.call("POST", "/console/api/session", "accessKeyId=a&secretAccessKey=b",
                      {"Content-Type": "application/x-www-form-urlencoded"})[0] == 415

    status, headers, data = admin.sign_in(server.access_key, server.secret_key)
    assert status == 200, data
    cookie = headers["set-cookie"]
    for part in ("HttpOnly", "SameSite=Strict", "Path=/console/", "Max-Age="):
        assert part in cookie, cookie
    assert "Secure" not in cookie, "plain HTTP: a Secure cookie would never come back"
    me = json.loads(data)
    assert me["admin"] is True and me["accountId"] and "secret" not in data.decode().lower(), me
    # Behind a TLS proxy the cookie is Secure.
    assert "; Secure" in Client(server).sign_in(server.access_key, server.secret_key,
                                                {"X-Forwarded-Proto": "https"})[1]["set-cookie"]

    # State changes need the session's CSRF token, and the console's own origin.
    status, _, data = admin.ec2("CreateKeyPair", {"KeyName": "no-token"}, csrf=False)
    assert status == 403 and code_of(data) == "InvalidCsrfToken", data
    status, _, data = admin.ec2("CreateKeyPair", {"KeyName": "stale"}, csrf=False, headers={"X-CSRF-Token": "0" * 64})
    assert status == 403 and code_of(data) == "InvalidCsrfToken", data
    status, _, data = admin.ec2("CreateKeyPair", {"KeyName": "cross"}, headers={"Origin": "http://evil.example"})
    assert status == 403 and code_of(data) == "CrossOrigin", data
    status, _, data = admin.ec2("CreateKeyPair", {"KeyName": "cross"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403 and code_of(data) == "CrossOrigin", data
    names = [k["KeyName"] for k in ec2_client(server).describe_key_pairs()["KeyPairs"]]
    assert names == [], f"a refused request changed something: {names}"
    status, _, data = admin.ec2("CreateKeyPair", {"KeyName": "from-console"})
    assert status == 200 and b"<keyMaterial>" in data, data
    assert [k["KeyName"] for k in ec2_client(server).describe_key_pairs()["KeyPairs"]] == ["from-console"]

    # The API's own answers and errors come through unchanged.
    status, _, data = admin.ec2("DescribeInstances", {"InstanceId.1": "i-0123456789abcdef0"})
    assert status == 400 and code_of(data) == "InvalidInstanceID.NotFound", data
    status, _, data = admin.ec2("NoSuchAction")
    assert status == 400 and code_of(data) == "InvalidAction", data

    # A tenant is the tenant: the API's refusals, and no admin stream.
    other = Client(server)
    assert other.sign_in(tenant.access_key, tenant.secret_key)[0] == 200
    status, _, data = other.ec2("MigrateInstance", {"InstanceId": "i-0123456789abcdef0"})
    assert status in (400, 403) and code_of(data) == "UnauthorizedOperation", data
    status, _, data = other.call("GET", "/console/api/migrations/mig-0123456789abcdef0/events")
    assert status == 403, data
    status, _, data = other.ec2("DescribeKeyPairs")
    assert b"from-console" not in data, "a tenant sees another account's key pair"

    # Malformed stream paths are refused, never crash the server.
    for path in ("/console/api/migrations/events", "/console/api/migrations//events", "/console/api/migrations/a/b/events"):
        assert admin.call("GET", path)[0] == 404, path
    assert other.call("GET", "/console/api/migrations/events")[0] == 403
    assert admin.call("GET", "/console/api/session")[0] == 200

    # Signing in again ends the session the browser held before.
    stale = admin.cookie
    again = Client(server)
    again.cookie = stale
    assert again.sign_in(server.access_key, server.secret_key)[0] == 200
    admin.cookie, admin.csrf = again.cookie, again.csrf
    probe = Client(server)
    probe.cookie = stale
    assert probe.call("GET", "/console/api/session")[0] == 401

    # Sign-out ends that session only.
    assert admin.call("DELETE", "/console/api/session", headers={"X-CSRF-Token": admin.csrf})[0] == 200
    assert admin.call("GET", "/console/api/session")[0] == 401
    assert other.call("GET", "/console/api/session")[0] == 200


def test_sessions_expire(server_factory):
    server = server_factory(config=TEST_DRIVER_CONFIG + "\n[console]\nsession_secs = 3\nidle_secs = 60\n")
    client = Client(server)
    assert client.sign_in(server.access_key, server.secret_key)[0] == 200
    assert client.ec2("DescribeRegions")[0] == 200
    time.sleep(3.5)
    status, _, data = client.ec2("DescribeRegions")
    assert status == 401 and code_of(data) == "SignedOut", data


# --- the browser, on the test driver ----------------------------------------------------------

def test_tenant_walls_and_markup_in_the_browser(server_factory, browser, test_image):
    server = server_factory(config=TEST_DRIVER_CONFIG + "\n[console]\nidle_secs = 4\n")
    image_id = import_image(server, test_image, "console image")
    tenant = create_account(server, "console-walls")
    admin_ec2 = ec2_client(server)
    theirs = admin_ec2.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    mine_ec2 = ec2_client(server, tenant.access_key, tenant.secret_key)
    mine = mine_ec2.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1, TagSpecifications=[{
        "ResourceType": "instance", "Tags": [{"Key": "Name", "Value": '<img src=x id=injected onerror="document.title=1">'}]}],
    )["Instances"][0]["InstanceId"]

    browser.open(server)
    browser.sign_in(tenant.access_key, "wrong" + tenant.secret_key)
    browser.wait_text("wrong", ".error-box")
    browser.sign_in(tenant.access_key, tenant.secret_key)
    browser.wait_text(mine)
    assert theirs not in browser.text(), "a tenant's list shows another account's instance"
    nav = browser.text("#nav")
    assert "Instances" in nav and "Hosts" not in nav and "Migrations" not in nav, nav
    # The tag is shown as text, never parsed as markup.
    assert '<img src=x' in browser.text(), browser.text()
    assert not browser.all("#injected")
    browser.shot("tenant-instances")

    # Admin pages and another account's instance, by URL.
    browser.go("#/hosts")
    browser.wait_text("administrator", "#forbidden")
    browser.go(f"#/instances/{theirs}")
    browser.wait_text("InvalidInstanceID.NotFound")
    browser.go(f"#/instances/{mine}")
    browser.wait_text("Network interfaces")
    assert browser.find(".chart") is not None

    # The serial console's WebSocket is walled like the API: off until the account enables
    # it, then only for its own instances, from its own page, with the session's token.
    http = Client(server)
    assert http.serial(mine)[0] == 401
    http.sign_in(tenant.access_key, tenant.secret_key)
    status, data = http.serial(mine)
    assert (status, code_of(data)) == (403, "SerialConsoleAccessDisabled"), data
    assert http.ec2("EnableSerialConsoleAccess")[0] == 200
    status, data = http.serial(theirs)
    assert (status, code_of(data)) == (400, "InvalidInstanceID.NotFound"), data
    for refused, code in ((http.serial(mine, origin=False), "CrossOrigin"),
                          (http.serial(mine, origin="http://evil.example"), "CrossOrigin"),
                          (http.serial(mine, csrf="stale"), "InvalidCsrfToken"),
                          (http.serial(mine, upgrade=False), "InvalidRequest")):
        assert code_of(refused[1]) == code, (code, refused)
    assert code_of(http.ec2("GetSerialConsoleAccessStatus")[2]) != "SignedOut"

    # Idle past the limit: the next action returns to the sign-in form.
    time.sleep(4.5)
    browser.go("#/keys")
    browser.wait_text("Your session has ended", timeout=10)
    assert not browser.errors(), browser.errors()


def test_key_pairs_and_volumes_from_the_browser(server_factory, browser):
    server = server_factory(config=TEST_DRIVER_CONFIG)
    client = ec2_client(server)
    browser.enter(server, server.access_key, server.secret_key)

    # A key pair made in the browser: its private key is offered once, as a download.
    browser.go("#/keys")
    browser.click("#create-key")
    browser.find("#key-name").send_keys("console-key")
    browser.confirm()
    download = browser.find("#private-key-download")
    assert download.get_attribute("href").startswith("blob:") and download.get_attribute("download") == "console-key.pem"
    browser.confirm()
    browser.wait_text("console-key")
    assert [k["KeyName"] for k in client.describe_key_pairs()["KeyPairs"]] == ["console-key"]

    # A volume: made, grown, snapshotted and deleted from its row (attaching takes a real guest:
    # the test below).
    volume_id = browser.new_volume(client, 2)
    assert client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Size"] == 2
    browser.press(f'tr[data-volume="{volume_id}"]', "Resize…")
    grown = browser.find("#resize-size")
    grown.clear()
    grown.send_keys("3")
    browser.confirm()
    browser.wait(lambda: client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Size"] == 3, 30, "the new size")
    browser.press(f'tr[data-volume="{volume_id}"]', "Snapshot")
    browser.wait(lambda: client.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [volume_id]}],
                                                   OwnerIds=["self"])["Snapshots"], 30, "a snapshot")
    browser.press(f'tr[data-volume="{volume_id}"]', "Delete")
    browser.confirm()
    browser.wait(lambda: not [v for v in client.describe_volumes()["Volumes"] if v["VolumeId"] == volume_id], 30, "gone")
    assert not browser.errors(), browser.errors()


# --- a real guest -----------------------------------------------------------------------------

def test_a_tenant_launches_watches_and_ends_a_real_guest(server_factory, browser, test_image):
    require_qemu()
    server = server_factory(config=QEMU_CONFIG + "\n[monitoring]\ninterval_ms = 1000\n")
    image_id = import_image(server, test_image, "console guest image")
    tenant = create_account(server, "console-guest")
    client = ec2_client(server, tenant.access_key, tenant.secret_key)

    browser.enter(server, tenant.access_key, tenant.secret_key)
    browser.go("#/launch")
    browser.find("#launch-image option")
    browser.find("#launch-name").send_keys("console-web")
    browser.d.execute_script("document.getElementById('launch-image').value = arguments[0]", image_id)
    browser.d.execute_script("document.getElementById('launch-type').value = 't3.nano'")
    browser.find("#launch-tags").send_keys("team=console")
    browser.shot("launch")
    browser.click("#launch-submit")
    # The form lands on the new instance's page, which follows it until it runs.
    browser.wait(lambda: "#/instances/i-" in browser.d.current_url, 60, "the instance page")
    instance_id = browser.d.current_url.rsplit("/", 1)[-1]
    described = client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in described["Tags"]}
    assert tags == {"Name": "console-web", "team": "console"}, tags
    assert described["InstanceType"] == "t3.nano" and described["ImageId"] == image_id
    browser.wait_text("running", "h1", timeout=120)

    # Its serial console, read from the page until the guest has booted.
    deadline = time.monotonic() + 180
    while BOOT_MARKER not in browser.text("#console-output"):
        assert time.monotonic() < deadline, f"no boot marker in the console output:\n{browser.text('#console-output')}"
        time.sleep(3)
        browser.click("#refresh-output")
    # Its serial console, live: off until the account turns it on from the page; what is
    # typed reaches the guest, whose answer comes back.
    browser.click("#open-serial")
    browser.click("#enable-serial")
    browser.wait_text("Connected", "#serial-status", timeout=30)
    assert client.get_serial_console_access_status()["SerialConsoleAccessEnabled"] is True
    browser.find("#serial-terminal textarea").send_keys("hello-serial\n")
    screen = 'return document.querySelector(".xterm-accessibility-tree").textContent'
    browser.wait(lambda: "stratus-echo hello-serial" in browser.d.execute_script(screen), 60, "the guest's answer")
    browser.shot("serial-console")
    # A second session (another tab) takes the console: this one says so.
    other = Client(server)
    other.sign_in(tenant.access_key, tenant.secret_key)
    assert other.serial(instance_id)[0] == 101
    browser.wait_text("Disconnected", "#serial-status", timeout=30)
    browser.go(f"#/instances/{instance_id}")
    browser.wait_text("Network interfaces")

    # Its charts, fed by the host's samples (every second here).
    browser.wait(lambda: int(browser.find('[data-chart="CPU utilization"]').get_attribute("data-points")) > 0
                 or browser.click(".chip[data-range='1 h']"), 120, "CPU points on the instance's chart")
    browser.shot("instance")

    # A rule in the instance's security group, from the rule editor.
    group_id = described["SecurityGroups"][0]["GroupId"]
    browser.go(f"#/security-groups/{group_id}")
    browser.find("#add-rule")
    browser.find("#rule-ports").send_keys("22")
    browser.find("#rule-source").send_keys("198.51.100.0/24")
    browser.find("#rule-description").send_keys("ssh from the office")
    browser.click("#add-rule button[type=submit]")
    browser.wait_text("198.51.100.0/24", "#inbound")
    browser.shot("security-group")
    rules = client.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]
    assert any(r.get("CidrIpv4") == "198.51.100.0/24" and r["FromPort"] == 22 and r["Description"] == "ssh from the office"
               for r in rules if not r["IsEgress"]), rules

    # A volume made and attached to it from the volumes page, then detached.
    volume_id = browser.new_volume(client, 1)
    browser.press(f'tr[data-volume="{volume_id}"]', "Attach…")
    browser.find(f'#attach-instance option[value="{instance_id}"]')
    browser.confirm()

    def attachment():
        found = client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Attachments"]
        return found and found[0]["State"] == "attached"
    browser.wait(attachment, 60, "the volume attached")
    browser.go("#/instances")
    browser.go("#/volumes")
    browser.wait_text(instance_id, f'tr[data-volume="{volume_id}"]')
    browser.shot("volumes")
    browser.press(f'tr[data-volume="{volume_id}"]', "Detach")
    browser.wait(lambda: client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available", 60,
                 "the volume detached")

    # Stop, then terminate, each confirmed.
    browser.go(f"#/instances/{instance_id}")
    browser.click('button[data-action="StopInstances"]')
    browser.confirm()
    browser.wait_text("stopped", "h1", timeout=120)
    wait_states(client, [instance_id], "stopped")
    browser.click('button[data-action="TerminateInstances"]')
    browser.confirm()
    browser.wait_text("terminated", "h1", timeout=120)
    wait_states(client, [instance_id], "terminated")
    assert not browser.errors(), browser.errors()


# --- a newcomer's first start -----------------------------------------------------------------

def test_a_newcomer_starts_scripts_run_and_launches_from_the_console(tmp_path, browser):
    """The README's first command, as a newcomer meets it: `scripts/run` prints the console's
    address and the admin's keys, imports a starter image on the first start, and the console
    launches it, shows it running with its output, and terminates it, without the cli."""
    require_qemu()
    config = tmp_path / "stratus.toml"
    config.write_text(with_public_network(QEMU_CONFIG, private_public_network()))
    data_dir, port = tmp_path / "data", free_port()
    env = {**server_env(), "STRATUS_BIN": str(wait_for_binary())}
    args = [str(REPO / "scripts" / "run"), "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir),
            "--metrics-listen", "off", "--config", str(config)]
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    try:
        def said(text):
            assert proc.poll() is None, f"scripts/run exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
            return text in log.read_text()
        browser.wait(lambda: said("imported the starter image"), 300, "the starter image")
        found = re.search(r"Web console: (\S+) \(sign in with access key (\S+) and secret key (\S+)\)", log.read_text())
        assert found, log.read_text()
        url, key, secret = found.groups()
        assert url == f"http://127.0.0.1:{port}/console/", url

        browser.d.get(url + "#/launch")
        browser.sign_in(key, secret)
        starter = browser.wait(lambda: next((o for o in browser.all("#launch-image option") if "starter" in o.text), None),
                               30, "the starter image in the launch form")
        browser.d.execute_script("document.getElementById('launch-image').value = arguments[0]",
                                 starter.get_attribute("value"))
        browser.d.execute_script("document.getElementById('launch-type').value = 't3.nano'")
        browser.find("#launch-name").send_keys("first")
        browser.click("#launch-submit")
        browser.wait(lambda: "#/instances/i-" in browser.d.current_url, 60, "the instance page")
        browser.wait_text("running", "h1", timeout=120)
        deadline = time.monotonic() + 180
        while BOOT_MARKER not in browser.text("#console-output"):
            assert time.monotonic() < deadline, browser.text("#console-output")
            time.sleep(3)
            browser.click("#refresh-output")
        browser.click('button[data-action="TerminateInstances"]')
        browser.confirm()
        browser.wait_text("terminated", "h1", timeout=120)
        assert not browser.errors(), browser.errors()
    finally:
        # Ctrl-C as a terminal sends it: the script hands it to the server, which ends cleanly.
        os.killpg(proc.pid, signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        try:
            forget_ovn_installation((data_dir / "installation").read_text().strip())
        except OSError:
            pass
    assert code == 0, log.read_text()[-4000:]
    # A second start does not import it again.
    assert (data_dir / ".starter-image-imported").exists()


# --- live migration on the lab ----------------------------------------------------------------

def test_an_admin_migrates_from_the_dialog_and_watches_it(lab, server_factory, browser, test_image):
    server = server_factory(config=lab + "\n[instances]\nsweep_interval_ms = 500\nstop_timeout_secs = 20\n",
                            public=DEFAULT_PUBLIC_CIDR)
    image_id = import_image(server, test_image, "console lab image")
    client = ec2_client(server)
    instance_id = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    wait_states(client, [instance_id], "running", timeout=120)
    # Booted, with its network up, before it moves: the ping trace then shows only the move.
    deadline = time.monotonic() + 180
    while BOOT_MARKER not in client.get_console_output(InstanceId=instance_id, Latest=True).get("Output", ""):
        assert time.monotonic() < deadline, "the guest did not boot"
        time.sleep(2)

    # A serial console session open across the move: the guest answers what is typed.
    http = Client(server)
    http.sign_in(server.access_key, server.secret_key)
    assert http.ec2("EnableSerialConsoleAccess")[0] == 200
    serial = serial_socket(http, instance_id)
    serial.send_binary(b"before-move\r")
    assert serial_read(serial, b"stratus-echo before-move")[1] is None

    browser.enter(server, server.access_key, server.secret_key)
    browser.go("#/hosts")
    browser.wait_text("vCPUs allocated".upper())
    assert len(browser.all("tr[data-host]")) == 2
    browser.shot("hosts")
    browser.go(f"#/instances/{instance_id}")
    browser.click("#migrate")
    browser.find("#migrate-dialog")
    # The dialog offers the other host, never the current one.
    candidates = [r.get_attribute("data-candidate") for r in browser.all("tr[data-candidate]")]
    def host_of(instance):
        return next(h["HostId"] for h in client.describe_hosts()["Hosts"]
                    if instance in [i["InstanceId"] for i in h.get("Instances", [])])

    source = host_of(instance_id)
    assert len(candidates) == 1 and source not in candidates, (candidates, source)
    browser.find("#migrate-downtime").send_keys("300")
    browser.shot("migrate-dialog")
    browser.confirm()
    browser.wait(lambda: "#/migrations/" in browser.d.current_url, 30, "the migration page")
    # Progress arrives over server-sent events until the end, with the measured downtime.
    browser.wait(lambda: browser.find("#migration-phase").get_attribute("data-status") == "completed", 180,
                 "the migration to complete")
    # Every pushed update draws the outcome anew (the ping trace's figures come after the end),
    # so the figure is read until it is there, not once.
    downtime = browser.wait(lambda: (lambda t: t if t.endswith((" ms", " s")) else None)(
        browser.text("#migration-downtime")), 20, "the measured downtime")
    browser.wait_text("300 ms requested", "#migration-outcome")
    # The stream ends once the ping trace's tail is recorded too.
    browser.wait(lambda: browser.text("#migration-live") == "finished", 30, "the end of the stream")
    assert int(browser.find("#migration-live").get_attribute("data-events") or 0) >= 2, "progress was not pushed"
    # The guest's view: pinged every 10 ms from its VPC's end on this machine, drawn with the
    # switch-over marked, and its largest gap reported beside libvirt's downtime.
    trace = browser.wait(lambda: browser.find("#migration-trace[data-probes]"), 30, "the ping trace")
    assert int(trace.get_attribute("data-probes")) >= 50, trace.get_attribute("data-probes")
    assert "pings answered" in browser.text("#migration-ping-gap"), browser.text("#migration-outcome")
    migration_id = browser.d.current_url.rsplit("/", 1)[-1]
    answer = signed_request(server, f"Action=DescribeInstanceMigrations&Version=2016-11-15&MigrationId.1={migration_id}")
    fields = {el.tag.split("}")[-1]: el.text for el in answer.xml.iter()}
    sent, answered, gap = (int(fields[k]) for k in ("pingsSent", "pingsAnswered", "pingLargestGapMillis"))
    assert sent >= 50 and answered >= sent // 2 and 0 < gap < 10_000, (sent, answered, gap)
    print(f"console migration: downtime {downtime}, largest ping gap {gap} ms, {answered} of {sent} answered")
    browser.d.set_window_size(1400, 1500)
    browser.shot("migration")
    browser.d.set_window_size(1400, 1000)
    assert host_of(instance_id) == candidates[0], candidates
    # The serial session ended with the source's QEMU, saying why; a new one reaches the guest
    # on its new host.
    _, reason = serial_read(serial, b"\0never\0")
    assert "ended" in reason, reason
    serial.close()
    serial = serial_socket(http, instance_id)
    serial.send_binary(b"after-move\r")
    assert serial_read(serial, b"stratus-echo after-move")[1] is None
    serial.close()
    # The instance's history lists the move.
    browser.go(f"#/instances/{instance_id}")
    browser.wait_text("completed", "#migration-history", timeout=30)
    assert not browser.errors(), browser.errors()


def test_post_copy_from_the_console_on_the_lab(lab, server_factory, browser, test_image):
    """A guest that dirties memory faster than a capped link carries: pre-copy alone would go
    round for a long time, so the admin switches to post-copy from the progress view; the guest
    finishes on the target with every page it wrote intact."""
    server = server_factory(config=lab + "\n[instances]\nsweep_interval_ms = 500\nstop_timeout_secs = 20\n",
                            public=DEFAULT_PUBLIC_CIDR)
    dirtying = dataclasses.replace(test_image, cmdline=f"{test_image.cmdline} stratus.dirty=128")
    image_id = import_image(server, dirtying, "console post-copy image")
    client = ec2_client(server)
    instance_id = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    wait_states(client, [instance_id], "running", timeout=120)

    def passes():
        text = client.get_console_output(InstanceId=instance_id, Latest=True).get("Output", "")
        return [(int(k), int(n)) for k, n in re.findall(r"stratus-dirty pass=(\d+) lost=(\d+)", text)]
    deadline = time.monotonic() + 180
    while len(passes()) < 2:
        assert time.monotonic() < deadline, "the guest's dirtier never ran"
        time.sleep(2)
    before = max(k for k, _ in passes())

    browser.enter(server, server.access_key, server.secret_key)
    browser.go(f"#/instances/{instance_id}")
    browser.click("#migrate")
    browser.find("#migrate-bandwidth").send_keys("16")
    browser.click("#migrate-post-copy")
    browser.confirm()
    browser.wait(lambda: "#/migrations/" in browser.d.current_url, 30, "the migration page")
    phase = lambda: browser.find("#migration-phase").get_attribute("data-status")  # noqa: E731
    browser.wait(lambda: phase() == "copying" and browser.find("#migration-post-copy").is_displayed()
                 and browser.text('[data-figure="processed"] .big') not in ("", "0 B"), 60,
                 "pre-copy under way (memory moving), post-copy offered")
    browser.shot("migration-post-copy")
    browser.click("#migration-post-copy")
    browser.confirm()
    seen = set()
    deadline = time.monotonic() + 180
    while phase() not in ("completed", "failed", "cancelled"):
        seen.add(phase())
        assert time.monotonic() < deadline, f"the migration is still {phase()}"
        time.sleep(0.1)
    assert phase() == "completed", browser.text("#migration-outcome")
    migration_id = browser.d.current_url.rsplit("/", 1)[-1]
    answer = signed_request(server, f"Action=DescribeInstanceMigrations&Version=2016-11-15&MigrationId.1={migration_id}")
    fields = {el.tag.split("}")[-1]: el.text for el in answer.xml.iter()}
    assert fields["postCopyRequested"] == "true", fields
    # The pause Stratus watched at the switch (the guest stopped on the source until it ran on
    # the target), beside libvirt's downtime, which for some post-copy migrations runs on to the
    # end of the copy; the page shows both.
    assert 0 < int(fields.get("postCopyPauseMillis") or 0) < 2000, fields
    assert browser.text("#migration-post-copy-pause") not in ("", "—"), browser.text("#migration-outcome")
    # It went through post-copy: the page showed the phase, or (when the phase lasted less than
    # one progress poll) the target asked the source for pages it had not received.
    assert "post-copy" in seen or int(fields.get("postCopyRequests") or 0) > 0, (seen, fields)
    # The guest runs on, on the target, and lost none of its writes.
    deadline = time.monotonic() + 120
    while max(k for k, _ in passes()) < before + 2:
        assert time.monotonic() < deadline, "the dirtier stopped after the migration"
        time.sleep(2)
    assert all(lost == 0 for _, lost in passes()), passes()
    print(f"post-copy from the console: total {fields['totalTimeMillis']} ms, downtime {fields['downtimeMillis']} ms, "
          f"paused {fields['postCopyPauseMillis']} ms at the switch, "
          f"post-copy page requests {fields.get('postCopyRequests')}, largest ping gap {fields.get('pingLargestGapMillis')} ms")
    assert not browser.errors(), browser.errors()
