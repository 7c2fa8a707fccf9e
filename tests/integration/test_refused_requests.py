"""Requests without a valid token cannot fill the store: the audit trail lists a few and counts the rest."""

from __future__ import annotations

import sqlite3

import httpx

from mlyard.store.refusals import MAX_PATH, PER_CLIENT
from tests.support.server import ServerProcess

REFUSED = 2000


def test_thousands_of_refused_requests_add_a_bounded_audit_trail(fresh_server: ServerProcess) -> None:
    long_path = "/api/2.0/mlflow/runs/create/" + "x" * 1900
    with httpx.Client(base_url=fresh_server.url, headers={"Authorization": "Bearer not-a-token"}) as client:
        for i in range(REFUSED):
            r = client.post(long_path if i % 2 else "/api/v1/data", json={})
            assert r.status_code == 401
        ok = client.put("/api/v1/datastores/workspaceblobstore/paths/after.txt", content=b"1",
                        headers=fresh_server.headers())
        assert ok.status_code == 201  # a client with a token is audited as before
    fresh_server.stop()  # the counts still held are written at shutdown

    with sqlite3.connect(fresh_server.workspace / "mlyard.db") as conn:
        rows = conn.execute("SELECT actor, action, resource, status FROM audit_log ORDER BY id").fetchall()
    refused = [row for row in rows if row[0] == "anonymous"]
    listed = [row for row in refused if row[1] == "POST"]
    summaries = [row for row in refused if row[1] == "REFUSED"]
    assert len(listed) <= 2 * PER_CLIENT and all(len(row[2]) <= MAX_PATH and row[3] == 401 for row in listed)
    assert 1 <= len(summaries) <= 2  # the requests may straddle a minute
    assert sum(int(row[2].split()[0]) for row in summaries) + len(listed) == REFUSED
    assert "127.0.0.1" in summaries[0][2]
    assert sum(len(row[2]) for row in refused) < 10_000  # not REFUSED x 2,000 characters
    assert ("admin", "PUT", "/api/v1/datastores/workspaceblobstore/paths/after.txt", 201) in rows
