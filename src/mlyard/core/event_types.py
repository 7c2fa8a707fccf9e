"""The catalogue of event types of the event log (``store/events.py`` writes them).

It lives in ``core`` so that everything that names event types can check them: the event log
itself, and spec files (a trigger's ``event.type``) that ``mlyard validate`` reads without a store.
"""

from __future__ import annotations

# entity.action -> what it means; subjects name the resource
EVENT_TYPES: dict[str, str] = {
    "run.status_changed": "an MLflow run changed status (subject: the run id)",
    "job.status_changed": "a job or pipeline step changed status (subject: the job name)",
    "data.version_created": "a data asset version was created (subject: name:version)",
    "model.created": "a registered model was created (subject: the name)",
    "model.deleted": "a registered model was deleted (subject: the name)",
    "model.version_created": "a model version was created (subject: name:version)",
    "model.version_updated": "a model version's description, tags or stage changed (subject: name:version)",
    "model.version_deleted": "a model version was deleted (subject: name:version)",
    "model.alias_moved": "an alias was set, moved or removed (subject: name@alias)",
    "online_endpoint.created": "an online endpoint was created (subject: the endpoint)",
    "online_endpoint.deleted": "an online endpoint was deleted (subject: the endpoint)",
    "online_endpoint.traffic_changed": "an online endpoint's traffic or mirror traffic changed (subject: the endpoint)",
    "online_deployment.created": "an online deployment was created (subject: endpoint/deployment)",
    "online_deployment.updated": "an online deployment was updated (subject: endpoint/deployment)",
    "online_deployment.deleted": "an online deployment was deleted (subject: endpoint/deployment)",
    "batch_deployment.created": "a batch deployment was created (subject: endpoint/deployment)",
    "batch_deployment.updated": "a batch deployment was updated (subject: endpoint/deployment)",
    "batch_deployment.deleted": "a batch deployment was deleted (subject: endpoint/deployment)",
    "monitor.signal_alerted": "a monitor signal crossed its threshold (subject: monitor/signal)",
    "schedule.fired": "a schedule fired and created its job (subject: the schedule)",
    "trigger.fired": "a trigger matched an event and created its job (subject: the trigger)",
}


def event_entities() -> list[str]:
    """The entities of the catalogue (``model``, ``job``...), for ``<entity>.*`` prefixes."""
    return sorted({name.split(".", 1)[0] for name in EVENT_TYPES})
