"""``mlyard --help`` wall time against a bare interpreter start (``python -c pass``).

Both are spawned from this process with the same interpreter (the virtualenv's), stdout discarded,
and timed from spawn to exit: the ratio is what mlyard's imports and click add to a CLI call.
"""

from __future__ import annotations

import platform
import subprocess
import time
from collections.abc import Callable, Sequence

from harness import Comparison, alternate
from procs import PYTHON, clean_env, package_version


def _timed(args: Sequence[str]) -> Callable[[], float]:
    env = clean_env()

    def run() -> float:
        start = time.perf_counter()
        done = subprocess.run(list(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
        return elapsed

    return run


def run(rounds: int, progress: Callable[[str], None] | None = None) -> Comparison:
    subject_s, peer_s = alternate(
        rounds, _timed([PYTHON, "-m", "mlyard", "--help"]), _timed([PYTHON, "-c", "pass"]), progress=progress
    )
    return Comparison(
        name="`mlyard --help` wall time",
        subject=f"mlyard {package_version('mlyard')}: .venv/bin/python -m mlyard --help",
        peer=f"python -c pass (CPython {platform.python_version()}, same venv)",
        workload="spawn to exit, stdout discarded; 1 warm-up round of each is not counted",
        subject_s=subject_s,
        peer_s=peer_s,
    )
