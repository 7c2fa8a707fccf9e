"""Data drift: ``python -m mlyard.monitoring`` against Evidently's ``DataDriftPreset`` with the same methods.

    .venv/bin/python benchmarks/monitoring.py --quick      # a check: 1 round, 20,000 x 10
    .venv/bin/python benchmarks/monitoring.py              # 200,000 x 25 and 1,000,000 x 50 (make bench)

Workload: synthetic reference and production windows of N rows each (Parquet), 60 % numerical columns (normal,
uniform, lognormal) and 40 % categorical (strings, 3 to 40 categories); every third column is shifted in production
(means moved by 0.02 to 0.6 standard deviations, category shares tilted), the others are drawn from the same law.
Methods: Azure's defaults, the normalised Wasserstein distance for numerical columns and the Jensen-Shannon
distance for categorical ones, threshold 0.1. Evidently is told the same: ``num_method="wasserstein"``,
``cat_method="jensenshannon"``; its Jensen-Shannon is in natural log where Azure's is in base 2, so its categorical
threshold is 0.1 * sqrt(ln 2) (the same cut). After the timed rounds both also run once with test p-values (KS for
numerical, chi-square for categorical, p < 0.05), and the sets of drifted columns of each configuration are
compared. Each side runs as a fresh process timed from spawn to exit (imports and reading included); its peak
resident memory is measured by ``/usr/bin/time -f %M``. The floor: one process that reads both windows once
(``pyarrow.parquet``, every column, numpy arrays straight from the Arrow buffers) and sorts each numerical column
once, which exact Wasserstein and KS need.

Evidently 0.7 needs pandas < 3, so it lives in its own virtualenv, ``benchmarks/.venv-evidently`` (ignored by git),
which this script creates on first use (``pip install evidently==0.7.23 'pandas<3' pyarrow``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import Comparison, markdown_table, print_table
from procs import PYTHON, clean_env, package_version

HERE = Path(__file__).resolve().parent
EVIDENTLY_VENV = HERE / ".venv-evidently"
EVIDENTLY_VERSION = "0.7.23"
THRESHOLD = 0.1
P_VALUE = 0.05
P_VALUE_METHODS = ("ks", "chisquare")
Progress = Callable[[str], None]

EVIDENTLY_SCRIPT = '''\
import json, sys
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
spec = json.load(open(sys.argv[1]))
ref = pd.read_parquet(spec["reference"])
cur = pd.read_parquet(spec["production"])
definition = DataDefinition(numerical_columns=spec["numerical"], categorical_columns=spec["categorical"])
report = Report([DataDriftPreset(num_method=spec["num_method"], cat_method=spec["cat_method"],
                                 num_threshold=spec["num_threshold"], cat_threshold=spec["cat_threshold"])])
snapshot = report.run(current_data=Dataset.from_pandas(cur, data_definition=definition),
                      reference_data=Dataset.from_pandas(ref, data_definition=definition))
values = {m["config"]["column"]: m["value"] for m in snapshot.dict()["metrics"]
          if m["config"]["type"].endswith("ValueDrift")}
json.dump(values, open(sys.argv[2], "w"))
'''

FLOOR_SCRIPT = '''\
import json, sys
import numpy as np
import pyarrow.parquet as pq
spec = json.load(open(sys.argv[1]))
ref, cur = pq.ParquetFile(spec["reference"]).read(), pq.ParquetFile(spec["production"]).read()
for name in spec["numerical"]:
    for table in (ref, cur):  # straight from the Arrow buffers: to_numpy would import pandas
        chunks = [np.frombuffer(c.buffers()[1], dtype=np.float64)[c.offset:c.offset + len(c)]
                  for c in table[name].chunks]
        np.sort(np.concatenate(chunks))
'''


def ensure_evidently() -> Path:
    """The Evidently virtualenv's interpreter, created on first use."""
    python = EVIDENTLY_VENV / "bin" / "python"
    probe = [str(python), "-c", f"import evidently, sys; sys.exit(evidently.__version__ != '{EVIDENTLY_VERSION}')"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"evidently=={EVIDENTLY_VERSION}", "pandas<3",
                    "pyarrow"], check=True)
    return python


@dataclass(frozen=True)
class Workload:
    rows: int
    columns: int
    folder: Path
    numerical: list[str]
    categorical: list[str]
    shifted: list[str]

    @property
    def label(self) -> str:
        return f"{self.rows:,} x {self.columns}"


def make_workload(base: Path, rows: int, columns: int, seed: int = 7) -> Workload:
    """Reference and production Parquet files; every third column shifted in production."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    folder = base / f"{rows}x{columns}"
    folder.mkdir(parents=True)
    numerical, categorical, shifted = [], [], []
    ref: dict[str, object] = {}
    cur: dict[str, object] = {}
    for index in range(columns):
        shift_level = (index % 3 == 0) * (0.02 + 0.58 * ((index // 3) % 5) / 4)  # 0, or 0.02 .. 0.6
        if index % 5 < 3:
            name = f"num_{index:02d}"
            numerical.append(name)
            law = index % 3
            draw = {0: lambda loc, n: rng.normal(loc, 1.0, n), 1: lambda loc, n: rng.uniform(loc, loc + 3.4, n),
                    2: lambda loc, n: rng.lognormal(loc * 0.3, 0.3, n)}[law]
            ref[name], cur[name] = draw(0.0, rows), draw(shift_level, rows)
        else:
            name = f"cat_{index:02d}"
            categorical.append(name)
            k = 3 + (index * 7) % 38
            levels = np.array([f"c{j}" for j in range(k)])
            base_p = rng.dirichlet(np.ones(k) * 2)
            tilted = base_p * np.exp(shift_level * 3 * np.linspace(-1, 1, k))
            ref[name] = rng.choice(levels, rows, p=base_p)
            cur[name] = rng.choice(levels, rows, p=tilted / tilted.sum())
        if shift_level:
            shifted.append(name)
    pq.write_table(pa.table(ref), folder / "reference.parquet")
    pq.write_table(pa.table(cur), folder / "production.parquet")
    files = {"reference": str(folder / "reference.parquet"), "production": str(folder / "production.parquet"),
             "numerical": numerical, "categorical": categorical}
    _configure(folder, "", files, ("wasserstein", "normalized_wasserstein_distance", THRESHOLD),
               ("jensenshannon", "jensen_shannon_distance", THRESHOLD), THRESHOLD * math.sqrt(math.log(2)))
    _configure(folder, "-tests", files, ("ks", "two_sample_kolmogorov_smirnov_test", P_VALUE),
               ("chisquare", "pearsons_chi_squared_test", P_VALUE), P_VALUE)
    (folder / "floor.py").write_text(FLOOR_SCRIPT)
    (folder / "evidently_run.py").write_text(EVIDENTLY_SCRIPT)
    return Workload(rows, columns, folder, numerical, categorical, shifted)


def _configure(folder: Path, suffix: str, files: dict[str, object], numerical: tuple[str, str, float],
               categorical: tuple[str, str, float], evidently_cat_threshold: float) -> None:
    """``spec{suffix}.json`` for Evidently and ``monitor{suffix}.json`` for mlyard, configured with the same tests."""
    spec = {**files, "num_method": numerical[0], "cat_method": categorical[0], "num_threshold": numerical[2],
            "cat_threshold": evidently_cat_threshold}
    (folder / f"spec{suffix}.json").write_text(json.dumps(spec))
    monitor = {"monitoring_signals": {"drift": {
        "type": "data_drift", "features": "all_features",
        "production_data": {"input_data": {"path": files["production"], "type": "uri_file"}},
        "reference_data": {"input_data": {"path": files["reference"], "type": "uri_file"}},
        "metric_thresholds": {"numerical": {numerical[1]: numerical[2]},
                              "categorical": {categorical[1]: categorical[2]}}}}}
    (folder / f"monitor{suffix}.json").write_text(json.dumps(monitor))


def timed(args: list[str], cwd: Path) -> tuple[float, int]:
    """Seconds from spawn to exit and the command's peak resident memory in bytes.

    The peak comes from ``/usr/bin/time -f %M``: a child's own ``ru_maxrss`` would include the RSS of the process
    it was forked from (Linux keeps the pre-exec high-water mark), here this benchmark with its generated data.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *args], cwd=cwd, env=clean_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:4])} ... exited {done.returncode}: {done.stderr[-2000:]}")
        return elapsed, int(rss.read().split()[-1]) * 1024


class Sides:
    def __init__(self, work: Workload, evidently: Path) -> None:
        self.work, self.evidently = work, evidently

    def mlyard(self, suffix: str = "") -> tuple[float, int]:
        folder = self.work.folder
        return timed([PYTHON, "-m", "mlyard.monitoring", "--definition", str(folder / f"monitor{suffix}.json"),
                      "--output", str(folder / f"out{suffix}"), "--quiet"], folder)

    def peer(self, suffix: str = "") -> tuple[float, int]:
        return timed([str(self.evidently), str(self.work.folder / "evidently_run.py"),
                      str(self.work.folder / f"spec{suffix}.json"), str(self.work.folder / f"evidently{suffix}.json")],
                     self.work.folder)

    def floor(self) -> tuple[float, int]:
        return timed([PYTHON, str(self.work.folder / "floor.py"), str(self.work.folder / "spec.json")],
                     self.work.folder)

    def agreement(self, suffix: str = "") -> tuple[set[str], set[str], set[str]]:
        """Drifted columns by mlyard, by Evidently (a distance >= its threshold, a p-value below it), and the truly
        shifted ones."""
        signals = json.loads((self.work.folder / f"out{suffix}" / "signals.json").read_text())
        features = signals["signals"][0]["metrics"]["features"]
        ours = {name for name, f in features.items() if f["status"] == "alerted"}
        spec = json.loads((self.work.folder / f"spec{suffix}.json").read_text())
        values = json.loads((self.work.folder / f"evidently{suffix}.json").read_text())
        theirs = set()
        for name, value in values.items():
            numerical = name in spec["numerical"]
            method = spec["num_method"] if numerical else spec["cat_method"]
            threshold = spec["num_threshold"] if numerical else spec["cat_threshold"]
            if (value < threshold) if method in P_VALUE_METHODS else (value >= threshold):
                theirs.add(name)
        return ours, theirs, set(self.work.shifted)


def _agreement(label: str, ours: set[str], theirs: set[str], truth: set[str]) -> str:
    same = ours == theirs
    detail = "" if same else f" (only mlyard: {sorted(ours - theirs)}; only Evidently: {sorted(theirs - ours)})"
    return (f"drifted columns with {label}: mlyard {len(ours)}, Evidently {len(theirs)}, same set: {same}{detail}; "
            f"{len(truth)} columns shifted, {len(ours & truth)} of them flagged by mlyard")


def compare(work: Workload, evidently: Path, rounds: int, progress: Progress) -> list[Comparison]:
    sides = Sides(work, evidently)
    mly_t, mly_m, ev_t, ev_m, fl_t, fl_m = [], [], [], [], [], []
    for index in range(-1, rounds):  # one uncounted warm-up round
        (a, am), (b, bm), (c, cm) = sides.mlyard(), sides.peer(), sides.floor()
        if index >= 0:
            mly_t.append(a), mly_m.append(am), ev_t.append(b), ev_m.append(bm), fl_t.append(c), fl_m.append(cm)
        label = "warm-up" if index < 0 else f"round {index + 1}/{rounds}"
        progress(f"{work.label} {label}: mlyard {a:.2f} s {am / 2**20:.0f} MiB, evidently {b:.2f} s "
                 f"{bm / 2**20:.0f} MiB, floor {c:.2f} s {cm / 2**20:.0f} MiB")
    sides.mlyard("-tests"), sides.peer("-tests")  # the same check with test p-values: KS and chi-square
    med = statistics.median
    agree = "; ".join(_agreement(label, *sides.agreement(suffix)) for label, suffix in (
        ("Wasserstein/Jensen-Shannon", ""), ("KS/chi-square p < 0.05", "-tests")))
    floor_note = (f"floor (read both windows once + sort each numerical column once, one process): "
                  f"{med(fl_t):.2f} s, {med(fl_m) / 2**20:.0f} MiB; mlyard / floor: {med(mly_t) / med(fl_t):.2f}x "
                  f"time, {med(mly_m) / med(fl_m):.2f}x memory")
    speed = [b / a for a, b in zip(mly_t, ev_t, strict=True)]
    subject = f"mlyard {package_version('mlyard')} python -m mlyard.monitoring (2 threads)"
    peer = f"evidently {EVIDENTLY_VERSION} DataDriftPreset(num_method=wasserstein, cat_method=jensenshannon)"
    workload = (f"{work.label} per window (reference and production), {len(work.numerical)} numerical + "
                f"{len(work.categorical)} categorical, Parquet; fresh process each, spawn to exit")
    return [
        Comparison(name=f"Data drift {work.label}: time", subject=subject, peer=peer, workload=workload,
                   subject_s=mly_t, peer_s=ev_t, subject_extra=f"{med(speed):.1f}x faster than Evidently "
                   f"[{min(speed):.1f} - {max(speed):.1f}]", notes=[agree, floor_note]),
        Comparison(name=f"Data drift {work.label}: peak RSS", subject=subject, peer=peer, workload=workload,
                   subject_s=[float(m) for m in mly_m], peer_s=[float(m) for m in ev_m], unit="B"),
    ]


def main(argv: list[str] | None = None) -> int:
    from machine import describe, summary_line
    from rich.console import Console

    parser = argparse.ArgumentParser(description="mlyard data drift against Evidently's DataDriftPreset.")
    parser.add_argument("--quick", action="store_true", help="1 round, 20,000 x 10")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--large-rounds", type=int, default=3, help="rounds of the 1,000,000 x 50 workload")
    parser.add_argument("--results", type=Path, default=HERE / ".results")
    args = parser.parse_args(argv)
    sizes = [(20_000, 10, 1)] if args.quick else [(200_000, 25, args.rounds), (1_000_000, 50, args.large_rounds)]
    console = Console(width=max(Console().width, 160))
    info = describe()
    console.print(f"[bold]monitoring[/bold]: 1 warm-up + alternating rounds · {summary_line(info)}")
    evidently = ensure_evidently()
    results: list[Comparison] = []
    with tempfile.TemporaryDirectory(prefix="mlyard-bench-monitoring-") as base:
        for rows, columns, rounds in sizes:
            work = make_workload(Path(base), rows, columns)
            results += compare(work, evidently, rounds,
                               lambda line: console.print(f"  monitoring {line}", highlight=False, markup=False))
    print_table(console, results, title=f"mlyard data drift vs Evidently · {info['date']} · commit {info['commit']}")
    for c in results:
        console.print("; ".join([f"• {c.name}: mlyard = {c.subject}", f"peer = {c.peer}", c.workload, *c.notes]),
                      highlight=False, markup=False)
    args.results.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "results": [c.to_dict() for c in results]}
    (args.results / "monitoring.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.results / "monitoring.md").write_text(f"{summary_line(info)}\n\n{markdown_table(results)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
