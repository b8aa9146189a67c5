"""The checks a searchset page passes before any of it is stored (tether.sync.checks)."""

from __future__ import annotations

import orjson

from tether.sync.checks import prepare_page, prepare_resource


def _page(*resources: dict[str, object]) -> bytes:
    entries = [{"resource": {"resourceType": "Observation", **r}} for r in resources]
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries})


def _prepare(body: bytes):  # type: ignore[no-untyped-def]
    return prepare_page(body, rtype="Observation", patient_id="p1", source="s")


def test_an_id_with_a_nul_fails_the_page_and_nothing_of_it_is_kept() -> None:
    """A NUL is refused by PostgreSQL's text and cut short by SQLite's JSON functions, so an
    id holding one would store (or index) another resource's id: the page is invalid."""
    good = {"id": "a", "subject": {"reference": "Patient/p1"}}
    page = _prepare(_page(good, {"id": "a\x00b", "subject": {"reference": "Patient/p1"}}))
    assert page.error == ("INVALID_RESPONSE", "a Observation without a valid id")
    assert page.rows == []
    assert _prepare(_page(good)).rows[0][1] == "a"
    assert _prepare(_page({"id": "x" * 64})).error is None
    assert _prepare(_page({"id": "x" * 65})).error is not None


def test_a_resource_read_by_an_id_with_a_nul_is_not_stored() -> None:
    body = orjson.dumps({"resourceType": "Practitioner", "id": "d\x00r"})
    row, why = prepare_resource(body, rtype="Practitioner", rid="d\x00r", source="s")
    assert row is None and why
    body = orjson.dumps({"resourceType": "Practitioner", "id": "dr"})
    row, why = prepare_resource(body, rtype="Practitioner", rid="dr", source="s")
    assert row is not None and row[1] == "dr" and why == ""
