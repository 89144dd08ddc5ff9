#!/usr/bin/env python3
"""Runs FlowForest's tests in tiers and prints one summary for all of them.

    unit       Swift unit suites in memory, in parallel (no root, no network lab)
    memory     the bytes-per-flow suite alone, as it reads the whole process's heap
    service    store and server suites (real SQLite, PostgreSQL, HTTP), in parallel
    lab        Swift suites that drive a namespace lab, one at a time (root)
    api        a live daemon: schemathesis against /openapi.yaml (time-bounded), stop under load (pytest)
    deploy     promtool, systemd-analyze and a live Prometheus (pytest)
    dashboard  headless Chromium against a live daemon (unittest)

Fast tiers come first, so a broken build or unit test fails in minutes, not
after the labs. Every tier runs even when an earlier one failed: one run shows
every failure.

As root every test must run: a skipped suite or test fails its tier (a
missing tool is a failure, not a silent skip). Without root the lab suites
skip themselves, and the summary lists each skipped suite loudly.

Usage: tiers.py [TIER ...]   (default: all, in the order above)
Environment: SWIFT, SWIFT_FLAGS, VENV, DEPLOY_VENV, DASHBOARD_VENV, OUT.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWIFT = os.environ.get("SWIFT", "swift")
SWIFT_FLAGS = shlex.split(os.environ.get("SWIFT_FLAGS", ""))
OUT = os.environ.get("OUT", "out")
VENV = os.path.abspath(os.environ.get("VENV", f"{OUT}/venv"))
DEPLOY_VENV = os.path.abspath(os.environ.get("DEPLOY_VENV", f"{OUT}/deploy-venv"))
DASHBOARD_VENV = os.path.abspath(os.environ.get("DASHBOARD_VENV", f"{OUT}/venv-dashboard"))
IS_ROOT = os.geteuid() == 0
# Test targets whose suites need root and a namespace lab.
LAB_TARGETS = "EBPFCaptureTests|LabTests"
# Suites waiting on sockets and servers run apart from the CPU-bound unit
# suites: in one process, tests that keep both cooperative threads busy
# delay others' I/O until their own deadlines fire.
SERVICE_TARGETS = "FlowForestStoreTests|FlowForestServerTests"
# Suites that measure bytes in use by reading the whole process's heap
# (glibc's mallinfo2): any other suite running beside them, allocating or
# freeing, is in their figures, so they run in a process of their own.
MEMORY_SUITES = "MemoryPerFlowTests"
# Seconds a tier may run: several times what it takes on this kind of machine
# (unit 40 s, memory 30 s, service 70 s, lab 250 s, api 75 s, deploy 17 s, dashboard 30 s),
# and together with the build well inside CI's limit even if every tier hangs.
TIER_LIMITS = {"unit": 480, "memory": 300, "service": 480, "lab": 1200, "api": 420, "deploy": 300, "dashboard": 300}
DEFAULT_LIMIT = 600
TIMED_OUT = "TIMED OUT after"


@dataclass
class Result:
    tier: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    exit_code: int = 0
    skipped_names: list = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.failed == 0 and not (IS_ROOT and self.skipped)


def run(tier: str, cmd: list, env: dict | None = None) -> tuple[str, int, float]:
    """Runs `cmd`, streaming its output, and returns (output, exit code, seconds).

    A tier that outlives its limit (TIER_LIMITS) is stopped: the tests still
    running and the stacks of its Swift processes are printed first, so a
    hang fails one tier with its cause instead of stalling the whole run.
    """
    limit = TIER_LIMITS.get(tier, DEFAULT_LIMIT)
    print(f"\n==> {tier} (limit {limit} s): {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
    start = time.monotonic()
    # A session of its own, so a hung tier's whole process tree can be found and stopped.
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
    lines = []

    def pump():
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        try:
            report_hang(tier, limit, proc.pid, "".join(lines))
        finally:
            kill_session(proc.pid)
        code = proc.wait()
        lines.append(f"\n{tier}: {TIMED_OUT} {limit} s\n")
        print(lines[-1], flush=True)
    except BaseException:
        # Interrupted (Ctrl-C, or make stopped with SIGTERM): the tier's own
        # session no longer gets the terminal's signals, so end it here.
        kill_session(proc.pid)
        raise
    reader.join(timeout=10)
    return "".join(lines), code, time.monotonic() - start


def session_processes(sid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process in session `sid` or descended
    from its leader (a daemon that called setsid, such as PostgreSQL's
    postmaster, has left the session but not the family)."""
    parents, sessions = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            parents[int(entry)], sessions[int(entry)] = int(fields[1]), int(fields[3])
        except (OSError, IndexError, ValueError):
            continue
    def in_family(pid: int) -> bool:
        seen = set()
        while pid > 1 and pid not in seen:
            if pid == sid or sessions.get(pid) == sid:
                return True
            seen.add(pid)
            pid = parents.get(pid, 0)
        return False
    found = []
    for pid in parents:
        if in_family(pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    found.append((pid, f.read().replace(b"\0", b" ").decode(errors="replace").strip()))
            except OSError:
                continue
    return found


def report_hang(tier: str, limit: int, sid: int, output: str) -> None:
    """Prints what a hung tier was doing: unfinished tests, processes, Swift stacks."""
    print(f"\n!!! {tier}: still running after {limit} s; stopping it", flush=True)
    started = re.findall(r"^\S+ Test (?!run started)(.+?) started\.$", output, re.M)
    ended = set(re.findall(r"^\S+ Test (?!run with )(.+?) (?:with \d+ test cases? )?(?:passed|failed)", output, re.M))
    for name in (n for n in dict.fromkeys(started) if n not in ended):
        print(f"!!!   unfinished: {name}")
    processes = session_processes(sid)
    for pid, command in processes:
        print(f"!!!   process {pid}: {command[:200]}")
    gdb = shutil.which("gdb")
    demangle = shutil.which("swift-demangle") or shutil.which("swift-demangle", path=os.path.dirname(shutil.which(SWIFT) or ""))
    for pid, command in processes:
        executable = command.split(" ")[0]
        if gdb is None or not (executable.endswith(".xctest") or os.path.basename(executable).startswith("flowforest")):
            continue
        try:
            traced = subprocess.run([gdb, "-p", str(pid), "-batch", "-ex", "thread apply all bt"], capture_output=True,
                                    text=True, errors="replace", timeout=120)
            stacks = traced.stdout + (f"\n(gdb: {traced.stderr.strip()})" if traced.returncode != 0 else "")
        except subprocess.TimeoutExpired:
            stacks = "(gdb did not answer within 120 s)"
        if demangle:
            try:
                stacks = subprocess.run([demangle, "--simplified"], input=stacks, capture_output=True, text=True,
                                        errors="replace", timeout=60).stdout
            except subprocess.TimeoutExpired:
                pass
        print(f"!!! stacks of {pid}:\n{stacks}", flush=True)


def kill_session(sid: int) -> None:
    try:
        os.killpg(sid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    # Children that left the process group (setpgid) or the session (setsid).
    for pid, _ in session_processes(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# Swift Testing's own lines: "✔ Test x() passed after ...", "✘ Test x() failed after ...",
# "➜ Suite \"...\" skipped: ...", "✔ Test run with 12 tests in 3 suites passed after ...".
SWIFT_RUN = re.compile(r"Test run with (\d+) tests? (?:in \d+ suites? )?(passed|failed)")
SWIFT_FAILED = re.compile(r"^\S+ Test (?!run with )(.+?) (?:with \d+ test cases? )?failed after")
# The name is quoted (a display name) or a function: a test whose name holds
# the word "skipped" is not a skip.
SWIFT_SKIPPED = re.compile(r'^\S+ (Suite|Test) ("(?:[^"\\]|\\.)*"|[\w.]+\(.*?\)) skipped\b')


def settle(r: Result, output: str, code: int, exit_note: str) -> None:
    """Fails a tier that was stopped at its limit, or that exited non-zero
    without a failed test (`exit_note` says how)."""
    if TIMED_OUT in output:
        r.failed, r.note = r.failed + 1, "timed out: what was still running is printed above"
    elif code != 0 and r.failed == 0:
        r.failed, r.note = 1, exit_note


def swift_tier(tier: str, selection: list, env: dict | None = None) -> Result:
    output, code, seconds = run(tier, [SWIFT, "test", *SWIFT_FLAGS, "--skip-build", *selection], env)
    r = Result(tier, seconds=seconds, exit_code=code)
    total = sum(int(m.group(1)) for m in SWIFT_RUN.finditer(output))
    failed = {m.group(1) for line in output.splitlines() if (m := SWIFT_FAILED.match(line))}
    r.skipped_names = [f"{m.group(1).lower()} {m.group(2)}" for line in output.splitlines()
                       if (m := SWIFT_SKIPPED.match(line))]
    r.failed = len(failed)
    r.skipped = len(r.skipped_names)
    r.passed = max(0, total - r.failed - r.skipped)
    settle(r, output, code, f"swift test exited {code} without a failed test: a crash or a build problem")
    if total == 0 and code == 0 and not r.skipped:
        r.failed, r.note = 1, "no test ran"
    return r


PYTEST_COUNTS = re.compile(r"(\d+) (passed|failed|skipped|error|errors)\b")
PYTEST_SKIP = re.compile(r"^SKIPPED \[\d+\] (.*)$", re.M)


def pytest_tier(tier: str, args: list, env: dict) -> Result:
    output, code, seconds = run(tier, [f"{DEPLOY_VENV}/bin/python", "-m", "pytest", "-q", "-rs", *args], env)
    r = Result(tier, seconds=seconds, exit_code=code)
    summary = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
    for count, word in PYTEST_COUNTS.findall(summary[-1] if summary else ""):
        if word == "passed":
            r.passed = int(count)
        elif word == "skipped":
            r.skipped = int(count)
        else:
            r.failed += int(count)
    r.skipped_names = PYTEST_SKIP.findall(output)
    settle(r, output, code, f"pytest exited {code}")
    return r


def unittest_tier(tier: str, cmd: list, env: dict) -> Result:
    output, code, seconds = run(tier, cmd, env)
    r = Result(tier, seconds=seconds, exit_code=code)
    ran = re.search(r"^Ran (\d+) tests?", output, re.M)
    status = re.search(r"^(OK|FAILED)(?: \((.*)\))?$", output, re.M)
    details = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", status.group(2) or "")) if status else {}
    r.failed = details.get("failures", 0) + details.get("errors", 0)
    r.skipped = details.get("skipped", 0)
    r.passed = (int(ran.group(1)) if ran else 0) - r.failed - r.skipped
    r.skipped_names = re.findall(r"^(\S+ \(.*\)) \.\.\. skipped (.*)$", output, re.M)
    settle(r, output, code, f"exited {code}")
    return r


def flowforest_bin() -> str:
    path = subprocess.run([SWIFT, "build", *SWIFT_FLAGS, "--show-bin-path"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    return f"{path}/flowforest"


TIERS = {
    "unit": lambda: swift_tier("unit", ["--skip", f"{LAB_TARGETS}|{SERVICE_TARGETS}|{MEMORY_SUITES}"], {
        # The parity suite runs in this tier, against the reference venv.
        "FLOWFOREST_REQUIRE_PARITY": "1", "FLOWFOREST_PYTHON": f"{VENV}/bin/python"}),
    "memory": lambda: swift_tier("memory", ["--no-parallel", "--filter", MEMORY_SUITES]),
    "service": lambda: swift_tier("service", ["--filter", SERVICE_TARGETS]),
    # One suite at a time: labs drive traffic at full rate and must not
    # compete with each other for the two cores.
    "lab": lambda: swift_tier("lab", ["--no-parallel", "--filter", LAB_TARGETS]),
    "api": lambda: pytest_tier("api", ["-s", "Tests/api"], {"FLOWFOREST_BIN": flowforest_bin()}),
    "deploy": lambda: pytest_tier("deploy", [
        "Tests/deploy/test_static.py", "Tests/deploy/test_prometheus_live.py", "Tests/deploy/test_systemd_identity.py",
    ], {"FLOWFOREST_BIN": flowforest_bin()}),
    "dashboard": lambda: unittest_tier("dashboard", [f"{DASHBOARD_VENV}/bin/python", "Tests/dashboard/test_dashboard.py"],
                                       {"FLOWFOREST_BIN": flowforest_bin()}),
}


def main() -> int:
    names = sys.argv[1:] or list(TIERS)
    unknown = [n for n in names if n not in TIERS]
    if unknown:
        print(f"tiers.py: unknown tier {', '.join(unknown)}; tiers: {', '.join(TIERS)}", file=sys.stderr)
        return 2
    # make stopped with SIGTERM: unwind through run(), which ends the tier's session.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = [TIERS[name]() for name in names]

    print("\n==> summary" + ("" if IS_ROOT else " (not root: lab suites skip themselves)"))
    print(f"  {'tier':<10} {'passed':>6} {'failed':>6} {'skipped':>7} {'time':>8}  result")
    for r in results:
        verdict = "ok" if r.ok else ("FAILED: skipped as root" if r.failed == 0 and r.exit_code == 0 else "FAILED")
        line = f"  {r.tier:<10} {r.passed:>6} {r.failed:>6} {r.skipped:>7} {r.seconds:>7.0f}s  {verdict}"
        print(line + (f" ({r.note})" if r.note else ""))
    skipped = [(r.tier, name) for r in results for name in r.skipped_names]
    if skipped:
        banner = "SKIPPED AS ROOT, WHICH IS A FAILURE" if IS_ROOT else "SKIPPED (run as root to include them)"
        print(f"\n  !!! {banner}:")
        for tier, name in skipped:
            print(f"  !!!   {tier}: {name}")
    passed = sum(r.passed for r in results)
    failed = sum(r.failed for r in results) + (sum(r.skipped for r in results) if IS_ROOT else 0)
    total_skipped = sum(r.skipped for r in results)
    print(f"\ntests: {passed} passed, {failed} failed, {total_skipped} skipped")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
