"""Runs start_app.sh for real: start, replace, refuse a foreign port, report a crash, stop, status.

Every test gets its own free port and temp run/log/data folders (INDEX_TTS_RUN_DIR and
INDEX_TTS_LOG_DIR), so a developer's running instance is never touched. Every process a test
starts is killed in teardown, by pid, after checking it is still the process we started.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "start_app.sh"
# The launcher's app script; INDEX_TTS_WEBUI lets a developer point it elsewhere.
WEBUI = Path(os.environ.get("INDEX_TTS_WEBUI", REPO / "webui.py"))

# Generous: the real app imports gradio and torch, and the CI box is small and shared.
HEALTH_TIMEOUT_S = 180
EXIT_DIED, EXIT_USAGE, EXIT_PORT_BUSY, EXIT_NOT_RUNNING = 1, 2, 4, 7


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str) -> int | None:
    """HTTP status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def alive(pid: int) -> bool:
    return start_time(pid) is not None


def webui_pids(port: int) -> list[int]:
    """Every live process running our webui.py with this --port."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv]
        if str(WEBUI) in args and "--port" in args and str(port) in args and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def read_pid_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def wait_until(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


class Launcher:
    """Runs start_app.sh with isolated folders and a private port; remembers what it started."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.run_dir, self.log_dir, self.data_dir = tmp / "run", tmp / "logs", tmp / "data"
        self.data_dir.mkdir()
        self.pid_file = self.run_dir / "webui.pid"
        self.log_file = self.log_dir / "webui.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("INDEX_TTS_")}
        env.update(INDEX_TTS_RUN_DIR=str(self.run_dir), INDEX_TTS_LOG_DIR=str(self.log_dir))
        if "INDEX_TTS_WEBUI" in os.environ:
            env["INDEX_TTS_WEBUI"] = os.environ["INDEX_TTS_WEBUI"]
        self.env = env
        self.seen: dict[int, str] = {}  # pid -> start time, for teardown

    def __call__(self, *args: str, engine: str = "quick") -> subprocess.CompletedProcess:
        command = list(args)
        if not command or command[0] in ("start", "restart"):
            command += ["--no-install", "--port", str(self.port), "--engine", engine,
                        "--timeout", str(HEALTH_TIMEOUT_S), "--data-dir", str(self.data_dir)]
        result = subprocess.run(["bash", str(LAUNCHER), *command], env=self.env, cwd=REPO,
                                capture_output=True, text=True, timeout=HEALTH_TIMEOUT_S + 60)
        self.remember()
        return result

    def remember(self) -> None:
        if self.pid_file.exists():
            info = read_pid_file(self.pid_file)
            self.seen[int(info["pid"])] = info["start_time"]
        for pid in webui_pids(self.port):
            self.seen.setdefault(pid, start_time(pid) or "")

    def cleanup(self) -> None:
        self.remember()
        for pid, started in self.seen.items():
            if start_time(pid) == started:  # still the very process we started, not a recycled pid
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def launcher(tmp_path):
    launch = Launcher(tmp_path)
    try:
        yield launch
    finally:
        launch.cleanup()


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def test_start_replace_status_stop(launcher):
    base = f"http://127.0.0.1:{launcher.port}"

    first = launcher("start")
    assert_ok(first)
    assert f"{base}/" in first.stdout
    assert http_status(f"{base}/healthz") == 200
    info = read_pid_file(launcher.pid_file)
    old_pid = int(info["pid"])
    assert info["start_time"] == start_time(old_pid)
    assert webui_pids(launcher.port) == [old_pid]

    status = launcher("status")
    assert_ok(status)
    assert str(old_pid) in status.stdout

    # A second start replaces the first: a new pid, the old one gone, exactly one server.
    second = launcher("start")
    assert_ok(second)
    new_pid = int(read_pid_file(launcher.pid_file)["pid"])
    assert new_pid != old_pid
    assert not alive(old_pid)
    assert webui_pids(launcher.port) == [new_pid]
    assert http_status(f"{base}/healthz") == 200

    stop = launcher("stop")
    assert_ok(stop)
    assert not alive(new_pid)
    assert not launcher.pid_file.exists()
    assert webui_pids(launcher.port) == []
    assert http_status(f"{base}/healthz") is None

    status = launcher("status")
    assert status.returncode == EXIT_NOT_RUNNING
    assert "not running" in status.stdout.lower()


def test_foreign_listener_is_left_alone(launcher):
    foreign = subprocess.Popen([sys.executable, "-m", "http.server", str(launcher.port), "--bind", "127.0.0.1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=launcher.data_dir)
    try:
        assert wait_until(lambda: http_status(f"http://127.0.0.1:{launcher.port}/") == 200, 30)
        result = launcher("start")
        assert result.returncode == EXIT_PORT_BUSY, result.stdout + result.stderr
        assert str(foreign.pid) in result.stderr  # says who holds the port
        assert "http.server" in result.stderr
        assert "--port" in result.stderr  # and how to get around it
        assert foreign.poll() is None
        assert http_status(f"http://127.0.0.1:{launcher.port}/") == 200
        assert not launcher.pid_file.exists()
        assert webui_pids(launcher.port) == []
    finally:
        foreign.kill()
        foreign.wait(timeout=10)


def test_crash_during_start_shows_log_tail(launcher):
    result = launcher("start", engine="no-such-engine")
    assert result.returncode == EXIT_DIED, result.stdout + result.stderr
    assert "last 40 lines" in result.stdout
    tail = result.stdout.split("last 40 lines", 1)[1]
    # The launcher's own marker line names the engine too, so look for webui.py's complaint.
    assert re.search(r"invalid choice|error", tail, re.IGNORECASE)
    assert not launcher.pid_file.exists()
    assert webui_pids(launcher.port) == []

    logs = launcher("logs", "-n", "5")
    assert_ok(logs)
    assert logs.stdout.strip() and len(logs.stdout.splitlines()) <= 5


def test_stale_pid_file_of_another_process_is_dropped_not_killed(launcher):
    # A live process that is not our webui.py, recorded as if it were (a recycled pid).
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        launcher.run_dir.mkdir()
        launcher.pid_file.write_text(f"pid={stranger.pid}\nstart_time={start_time(stranger.pid)}\n"
                                     f"host=127.0.0.1\nport={launcher.port}\n")
        result = launcher("stop")
        assert_ok(result)
        assert stranger.poll() is None
        assert not launcher.pid_file.exists()

        # Same pid but another start time: also not ours.
        launcher.pid_file.write_text(f"pid={stranger.pid}\nstart_time=1\n")
        status = launcher("status")
        assert status.returncode == EXIT_NOT_RUNNING
        assert stranger.poll() is None
        assert not launcher.pid_file.exists()
    finally:
        stranger.kill()
        stranger.wait(timeout=10)


def test_usage_errors_and_help(launcher):
    bad = launcher("status", "--port", "not-a-port")
    assert bad.returncode == EXIT_USAGE
    assert "--port" in bad.stderr

    unknown = launcher("strat")
    assert unknown.returncode == EXIT_USAGE
    assert "unknown command" in unknown.stderr

    help_text = launcher("--help")
    assert_ok(help_text)
    for needle in ("Exit codes", "--host", "--port", "--model", "--engine", "--no-install", "--timeout",
                   "INDEX_TTS_RUN_DIR", "INDEX_TTS_LOG_DIR", "0.0.0.0"):
        assert needle in help_text.stdout


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (run_tests.sh installs it)")
def test_scripts_pass_shellcheck():
    scripts = [LAUNCHER, REPO / "run_tests.sh", REPO / ".ci" / "run"]
    result = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
