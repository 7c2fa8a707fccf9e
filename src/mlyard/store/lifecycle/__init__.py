"""Workspace lifecycle: check, clean up (gc), back up and restore, and move a workspace to PostgreSQL.

Everything here works on a workspace folder and its store directly (``mlyard workspace ...``), never
through the HTTP API; see docs/lifecycle.md.
"""
