"""Real processes on loopback for the integration tests: a cluster started with
`raftcoord cluster up --json`, extra nodes started with `raftcoord serve`, and CLI
calls. Every process started here is stopped by `LocalCluster.stop` (bounded waits;
SIGKILL as a last resort)."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def run_cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run one `raftcoord` command to completion."""
    return subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_line(stream: Any, timeout: float) -> str:
    """One line from a pipe, waiting at most ``timeout`` seconds."""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    data = b""
    try:
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError(f"no line within {timeout} s (got {data!r})")
            chunk = os.read(stream.fileno(), 1)
            if not chunk:
                raise EOFError(f"stream closed (got {data!r})")
            data += chunk
    finally:
        selector.close()
    return data.decode()


class LocalCluster:
    """`raftcoord cluster up --json` in a child process, plus processes the test adds."""

    def __init__(self, data_dir: str, *, nodes: int = 3, workers: int = 0,
                 partitions: int = 0, lease: float = 2.0) -> None:
        self.data_dir = str(data_dir)
        self.args = ["cluster", "up", "--json", "--data-dir", self.data_dir, "--nodes",
                     str(nodes), "--workers", str(workers), "--partitions", str(partitions),
                     "--lease", str(lease)]
        self.process: Optional[subprocess.Popen] = None
        self.info: dict[str, Any] = {}
        self.extra: dict[str, subprocess.Popen] = {}
        self.leftovers: list[int] = []  # children `cluster up` left running (a bug)

    def start(self, timeout: float = 40.0) -> "LocalCluster":
        self.process = subprocess.Popen(cli_command(*self.args), stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, cwd=ROOT,
                                        start_new_session=True)
        try:
            self.info = json.loads(read_line(self.process.stdout, timeout))
        except Exception:
            self.stop()
            raise
        return self

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def addresses(self) -> str:
        return self.info["addresses"]

    def node(self, node_id: int) -> dict[str, Any]:
        return next(n for n in self.info["nodes"] if n["id"] == node_id)

    def worker(self, worker_id: str) -> dict[str, Any]:
        return next(w for w in self.info["workers"] if w["id"] == worker_id)

    def signal_node(self, node_id: int, signum: int) -> None:
        name = f"node-{node_id}"
        if name in self.extra:
            self.extra[name].send_signal(signum)
        else:
            os.kill(self.node(node_id)["pid"], signum)

    def _signal_worker(self, worker_id: str, signum: int) -> None:
        os.kill(self.worker(worker_id)["pid"], signum)

    def pause_worker(self, worker_id: str) -> None:
        self._signal_worker(worker_id, signal.SIGSTOP)

    def resume_worker(self, worker_id: str) -> None:
        self._signal_worker(worker_id, signal.SIGCONT)

    def kill_worker(self, worker_id: str) -> None:
        self._signal_worker(worker_id, signal.SIGKILL)

    def restart_node(self, node_id: int) -> None:
        """Start a node again from its own data directory (after it was killed)."""
        node = self.node(node_id)
        self.extra[f"node-{node_id}"] = subprocess.Popen(
            node["command"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)

    def start_process(self, name: str, command: list[str], log: str) -> subprocess.Popen:
        with open(log, "ab") as handle:
            process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                       cwd=ROOT)
        self.extra[name] = process
        return process

    def stop(self) -> Optional[int]:
        """Stop everything; the `cluster up` exit status (None if it had to be killed)."""
        code = None
        for process in self.extra.values():
            _terminate(process, 10.0)
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(60.0)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self.process.stdout.close()
        # Children of `cluster up` still alive after it (a failed test) are killed.
        self.leftovers = []
        for entry in self.info.get("nodes", []) + self.info.get("workers", []):
            try:
                os.kill(entry["pid"], signal.SIGCONT)
                os.kill(entry["pid"], signal.SIGKILL)
                self.leftovers.append(entry["pid"])
            except (ProcessLookupError, PermissionError):
                pass
        return code


def _terminate(process: subprocess.Popen, timeout: float) -> None:
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGCONT)
            process.terminate()
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(predicate: Any, timeout: float, interval: float = 0.1, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)
