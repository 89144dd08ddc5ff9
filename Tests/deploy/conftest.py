"""Shared helpers of the deploy tests: paths, free ports, HTTP polling, a
veth lab for live capture, and a flowforest daemon. Everything a test starts
is stopped and removed again, also when the test fails."""

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Tools installed into the test venv (podman-compose) are found like system
# ones, by the checks below and by the commands the tests run.
os.environ["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """As root every deploy test can run here, so a skip means something is
    missing (a tool, a file): it fails instead of passing quietly."""
    outcome = yield
    report = outcome.get_result()
    if os.geteuid() == 0 and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped as root, where every deploy test must run: {reason}"
DEPLOY = REPO / "deploy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(what: str, check, timeout: float = 60.0, interval: float = 0.5, alive=None):
    """Polls `check()` until it returns a truthy value; fails with `what` after `timeout`.
    `alive()` returning a string (a process's exit and output) ends the wait early."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if alive is not None:
            dead = alive()
            if dead:
                pytest.fail(f"{what}: process ended early: {dead}")
        try:
            result = check()
            if result:
                return result
        except (OSError, urllib.error.URLError, json.JSONDecodeError) as e:
            last = e
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})")


def run(cmd, check=True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kw)


def flowforest_binary() -> Path:
    if os.environ.get("FLOWFOREST_BIN"):
        return Path(os.environ["FLOWFOREST_BIN"])
    bin_dir = run(["swift", "build", "--show-bin-path"], cwd=REPO).stdout.strip()
    return Path(bin_dir) / "flowforest"


def tc_hooks(dev):
    """FlowForest's tc hooks: tcx links to its ff_tc program (Linux 6.6+;
    `tc filter show` does not list them) and clsact filters on dev."""
    hooks = []
    ifindex = int(open(f"/sys/class/net/{dev}/ifindex").read())
    for link in json.loads(run(["bpftool", "-j", "link", "show"]).stdout or "[]"):
        # Older bpftool prints the tcx link type as its number, without the
        # interface; then any ff_tc tcx link counts.
        if link.get("type") in ("tcx", 11) and link.get("ifindex", ifindex) == ifindex:
            prog = json.loads(run(["bpftool", "-j", "prog", "show", "id", str(link["prog_id"])]).stdout)
            if prog.get("name") == "ff_tc":
                hooks.append(f"tcx link {link['id']}")
    for hook in ("ingress", "egress"):
        if run(["tc", "filter", "show", "dev", dev, hook]).stdout.strip():
            hooks.append(f"{hook} filter")
    return hooks


def run_serves_http() -> bool:
    """True when `flowforest run` takes --listen and --database (the service is wired into the CLI)."""
    try:
        text = run([str(flowforest_binary()), "run", "--help"], check=False).stdout
    except OSError:
        return False
    return "--listen" in text and "--database" in text


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespace, eBPF capture)")


class VethLab:
    """One veth pair: `host_if` (198.18.x.1) in this namespace, its peer
    (198.18.x.2) in namespace `ns`. Traffic is bounded pings from `ns`."""

    def __init__(self):
        tag = f"{os.getpid() % 100000}{random.randint(0, 99)}"
        self.ns = f"ffdep{tag}"
        self.host_if = f"ffd{tag}a"
        self.peer_if = f"ffd{tag}b"
        octet = random.randint(1, 254)
        self.host_ip = f"198.18.{octet}.1"
        self.peer_ip = f"198.18.{octet}.2"

    def up(self):
        run(["ip", "netns", "add", self.ns])
        run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if])
        run(["ip", "link", "set", self.peer_if, "netns", self.ns])
        run(["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if])
        run(["ip", "link", "set", self.host_if, "up"])
        run(["ip", "-n", self.ns, "addr", "add", f"{self.peer_ip}/30", "dev", self.peer_if])
        run(["ip", "-n", self.ns, "link", "set", self.peer_if, "up"])
        run(["ip", "-n", self.ns, "link", "set", "lo", "up"])

    def ping(self, count: int = 10, interval: float = 0.2):
        """Bounded traffic: `count` echo requests from the namespace to the host side."""
        return run(["ip", "netns", "exec", self.ns, "ping", "-q", "-c", str(count), "-i", str(interval),
                    "-W", "1", self.host_ip], check=False, timeout=count * interval + 10)

    def down(self):
        pids = run(["ip", "netns", "pids", self.ns], check=False).stdout.split()
        for pid in pids:
            run(["kill", "-9", pid], check=False)
        # Deleting the host end removes the pair and whatever tc/XDP state sits on it.
        run(["ip", "link", "del", self.host_if], check=False)
        run(["ip", "netns", "del", self.ns], check=False)


@pytest.fixture
def veth_lab():
    lab = VethLab()
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


class Process:
    """A started process whose output goes to a file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, cmd, log: Path, **kw):
        self.cmd = cmd
        self.log = log
        self._out = open(log, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT, **kw)

    def dead(self) -> str | None:
        if self.proc.poll() is None:
            return None
        return f"exit {self.proc.returncode}: {self.output()[-2000:]}"

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def start_flowforest(tmp: Path, lab: VethLab, port: int, mode: str = "tc", extra: list[str] = ()) -> Process:
    """`flowforest run` on the lab's host interface, API on 127.0.0.1:port, SQLite in tmp."""
    cmd = [str(flowforest_binary()), "run", "--mode", mode, "--interface", lab.host_if,
           "--listen", f"127.0.0.1:{port}", "--database", str(tmp / "flowforest.db"),
           "--poll-interval", "1", "--print-flows", "none",
           # Health and /metrics without a token, as Prometheus scrapes them; everything else needs one.
           "--open-metrics", *extra]
    return Process(cmd, tmp / "flowforest.log", cwd=tmp)


def podman_env(tmp: Path) -> dict:
    """podman settings for machines without systemd as PID 1: cgroupfs, runc,
    and default ulimits within this process's own hard limits."""
    import resource
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
    # runc refused nproc=65536 here although the hard limit is higher; 16384 is plenty for these containers.
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 16384)
    conf = tmp / "containers.conf"
    conf.write_text((Path(__file__).parent / "containers.conf").read_text()
                    .replace('"nofile=4096:4096"', f'"nofile={nofile}:{nofile}"')
                    .replace('"nproc=4096:4096"', f'"nproc={nproc}:{nproc}"'))
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(conf)
    return env


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


@pytest.fixture(scope="session")
def image(tmp_path_factory):
    """The FlowForest image, built by `make image` on the Debian base that
    base-image.sh imports (no registry here). Returns (tag, podman env)."""
    tmp = tmp_path_factory.mktemp("image")
    env = podman_env(tmp)
    base = subprocess.run([str(REPO / "Tests/deploy/base-image.sh"), str(REPO / "out/deploy")], env=env,
                          text=True, capture_output=True)
    assert base.returncode == 0, base.stderr
    tag = os.environ.get("FLOWFOREST_TEST_IMAGE", "localhost/flowforest:test")
    build = subprocess.run(["make", "-C", str(REPO), "image", f"IMAGE={tag}",
                            f"SWIFT_FLAGS={os.environ.get('SWIFT_FLAGS', '')}"],
                           env=env, text=True, capture_output=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return tag, env
