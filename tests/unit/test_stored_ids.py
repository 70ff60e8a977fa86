"""Operation ids in the store's compact form (core/stored_ids.py)."""

from __future__ import annotations

import pytest

from core.names import new_operation_id
from core.stored_ids import stored_id, wire_id


def test_a_uuid_is_stored_in_22_characters_and_comes_back_whole() -> None:
    for _ in range(100):
        operation_id = new_operation_id()
        stored = stored_id(operation_id)
        assert len(stored) == 22
        assert wire_id(stored) == operation_id
        assert stored_id(stored) == stored  # the stored form is its own stored form


@pytest.mark.parametrize("other", ["x", "", "*", "0123456789abcdef",
                                   "7F08617C-1385-4DAD-92C1-17FCE13A9E2B"])
def test_an_id_that_is_not_a_canonical_uuid_is_kept_as_it_is(other: str) -> None:
    assert stored_id(other) == other
    assert wire_id(stored_id(other)) == other
