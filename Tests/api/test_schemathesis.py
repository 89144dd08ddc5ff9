"""Schemathesis against a live `flowforest run`: every operation of
/openapi.yaml, generated from the spec (valid and invalid input), for a
bounded time.

    FLOWFOREST_SCHEMA_SECONDS  time budget (default 60; `make fuzz` gives more)
    FLOWFOREST_FUZZ_SEED       the seed (default fixed, printed for replay)

Checks: no 5xx, documented status codes, content types and response
schemas, schema-valid input accepted, schema-invalid input refused, 405 for
undeclared methods with a true `Allow`; afterwards the daemon still answers
and stops within systemd's stop timeout.
"""

import os
import subprocess
import sys

import pytest
from conftest import ROOT, STOP_TIMEOUT, health

SCHEMATHESIS = os.path.join(os.path.dirname(sys.executable), "schemathesis")
SECONDS = int(os.environ.get("FLOWFOREST_SCHEMA_SECONDS", "60"))
SEED = int(os.environ.get("FLOWFOREST_FUZZ_SEED", "5074553438213206629")) % 2**32


def test_spec_holds_against_live_daemon(daemon):
    port, token, process, log_tail = daemon.port, daemon.token, daemon.process, daemon.log_tail
    if not os.path.exists(SCHEMATHESIS):
        pytest.fail(f"schemathesis missing at {SCHEMATHESIS}: install Tests/deploy/requirements.txt")
    command = [
        SCHEMATHESIS, "--config-file", os.path.join(ROOT, "Tests", "api", "schemathesis.toml"),
        "run", f"http://127.0.0.1:{port}/openapi.yaml", "--header", f"Authorization: Bearer {token}",
        "--max-time", str(SECONDS), "--seed", str(SEED), "--workers", "1", "--no-color",
        "--generation-database", "none", "--request-timeout", "10",
        # The event stream never ends; the SSE tests cover it.
        "--exclude-path", "/api/events",
    ]
    print(f"schemathesis: {SECONDS} s budget, seed {SEED} (replay: FLOWFOREST_FUZZ_SEED={SEED})")
    # In the daemon's scratch folder: schemathesis keeps state in ./.schemathesis.
    result = subprocess.run(command, capture_output=True, text=True, timeout=SECONDS + 300, cwd=daemon.workdir)
    summary = "\n".join(line for line in result.stdout.splitlines() if "generated" in line or "passed" in line)
    print(summary)
    assert result.returncode == 0, f"schemathesis found problems (seed {SEED}):\n{result.stdout[-8000:]}\n{result.stderr[-2000:]}"
    assert "generated" in result.stdout, result.stdout[-2000:]

    # Still serving, and a clean stop within the unit's stop timeout.
    assert process.poll() is None, f"the daemon exited during the run:\n{log_tail()}"
    assert health(port, token) == 200, log_tail()
    daemon.stop_within(STOP_TIMEOUT)
