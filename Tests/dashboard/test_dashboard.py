"""Browser test of the FlowForest dashboard: a real `flowforest run` daemon,
real traffic posted to /api/traffic, headless Debian chromium via selenium.

Run with `make test-dashboard` (FLOWFOREST_BIN names the built executable).
Screenshots of the overview and the detail view go to docs/screenshots/.
"""
import calendar
import json
import os
import shutil
import signal
import socket
import urllib.parse
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, os.path.dirname(__file__))
import traffic  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCREENSHOTS = os.path.join(ROOT, "docs", "screenshots")
BIN = os.environ.get("FLOWFOREST_BIN", os.path.join(ROOT, ".build", "debug", "flowforest"))
ATTACKER, VICTIM = "198.19.0.66", "198.18.2.1"
ATTACKER2, VICTIM2 = "198.19.0.77", "198.18.2.2"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def click_when_ready(wait, find):
    """Finds and clicks in one poll of `wait`: a live table re-rendered
    between the two leaves a stale element, so the pair is tried again
    until a click lands."""
    def attempt(_):
        find().click()
        return True
    wait.until(attempt)

class Daemon:
    """`flowforest run` serving the API on a free loopback port, no live
    capture, scoring with a model trained from a generated capture file."""

    def __init__(self, workdir, model, name):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database = os.path.join(workdir, f"{name}.db")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.model = model
        self.extra_args = []
        self.process = None
        # Without a user the daemon runs --no-auth (loopback development
        # mode): the browser and self.request() need no credentials. With a
        # user it runs with authentication, as a real deployment does.
        self.no_auth = True

    def add_user(self, user, password, role):
        self.no_auth = False
        # The password comes on standard input so it never shows in `ps`.
        subprocess.run([BIN, "user", "add", user, "--role", role, "--password-stdin", "--database", self.database],
                       input=password + "\n", text=True, check=True, capture_output=True, timeout=60)

    def start(self):
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [BIN, "run", "--no-capture", "--listen", f"127.0.0.1:{self.port}", "--database", self.database,
             "--sensor-name", "dashboard-test", "--print-flows", "none"] + (["--model", self.model] if self.model else [])
            + (["--no-auth"] if self.no_auth else []) + self.extra_args,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"flowforest run exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).read()
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        text = self.log_text()
        # Its own session: nothing else would end it.
        self.stop()
        raise RuntimeError(f"flowforest run did not listen within 60 s:\n{text}")

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()[-4000:]

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "log", None):
            self.log.close()

    def request(self, method, path, body=None):
        headers = {"Content-Type": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")


def browser():
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--force-device-scale-factor=1", "--lang=en-US"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=options)


def severe_console_entries(driver, allow_network_401=False):
    """Browser console errors. With auth on, the browser itself logs the 401
    that tells the page to show the sign-in form; that one is expected."""
    out = []
    for entry in driver.get_log("browser"):
        if entry["level"] != "SEVERE":
            continue
        if allow_network_401 and entry.get("source") == "network" and "401" in entry["message"]:
            continue
        out.append(entry)
    return out


WORKDIR = None
MODEL = None


def setUpModule():
    global WORKDIR, MODEL
    if not os.access(BIN, os.X_OK):
        raise RuntimeError(f"no flowforest executable at {BIN}; build first or set FLOWFOREST_BIN")
    help_text = subprocess.run([BIN, "run", "--help"], text=True, capture_output=True).stdout
    for flag in ["--listen", "--database", "--model", "--no-capture", "--no-auth"]:
        if flag not in help_text:
            raise RuntimeError(f"`flowforest run` has no {flag} option; the dashboard test needs the service wired into the CLI")
    WORKDIR = tempfile.mkdtemp(prefix="flowforest-dashboard-")
    pcap = os.path.join(WORKDIR, "normal.pcap")
    traffic.write_normal_pcap(pcap, start=time.time() - 7200, seconds=600)
    MODEL = os.path.join(WORKDIR, "model.json")
    subprocess.run([BIN, "train", pcap, "-o", MODEL, "--seed", "1"], check=True, capture_output=True, timeout=300)


def tearDownModule():
    if WORKDIR:
        shutil.rmtree(WORKDIR, ignore_errors=True)


class DaemonWithBrowser(unittest.TestCase):
    """A daemon (with a model) and a browser for a test class; subclasses
    name the daemon's work folder and may prepare it before it starts."""

    name = None

    @classmethod
    def prepare(cls, daemon):
        pass

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(WORKDIR, MODEL, cls.name)
        cls.prepare(cls.daemon)
        cls.daemon.start()
        try:
            cls.driver = browser()
        except Exception:
            cls.daemon.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        cls.daemon.stop()


class OpenDashboardTests(DaemonWithBrowser):
    """Loopback with --no-auth (no user added): the dashboard opens straight away."""

    name = "open"

    def wait(self, seconds=10):
        # Live tables re-render as events arrive, so an element found one
        # moment can be replaced the next: such a poll is tried again.
        return WebDriverWait(self.driver, seconds, poll_frequency=0.05,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))

    def api_anomalies(self, query=""):
        return self.daemon.request("GET", "/api/anomalies?limit=1000" + query)[1]["anomalies"]

    def table_ids(self):
        # One script call, so a table re-rendered meanwhile cannot leave stale elements.
        return self.driver.execute_script(
            "return [...document.querySelectorAll('#anomalies tbody tr')].map(r => r.dataset.id)")

    def post_scan(self, attacker, victim):
        # Packets 20 s old: the flows are idle past the ingest timeout at the next tick.
        records = traffic.syn_scan(attacker, victim, list(range(1, 501)), time.time() - 20)
        status, _ = self.daemon.request("POST", "/api/traffic", records)
        self.assertEqual(status, 202)

    def wait_for_api(self, ip, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = self.api_anomalies(f"&ip={ip}")
            if found:
                return time.monotonic(), found
            time.sleep(0.05)
        self.fail(f"no anomaly for {ip} stored within {seconds} s; daemon log:\n{self.daemon.log_text()}")

    def test_1_live_anomaly_filters_detail(self):
        d = self.driver
        d.get(self.daemon.url + "/#/anomalies")
        self.wait().until(lambda _: "live" in d.find_element(By.ID, "live").get_attribute("class"))
        # A reload would drop this marker.
        d.execute_script("window.__sameDocument = true")

        posted = time.monotonic()
        self.post_scan(ATTACKER, VICTIM)
        # A row naming the attacker arrives in the table by itself, with no
        # reload; how long it took is printed (a figure, not a pass mark: the
        # path crosses the ingest tick, the writer's flush and the browser).
        WebDriverWait(d, 15, poll_frequency=0.02).until(lambda _: d.execute_script(
            "return [...document.querySelectorAll('#anomalies tbody td.src')].some(td => td.textContent === arguments[0])",
            ATTACKER))
        shown_at = time.monotonic()
        self.assertTrue(d.execute_script("return window.__sameDocument === true"), "page was reloaded")
        _, stored = self.wait_for_api(ATTACKER)
        self.assertTrue({str(a["id"]) for a in stored} & set(self.table_ids()))
        print(f"\nanomaly row in the table {shown_at - posted:.2f} s after the POST", file=sys.stderr)

        self.post_scan(ATTACKER2, VICTIM2)
        self.wait_for_api(ATTACKER2)
        # Both attacks' rows are live in the unfiltered table once the stream delivers them.
        all_ids = {str(a["id"]) for a in self.api_anomalies()}
        self.wait(5).until(lambda _: all_ids <= set(self.table_ids()))

        # Address filter: exactly the anomalies naming that address, as the API lists them.
        ip_box = d.find_element(By.ID, "flt-ip")
        ip_box.clear()
        ip_box.send_keys(ATTACKER2)
        d.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
        expected = [str(a["id"]) for a in self.api_anomalies(f"&ip={ATTACKER2}")]
        self.wait().until(lambda _: self.table_ids() == expected)
        self.assertTrue(0 < len(expected) < len(all_ids))
        for row in d.find_elements(By.CSS_SELECTOR, "#anomalies tbody tr"):
            ends = {row.find_element(By.CSS_SELECTOR, ".src").text, row.find_element(By.CSS_SELECTOR, ".dst").text}
            self.assertIn(ATTACKER2, ends)

        # Severity filter: clear the address, pick the severity of one stored anomaly.
        d.find_element(By.CSS_SELECTOR, "#filters button[type=reset]").click()
        self.wait().until(lambda _: set(self.table_ids()) == all_ids)
        severities = sorted({a["severity"] for a in self.api_anomalies()})
        chosen = severities[0]
        Select(d.find_element(By.ID, "flt-severity")).select_by_value(chosen)
        d.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
        expected = [str(a["id"]) for a in self.api_anomalies(f"&severity={chosen}")]
        self.wait().until(lambda _: self.table_ids() == expected)
        self.assertTrue(expected)
        for badge in d.find_elements(By.CSS_SELECTOR, "#anomalies tbody td.severity"):
            self.assertEqual(badge.text.lower(), chosen)
        if len(severities) > 1:
            self.assertLess(len(expected), len(all_ids))

        # Detail view: the explanation in plain words, as stored.
        first = d.find_element(By.CSS_SELECTOR, "#anomalies tbody tr a")
        anomaly_id = first.find_element(By.XPATH, "./ancestor::tr").get_attribute("data-id")
        first.click()
        anomaly = self.daemon.request("GET", f"/api/anomalies/{anomaly_id}")[1]
        texts = [e["text"] for e in anomaly["explanation"]]
        self.assertTrue(texts, "a stored anomaly carries an explanation")
        self.wait().until(lambda _: [li.text for li in d.find_elements(By.CSS_SELECTOR, "#explanation li")] == texts)
        self.assertIn(anomaly["label"], d.find_element(By.ID, "h-detail").text.lower())
        self.wait().until(lambda _: d.find_elements(By.CSS_SELECTOR, "#detail-flows tbody tr")
                          or d.find_element(By.ID, "detail-flows-empty").is_displayed())

        # Acknowledge (the open-access user is admin).
        d.find_element(By.ID, "ack").click()
        self.wait().until(lambda _: "acknowledged" in d.find_element(By.ID, "detail-head").text)
        self.assertTrue(self.daemon.request("GET", f"/api/anomalies/{anomaly_id}")[1]["acknowledged"])

        # The README's detail picture: a host anomaly of the scan, which explains itself best.
        hosts = [a for a in self.api_anomalies(f"&ip={ATTACKER}&kind=host")] or self.api_anomalies()
        d.get(self.daemon.url + f"/#/anomaly/{hosts[-1]['id']}")
        self.wait().until(lambda _: len(d.find_elements(By.CSS_SELECTOR, "#explanation li")) == max(1, len(hosts[-1]["explanation"])))
        self.wait().until(lambda _: d.find_elements(By.CSS_SELECTOR, "#detail-flows tbody tr")
                          or d.find_element(By.ID, "detail-flows-empty").is_displayed())
        # Flows behind it: exactly the stored flows the anomaly names (ids beyond 2^53 compared exactly).
        shown = hosts[-1]
        flows = self.daemon.request("GET", f"/api/flows?ip={shown['src_ip']}&limit=1000&since=0")[1]
        named = {f["id"] for f in flows["active"] + flows["recent"]} & set(shown["flow_ids"])
        rows = d.find_elements(By.CSS_SELECTOR, "#detail-flows tbody tr")
        self.assertEqual(len(rows), min(200, len(named)))
        for row in rows:
            self.assertIn(shown["src_ip"], row.text)
        os.makedirs(SCREENSHOTS, exist_ok=True)
        d.save_screenshot(os.path.join(SCREENSHOTS, "detail.png"))

    def test_2_overview(self):
        d = self.driver
        d.get(self.daemon.url + "/#/overview")
        # Some traffic so the charts have a shape: the scan again, spread over a few seconds.
        for i in range(6):
            records = traffic.syn_scan("198.19.0.90", "198.18.2.3", list(range(1000 + 50 * i, 1050 + 50 * i)), time.time())
            self.daemon.request("POST", "/api/traffic", records)
            time.sleep(1)
        self.wait(15).until(lambda _: d.find_elements(By.CSS_SELECTOR, "#c-pps path.line"))
        self.wait().until(lambda _: d.find_elements(By.CSS_SELECTOR, "#c-sev rect"))
        self.assertNotEqual(d.find_element(By.ID, "f-model").text, "—")
        self.assertFalse(d.find_element(By.ID, "learning").is_displayed(), "model is loaded, not learning")
        rows = d.find_elements(By.CSS_SELECTOR, "#latest tbody tr")
        self.assertTrue(rows)
        d.save_screenshot(os.path.join(SCREENSHOTS, "overview.png"))
        # Narrow screen: the anomalies table still shows who, what and how bad.
        d.set_window_size(420, 900)
        d.get(self.daemon.url + "/#/anomalies")
        self.wait().until(lambda _: d.find_element(By.CSS_SELECTOR, "#anomalies tbody td.severity").is_displayed(),
                          "the severity column is shown on a narrow screen")
        d.set_window_size(1400, 1000)

    def test_3_hosts(self):
        d = self.driver
        # Flows of the earlier tests may still be ending and stored, adding
        # hosts between the page's read and the test's: the page is read again
        # until it and the API agree on one moment.
        def agree(_):
            d.get("about:blank")
            d.get(self.daemon.url + "/#/hosts")
            self.wait().until(lambda _: d.find_elements(By.CSS_SELECTOR, "#hosts tbody tr")
                              or d.find_element(By.ID, "hosts-empty").is_displayed())
            shown = d.execute_script("return [...document.querySelectorAll('#hosts tbody tr')].map(r => r.cells[0].textContent)")
            hosts = self.daemon.request("GET", "/api/hosts?limit=50")[1]["hosts"]
            self.last_hosts = (sorted(shown), sorted(h["address"] for h in hosts))
            return self.last_hosts[0] == self.last_hosts[1]
        try:
            self.wait(30).until(agree)
        except TimeoutException:
            self.fail(f"hosts shown and /api/hosts differ: {self.last_hosts}")

    def test_4_keyboard(self):
        """Filters, paging and rows are reachable with Tab, and Enter opens a row."""
        d = self.driver
        d.get(self.daemon.url + "/#/anomalies")
        self.wait().until(lambda _: d.find_elements(By.CSS_SELECTOR, "#anomalies tbody tr a"))
        d.find_element(By.TAG_NAME, "body").click()
        reached = []
        for _ in range(60):
            ActionChains(d).send_keys(Keys.TAB).perform()
            active = d.switch_to.active_element
            reached.append(active.get_attribute("id") or active.get_attribute("href") or active.text)
            if (active.get_attribute("href") or "").count("#/anomaly/"):
                break
        for wanted in ["flt-ip", "flt-severity", "flt-kind", "flt-since"]:
            self.assertIn(wanted, reached)
        self.assertIn("#/anomaly/", reached[-1])
        active.send_keys(Keys.ENTER)
        self.wait().until(lambda _: d.find_element(By.ID, "view-detail").is_displayed())

    def test_5_incidents(self):
        """The overview's first table: one live row per attack, as the API serves it,
        with its anomalies one click away."""
        d = self.driver
        attacker, victim = "198.19.0.55", "198.18.2.4"
        d.get(self.daemon.url + "/#/overview")
        self.wait().until(lambda _: "live" in d.find_element(By.ID, "live").get_attribute("class"))
        tables = d.execute_script("return [...document.querySelectorAll('#view-overview table')].map(t => t.id)")
        self.assertEqual(tables[0], "incidents")
        self.post_scan(attacker, victim)
        # The row arrives through the event stream, without a reload.
        row_id = None
        deadline = time.monotonic() + 30
        while row_id is None and time.monotonic() < deadline:
            row_id = d.execute_script(
                "const r = [...document.querySelectorAll('#incidents tbody tr')].find(r => r.querySelector('.actors').title.split(', ').includes(arguments[0]));"
                "return r ? r.dataset.id : null", attacker)
            time.sleep(0.05)
        self.assertIsNotNone(row_id, f"no incident row for {attacker}; daemon log:\n{self.daemon.log_text()}")
        # The row shows what the API holds once the scan's anomalies are all in.
        def matches():
            incident = self.daemon.request("GET", f"/api/incidents/{row_id}")[1]
            row = d.find_element(By.ID, f"incident-{row_id}")
            return (row.find_element(By.CSS_SELECTOR, ".count").text == str(incident["anomaly_count"])
                    and row.find_element(By.CSS_SELECTOR, ".severity").text.lower() == incident["peak_severity"]
                    and row.find_element(By.CSS_SELECTOR, ".why").text == "; ".join(e["text"] for e in incident["explanation"])
                    and row.find_element(By.CSS_SELECTOR, ".label").text == incident["label"]
                    and victim in row.find_element(By.CSS_SELECTOR, ".targets").get_attribute("title"))
        self.wait(15).until(lambda _: matches())
        incident = self.daemon.request("GET", f"/api/incidents/{row_id}")[1]
        self.assertEqual(incident["family"], "scan")
        self.assertEqual(len(incident["anomaly_ids"]), incident["anomaly_count"])
        api_rows = [str(i["id"]) for i in self.daemon.request("GET", "/api/incidents?limit=20")[1]["incidents"]]
        shown = d.execute_script("return [...document.querySelectorAll('#incidents tbody tr')].map(r => r.dataset.id)")
        self.assertEqual(sorted(shown), sorted(api_rows))
        os.makedirs(SCREENSHOTS, exist_ok=True)
        d.save_screenshot(os.path.join(SCREENSHOTS, "incidents.png"))
        # One click to the anomalies behind it.
        click_when_ready(self.wait(), lambda: d.find_element(By.CSS_SELECTOR, f"#incident-{row_id} .label a"))
        self.wait().until(lambda _: d.find_element(By.ID, "view-anomalies").is_displayed())
        expected = [str(a["id"]) for a in self.api_anomalies(f"&ip={attacker}")]
        self.wait().until(lambda _: self.table_ids() == expected)
        self.assertTrue(set(str(i) for i in incident["anomaly_ids"]) <= set(expected))

    def incident_row_for(self, attacker, seconds=30):
        """The id of the overview's incident row whose actors hold `attacker`, waiting for it."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            row_id = self.driver.execute_script(
                "const r = [...document.querySelectorAll('#incidents tbody tr')].find(r => r.querySelector('.actors').title.split(', ').includes(arguments[0]));"
                "return r ? r.dataset.id : null", attacker)
            if row_id is not None:
                return row_id
            time.sleep(0.05)
        self.fail(f"no incident row for {attacker}; daemon log:\n{self.daemon.log_text()}")

    def test_6_mark_expected(self):
        """From an incident row an admin marks it expected: a rule prefilled from it,
        listed, edited and removed in the dashboard; its recurrence is shown suppressed."""
        d = self.driver
        attacker, victim = "198.19.0.44", "198.18.2.5"
        d.get(self.daemon.url + "/#/overview")
        self.wait().until(lambda _: "live" in d.find_element(By.ID, "live").get_attribute("class"))
        self.post_scan(attacker, victim)
        row_id = self.incident_row_for(attacker)
        # The row's timeline has one tick per anomaly of the incident.
        def timeline_complete():
            incident = self.daemon.request("GET", f"/api/incidents/{row_id}")[1]
            cell = d.find_element(By.CSS_SELECTOR, f"#incident-{row_id} td.timeline")
            ticks = len(cell.find_elements(By.CSS_SELECTOR, "rect.tick"))
            return ticks == incident["anomaly_count"] and cell.get_attribute("data-ticks") == str(ticks)
        self.wait(15).until(lambda _: timeline_complete(), "the timeline shows every anomaly of the incident")
        incident = self.daemon.request("GET", f"/api/incidents/{row_id}")[1]

        click_when_ready(self.wait(), lambda: d.find_element(By.CSS_SELECTOR, f"#incident-{row_id} button.expect"))
        self.wait().until(lambda _: d.find_element(By.ID, "rule-dialog").is_displayed())
        self.assertEqual(d.find_element(By.ID, "rule-actor").get_attribute("value"), attacker)
        self.assertEqual(d.find_element(By.ID, "rule-target").get_attribute("value"), victim)
        self.assertEqual(Select(d.find_element(By.ID, "rule-label")).first_selected_option.get_attribute("value"), incident["label"])
        # The audit scans every host: the admin widens the rule to any target.
        d.find_element(By.ID, "rule-target").clear()
        d.find_element(By.ID, "rule-reason").send_keys("the weekly audit scan")
        d.find_element(By.ID, "rule-save").click()
        self.wait().until(lambda _: d.find_element(By.ID, "view-suppressions").is_displayed())
        rules = self.daemon.request("GET", "/api/suppressions")[1]["suppressions"]
        self.assertEqual([(r["actor"], r["target"], r["label"], r["reason"], r["created_by"]) for r in rules],
                         [(f"{attacker}/32", None, incident["label"], "the weekly audit scan", "anonymous")])
        rule_id = rules[0]["id"]
        self.wait().until(lambda _: d.find_element(By.CSS_SELECTOR, f"#suppressions tbody tr[data-id='{rule_id}'] .reason").text
                          == "the weekly audit scan")
        os.makedirs(SCREENSHOTS, exist_ok=True)
        d.save_screenshot(os.path.join(SCREENSHOTS, "suppressions.png"))

        # It recurs on another host (the same one again would be a repeat the
        # detector folds into its first report): stored, shown suppressed, no new incident.
        incidents_before = len(self.daemon.request("GET", f"/api/incidents?ip={attacker}")[1]["incidents"])
        first_kinds = {a["kind"] for a in self.api_anomalies(f"&ip={attacker}")}
        seen = len(self.api_anomalies(f"&ip={attacker}"))
        self.post_scan(attacker, "198.18.2.6")
        deadline = time.monotonic() + 30
        while len(self.api_anomalies(f"&ip={attacker}")) <= seen and time.monotonic() < deadline:
            time.sleep(0.05)
        # The recurrence's host and destination anomalies come windows after its
        # first: the same scan from an address with no rule, posted now, has
        # been judged in every kind the first scan was (and has its incident)
        # only once the windows holding the recurrence are judged too.
        control = "198.19.0.45"
        self.post_scan(control, "198.18.2.8")
        self.wait(30).until(lambda _: {a["kind"] for a in self.api_anomalies(f"&ip={control}")} >= first_kinds
                            and self.daemon.request("GET", f"/api/incidents?ip={control}")[1]["incidents"],
                            f"the control scan judged in every kind of {sorted(first_kinds)}, with its incident")
        fresh = self.api_anomalies(f"&ip={attacker}")[: -seen or None]
        self.assertTrue(fresh, f"the recurrence raised no anomaly; daemon log:\n{self.daemon.log_text()}")
        self.assertTrue(all(a["suppressed"] for a in fresh), fresh)
        self.assertEqual(len(self.daemon.request("GET", f"/api/incidents?ip={attacker}")[1]["incidents"]), incidents_before)
        d.get(self.daemon.url + f"/#/anomalies?ip={attacker}")
        for a in fresh:
            self.wait().until(lambda _: "suppressed" in d.find_element(
                By.CSS_SELECTOR, f"#anomalies tbody tr[data-id='{a['id']}'] td.label").text)

        # Edited in place, then removed.
        d.get(self.daemon.url + "/#/suppressions")
        click_when_ready(self.wait(), lambda: d.find_element(By.CSS_SELECTOR, f"#suppressions tr[data-id='{rule_id}'] button.edit"))
        self.wait().until(lambda _: d.find_element(By.ID, "rule-dialog").is_displayed())
        self.assertEqual(d.find_element(By.ID, "rule-actor").get_attribute("value"), f"{attacker}/32")
        reason = d.find_element(By.ID, "rule-reason")
        reason.clear()
        reason.send_keys("the weekly audit scan, Mondays")
        # An expiry in the browser's local time; the API holds it in UTC.
        d.execute_script("document.getElementById('rule-expires').value = '2030-01-01T00:00:00'")
        d.find_element(By.ID, "rule-save").click()
        self.wait().until(lambda _: not d.find_element(By.ID, "rule-dialog").is_displayed())
        expires = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.mktime((2030, 1, 1, 0, 0, 0, 0, 0, -1))))
        self.wait().until(lambda _: self.daemon.request("GET", f"/api/suppressions/{rule_id}")[1]["reason"]
                          == "the weekly audit scan, Mondays")
        self.assertEqual(self.daemon.request("GET", f"/api/suppressions/{rule_id}")[1]["expires"], expires)
        self.wait().until(lambda _: d.find_element(By.CSS_SELECTOR, f"#suppressions tr[data-id='{rule_id}'] .reason").text
                          == "the weekly audit scan, Mondays")
        click_when_ready(self.wait(), lambda: d.find_element(By.CSS_SELECTOR, f"#suppressions tr[data-id='{rule_id}'] button.remove"))
        self.wait().until(lambda _: d.switch_to.alert).accept()
        self.wait().until(lambda _: self.daemon.request("GET", "/api/suppressions")[1]["suppressions"] == [])
        self.wait().until(lambda _: d.find_element(By.ID, "suppressions-empty").is_displayed())

        # A single anomaly can be marked from its detail too (one not suppressed already): the form is prefilled from it.
        anomaly = next(a for a in self.api_anomalies(f"&ip={attacker}") if not a["suppressed"])
        d.get(self.daemon.url + f"/#/anomaly/{anomaly['id']}")
        click_when_ready(self.wait(), lambda: d.find_element(By.ID, "expect-anomaly"))
        self.wait().until(lambda _: d.find_element(By.ID, "rule-dialog").is_displayed())
        self.assertEqual(d.find_element(By.ID, "rule-actor").get_attribute("value"), anomaly["src_ip"] or "")
        self.assertEqual(d.find_element(By.ID, "rule-target").get_attribute("value"), anomaly["dst_ip"] or "")
        self.assertEqual(Select(d.find_element(By.ID, "rule-label")).first_selected_option.get_attribute("value"), anomaly["label"])
        d.find_element(By.ID, "rule-cancel").click()
        self.wait().until(lambda _: not d.find_element(By.ID, "rule-dialog").is_displayed())
        self.assertEqual(self.daemon.request("GET", "/api/suppressions")[1]["suppressions"], [])

    def test_7_rates_from_history(self):
        """The rate charts open with the last hour the server kept, not empty."""
        d = self.driver
        deadline = time.monotonic() + 30
        while len(self.daemon.request("GET", "/api/stats/history")[1]["samples"]) < 15 and time.monotonic() < deadline:
            time.sleep(0.2)
        samples = self.daemon.request("GET", "/api/stats/history")[1]["samples"]
        self.assertGreaterEqual(len(samples), 15, "the daemon kept no history")
        self.assertTrue(any(s["packets_per_second"] > 0 for s in samples), "the history holds the posted traffic")
        d.get("about:blank")
        d.get(self.daemon.url + "/#/overview")
        # The charts start from the history, not from the events after opening:
        # their first point is the server's oldest sample, from before the page
        # existed (events alone would start at the first second after it).
        first = calendar.timegm(time.strptime(samples[0]["time"][:19], "%Y-%m-%dT%H:%M:%S")) * 1000
        self.wait().until(lambda _: d.execute_script("return state.stats.length") >= len(samples),
                          "the charts hold the server's history")
        shown_first = d.execute_script("return state.stats[0].t")
        self.assertLess(abs(shown_first - first), 1000, f"first point {shown_first}, oldest sample {samples[0]['time']}")
        self.wait().until(lambda _: d.find_elements(By.CSS_SELECTOR, "#c-pps path.line"))
        shown_max = d.execute_script("return Math.max(...state.stats.map(p => p.pps))")
        self.assertGreaterEqual(shown_max, max(s["packets_per_second"] for s in samples))

    def test_9_no_console_errors(self):
        self.assertEqual(severe_console_entries(self.driver), [])


class CollectedFlowsTests(DaemonWithBrowser):
    """A collector (`--collect`): the flows table names each flow's exporter
    and filters by it, as GET /api/flows?interface= does."""

    name = "collect"

    @classmethod
    def prepare(cls, daemon):
        cls.collect_port = free_udp_port()
        daemon.extra_args = ["--collect", f"udp://127.0.0.1:{cls.collect_port}", "--idle-timeout", "300"]

    def wait(self, seconds=15):
        return WebDriverWait(self.driver, seconds, poll_frequency=0.05,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))

    def active(self, query=""):
        return self.daemon.request("GET", "/api/flows?limit=100" + query)[1]["active"]

    def test_exporter_column_and_filter(self):
        d = self.driver
        # Three collected flows from exporter 127.0.0.1 (ingress interface 5), and one posted flow that is not collected.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(ipfix_message([("198.18.7.1", "198.18.7.9", 40000 + i) for i in range(3)], ingress=5), ("127.0.0.1", self.collect_port))
        records = traffic.syn_scan("198.19.0.5", "198.18.2.3", [443], time.time() - 1)
        self.assertEqual(self.daemon.request("POST", "/api/traffic", records)[0], 202)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (len(self.active("&interface=127.0.0.1")) == 3 and len(self.active()) >= 4):
            time.sleep(0.05)
        collected = self.active("&interface=127.0.0.1")
        self.assertEqual(len(collected), 3, f"the daemon holds the collected flows: {self.daemon.log_text()}")
        self.assertTrue(all(f["interface"] == "127.0.0.1%5" for f in collected), collected)
        self.assertGreater(len(self.active()), 3, "the posted flow is active too")

        d.get(self.daemon.url + "/#/hosts")
        self.wait().until(lambda _: len(d.find_elements(By.CSS_SELECTOR, "#active-flows tbody tr")) == len(self.active()))
        column = d.execute_script("return [...document.querySelectorAll('#active-flows tbody tr')].map(r => r.lastElementChild.textContent)")
        self.assertEqual(column.count("127.0.0.1%5"), 3, column)
        self.assertIn("interface or exporter", d.find_element(By.CSS_SELECTOR, "#active-flows thead").text.lower())

        d.find_element(By.LINK_TEXT, "127.0.0.1%5").click()
        self.wait().until(lambda _: d.execute_script("return location.hash") == "#/hosts?interface=127.0.0.1")
        self.wait().until(lambda _: len(d.find_elements(By.CSS_SELECTOR, "#active-flows tbody tr")) == 3)
        sources = d.execute_script("return [...document.querySelectorAll('#active-flows tbody tr')].map(r => r.children[1].textContent)")
        self.assertEqual(sorted(sources), sorted(f"198.18.7.1:{40000 + i}" for i in range(3)))
        self.assertIn("127.0.0.1", d.find_element(By.ID, "active-filter").text)
        d.find_element(By.LINK_TEXT, "Show every interface").click()
        self.wait().until(lambda _: len(d.find_elements(By.CSS_SELECTOR, "#active-flows tbody tr")) == len(self.active()))
        self.assertFalse(d.find_element(By.ID, "active-filter").is_displayed())
        self.assertEqual(severe_console_entries(d), [])


    def send_collected_scan(self, exporter, attacker, victim):
        """A 400-port SYN scan exported by `exporter` (a loopback address), ingress interface 7."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((exporter, 0))
            for chunk in range(4):
                ports = range(1 + chunk * 100, 101 + chunk * 100)
                s.sendto(ipfix_syn_scan(attacker, victim, ports, ingress=7), ("127.0.0.1", self.collect_port))

    def incidents(self, query=""):
        return self.daemon.request("GET", "/api/incidents?limit=20" + query)[1]["incidents"]

    def incident_rows(self):
        """(id, actors) of each row of the overview's incidents table, in one script call."""
        return self.driver.execute_script(
            "return [...document.querySelectorAll('#incidents tbody tr')].map(r => [r.dataset.id, r.querySelector('.actors').title])")

    def wait_for_incident(self, actor, query=""):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = [i for i in self.incidents(query) if actor in i["actors"]]
            if found:
                return found[0]
            time.sleep(0.1)
        self.fail(f"no incident of {actor} ({query}) within 30 s; daemon log:\n{self.daemon.log_text()}")

    def test_incidents_filter_by_exporter(self):
        """The overview's incidents table filters by interface or exporter, as
        GET /api/incidents?interface= does, and keeps to it as incidents arrive live."""
        d = self.driver
        exporter = "127.0.0.3"
        self.send_collected_scan(exporter, "198.18.7.77", "198.18.7.10")
        posted = traffic.syn_scan("198.19.0.88", "198.18.2.10", list(range(1, 301)), time.time() - 1)
        self.assertEqual(self.daemon.request("POST", "/api/traffic", posted)[0], 202)
        collected = self.wait_for_incident("198.18.7.77", f"&interface={exporter}")
        self.wait_for_incident("198.19.0.88")
        self.assertFalse([i for i in self.incidents(f"&interface={exporter}") if "198.19.0.88" in i["actors"]],
                         "the API's filter leaves the posted scan's incident out")

        d.get(self.daemon.url + "/#/overview")
        self.wait().until(lambda _: "live" in d.find_element(By.ID, "live").get_attribute("class"))
        self.wait().until(lambda _: any("198.19.0.88" in actors for _, actors in self.incident_rows()))
        d.find_element(By.ID, "inc-interface").send_keys(exporter)
        d.find_element(By.CSS_SELECTOR, "#incident-filters button[type=submit]").click()
        self.wait().until(lambda _: d.execute_script("return location.hash") == f"#/overview?interface={exporter}")
        want = lambda: sorted(str(i["id"]) for i in self.incidents(f"&interface={exporter}"))
        self.wait().until(lambda _: sorted(r for r, _ in self.incident_rows()) == want())
        shown = self.incident_rows()
        self.assertIn(str(collected["id"]), [r for r, _ in shown])
        self.assertFalse([r for r, actors in shown if "198.19.0.88" in actors], shown)
        self.assertIn(exporter, d.find_element(By.ID, "incident-filter").text)
        self.assertEqual(d.find_element(By.ID, "inc-interface").get_attribute("value"), exporter)

        # Live, still filtered: a posted scan's incident opens first and stays
        # out; the exporter's next one, whose event comes after it, shows.
        posted = traffic.syn_scan("198.19.0.89", "198.18.2.11", list(range(1, 301)), time.time() - 1)
        self.assertEqual(self.daemon.request("POST", "/api/traffic", posted)[0], 202)
        self.wait_for_incident("198.19.0.89")
        self.send_collected_scan(exporter, "198.18.7.78", "198.18.7.11")
        self.wait(30).until(lambda _: any("198.18.7.78" in actors for _, actors in self.incident_rows()))
        self.wait().until(lambda _: sorted(r for r, _ in self.incident_rows()) == want())
        self.assertFalse([r for r, actors in self.incident_rows() if "198.19.0." in actors], self.incident_rows())

        # An incident's anomalies keep to the exporter too.
        click_when_ready(self.wait(), lambda: d.find_element(By.CSS_SELECTOR, f"#incident-{collected['id']} .label a"))
        self.wait().until(lambda _: d.find_element(By.ID, "view-anomalies").is_displayed())
        self.assertEqual(d.execute_script("return location.hash"), f"#/anomalies?ip=198.18.7.77&interface={exporter}")

        # Cleared, every incident is back, the posted ones too.
        d.get(self.daemon.url + f"/#/overview?interface={exporter}")
        self.wait().until(lambda _: d.find_element(By.ID, "incident-filter").is_displayed())
        d.find_element(By.CSS_SELECTOR, "#incident-filters button[type=reset]").click()
        self.wait().until(lambda _: d.execute_script("return location.hash") == "#/overview")
        self.wait().until(lambda _: sorted(r for r, _ in self.incident_rows()) == sorted(str(i["id"]) for i in self.incidents()))
        self.assertTrue([r for r, actors in self.incident_rows() if "198.19.0.89" in actors])
        self.assertFalse(d.find_element(By.ID, "incident-filter").is_displayed())
        self.assertEqual(d.find_element(By.ID, "inc-interface").get_attribute("value"), "")

        # A link whose filter is a sentence, not a name, filters nothing and puts none of it on the page.
        lure = " (none). Your session was flagged; sign in again at https://evil.example"
        d.get(self.daemon.url + "/#/overview?" + urllib.parse.urlencode({"interface": lure}))
        self.wait().until(lambda _: sorted(r for r, _ in self.incident_rows()) == sorted(str(i["id"]) for i in self.incidents()))
        self.assertFalse(d.find_element(By.ID, "incident-filter").is_displayed())
        self.assertNotIn("evil.example", d.find_element(By.TAG_NAME, "body").text)
        self.assertEqual(severe_console_entries(d), [])

    def test_scan_anomalies_name_their_exporter(self):
        """A SYN scan collected from exporter 127.0.0.2 (ingress 7): its anomalies
        name that exporter, and the anomalies view filters by it. (Runs after
        the flows test, whose exporter 127.0.0.1 it leaves alone.)"""
        d = self.driver
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.2", 0))
            for chunk in range(4):
                ports = range(1 + chunk * 100, 101 + chunk * 100)
                s.sendto(ipfix_syn_scan("198.18.7.66", "198.18.7.9", ports, ingress=7), ("127.0.0.1", self.collect_port))
        # One anomaly with no exporter (posted traffic), so the filter has something to leave out.
        posted = traffic.syn_scan("198.19.0.66", "198.18.2.9", list(range(1, 301)), time.time() - 1)
        self.assertEqual(self.daemon.request("POST", "/api/traffic", posted)[0], 202)
        def stored(query=""):
            return self.daemon.request("GET", "/api/anomalies?limit=1000" + query)[1]["anomalies"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (stored("&interface=127.0.0.2") and any(a["interface"] is None for a in stored())):
            time.sleep(0.1)
        collected = stored("&interface=127.0.0.2")
        self.assertTrue(collected, f"an anomaly from the collected scan: {stored()} {self.daemon.log_text()}")
        self.assertTrue(all(a["interface"] == "127.0.0.2%7" for a in collected), collected)
        self.assertTrue(any(a["interface"] is None for a in stored()), "the posted scan's anomalies name no exporter")

        d.get(self.daemon.url + "/#/anomalies")
        self.wait().until(lambda _: len(d.find_elements(By.CSS_SELECTOR, "#anomalies tbody tr")) >= len(collected) + 1)
        self.assertIn("interface or exporter", d.find_element(By.CSS_SELECTOR, "#anomalies thead").text.lower())
        d.find_element(By.ID, "flt-interface").send_keys("127.0.0.2")
        d.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
        self.wait().until(lambda _: "interface=127.0.0.2" in d.execute_script("return location.hash"))
        want = sorted(str(a["id"]) for a in collected)
        self.wait().until(lambda _: sorted(d.execute_script(
            "return [...document.querySelectorAll('#anomalies tbody tr')].map(r => r.dataset.id)")) == want)
        column = d.execute_script("return [...document.querySelectorAll('#anomalies tbody td.interface')].map(td => td.textContent)")
        self.assertEqual(set(column), {"127.0.0.2%7"}, column)
        # The detail names the exporter too.
        click_when_ready(self.wait(), lambda: d.find_element(By.CSS_SELECTOR, "#anomalies tbody tr a"))
        self.wait().until(lambda _: "127.0.0.2%7" in d.find_element(By.ID, "detail-head").text)
        self.assertEqual(severe_console_entries(d), [])


def ipfix_syn_scan(src, dst, ports, ingress):
    """One IPFIX message: a template with tcpControlBits and one SYN-only
    record (1 packet, 44 bytes) from `src` to each of `ports` on `dst`, ended now."""
    fields = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (2, 8), (1, 8), (152, 8), (153, 8), (10, 4)]
    template = struct.pack("!HHHH", 2, 8 + 4 * len(fields), 257, len(fields)) + b"".join(struct.pack("!HH", *f) for f in fields)
    now_ms = int(time.time() * 1000)
    body = b"".join(socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HHBBQQQQI", 40000 + i, port, 6, 0x02, 1, 44,
                                                                                 now_ms - 1500 + i, now_ms - 1500 + i, ingress)
                    for i, port in enumerate(ports))
    data = struct.pack("!HH", 257, 4 + len(body)) + body
    payload = template + data
    return struct.pack("!HHIII", 10, 16 + len(payload), now_ms // 1000, 0, 1) + payload


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ipfix_message(flows, ingress):
    """One IPFIX message (RFC 7011): a template of IPv4 addresses, ports,
    protocol, packets, octets, start and end milliseconds and ingress
    interface, and one TCP record per (src, dst, sport) to port 443, ended now."""
    fields = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 8), (1, 8), (152, 8), (153, 8), (10, 4)]
    template = struct.pack("!HHHH", 2, 8 + 4 * len(fields), 256, len(fields)) + b"".join(struct.pack("!HH", *f) for f in fields)
    now_ms = int(time.time() * 1000)
    body = b"".join(socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HHBQQQQI", sport, 443, 6, 3, 180, now_ms - 2000, now_ms - 1000, ingress)
                    for src, dst, sport in flows)
    data = struct.pack("!HH", 256, 4 + len(body)) + body
    payload = template + data
    return struct.pack("!HHIII", 10, 16 + len(payload), now_ms // 1000, 0, 1) + payload


class LearningTests(unittest.TestCase):
    """Without a model the daemon learns first; the dashboard says so instead of showing an empty table."""

    def test_learning_empty_state(self):
        daemon = Daemon(WORKDIR, None, "learning")
        daemon.start()
        try:
            driver = browser()
            try:
                wait = WebDriverWait(driver, 10)
                driver.get(daemon.url + "/#/overview")
                wait.until(lambda _: driver.find_element(By.ID, "learning").is_displayed())
                self.assertIn("Learning normal traffic", driver.find_element(By.ID, "learning").text)
                self.assertEqual(driver.find_element(By.ID, "f-model").text, "learning")
                driver.get(daemon.url + "/#/anomalies")
                wait.until(lambda _: driver.find_element(By.ID, "anomalies-empty").is_displayed())
                self.assertIn("still learning", driver.find_element(By.ID, "anomalies-empty").text)
                self.assertEqual(severe_console_entries(driver), [])
            finally:
                driver.quit()
        finally:
            daemon.stop()


class LossyIncidentTests(DaemonWithBrowser):
    """A sensor whose flow table is too small for the attack: the incident
    says its figures are lower bounds, with the packets lost."""

    name = "lossy"

    @classmethod
    def prepare(cls, daemon):
        daemon.extra_args = ["--max-flows", "100"]

    def test_lost_packets_shown(self):
        d = self.driver
        attacker = "198.19.0.33"
        d.get(self.daemon.url + "/#/overview")
        WebDriverWait(d, 10).until(lambda _: "live" in d.find_element(By.ID, "live").get_attribute("class"))
        # 500 ports, one flow each, into a table of 100: the rest are lost.
        records = traffic.syn_scan(attacker, "198.18.2.7", list(range(1, 501)), time.time() - 20)
        self.assertEqual(self.daemon.request("POST", "/api/traffic", records)[0], 202)
        incident = None
        deadline = time.monotonic() + 30
        while incident is None and time.monotonic() < deadline:
            found = self.daemon.request("GET", f"/api/incidents?ip={attacker}")[1]["incidents"]
            incident = found[0] if found and found[0]["lost_packets"] > 0 else None
            time.sleep(0.1)
        self.assertIsNotNone(incident, f"no incident with lost packets; daemon log:\n{self.daemon.log_text()}")
        self.assertLessEqual(incident["lost_packets"], 400)

        def shown():
            now = self.daemon.request("GET", f"/api/incidents/{incident['id']}")[1]
            cell = d.find_element(By.CSS_SELECTOR, f"#incident-{incident['id']} td.count")
            return (cell.find_element(By.CSS_SELECTOR, ".value").text == f"≥ {now['anomaly_count']}"
                    and cell.find_element(By.CSS_SELECTOR, ".tag.lost").text == f"{now['lost_packets']} packets lost"
                    and "lower bounds" in cell.get_attribute("title"))
        WebDriverWait(d, 15, poll_frequency=0.05,
                      ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
            lambda _: shown(), "the incident row says its figures are lower bounds")
        self.assertEqual(severe_console_entries(d), [])


class LoginTests(DaemonWithBrowser):
    """With a user configured, the dashboard asks for a sign-in first."""

    name = "auth"

    @classmethod
    def prepare(cls, daemon):
        daemon.add_user("operator", "correct horse battery", "viewer")

    def test_login_required(self):
        d = self.driver
        wait = WebDriverWait(d, 10)
        d.get(self.daemon.url + "/#/anomalies")
        wait.until(lambda _: d.find_element(By.ID, "view-login").is_displayed())
        self.assertFalse(d.find_element(By.ID, "view-anomalies").is_displayed())
        self.assertFalse(d.find_element(By.ID, "nav").is_displayed())
        with self.assertRaises(urllib.error.HTTPError) as refused:
            self.daemon.request("GET", "/api/anomalies")
        self.assertEqual(refused.exception.code, 401)

        form = d.find_element(By.ID, "login-form")
        form.find_element(By.NAME, "username").send_keys("operator")
        form.find_element(By.NAME, "password").send_keys("wrong")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda _: d.find_element(By.ID, "login-error").is_displayed())
        self.assertTrue(d.find_element(By.ID, "view-login").is_displayed())

        form.find_element(By.NAME, "username").clear()
        form.find_element(By.NAME, "password").clear()
        form.find_element(By.NAME, "username").send_keys("operator")
        form.find_element(By.NAME, "password").send_keys("correct horse battery")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda _: d.find_element(By.ID, "view-anomalies").is_displayed())
        self.assertIn("operator", d.find_element(By.ID, "user").text)
        wait.until(lambda _: "live" in d.find_element(By.ID, "live").get_attribute("class"))

        d.find_element(By.ID, "logout").click()
        wait.until(lambda _: d.find_element(By.ID, "view-login").is_displayed())
        self.assertEqual(severe_console_entries(d, allow_network_401=True), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
