"""The scheduler: mini-batches to idle workers, retries, isolation of bad files, thresholds.

Rules (Azure's §7.2-7.3, and where mlyard goes further):

* A mini-batch attempt fails when ``run()`` raises, the worker dies, or it runs past ``timeout`` (the worker is
  killed and replaced; ``init()`` runs again). It is retried up to ``max_retries`` times.
* A mini-batch of several files whose attempts are spent is *isolated*: each of its files is scored alone, once,
  so the failures name exactly the bad files and the good ones still produce rows (Azure fails them all).
* A file that fails for good counts toward ``error_threshold``; a mini-batch with a failed file counts toward
  ``mini_batch_error_threshold``. Past either, no new mini-batch starts, running ones are killed, the run fails.
* A no-code worker reports per-file failures itself; they fail only those files, without retries.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from mlyard.serving.batch.inputs import name_some
from mlyard.serving.batch.outputs import Parts
from mlyard.serving.batch.pool import Done, Event, Exited, Failed, InitFailed, Ready, Task, WorkerPool
from mlyard.serving.batch.progress import FileFailure, Reporter

POLL_S = 0.5  # longest wait for events when no deadline is nearer
IDLE_RESTARTS = 3  # restarts per worker slot of a worker that died while idle, before giving up on the slot


@dataclass
class Settings:
    """The engine's share of the run options."""

    max_retries: int = 3
    timeout: float = 30.0
    error_threshold: int = -1
    mini_batch_error_threshold: int = -1
    append_row: bool = True
    nocode: bool = False


@dataclass
class Unit:
    """A piece of work: a whole mini-batch, or (``sub`` set) one of its files scored alone."""

    index: int
    sub: int | None
    files: tuple[str, ...]
    max_attempts: int
    prior_attempts: int = 0
    attempts: int = 0


@dataclass
class Running:
    unit: Unit
    task: int
    deadline: float


class Engine:
    """Runs mini-batches on a :class:`WorkerPool` until all are done or a threshold stops the run.

    Args:
        pool: the workers.
        settings: retries, timeout, thresholds.
        parts: where attempts write their rows (None with summary_only).
        reporter: counters and progress output.
    """

    def __init__(self, pool: WorkerPool, settings: Settings, parts: Parts | None, reporter: Reporter) -> None:
        self.pool = pool
        self.settings = settings
        self.parts = parts
        self.reporter = reporter
        self.state = reporter.state
        self.queue: deque[Unit] = deque()
        self.idle: set[int] = set()
        self.running: dict[int, Running] = {}
        self.open_units: dict[int, int] = {}
        self.batch_has_failure: set[int] = set()
        self.retried: set[int] = set()
        self.alive = pool.size
        self.init_errors: list[str] = []
        self.idle_restarts: dict[int, int] = {}
        self.stop_reason: str | None = None
        self._next_task = 0
        self._changed = False
        self._reported = 0  # workers that reported Ready or InitFailed since the start

    def run(self, batches: list[tuple[str, ...]]) -> None:
        """Score every mini-batch; the outcome is in the reporter's state (``completed`` or ``failed``)."""
        attempts = 1 + self.settings.max_retries
        self.queue.extend(Unit(index, None, files, attempts) for index, files in enumerate(batches))
        self.open_units = {index: 1 for index in range(len(batches))}
        self.pool.start()
        try:
            while self.running or (self.queue and self.stop_reason is None):
                if self.stop_reason is None:
                    self._dispatch()
                if self.alive == 0:
                    self._stop(self._no_workers())
                    break
                self._changed = False
                for event in self.pool.poll(self._wait()):
                    self._handle(event)
                self._expire()
                self.reporter.tick(self._changed)
            for worker in list(self.running):  # a threshold stopped the run: abandon what is running
                self.pool.kill(worker)
        except BaseException:  # cancelled (SIGTERM, Ctrl-C): nothing is waited for
            for worker in range(self.pool.size):
                self.pool.kill(worker)
            raise
        finally:
            self.pool.close()
        self.state.state = "failed" if self.stop_reason else "completed"
        self.state.reason = self.stop_reason

    def _dispatch(self) -> None:
        while self.queue and self.idle:
            worker = min(self.idle)
            self.idle.discard(worker)
            unit = self.queue.popleft()
            self._next_task += 1
            part = None
            if self.parts is not None:
                part = self.parts.name(unit.index, unit.sub, self._next_task)
            self.running[worker] = Running(unit, self._next_task, time.monotonic() + self.settings.timeout)
            label = f"mini-batch {unit.index}" + ("" if unit.sub is None else f", file {unit.sub} alone")
            self.pool.submit(worker, Task(self._next_task, unit.files, part, label))

    def _wait(self) -> float:
        if not self.running:
            return POLL_S
        nearest = min(r.deadline for r in self.running.values())
        return max(0.0, min(POLL_S, nearest - time.monotonic()))

    def _handle(self, event: Event) -> None:
        if isinstance(event, Ready | InitFailed):
            self._reported += 1
            if self._reported == self.pool.size:
                ready = self.pool.size - len(self.init_errors) - isinstance(event, InitFailed)
                self.reporter.say(f"{ready} of {self.pool.size} worker(s) ready after {self.state.elapsed:.1f} s")
        if isinstance(event, Ready):
            self.idle.add(event.worker)
        elif isinstance(event, InitFailed):
            self.alive -= 1
            self.init_errors.append(event.error)
            self.reporter.say(f"worker {event.worker} could not start: {event.error}")
        elif isinstance(event, Done | Failed):
            running = self.running.pop(event.worker, None)
            self.idle.add(event.worker)
            if running is None or running.task != event.task:
                return
            if isinstance(event, Done):
                self._succeeded(running, event)
            else:
                self._attempt_failed(running.unit, event.error)
        elif isinstance(event, Exited):
            running = self.running.pop(event.worker, None)
            self.idle.discard(event.worker)
            if running is not None:
                self.reporter.say(f"worker {event.worker} {event.reason.removeprefix('the worker ')} while scoring "
                                  f"{_describe(running.unit)}; it is restarted")
                self._attempt_failed(running.unit, f"{event.reason} while scoring this mini-batch")
                self.pool.restart(event.worker)
            elif self.idle_restarts.get(event.worker, 0) < IDLE_RESTARTS:
                self.idle_restarts[event.worker] = self.idle_restarts.get(event.worker, 0) + 1
                self.reporter.say(f"worker {event.worker} {event.reason.removeprefix('the worker ')} while idle; "
                                  "it is restarted")
                self.pool.restart(event.worker)
            else:
                self.alive -= 1
                self.init_errors.append(event.reason)

    def _expire(self) -> None:
        now = time.monotonic()
        for worker, running in list(self.running.items()):
            if running.deadline <= now:
                del self.running[worker]
                self.reporter.say(f"{_describe(running.unit)} ran past the timeout of {self.settings.timeout:g} s; "
                                  f"worker {worker} is killed and replaced")
                self.pool.restart(worker)
                self._attempt_failed(running.unit, f"timed out after {self.settings.timeout:g} s (--timeout, "
                                                   "retry_settings.timeout)")

    def _succeeded(self, running: Running, event: Done) -> None:
        unit = running.unit
        if self.parts is not None:
            part = self.parts.name(unit.index, unit.sub, running.task)
            try:
                self.parts.accept(unit.index, unit.sub, part)
            except FileNotFoundError as exc:
                self._attempt_failed(unit, str(exc))
                return
        self.state.rows += event.rows
        self.state.done_files += len(unit.files)
        for file, reason in event.failed:
            self._file_failed(unit.index, file, reason, unit.prior_attempts + unit.attempts + 1)
        self._unit_finished(unit, failed=bool(event.failed))

    def _attempt_failed(self, unit: Unit, error: str) -> None:
        unit.attempts += 1
        self._changed = True
        if self.stop_reason is not None:  # the run is failing already: the unit is abandoned, not blamed
            return
        if unit.attempts < unit.max_attempts:
            if unit.sub is None:
                self.retried.add(unit.index)
                self.state.retried_batches = len(self.retried)
            self.queue.appendleft(unit)
            return
        if unit.sub is None and len(unit.files) > 1:
            self.reporter.say(f"{_describe(unit)} failed {unit.attempts} time(s), last: {_first_line(error)}; "
                              f"scoring its {len(unit.files)} files one by one to find the failing ones")
            self.open_units[unit.index] += len(unit.files) - 1
            singles = [Unit(unit.index, sub, (file,), 1, unit.attempts) for sub, file in enumerate(unit.files)]
            self.queue.extendleft(reversed(singles))
            return
        self.state.done_files += len(unit.files)
        for file in unit.files:
            self._file_failed(unit.index, file, error, unit.prior_attempts + unit.attempts)
        self._unit_finished(unit, failed=True)

    def _file_failed(self, index: int, file: str, reason: str, attempts: int) -> None:
        self.state.failures.append(FileFailure(file, reason, attempts))
        self.batch_has_failure.add(index)
        threshold = self.settings.error_threshold
        if threshold >= 0 and len(self.state.failures) > threshold and self.stop_reason is None:
            files = [f.file for f in self.state.failures]
            self._stop(f"{len(files)} file(s) failed, more than error_threshold {threshold} allows: "
                       f"{name_some(files)}. The reasons are in the error report and the log above; fix those "
                       "files or the scoring code, or raise error_threshold (-1 tolerates every failure).")

    def _unit_finished(self, unit: Unit, failed: bool) -> None:
        self._changed = True
        self.open_units[unit.index] -= 1
        if self.open_units[unit.index] > 0:
            return
        self.state.done_batches += 1
        if unit.index not in self.batch_has_failure:
            return
        self.state.failed_batches += 1
        threshold = self.settings.mini_batch_error_threshold
        if threshold >= 0 and self.state.failed_batches > threshold and self.stop_reason is None:
            files = [f.file for f in self.state.failures]
            self._stop(f"{self.state.failed_batches} mini-batch(es) failed, more than mini_batch_error_threshold "
                       f"{threshold} allows; their failed files: {name_some(files)}. The reasons are in the error "
                       "report and the log above; fix those files or the scoring code, or raise the threshold.")

    def _stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.reporter.say(f"stopping: {reason}")

    def _no_workers(self) -> str:
        what = "the model could not be loaded" if self.settings.nocode else "init() failed"
        first = self.init_errors[0] if self.init_errors else "no worker started"
        return (f"{what} in every worker ({len(self.init_errors)} attempt(s)); the first error: {first}. The "
                "traceback is in the log above; fix the scoring script's init() or the model, then run again.")


def _describe(unit: Unit) -> str:
    if unit.sub is not None:
        return f"file {unit.files[0]} (mini-batch {unit.index}, scored alone)"
    return f"mini-batch {unit.index} ({len(unit.files)} files from {unit.files[0]})"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[-1] if text.strip() else text
