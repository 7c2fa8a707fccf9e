"""Alerted signals of a monitor run: ``monitor.signal_alerted`` events and ``alert_notification.emails``.

The monitor job posts its alerted signals to ``POST /api/v1/monitors/{monitor}/runs/{job}/alerts`` with the step
token the runner gives it (``MLYARD_URL``/``MLYARD_TOKEN``), as soon as the engine has computed them. Why the job
posts rather than the server reading ``signals.json`` when the job ends: the alert is published while the run is
still going (a long report or MLflow logging does not hold it up), the job's log shows the server's answer (events
written, e-mail sent or why not), and a failure to record an alert fails the job visibly instead of being lost in a
server-side hook. It is idempotent: a signal already recorded for the run is not recorded twice, so the job can
retry the call.

The server checks what it is told against what it knows: the job must be a run of that monitor that has not ended,
and each signal one of its definition's signals with ``alert_enabled``. The e-mail goes through SMTP when
``MLYARD_SMTP_HOST`` is set, to the definition's ``alert_notification.emails`` (never to addresses the job names);
without it the event records "not sent: no SMTP configured". Events are appended in one transaction.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from mlyard.automation.monitors import MonitorService, definition_of
from mlyard.core.errors import ConflictError, InvalidRequestError
from mlyard.store.db import Database
from mlyard.store.events import append_event, read_events
from mlyard.store.jobs_schema import TERMINAL
from mlyard.store.tracking_schema import Event

log = logging.getLogger("mlyard.monitors")
ALERTED = "monitor.signal_alerted"
NO_SMTP = "not sent: no SMTP configured (set MLYARD_SMTP_HOST)"


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    user: str | None = None
    password: str | None = None
    sender: str = "mlyard@localhost"
    starttls: bool = False
    timeout_s: float = 10.0


@dataclass(frozen=True)
class AlertedSignal:
    """One alerted signal as the job reports it."""

    signal: str
    breaches: list[dict[str, Any]]


class AlertRecorder:
    """Records a run's alerted signals as events, and mails them when SMTP is configured."""

    def __init__(self, db: Database, monitors: MonitorService, smtp: SmtpConfig | None = None) -> None:
        self._db = db
        self._monitors = monitors
        self.smtp = smtp

    def record(self, monitor: str, job: str, alerted: list[AlertedSignal], actor: str) -> dict[str, Any]:
        """Append one event per newly alerted signal; returns the events, the mail outcome and what was known."""
        row = self._monitors.run_of(monitor, job)
        if row.status in TERMINAL:
            raise ConflictError(f"run {job} of monitor {monitor} has ended ({row.status}); alerts are posted by the "
                                "running job", details={"monitor": monitor, "job": job})
        create_monitor = definition_of(row).get("create_monitor") or {}
        signals = create_monitor.get("monitoring_signals") or {}
        for item in alerted:
            known = signals.get(item.signal)
            if known is None:
                raise InvalidRequestError(f"monitor {monitor} has no signal {item.signal!r} (signals: "
                                          f"{', '.join(signals) or 'none'})", details={"field": "signals"})
            if not item.breaches:
                raise InvalidRequestError(f"signal {item.signal}: an alert lists the metrics that crossed their "
                                          "threshold (breaches)", details={"field": "breaches"})
        enabled = [a for a in alerted if signals[a.signal].get("alert_enabled", True)]
        muted = [a.signal for a in alerted if a not in enabled]
        with self._db.session() as s:
            done = {e.subject.split("/", 1)[1] for e in self._recorded(s, monitor, job)}
        fresh = [a for a in enabled if a.signal not in done]
        emails = list((create_monitor.get("alert_notification") or {}).get("emails") or [])
        mail = self._mail(monitor, job, fresh, emails, signals) if fresh and emails else None

        def write(s: Any) -> None:
            again = {e.subject.split("/", 1)[1] for e in self._recorded(s, monitor, job)}
            for item in fresh:
                if item.signal in again:
                    continue
                payload: dict[str, Any] = {
                    "monitor": monitor, "signal": item.signal, "signal_type": signals[item.signal].get("type"),
                    "job": job, "metrics": item.breaches,
                    "target": (create_monitor.get("monitoring_target") or {}).get("endpoint_deployment_id")}
                if emails:
                    payload["emails"] = {"to": emails, "status": mail}
                append_event(s, ALERTED, f"{monitor}/{item.signal}", actor, **payload)

        if fresh:
            self._db.run_in_transaction(write)
        with self._db.session() as s:
            ids = [e.id for e in self._recorded(s, monitor, job) if e.subject.split("/", 1)[1] not in done]
        return {"events": ids, "recorded": [a.signal for a in fresh], "already_recorded": sorted(done),
                "alert_disabled": muted, "email": mail if emails else "no alert_notification.emails"}

    @staticmethod
    def _recorded(s: Any, monitor: str, job: str) -> list[Event]:
        events = read_events(s, types=[ALERTED], subject=monitor, limit=1000, newest=True)
        return [e for e in events if (e.payload or {}).get("job") == job and "/" in e.subject]

    def _mail(self, monitor: str, job: str, alerted: list[AlertedSignal], emails: list[str],
              signals: dict[str, Any]) -> str:
        if self.smtp is None:
            return NO_SMTP
        message = EmailMessage()
        message["Subject"] = f"[mlyard] monitor {monitor}: {len(alerted)} signal(s) alerted"
        message["From"] = self.smtp.sender
        message["To"] = ", ".join(emails)
        lines = [f"Monitor {monitor}, run {job}: these signals crossed their thresholds.", ""]
        for item in alerted:
            lines.append(f"{item.signal} ({signals[item.signal].get('type')}):")
            for b in item.breaches:
                group = f"{b.get('group')}: " if b.get("group") else ""
                lines.append(f"  {group}{b.get('metric_name')} = {b.get('metric_value')} "
                             f"(threshold {b.get('threshold_value')})")
        lines += ["", f"Details: mlyard monitor show -n {monitor} --run {job}; the report is report.html in the "
                  f"run's output (mlyard job download -n {job} --output-name signals)."]
        message.set_content("\n".join(lines) + "\n")
        try:
            with smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=self.smtp.timeout_s) as client:
                if self.smtp.starttls:
                    client.starttls(context=ssl.create_default_context())
                if self.smtp.user:
                    client.login(self.smtp.user, self.smtp.password or "")
                client.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("monitor %s run %s: the alert e-mail was not sent: %s", monitor, job, exc)
            return f"not sent: {self.smtp.host}:{self.smtp.port} answered {exc.__class__.__name__}: {exc}"
        return f"sent to {', '.join(emails)}"
