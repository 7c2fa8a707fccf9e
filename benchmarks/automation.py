"""Automation: events appended per second, and event-to-webhook latency under a burst, against their floors.

    .venv/bin/python benchmarks/automation.py --quick        # a check: 1 round of 1,000 events
    .venv/bin/python benchmarks/automation.py                # 5 rounds of 10,000 events (make bench)

Everything runs on a fresh SQLite store migrated to the newest schema, in this process, as the server runs it:

* **Appends**: ``--events`` events through ``append_event`` (type check, insert, the commit signal), in
  transactions of 100 and one per transaction. The floor: the same rows inserted by a plain SQLAlchemy
  ``insert`` per row in the same transactions.
* **Burst**: one webhook (mlyard's flavour, signed) and the server's dispatcher (woken by the log's signal);
  ``--events`` events appended at once (transactions of 100); latency is each POST's arrival at the receiver
  minus its event's time, drain is the burst's start to the last arrival. The floor: an httpx client posting
  the same signed bodies, in order over one connection, straight to the same receiver, all known at the
  burst's start. The receiver (``webhook_receiver.py``: FastAPI under uvicorn, its own process) checks each
  signature and notes the arrival time.
* **Lone events**: 200 events, each appended once the previous one arrived: the wake-up path. The floor: one
  signed POST, timed from just before it is sent.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from harness import Comparison, alternate, markdown_table, print_table
from procs import PYTHON, clean_env, package_version
from sqlalchemy import insert

from mlyard.automation.delivery import Sender, delivery_id, headers, mlyard_body
from mlyard.automation.dispatcher import WebhookDispatcher
from mlyard.automation.webhooks import WebhookService, pending_count
from mlyard.core.timeutil import now_ms
from mlyard.store.db import Database
from mlyard.store.events import append_event
from mlyard.store.migrate import upgrade
from mlyard.store.tracking_schema import Event

HERE = Path(__file__).resolve().parent
Progress = Callable[[str], None]
SECRET = "bench-secret"
TYPE = "model.version_created"
PAYLOAD = {"run_id": "0123456789abcdef", "source": "runs:/0123456789abcdef/model", "tags": {}, "description": None}
LONE = 200


class NoRegistry:
    """The burst's events are mlyard-flavoured: nothing is read from the registry."""

    def model(self, name: str) -> None:
        return None

    def version(self, name: str, version: str) -> None:
        return None


def _store(path: Path) -> Database:
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    return db


def _append(db: Database, count: int, per_transaction: int, start: int = 0) -> None:
    for first in range(start, start + count, per_transaction):
        def write(s: Any, first: int = first) -> None:
            for i in range(first, min(first + per_transaction, start + count)):
                append_event(s, TYPE, f"bench:{i}", "bench", **PAYLOAD)

        db.run_in_transaction(write)


def _insert_plain(db: Database, count: int, per_transaction: int) -> None:
    for first in range(0, count, per_transaction):
        def write(s: Any, first: int = first) -> None:
            conn = s.connection()
            for i in range(first, min(first + per_transaction, count)):
                conn.execute(insert(Event), {"at": now_ms(), "type": TYPE, "subject": f"bench:{i}", "actor": "bench",
                                             "payload": PAYLOAD})

        db.run_in_transaction(write)


def appends(base: Path, rounds: int, count: int, per_transaction: int, progress: Progress) -> Comparison:
    made = iter(range(10**6))

    def timed(fn: Callable[[Database, int, int], None]) -> float:
        db = _store(base / f"append-{next(made)}.db")
        try:
            start = time.perf_counter()
            fn(db, count, per_transaction)
            return time.perf_counter() - start
        finally:
            db.dispose()

    mine, floor = alternate(rounds, lambda: timed(_append), lambda: timed(_insert_plain),
                            progress=lambda line: progress(f"appends, {per_transaction} per transaction: {line}"))
    med = statistics.median
    return Comparison(
        name=f"Event log: {count:,} appends, {per_transaction} per transaction (SQLite)",
        subject="append_event (type check, insert, commit signal)",
        peer="plain SQLAlchemy insert of the same rows, same transactions",
        workload=f"{count:,} events of type {TYPE} with a 4-field payload into a fresh SQLite store (WAL, "
                 "synchronous=NORMAL)",
        subject_s=mine, peer_s=floor, subject_extra=f"{count / med(mine):,.0f} events/s",
        peer_extra=f"{count / med(floor):,.0f} rows/s")


class Receiver:
    """``webhook_receiver.py`` in its own process."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([PYTHON, str(HERE / "webhook_receiver.py"), str(port), SECRET], env=clean_env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.http = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.http.post("/reset").raise_for_status()
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the benchmark's webhook receiver did not start")

    def receipts(self) -> list[tuple[int, int, float]]:
        body = self.http.get("/receipts").json()
        if body["refused"]:
            raise RuntimeError(f"the receiver refused {body['refused']} deliveries: bad signatures")
        return [tuple(r) for r in body["receipts"]]  # type: ignore[misc]

    def wait(self, count: int, timeout: float = 600, poll_s: float = 0.05) -> list[tuple[int, int, float]]:
        """The receipts once ``count`` arrived (asking only how many meanwhile: cheap for both processes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.http.get("/count").json()
            if body["refused"]:
                raise RuntimeError(f"the receiver refused {body['refused']} deliveries: bad signatures")
            if body["count"] >= count:
                return self.receipts()
            time.sleep(poll_s)
        raise RuntimeError(f"only {len(self.receipts())} of {count} deliveries arrived within {timeout} s")

    def close(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(10)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Burst:
    """The dispatcher and the floor client, delivering to one receiver."""

    def __init__(self, base: Path, receiver: Receiver) -> None:
        self.receiver = receiver
        self.db = _store(base / "burst.db")
        self.sender = Sender(timeout_s=10, backoff_s=1, max_attempts=3)
        hooks = WebhookService(self.db, self.sender)
        self.hook = hooks.create(name="bench", url=f"{receiver.url}/hook", events=[TYPE], secret=SECRET, actor="bench")
        self.dispatcher = WebhookDispatcher(self.db, self.sender, NoRegistry())
        self.dispatcher.start()
        self.floor_http = httpx.Client(timeout=10)
        self.next_subject = 0
        self.latencies: dict[str, list[float]] = {"mlyard": [], "floor": [], "mlyard lone": [], "floor lone": []}

    def _settle(self) -> None:
        while pending_count(self.db, self.hook.id):
            time.sleep(0.01)

    def mlyard(self, count: int, counted: bool) -> float:
        self.receiver.http.post("/reset")
        start = time.time()
        _append(self.db, count, 100, self.next_subject)
        self.next_subject += count
        got = self.receiver.wait(count)
        self._settle()
        if counted:
            self.latencies["mlyard"] += [arrived * 1000 - at for _, at, arrived in got]
        return max(arrived for _, _, arrived in got) - start

    def _post(self, event_id: int, at: int) -> None:
        body = mlyard_body(event_id=event_id, type=TYPE, subject=f"bench:{event_id}", actor="bench", at=at,
                           payload=PAYLOAD, webhook=self.hook.id)
        sent = headers("mlyard", SECRET, delivery_id(self.hook.id, event_id), TYPE, body, time.time())
        self.floor_http.post(f"{self.receiver.url}/hook", content=body, headers=sent).raise_for_status()

    def floor(self, count: int, counted: bool) -> float:
        self.receiver.http.post("/reset")
        start = time.time()
        at = int(start * 1000)
        for i in range(count):
            self._post(i, at)
        got = self.receiver.wait(count)
        if counted:
            self.latencies["floor"] += [arrived * 1000 - at for _, at, arrived in got]
        return max(arrived for _, _, arrived in got) - start

    def lone(self, count: int) -> None:
        """One event at a time (and one POST at a time for the floor)."""
        self.receiver.http.post("/reset")
        for i in range(count):
            _append(self.db, 1, 1, self.next_subject)
            self.next_subject += 1
            while self.receiver.http.get("/count").json()["count"] < i + 1:
                time.sleep(0.001)
        self.latencies["mlyard lone"] = [arrived * 1000 - at for _, at, arrived in self.receiver.receipts()]
        self._settle()
        self.receiver.http.post("/reset")
        sent_at = []
        for i in range(count):
            sent_at.append(time.time())
            self._post(i, int(sent_at[-1] * 1000))
        self.latencies["floor lone"] = [(arrived - sent) * 1000 for (_, _, arrived), sent
                                        in zip(self.receiver.receipts(), sent_at, strict=True)]

    def close(self) -> None:
        self.dispatcher.stop()
        self.sender.close()
        self.floor_http.close()
        self.db.dispose()


def _ms(values: list[float]) -> str:
    return f"p50 {_percentile(values, 0.5):,.1f} ms, p99 {_percentile(values, 0.99):,.1f} ms"


def burst(base: Path, rounds: int, count: int, port: int, progress: Progress) -> list[Comparison]:
    receiver = Receiver(port)
    try:
        b = Burst(base, receiver)
        try:
            counted = iter([False] + [True] * rounds)
            flags: list[bool] = []

            def before(index: int) -> None:
                flags.append(next(counted))

            mine, floor = alternate(rounds, lambda: b.mlyard(count, flags[-1]), lambda: b.floor(count, flags[-1]),
                                    before=before, progress=lambda line: progress(f"burst of {count:,}: {line}"))
            b.lone(LONE)
        finally:
            b.close()
    finally:
        receiver.close()
    lat = b.latencies
    med = statistics.median
    workload = (f"a burst of {count:,} events (appended in transactions of 100) to one signed mlyard-flavour "
                "webhook; the receiver is a FastAPI endpoint under uvicorn (its own process) that checks each "
                "signature")
    note = ("deliveries to one webhook go one at a time, in event order (a retry holds back the later events), so "
            "under a burst the latency is mostly queueing: p50 is about half the drain time")
    return [
        Comparison(name=f"Webhooks: burst of {count:,} events, event to receiver",
                   subject="mlyard dispatcher (enqueue, sign, POST, record each attempt)",
                   peer="floor: httpx client posting the same signed bodies in order, one connection",
                   workload=workload, subject_s=mine, peer_s=floor,
                   subject_extra=f"{count / med(mine):,.0f} deliveries/s; latency {_ms(lat['mlyard'])}",
                   peer_extra=f"{count / med(floor):,.0f} POSTs/s; latency {_ms(lat['floor'])}", notes=[note]),
        Comparison(name=f"Webhooks: {LONE} lone events, event to receiver",
                   subject="mlyard dispatcher woken by the event log's signal",
                   peer="floor: one signed httpx POST",
                   workload=f"{LONE} events, each appended once the previous one arrived",
                   subject_s=[med(lat["mlyard lone"]) / 1000], peer_s=[med(lat["floor lone"]) / 1000],
                   subject_extra=_ms(lat["mlyard lone"]), peer_extra=_ms(lat["floor lone"])),
    ]


def run(rounds: int, progress: Progress, opts: argparse.Namespace) -> list[Comparison]:
    base = Path(tempfile.mkdtemp(prefix="mlyard-bench-automation-"))
    try:
        results = [appends(base, rounds, opts.events, 100, progress),
                   appends(base, rounds, opts.events, 1, progress)]
        results += burst(base, rounds, opts.events, opts.port, progress)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    from machine import describe, summary_line
    from rich.console import Console

    parser = argparse.ArgumentParser(description="mlyard's event log and webhooks against their floors.")
    parser.add_argument("--quick", action="store_true", help="1 round of 1,000 events")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=10_000, help="events per round (default 10000)")
    parser.add_argument("--port", type=int, default=5791, help="the receiver's port (default 5791)")
    parser.add_argument("--results", type=Path, default=HERE / ".results")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.events = 1, 1_000
    console = Console(width=max(Console().width, 160))
    info = describe()
    console.print(f"[bold]automation[/bold]: 1 warm-up + {args.rounds} alternating rounds · {summary_line(info)}")
    results = run(args.rounds, lambda line: console.print(f"  automation {line}", highlight=False, markup=False),
                  args)
    title = (f"mlyard automation vs floors · {info['date']} · commit {info['commit']} · "
             f"mlyard {package_version('mlyard')}")
    print_table(console, results, title=title)
    for c in results:
        console.print("; ".join([f"• {c.name}: mlyard = {c.subject}", f"peer = {c.peer}", c.workload, *c.notes]),
                      highlight=False, markup=False)
    args.results.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "results": [c.to_dict() for c in results]}
    (args.results / "automation.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.results / "automation.md").write_text(f"{summary_line(info)}\n\n{markdown_table(results)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
