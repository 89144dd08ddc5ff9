"""The unit's identity is enough to capture: `flowforest run` as an
unprivileged user holding only the unit's ambient capabilities, with its
bounding set and no_new_privs (what DynamicUser=, AmbientCapabilities=,
CapabilityBoundingSet= and NoNewPrivileges= give it), attaches tc, serves
the API and counts packets. systemd is not PID 1 here, so setpriv applies
the same settings the unit asks systemd for."""

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import (Process, flowforest_binary, free_port, http_get, needs_root, run,
                      run_serves_http, tc_hooks, wait_for)
from test_static import unit_keys

pytestmark = [
    needs_root,
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) not installed"),
    pytest.mark.skipif(not run_serves_http(), reason="`flowforest run` has no --listen/--database: service not in the CLI"),
]

# A uid in systemd's DynamicUser range (61184–65519), unused on a test machine.
DYNAMIC_UID = 61999


def install_for_any_user() -> Path:
    """The binary and its resources bundle in a directory every user can
    read, as the image and a package install them: the build directory may
    sit in a tree private to root (a checkout under `mktemp -d`), where the
    unit's uid could not load the bundle the dashboard and spec come from."""
    built = flowforest_binary()
    prefix = Path(tempfile.mkdtemp(prefix="flowforest-prefix-"))
    prefix.chmod(0o755)
    shutil.copy2(built, prefix / "flowforest")
    shutil.copytree(built.parent / "flowforest_FlowForestServer.resources",
                    prefix / "flowforest_FlowForestServer.resources")
    return prefix


def test_unit_capabilities_suffice_for_tc_capture(tmp_path, veth_lab):
    keys = unit_keys()
    caps = [c.removeprefix("CAP_").lower() for c in keys["AmbientCapabilities"][0].split()]
    bounding = [c.removeprefix("CAP_").lower() for c in keys["CapabilityBoundingSet"][0].split()]
    assert keys["NoNewPrivileges"] == ["yes"]
    # pytest's own temporary tree is private to root; the state directory must be reachable by the uid.
    state = Path(tempfile.mkdtemp(prefix="flowforest-unit-"))
    os.chown(state, DYNAMIC_UID, DYNAMIC_UID)
    prefix = install_for_any_user()
    port = free_port()
    cmd = ["setpriv", f"--reuid={DYNAMIC_UID}", f"--regid={DYNAMIC_UID}", "--clear-groups",
           "--inh-caps=-all," + ",".join("+" + c for c in caps),
           "--ambient-caps=-all," + ",".join("+" + c for c in caps),
           "--bounding-set=-all," + ",".join("+" + c for c in bounding),
           "--no-new-privs",
           str(prefix / "flowforest"), "run", "--mode", "tc", "--interface", veth_lab.host_if,
           "--listen", f"127.0.0.1:{port}", "--database", str(state / "flowforest.db"),
           "--poll-interval", "1", "--open-metrics"]
    sensor = Process(cmd, tmp_path / "sensor.log", cwd=state)
    try:
        wait_for("/api/health", lambda: http_get(f"http://127.0.0.1:{port}/api/health")[0] == 200,
                 timeout=60, alive=sensor.dead)
        status = open(f"/proc/{sensor.proc.pid}/status").read()
        assert re.search(rf"^Uid:\s+{DYNAMIC_UID}\s", status, re.M), "not running as the unprivileged uid"
        assert "10 received" in veth_lab.ping(count=10, interval=0.2).stdout

        def counted():
            body = http_get(f"http://127.0.0.1:{port}/metrics")[1]
            return sum(float(v) for v in re.findall(r'^flowforest_packets_total\{[^}]*mode="tc"[^}]*\} (\S+)$',
                                                     body, re.M)) >= 20
        wait_for("tc packets counted", counted, timeout=30, alive=sensor.dead)
        assert tc_hooks(veth_lab.host_if), "ff_tc is attached neither through tcx nor as a tc filter"
        assert (state / "flowforest.db").stat().st_uid == DYNAMIC_UID
    finally:
        sensor.stop()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(prefix, ignore_errors=True)
    assert sensor.proc.returncode == 0, sensor.output()[-2000:]
    assert tc_hooks(veth_lab.host_if) == []
