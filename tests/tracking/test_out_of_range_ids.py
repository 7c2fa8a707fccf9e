"""Ids and filter values beyond what the store's columns hold: found nowhere, or a 400; never a store error.

Experiment ids are 32-bit integers in the store (PostgreSQL's INTEGER), timestamps 64-bit. PostgreSQL
refuses to bind a larger value at all, SQLite a value beyond 64 bits; so each is settled before the query.
"""

from __future__ import annotations

import pytest

from mlyard.core.errors import InvalidRequestError, NotFoundError
from mlyard.store.db import Database
from mlyard.tracking.experiments import ExperimentService
from mlyard.tracking.logged_models import LoggedModels
from mlyard.tracking.search import RunSearch


def test_an_experiment_id_beyond_32_bits_is_found_nowhere(db: Database) -> None:
    experiments = ExperimentService(db)
    with pytest.raises(NotFoundError):
        experiments.get(str(2**31))
    with pytest.raises(InvalidRequestError, match="beyond a signed 64-bit integer"):
        experiments.get(str(2**70))
    assert RunSearch(db).search([str(2**31), "0"], None, "ALL", 10, None, None).items == []
    assert LoggedModels(db).search([str(2**31)], None, 10, None).items == []
    found = experiments.search("ALL", f"experiment_id = '{2**31}'", None, 10, None).items
    assert found == []
    found = experiments.search("ALL", f"experiment_id IN ('0', '{2**40}')", None, 10, None).items
    assert [v.row.id for v in found] == [0]


@pytest.mark.parametrize("filter_text", [f"attributes.start_time > {2**70}", "attributes.end_time < -1e400"])
def test_a_time_beyond_64_bits_in_a_filter_is_an_invalid_request(db: Database, filter_text: str) -> None:
    with pytest.raises(InvalidRequestError, match="at most 64 bits"):
        RunSearch(db).search(["0"], filter_text, "ALL", 10, None, None)
    with pytest.raises(InvalidRequestError, match="at most 64 bits"):
        ExperimentService(db).search("ALL", f"creation_time > {2**70}", None, 10, None)
