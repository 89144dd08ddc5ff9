"""The container image: built with podman from deploy/Containerfile (release
binary with its BPF object embedded, dashboard assets, no lab), run with host networking and only the
capture capabilities; it captures with tc on a lab interface, answers
/api/health and exports FlowForest series on /metrics, and leaves nothing
attached when stopped."""

import os
import re

import pytest

from conftest import DEPLOY, free_port, have, http_get, needs_root, run, tc_hooks, wait_for

pytestmark = [needs_root, pytest.mark.skipif(not have("podman"), reason="podman not installed")]

CAPS = {"CAP_BPF": 39, "CAP_PERFMON": 38, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13}


def test_image_holds_binary_and_dashboard_only(image):
    tag, env = image
    listing = run(["podman", "run", "--rm", "--network", "none", "--entrypoint", "ls", tag, "-1", "/opt/flowforest",
                   "/opt/flowforest/flowforest_FlowForestServer.resources"], env=env)
    assert "flowforest\n" in listing.stdout
    # The eBPF object is inside the binary, and the lab (attack tools, traffic generators) is not shipped.
    assert "flowforest.bpf.o" not in listing.stdout and "flowforest-lab" not in listing.stdout, listing.stdout
    assert "Dashboard" in listing.stdout or "openapi.yaml" in listing.stdout
    # Every shared library the binary needs is in the image.
    ldd = run(["podman", "run", "--rm", "--network", "none", "--entrypoint", "ldd", tag, "/opt/flowforest/flowforest"],
              env=env)
    assert "not found" not in ldd.stdout, ldd.stdout


def test_container_captures_with_host_network_and_capture_capabilities_only(image, veth_lab):
    tag, env = image
    port = free_port()
    name = f"ffdep-test-{os.getpid()}"
    try:
        start = run(["podman", "run", "-d", "--name", name, "--network", "host", "--cap-drop", "all",
                     "--cap-add", "bpf,perfmon,net_admin,net_raw",
                     "--security-opt", f"seccomp={DEPLOY / 'seccomp.json'}", tag,
                     "run", "--mode", "tc", "--interface", veth_lab.host_if, "--listen", f"127.0.0.1:{port}",
                     "--database", "/var/lib/flowforest/flowforest.db", "--poll-interval", "1", "--open-metrics"],
                    env=env, check=False)
        assert start.returncode == 0, start.stderr

        def container_dead():
            state = run(["podman", "inspect", "-f", "{{.State.Running}}", name], env=env, check=False).stdout.strip()
            if state != "true":
                return run(["podman", "logs", name], env=env, check=False).stderr[-2000:]
            return None

        health = wait_for("/api/health from the container",
                          lambda: (lambda r: r if r[0] == 200 else None)(http_get(f"http://127.0.0.1:{port}/api/health")),
                          timeout=60, alive=container_dead)
        assert '"store":"ok"' in health[1].replace(" ", ""), health[1]

        ping = veth_lab.ping(count=10, interval=0.2)
        assert "10 received" in ping.stdout, ping.stdout

        def tc_packets():
            body = http_get(f"http://127.0.0.1:{port}/metrics")[1]
            counts = [float(v) for v in re.findall(r'^flowforest_packets_total\{[^}]*mode="tc"[^}]*\} (\S+)$', body, re.M)]
            return sum(counts) >= 20 and body
        metrics = wait_for("tc packets on /metrics", tc_packets, timeout=30, alive=container_dead)
        for series in ["flowforest_build_info", "process_start_time_seconds", "flowforest_anomalies_total",
                       "flowforest_score_duration_seconds_bucket", "flowforest_store_errors_total"]:
            assert series in metrics, f"{series} missing from /metrics"

        # The sensor holds exactly the four capture capabilities.
        status = run(["podman", "exec", name, "cat", "/proc/1/status"], env=env).stdout
        eff = int(re.search(r"^CapEff:\s+([0-9a-f]+)", status, re.M).group(1), 16)
        assert eff == sum(1 << bit for bit in CAPS.values()), hex(eff)

        assert tc_hooks(veth_lab.host_if), "ff_tc is attached neither through tcx nor as a tc filter"
        stop = run(["podman", "stop", "-t", "20", name], env=env, check=False)
        assert stop.returncode == 0, stop.stderr
        code = run(["podman", "inspect", "-f", "{{.State.ExitCode}}", name], env=env).stdout.strip()
        assert code == "0", run(["podman", "logs", name], env=env, check=False).stderr[-2000:]
        # SIGTERM detached the programs from the host's interface.
        assert tc_hooks(veth_lab.host_if) == []
    finally:
        run(["podman", "rm", "-f", "-v", "-t", "5", name], env=env, check=False)
