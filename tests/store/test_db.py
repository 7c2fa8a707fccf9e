"""The metadata store's transactions: a value its column cannot hold is the request's fault, not the store's."""

from __future__ import annotations

import pytest

from mlyard.core.errors import InvalidRequestError
from mlyard.store.db import Database
from mlyard.store.schema import Datastore


def test_a_value_too_long_for_its_column_is_an_invalid_request(db: Database) -> None:
    def write(s: object) -> None:
        s.add(Datastore(name="d" * 300, type="local", root="/tmp/d"))  # type: ignore[attr-defined]

    if db.is_sqlite:  # SQLite does not check lengths
        db.run_in_transaction(write)
        return
    with pytest.raises(InvalidRequestError, match="does not fit the metadata store: value too long"):
        db.run_in_transaction(write)
