"""Resident memory of server process trees, sampled from a separate process.

``RssSampler(pids)`` starts ``python rss.py INTERVAL PID...``: every INTERVAL seconds it sums the RSS
(psutil) of each PID and all its descendants, and keeps the peak of each tree. ``phase()`` returns the
peak of every tree since the previous ``phase()`` (and the last sample), then starts a new phase.
Sampling in its own process keeps it off the benchmark process's GIL, so it cannot delay a timed call.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
from pathlib import Path

import psutil

INTERVAL_S = 0.05


def tree_rss(pid: int) -> int:
    """Sum of the resident set sizes of ``pid`` and all its descendants, in bytes (0 if it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:  # a child that exited between the listing and the read
            pass
    return total


class RssSampler:
    """The sampling process for a set of process trees; ``close()`` stops it."""

    def __init__(self, pids: dict[str, int], interval_s: float = INTERVAL_S) -> None:
        self.names = list(pids)
        args = [sys.executable, str(Path(__file__).resolve()), str(interval_s), *map(str, pids.values())]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def phase(self) -> dict[str, dict[str, int]]:
        """``{"peak": {name: bytes}, "last": {name: bytes}}`` since the previous call; starts a new phase."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("phase\n")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the RSS sampler exited ({self.proc.poll()})")
        data = json.loads(line)
        return {kind: dict(zip(self.names, data[kind], strict=True)) for kind in ("peak", "last")}

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # EOF: the sampler exits
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _sample_forever(interval_s: float, pids: list[int]) -> None:
    peak = [tree_rss(pid) for pid in pids]
    last = list(peak)
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin, selectors.EVENT_READ)
    while True:
        if selector.select(timeout=interval_s):
            command = sys.stdin.readline()
            if not command:  # EOF: the benchmark is done
                return
            last = [tree_rss(pid) for pid in pids]
            peak = [max(p, v) for p, v in zip(peak, last, strict=True)]
            print(json.dumps({"peak": peak, "last": last}), flush=True)
            peak = list(last)
            continue
        last = [tree_rss(pid) for pid in pids]
        peak = [max(p, v) for p, v in zip(peak, last, strict=True)]


if __name__ == "__main__":
    _sample_forever(float(sys.argv[1]), [int(pid) for pid in sys.argv[2:]])
