"""A live `flowforest run --no-capture` for the api tier: a fresh database,
an admin token, a free loopback port; killed and removed afterwards."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("FLOWFOREST_BIN", os.path.join(ROOT, ".build", "debug", "flowforest"))
# deploy/flowforest.service: TimeoutStopSec=30.
STOP_TIMEOUT = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, condition, timeout: float, detail=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail()}")


def health(port: int, token: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/health", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


class Daemon:
    def __init__(self, port, token, process, log_text, log_tail, workdir):
        self.port, self.token, self.process, self.workdir = port, token, process, workdir
        self.log_text, self.log_tail = log_text, log_tail

    def stop_within(self, seconds: float) -> float:
        """SIGTERM; asserts a clean exit within `seconds` and returns the time taken."""
        started = time.monotonic()
        self.process.terminate()
        try:
            code = self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"SIGTERM: still running after {seconds} s\n{self.log_tail()}")
        taken = time.monotonic() - started
        assert code == 0, f"exit {code} after SIGTERM ({taken:.1f} s)\n{self.log_tail()}"
        return taken


@pytest.fixture
def daemon():
    if not os.path.exists(BIN):
        pytest.fail(f"no flowforest executable at {BIN}; build first or set FLOWFOREST_BIN")
    workdir = tempfile.mkdtemp(prefix="flowforest-api-")
    database = os.path.join(workdir, "ff.db")
    added = subprocess.run([BIN, "token", "add", "api-tests", "--role", "admin", "--database", database],
                           capture_output=True, text=True, check=True)
    token = next(word for word in (added.stdout + added.stderr).split() if word.startswith("fft_"))
    port = free_port()
    log = open(os.path.join(workdir, "daemon.log"), "w+")
    process = subprocess.Popen([BIN, "run", "--no-capture", "--listen", f"127.0.0.1:{port}", "--database", database],
                               stdout=log, stderr=subprocess.STDOUT, cwd=workdir)

    def log_text() -> str:
        log.flush()
        with open(log.name) as f:
            return f.read()

    def log_tail() -> str:
        return log_text()[-3000:]

    try:
        wait_until("the daemon to answer /api/health", lambda: process.poll() is None and health(port, token) == 200, 60, log_tail)
        yield Daemon(port, token, process, log_text, log_tail, workdir)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


