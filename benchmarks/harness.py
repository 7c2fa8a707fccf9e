"""Alternating A/B rounds, medians and per-round ratios, and the one results table.

The method is the one in BENCHMARKS.md: mlyard (A) and its peer (B) run in the same process of
the same benchmark run, alternating A, B, A, B ... after a warm-up round of each that is not
counted; we report the median, min and max of each and of the per-round ratios A/B.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

Timed = Callable[[], float]  # runs one measurement, returns its seconds
Hook = Callable[[int], None]  # round index (negative for warm-up rounds)


@dataclass(frozen=True)
class Stats:
    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            raise ValueError("no samples")
        return cls(statistics.median(values), min(values), max(values))


@dataclass
class Comparison:
    """The samples of one benchmark: mlyard (subject) against a named peer, per round.

    Samples are seconds, or bytes when ``unit`` is "B" (memory); ``subject_extra`` and ``peer_extra``
    are appended to the figures' cells (a p99, say).
    """

    name: str
    subject: str
    peer: str
    workload: str
    subject_s: list[float] = field(default_factory=list)
    peer_s: list[float] = field(default_factory=list)
    bytes_per_round: int | None = None  # set for throughput benchmarks: MB/s is shown next to times
    notes: list[str] = field(default_factory=list)
    unit: str = "s"  # "s" or "B"
    subject_extra: str = ""
    peer_extra: str = ""

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.subject_s, self.peer_s, strict=True)]

    @property
    def rounds(self) -> int:
        return len(self.ratios)

    def mb_per_s(self, seconds: float) -> float:
        assert self.bytes_per_round is not None
        return self.bytes_per_round / 1e6 / seconds

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "workload": self.workload, "rounds": self.rounds, "notes": self.notes,
            "unit": self.unit,
            "subject": {"label": self.subject, **vars(Stats.of(self.subject_s)), f"samples_{self.unit}": self.subject_s,
                        "extra": self.subject_extra},
            "peer": {"label": self.peer, **vars(Stats.of(self.peer_s)), f"samples_{self.unit}": self.peer_s,
                     "extra": self.peer_extra},
            "ratio": {**vars(Stats.of(self.ratios)), "samples": self.ratios},
        }
        if self.bytes_per_round is not None:
            out["bytes_per_round"] = self.bytes_per_round
            out["subject_mb_per_s_median"] = self.mb_per_s(statistics.median(self.subject_s))
            out["peer_mb_per_s_median"] = self.mb_per_s(statistics.median(self.peer_s))
        return out


def alternate(
    rounds: int,
    subject: Timed,
    peer: Timed,
    *,
    warmup: int = 1,
    before: Hook | None = None,
    after: Hook | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[float], list[float]]:
    """Run ``warmup`` uncounted rounds then ``rounds`` counted ones, each: before, subject, peer, after."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    subject_s: list[float] = []
    peer_s: list[float] = []
    for index in range(-warmup, rounds):
        if before is not None:
            before(index)
        try:
            a = subject()
            b = peer()
        finally:
            if after is not None:
                after(index)
        if index >= 0:
            subject_s.append(a)
            peer_s.append(b)
        if progress is not None:
            label = "warm-up" if index < 0 else f"round {index + 1}/{rounds}"
            progress(f"{label}: mlyard {seconds(a)}, peer {seconds(b)}, ratio {a / b:.2f}")
    return subject_s, peer_s


def seconds(value: float) -> str:
    if value < 0.1:
        return f"{value * 1000:.1f} ms"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def mib(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


def _cell(c: Comparison, samples: Sequence[float], extra: str) -> str:
    s = Stats.of(samples)
    fmt = mib if c.unit == "B" else seconds
    text = f"{fmt(s.median)} [{fmt(s.min)} – {fmt(s.max)}]" if len(samples) > 1 else fmt(s.median)
    if c.bytes_per_round is not None:
        text += f" = {c.mb_per_s(s.median):.0f} MB/s [{c.mb_per_s(s.max):.0f} – {c.mb_per_s(s.min):.0f}]"
    return f"{text}; {extra}" if extra else text


def _ratio(c: Comparison) -> str:
    s = Stats.of(c.ratios)
    return f"{s.median:.2f}× [{s.min:.2f} – {s.max:.2f}]" if c.rounds > 1 else f"{s.median:.2f}×"


COLUMNS = ("Benchmark", "mlyard", "Peer", "Peer figure", "Ratio mlyard/peer", "Rounds")
CAPTION = ("figures: median [min – max] of the counted rounds; ratio: of the per-round ratios (time mlyard / time "
           "peer; resident memory mlyard / peer in the RSS rows)")


def rows(results: Sequence[Comparison]) -> list[tuple[str, ...]]:
    return [(c.name, _cell(c, c.subject_s, c.subject_extra), c.peer, _cell(c, c.peer_s, c.peer_extra), _ratio(c),
             str(c.rounds))
            for c in results]


def print_table(console: Console, results: Sequence[Comparison], title: str) -> None:
    table = Table(title=escape(title), caption=escape(CAPTION), show_lines=True)
    for column in COLUMNS:
        table.add_column(escape(column), overflow="fold")
    for row in rows(results):
        table.add_row(*map(escape, row))
    console.print(table)


def markdown_table(results: Sequence[Comparison]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows(results)]
    return "\n".join(lines) + f"\n\n{CAPTION}."
