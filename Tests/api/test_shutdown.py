"""A daemon holding many open flows stops cleanly within systemd's stop
timeout, and every flow it held is either stored or counted as not written
(the writer's shutdown deadline): none vanishes silently. 1,000,000 pinned
flows once kept SIGTERM waiting past 120 s."""

import json
import os
import re
import sqlite3
import time
import urllib.request

from conftest import STOP_TIMEOUT

FLOWS = 200_000
PER_REQUEST = 50_000


def post_traffic(port: int, token: str, records: list) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/traffic", data=json.dumps(records).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 202
        return json.load(response)


def test_stop_with_many_open_flows_flushes_every_flow(daemon):
    now = time.time()
    for start in range(0, FLOWS, PER_REQUEST):
        # One UDP packet per flow: distinct source ports over 2^16 x 4 sources.
        records = [{
            "src_ip": f"198.18.{1 + i // 65536}.1", "dst_ip": "198.19.0.1", "src_port": i % 65536, "dst_port": 53,
            "protocol": "udp", "length": 80, "timestamp": now,
        } for i in range(start, start + PER_REQUEST)]
        post_traffic(daemon.port, daemon.token, records)
    taken = daemon.stop_within(STOP_TIMEOUT)
    print(f"stopped in {taken:.1f} s holding {FLOWS} open flows")
    with sqlite3.connect(os.path.join(daemon.workdir, "ff.db")) as db:
        stored = db.execute("SELECT COUNT(*) FROM flows").fetchone()[0]
    log = daemon.log_text()
    unwritten = sum(int(n) for n in re.findall(r"flows=(\d+) [^\n]*\[FlowForestStore\] rows not written by the shutdown deadline", log))
    print(f"{stored} flows stored, {unwritten} counted as not written")
    assert stored + unwritten == FLOWS, f"{stored} stored + {unwritten} counted of {FLOWS} flows\n{log[-3000:]}"
