"""Automation: schedules, the event log's readers (the live stream), webhooks and triggers that start jobs."""
