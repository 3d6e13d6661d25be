"""Background processes of a local cluster: pid records that survive the command that
started them, and free loopback ports.

A pid record holds the pid and the process start time (``/proc/<pid>/stat`` field 22), so a
process that merely reuses a recorded pid is never signalled. Every process leads its own
session (``start_new_session``): it outlives ``cluster up`` and a Ctrl-C in that terminal, and
signals go to its whole process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class ClusterError(RuntimeError):
    """A cluster operation failed; the message is one line for the operator."""


def process_start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None  # a zombie has exited; only its parent's wait() is missing
    return int(fields[19])


@dataclass(frozen=True, slots=True)
class PidRecord:
    name: str
    pid: int
    start_ticks: int
    argv: tuple[str, ...]

    def alive(self) -> bool:
        return process_start_ticks(self.pid) == self.start_ticks


class ProcessTable:
    """Background processes of one cluster, recorded under ``run/`` with logs under ``logs/``."""

    def __init__(self, root: Path) -> None:
        self.run_dir = root / "run"
        self.log_dir = root / "logs"

    def pid_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def record(self, name: str) -> PidRecord | None:
        try:
            data = json.loads(self.pid_path(name).read_text())
            return PidRecord(name, int(data["pid"]), int(data["start_ticks"]),
                             tuple(data.get("argv", ())))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def records(self) -> list[PidRecord]:
        if not self.run_dir.is_dir():
            return []
        found = (self.record(path.stem) for path in sorted(self.run_dir.glob("*.pid")))
        return [record for record in found if record is not None]

    def running(self, name: str) -> bool:
        record = self.record(name)
        return record is not None and record.alive()

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> PidRecord:
        if self.running(name):
            raise ClusterError(f"{name} is already running")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(name), "ab") as log:
            process = subprocess.Popen(  # noqa: S603 - argv built here, no shell
                argv, cwd=REPO, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        ticks = process_start_ticks(process.pid)
        if ticks is None:
            raise ClusterError(f"{name} exited at once; see {self.log_path(name)}")
        record = PidRecord(name, process.pid, ticks, tuple(argv))
        self.pid_path(name).write_text(json.dumps(
            {"pid": record.pid, "start_ticks": ticks, "argv": argv}) + "\n")
        # Popen's handle is dropped on purpose: the process belongs to the cluster, not to
        # this command. Python would warn about a child it never waited for; it is not ours.
        process.returncode = 0
        return record

    def signal(self, name: str, signum: int) -> bool:
        record = self.record(name)
        if record is None or not record.alive():
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, signum)  # the process leads its own session and group
        return True

    def stop(self, names: Iterable[str], *, grace_s: float = 20.0,
             on_kill: Callable[[str], None] | None = None) -> None:
        """SIGTERM ``names``, wait up to ``grace_s`` for them, SIGKILL what is left."""
        names = [name for name in names if self.signal(name, signal.SIGTERM)]
        deadline = time.monotonic() + grace_s
        while names and time.monotonic() < deadline:
            _reap()
            names = [name for name in names if self.running(name)]
            if names:
                time.sleep(0.1)
        for name in names:
            if on_kill is not None:
                on_kill(name)
            self.signal(name, signal.SIGKILL)
        for name in names:
            for _ in range(50):
                _reap()
                if not self.running(name):
                    break
                time.sleep(0.1)

    def kill(self, name: str) -> None:
        """SIGKILL (the crash tests' kill -9) and wait until it is gone."""
        if self.signal(name, signal.SIGKILL):
            for _ in range(100):
                _reap()
                if not self.running(name):
                    return
                time.sleep(0.05)

    def forget(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pid_path(name).unlink()


def _reap() -> None:
    """Collect exited children of this process (tests start nodes as our children)."""
    with contextlib.suppress(ChildProcessError):
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return


def port_block_free(base: int, count: int, host: str = "127.0.0.1") -> bool:
    for port in range(base, base + count):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True


def free_port_base(count: int, *, low: int = 12_000, high: int = 30_000,
                   rng: random.Random | None = None) -> int:
    """A base port with ``count`` free ports above it, below Linux's ephemeral range (32768+),
    so outgoing connections of other programs cannot take them while the cluster starts."""
    chooser = rng or random.Random()  # noqa: S311 - port choice, not a secret
    for _ in range(500):
        base = chooser.randrange(low, high - count)
        if port_block_free(base, count):
            return base
    raise ClusterError("no free block of loopback ports")


def last_line(path: Path, *, limit: int = 64 * 1024) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - limit))
            lines = handle.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1][:500] if lines else "(empty log)"
