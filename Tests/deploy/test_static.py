"""Checks of the shipped deploy files that need no daemon: Prometheus's own
checker, systemd's verifier, the unit's hardening, the dashboard's coverage
and the compose file's interpolation."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import DEPLOY, have, run

PROM = DEPLOY / "prometheus"
UNIT = DEPLOY / "flowforest.service"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "flowforest.json"


@pytest.mark.skipif(not have("promtool"), reason="promtool (Debian: prometheus) not installed")
def test_promtool_accepts_scrape_config_and_rules():
    config = run(["promtool", "check", "config", str(PROM / "prometheus.yml")], check=False)
    assert config.returncode == 0, config.stdout + config.stderr
    rules = run(["promtool", "check", "rules", str(PROM / "flowforest.rules.yml")], check=False)
    assert rules.returncode == 0, rules.stdout + rules.stderr


@pytest.mark.skipif(not have("promtool"), reason="promtool (Debian: prometheus) not installed")
def test_promtool_rejects_a_broken_rule(tmp_path):
    # The check above means something only if promtool refuses a bad expression.
    text = (PROM / "flowforest.rules.yml").read_text().replace("up{job=\"flowforest\"} == 0", "up{job= == 0", 1)
    broken = tmp_path / "broken.rules.yml"
    broken.write_text(text)
    assert run(["promtool", "check", "rules", str(broken)], check=False).returncode != 0


def test_alert_rules_cover_the_failure_modes():
    text = (PROM / "flowforest.rules.yml").read_text()
    alerts = set(re.findall(r"- alert: (\w+)", text))
    assert {"FlowForestDown", "FlowForestCaptureDrops", "FlowForestMapFull", "FlowForestStoreErrors",
            "FlowForestModelStale", "FlowForestAnomalyBurst",
            "FlowForestCollectorSocketDrops", "FlowForestCollectorSequenceGaps"} <= alerts


@pytest.mark.skipif(not have("promtool"), reason="promtool (Debian: prometheus) not installed")
def test_collector_loss_alerts_fire_on_loss_and_only_then():
    # promtool's rule tests (deploy/prometheus/flowforest.rules.test.yml): the
    # socket-drop and sequence-gap alerts fire on one lost datagram, name the
    # endpoint or exporter, and stay quiet on flat counters.
    result = run(["promtool", "test", "rules", str(PROM / "flowforest.rules.test.yml")], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not have("promtool"), reason="promtool (Debian: prometheus) not installed")
def test_collector_rule_tests_catch_a_blind_alert(tmp_path):
    # The rule tests mean something only if an alert that misses a single
    # drop fails them.
    text = (PROM / "flowforest.rules.yml").read_text()
    blind = text.replace("(increase(flowforest_collector_socket_drops_total[5m])) > 0",
                         "(increase(flowforest_collector_socket_drops_total[5m])) > 10", 1)
    assert blind != text
    (tmp_path / "flowforest.rules.yml").write_text(blind)
    shutil.copy(PROM / "flowforest.rules.test.yml", tmp_path / "flowforest.rules.test.yml")
    result = run(["promtool", "test", "rules", str(tmp_path / "flowforest.rules.test.yml")], check=False)
    assert result.returncode != 0, result.stdout


def verify_unit(unit_text: str, root: Path) -> subprocess.CompletedProcess:
    """systemd-analyze verify in a throwaway root holding the system's units,
    the unit under test and an executable at its ExecStart path."""
    shutil.copytree("/lib/systemd/system", root / "lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    unit = root / "etc/systemd/system/flowforest.service"
    unit.write_text(unit_text)
    exe = root / "usr/local/lib/flowforest/flowforest"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return run(["systemd-analyze", "verify", f"--root={root}", str(unit)], check=False)


@pytest.mark.skipif(not have("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    result = verify_unit(UNIT.read_text(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Unknown key" not in result.stderr and "Unknown section" not in result.stderr, result.stderr


@pytest.mark.skipif(not have("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify_rejects_a_broken_unit(tmp_path):
    broken = UNIT.read_text().replace("ExecStart=/usr/local/lib/flowforest/flowforest", "ExecStart=flowforest-missing", 1)
    result = verify_unit(broken, tmp_path)
    assert result.returncode != 0 or "flowforest-missing" in result.stderr


def unit_keys() -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in UNIT.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "[")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        keys.setdefault(key, []).append(value)
    return keys


def test_unit_is_hardened():
    keys = unit_keys()
    caps = {"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert set(keys["CapabilityBoundingSet"][0].split()) == caps
    assert set(keys["AmbientCapabilities"][0].split()) == caps
    expected = {"ProtectSystem": "strict", "ProtectHome": "yes", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
                "PrivateDevices": "yes", "DynamicUser": "yes", "StateDirectory": "flowforest",
                "Restart": "on-failure", "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
                "RestrictSUIDSGID": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes"}
    for key, value in expected.items():
        assert keys.get(key) == [value], f"{key}={keys.get(key)}"
    # The sensor's syscalls must stay allowed: bpf() for the maps, perf_event_open for libbpf's probes.
    assert "bpf" in keys["SystemCallFilter"][0].split()
    assert "@privileged" not in " ".join(keys["SystemCallFilter"]), "@privileged holds bpf()"
    # The store comes from the environment file: a PostgreSQL password on the
    # command line would be readable in /proc by every local user.
    assert "--database" not in keys["ExecStart"][0]
    assert "FLOWFOREST_DATABASE=" in (DEPLOY / "flowforest.env.example").read_text()


def test_unit_environment_example_sets_every_variable_the_unit_uses():
    used = set(re.findall(r"\$\{?(FLOWFOREST_[A-Z_]+)", UNIT.read_text()))
    example = (DEPLOY / "flowforest.env.example").read_text()
    defined = set(re.findall(r"^(FLOWFOREST_[A-Z_]+)=", example, re.M))
    assert used and used <= defined, used - defined


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_dashboard_shows_what_operators_watch():
    exprs = "\n".join(dashboard_exprs())
    for metric in ["flowforest_packets_total", "flowforest_bytes_total", "flowforest_active_flows",
                   "flowforest_anomalies_total", "flowforest_capture_drops_total",
                   "flowforest_map_full_packets_total", "flowforest_store_errors_total",
                   "flowforest_score_duration_seconds_bucket", "flowforest_model_age_seconds",
                   "process_start_time_seconds"]:
        assert metric in exprs, f"no panel queries {metric}"
    assert "sum by (mode, direction)" in exprs
    assert "sum by (severity)" in exprs and "sum by (kind)" in exprs


def test_grafana_provisioning_points_the_dashboard_at_its_data_source():
    dash = json.loads(DASHBOARD.read_text())
    uids = {p["datasource"]["uid"] for p in dash["panels"]}
    datasource = (DEPLOY / "grafana/provisioning/datasources/flowforest.yaml").read_text()
    assert uids == {"flowforest-prometheus"}
    assert "uid: flowforest-prometheus" in datasource
    provider = (DEPLOY / "grafana/provisioning/dashboards/flowforest.yaml").read_text()
    assert "path: /var/lib/grafana/dashboards" in provider
    assert "./grafana/dashboards:/var/lib/grafana/dashboards" in (DEPLOY / "compose.yaml").read_text()


@pytest.mark.skipif(not have("podman-compose"), reason="podman-compose (PyPI) not installed")
def test_compose_file_resolves_with_the_example_env(tmp_path):
    result = run(["podman-compose", "--env-file", str(DEPLOY / "compose.env.example"),
                  "-f", str(DEPLOY / "compose.yaml"), "config"], check=False, cwd=DEPLOY)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "FLOWFOREST_DATABASE: postgres://flowforest:change-me@127.0.0.1:5432/flowforest" in out
    assert "--database" not in out, "a password on the sensor's command line is readable by every local user"
    for service in ["postgres:", "flowforest:", "prometheus:", "grafana:"]:
        assert service in out


@pytest.mark.skipif(not have("podman-compose"), reason="podman-compose (PyPI) not installed")
def test_compose_refuses_to_start_without_secrets(tmp_path):
    env = tmp_path / "empty.env"
    env.write_text("FLOWFOREST_INTERFACE=eth0\n")
    result = run(["podman-compose", "--env-file", str(env), "-f", str(DEPLOY / "compose.yaml"), "config"],
                 check=False, cwd=DEPLOY)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stdout + result.stderr


def test_no_secret_is_committed():
    tracked = run(["git", "ls-files", "deploy"], cwd=DEPLOY.parent).stdout.split()
    assert "deploy/.env" not in tracked
    for path in tracked:
        text = (DEPLOY.parent / path).read_text(errors="replace")
        for m in re.finditer(r"(PASSWORD\s*[:=]\s*)(\S+)", text):
            value = m.group(2)
            assert value.startswith(("change-me", "${", "$")) or value in ("|", '""'), f"{path}: {m.group(0)}"


def test_seccomp_profile_is_the_engine_default_plus_bpf_and_perf_event_open():
    shipped = json.loads((DEPLOY / "seccomp.json").read_text())
    assert shipped["defaultAction"] == "SCMP_ACT_ERRNO"
    naming = [r for r in shipped["syscalls"] if {"bpf", "perf_event_open"} & set(r["names"])]
    assert len(naming) == 1 and sorted(naming[0]["names"]) == ["bpf", "perf_event_open"]
    assert naming[0]["action"] == "SCMP_ACT_ALLOW" and not naming[0].get("includes") and not naming[0].get("excludes")
    default_path = Path("/usr/share/containers/seccomp.json")
    if not default_path.exists():
        pytest.skip("no engine default profile here to compare with (containers-common)")
    default = json.loads(default_path.read_text())

    def allowed(profile, caps):
        """Syscall names a container with `caps` may call unconditionally."""
        names = set()
        for r in profile["syscalls"]:
            inc, exc = set(r.get("includes", {}).get("caps", [])), set(r.get("excludes", {}).get("caps", []))
            if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") and inc <= caps and not (exc & caps) \
                    and not r.get("includes", {}).get("arches") and not r.get("includes", {}).get("minKernel"):
                names |= set(r["names"])
        return names

    caps = {"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert allowed(shipped, caps) - allowed(default, caps) == {"bpf", "perf_event_open"}
    assert allowed(default, caps) - allowed(shipped, caps) == set()
