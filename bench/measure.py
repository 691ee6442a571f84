"""Run one command as a fresh process and measure it: wall time and peak RSS of its process tree.

Peak RSS is the larger of two readings, both from /proc every 10 ms: the sum of RSS over the
process and all its descendants (what catches parallel workers), and the largest single
process's own high-water mark (VmHWM, which catches a spike between two samples). wait4's
ru_maxrss is not used: after a vfork it includes the harness's own memory. The Postgres
server's memory is not part of any method's tree and is not counted.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SAMPLE_INTERVAL_S = 0.01


@dataclass(frozen=True)
class Sample:
    """One measured process: wall seconds, peak tree RSS in bytes, exit code, its stdout/stderr."""

    seconds: float
    peak_rss: int
    returncode: int
    stdout: str
    stderr: str


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                found.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return found


def _memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process in bytes; zeros if it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


class _Poller(threading.Thread):
    """Samples the tree's summed RSS, and each process's own high-water mark, until told to stop.

    Until the started process has exec'd it still shares the harness's memory (vfork), so it is
    not sampled before its command line changes.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.done = threading.Event()
        self.harness_cmdline = _cmdline(os.getpid())

    def run(self) -> None:
        while _cmdline(self.pid) == self.harness_cmdline and not self.done.is_set():
            time.sleep(0.0005)
        while not self.done.is_set():
            self.sample()
            self.done.wait(SAMPLE_INTERVAL_S)

    def sample(self) -> None:
        total, stack = 0, [self.pid]
        while stack:
            current = stack.pop()
            rss, hwm = _memory(current)
            total += rss
            self.peak = max(self.peak, hwm)
            stack.extend(_children(current))
        self.peak = max(self.peak, total)


def run_measured(
    command: Sequence[str], env: Mapping[str, str], cwd: Path, timeout_s: float = 3600.0
) -> Sample:
    """Start `command`, wait for it, and return its wall time and peak tree RSS."""
    out_path, err_path = cwd / ".stdout", cwd / ".stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(command), env=dict(env), cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL
        )
        poller = _Poller(process.pid)
        poller.start()
        killer = threading.Timer(timeout_s, process.kill)
        killer.start()
        _, status, _usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        killer.cancel()
        poller.done.set()
        poller.join()
    peak = poller.peak
    stdout = out_path.read_text(encoding="utf-8", errors="replace")
    stderr = err_path.read_text(encoding="utf-8", errors="replace")
    out_path.unlink()
    err_path.unlink()
    return Sample(seconds, peak, process.returncode, stdout, stderr)
