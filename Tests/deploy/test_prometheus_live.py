"""Debian's Prometheus with the shipped scrape job and alert rules against a
live `flowforest run` (tc capture on a veth lab): every PromQL expression of
the Grafana dashboard and of the alert rules parses and returns series, so no
panel or alert watches a metric FlowForest does not export. The sensor also
collects NetFlow on a loopback port and is sent one datagram, so the
collector's series (per endpoint and per exporter) exist too."""

import json
import shutil
import socket
import struct
import time
import urllib.parse

import pytest
import yaml

import promql
from conftest import (DEPLOY, Process, free_port, http_get, needs_root, run_serves_http,
                      start_flowforest, wait_for)

pytestmark = [
    needs_root,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus (Debian) not installed"),
    pytest.mark.skipif(not run_serves_http(), reason="`flowforest run` has no --listen/--database: service not in the CLI"),
]


def prometheus_config(tmp, sensor_port: int) -> str:
    """The shipped prometheus.yml, pointed at the test's sensor and scraping
    every second so rates have samples within the test's time."""
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    jobs = [j for j in config["scrape_configs"] if j["job_name"] == "flowforest"]
    assert len(jobs) == 1, "the shipped config has one flowforest job"
    jobs[0]["static_configs"] = [{"targets": [f"127.0.0.1:{sensor_port}"]}]
    shutil.copy(DEPLOY / "prometheus/flowforest.rules.yml", tmp / "flowforest.rules.yml")
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def netflow_v5_datagram(sequence: int) -> bytes:
    """One NetFlow v5 datagram with one TCP flow record between lab addresses."""
    now = int(time.time())
    header = struct.pack("!HHIIIIBBH", 5, 1, 60_000, now, 0, sequence, 0, 0, 0)
    record = struct.pack("!4s4s4sHHIIIIHHBBBBHHBBH", socket.inet_aton("198.18.0.1"), socket.inet_aton("198.18.0.2"),
                         bytes(4), 1, 2, 3, 180, 59_000, 59_500, 40000, 443, 0, 0x1B, 6, 0, 0, 0, 24, 24, 0)
    return header + record


def query(base: str, expr: str) -> dict:
    status, body = http_get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    reply = json.loads(body)
    reply["http_status"] = status
    return reply


def test_every_dashboard_and_alert_expression_returns_data(tmp_path, veth_lab):
    sensor_port, prom_port = free_port(), free_port()
    collect_port = free_udp_port()
    sensor = start_flowforest(tmp_path, veth_lab, sensor_port, extra=["--collect", f"udp://127.0.0.1:{collect_port}"])
    prometheus = None
    try:
        wait_for("flowforest /api/health", lambda: http_get(f"http://127.0.0.1:{sensor_port}/api/health")[0] == 200,
                 timeout=60, alive=sensor.dead)
        (tmp_path / "tsdb").mkdir()
        prometheus = Process(["prometheus", f"--config.file={prometheus_config(tmp_path, sensor_port)}",
                              f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                              f"--web.listen-address=127.0.0.1:{prom_port}"], tmp_path / "prometheus.log")
        base = f"http://127.0.0.1:{prom_port}"
        wait_for("Prometheus ready", lambda: http_get(f"{base}/-/ready")[0] == 200, timeout=60, alive=prometheus.dead)

        ping = veth_lab.ping(count=25, interval=0.2)
        assert "25 received" in ping.stdout, ping.stdout + ping.stderr
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as exporter:
            exporter.sendto(netflow_v5_datagram(sequence=0), ("127.0.0.1", collect_port))
        wait_for("packets counted and scraped",
                 lambda: query(base, 'flowforest_packets_total{job="flowforest"}')["data"]["result"],
                 timeout=30, alive=sensor.dead)
        wait_for("the NetFlow datagram decoded and scraped",
                 lambda: query(base, 'flowforest_collector_records_total{job="flowforest", exporter="127.0.0.1"} > 0')["data"]["result"],
                 timeout=30, alive=sensor.dead)
        # Capture and collection run as one source: its capture_info series carry
        # the mode the counters carry, with the interface and the collector's endpoint.
        info = query(base, 'flowforest_capture_info{job="flowforest"}')["data"]["result"]
        counted = query(base, 'flowforest_packets_total{job="flowforest"}')["data"]["result"]
        assert {(r["metric"]["mode"], r["metric"]["interface"]) for r in info} == {
            ("tc+collect", veth_lab.host_if), ("tc+collect", f"udp://127.0.0.1:{collect_port}")}, info
        assert {r["metric"]["mode"] for r in counted} == {"tc+collect"}, counted
        # Rates over the dashboard's 1m window need two samples of each series
        # after it appears: every query is asked until all have data (or the
        # wait ends, and the last round's failures are the test's).
        def failures_now():
            failures = []
            for where, expr in promql.dashboard_queries():
                reply = query(base, expr)
                if reply["status"] != "success":
                    failures.append(f"{where}: does not parse: {reply.get('error')}: {expr}")
                elif not reply["data"]["result"]:
                    failures.append(f"{where}: no data: {expr}")
            for where, expr in promql.alert_rules():
                reply = query(base, expr)
                if reply["status"] != "success":
                    failures.append(f"{where}: does not parse: {reply.get('error')}: {expr}")
                    continue
                for part in promql.operands(expr):
                    if not query(base, part)["data"]["result"]:
                        failures.append(f"{where}: no data for {part}")
            return failures
        deadline = time.monotonic() + 60
        failures = failures_now()
        while failures and time.monotonic() < deadline and not sensor.dead():
            time.sleep(1)
            failures = failures_now()
        assert not failures, "\n".join(failures)

        # Prometheus itself loaded and evaluated every shipped rule without error.
        def rules_evaluated():
            groups = json.loads(http_get(f"{base}/api/v1/rules")[1])["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            return rules if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules) else None
        rules = wait_for("alert rules evaluated", rules_evaluated, timeout=20)
        assert {r["name"] for r in rules} == {w.removeprefix("alert ") for w, _ in promql.alert_rules()}
        assert [r for r in rules if r["health"] != "ok"] == []
        # A healthy sensor on light traffic fires nothing; the loss alerts have no `for`, so any loss would show.
        firing = [r["name"] for r in rules if r["state"] == "firing"]
        assert firing == [], firing
    finally:
        if prometheus:
            prometheus.stop()
        sensor.stop()
