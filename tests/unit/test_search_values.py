"""The date ranges the FHIR search index stores: fixed-width UTC text, so text order is time
order (FHIR R4 §3.1.1.4.7: a date stands for the whole range its precision names)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from tether.fhir.search_values import date_range, search_values


@pytest.mark.parametrize(
    ("text", "lo", "hi"),
    [
        ("2020", "2020-01-01T00:00:00.000000", "2020-12-31T23:59:59.999999"),
        ("2020-02", "2020-02-01T00:00:00.000000", "2020-02-29T23:59:59.999999"),
        ("2021-02", "2021-02-01T00:00:00.000000", "2021-02-28T23:59:59.999999"),
        ("2020-05-01", "2020-05-01T00:00:00.000000", "2020-05-01T23:59:59.999999"),
        ("2020-05-01T10:00", "2020-05-01T10:00:00.000000", "2020-05-01T10:00:59.999999"),
        ("2020-05-01T10:00:00Z", "2020-05-01T10:00:00.000000", "2020-05-01T10:00:00.999999"),
        ("2020-05-01T10:00:00.12Z", "2020-05-01T10:00:00.120000", "2020-05-01T10:00:00.129999"),
        (
            "2020-05-01T10:00:00.1234567Z",
            "2020-05-01T10:00:00.123456",
            "2020-05-01T10:00:00.123456",
        ),
        ("2020-05-01T10:00:00", "2020-05-01T10:00:00.000000", "2020-05-01T10:00:00.999999"),
        ("2020-05-01T10:00:00.5+00:00", "2020-05-01T10:00:00.500000", "2020-05-01T10:00:00.599999"),
        ("2020-05-01T10:00:00-00:00", "2020-05-01T10:00:00.000000", "2020-05-01T10:00:00.999999"),
        (
            "2020-05-01T10:00:00.123456Z",
            "2020-05-01T10:00:00.123456",
            "2020-05-01T10:00:00.123456",
        ),
        ("2020-05-01T10:00:00+02:00", "2020-05-01T08:00:00.000000", "2020-05-01T08:00:00.999999"),
        ("2020-05-01T23:30:00-05:30", "2020-05-02T05:00:00.000000", "2020-05-02T05:00:00.999999"),
        # Years before 1000 keep four digits: otherwise "999-…" sorts after "2020-…".
        ("0999-01-01", "0999-01-01T00:00:00.000000", "0999-01-01T23:59:59.999999"),
        ("0001", "0001-01-01T00:00:00.000000", "0001-12-31T23:59:59.999999"),
    ],
)
def test_a_date_stands_for_its_whole_range(text: str, lo: str, hi: str) -> None:
    assert date_range(text) == (lo, hi)


@pytest.mark.parametrize(
    "text",
    [
        "2020-13",
        "2020-00",
        "2020-02-30",
        "2020-05-01T25:00:00Z",
        "2020-05-01T24:00:00Z",
        "2020-02-30T10:00:00Z",
        "2020-05-01T10:61:00",
        "2020-05-01T10:00:60.5Z",
        "0000-01-01T00:00:00Z",
        "20200501",
        "May 2020",
    ],
)
def test_what_is_not_a_date_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a FHIR date|out of range|must be in"):
        date_range(text)


def test_a_token_with_a_nul_is_not_indexed() -> None:
    """PostgreSQL's text refuses a NUL and SQLite's JSON functions cut a string at it: such a
    code (or system) is left out of the index rather than stored as another code."""
    observation = {
        "code": {
            "coding": [
                {"system": "http://loinc.org", "code": "12\x0034"},
                {"system": "http://lo\x00inc.org", "code": "1234-5"},
                {"system": "http://loinc.org", "code": "1234-5"},
            ]
        },
    }
    assert search_values(observation, "Observation") == [
        ("code", "http://loinc.org", "1234-5", None, None)
    ]
    assert search_values({"status": "act\x00ive"}, "MedicationRequest") == []
    assert search_values({"status": "active"}, "MedicationRequest") == [
        ("status", None, "active", None, None)
    ]


def test_a_zone_that_leaves_the_calendar_is_not_indexed() -> None:
    with pytest.raises(OverflowError):
        date_range("0001-01-01T00:30:00+02:00")
    observation = {"effectiveDateTime": "0001-01-01T00:30:00+02:00", "code": {"coding": []}}
    assert search_values(observation, "Observation") == []


def test_an_observation_is_found_by_its_codes_and_its_period() -> None:
    observation = {
        "code": {"coding": [{"system": "http://loinc.org", "code": "1234-5"}, {"code": "x"}]},
        "category": [{"coding": [{"system": "s", "code": "vital-signs"}]}, "junk"],
        "effectivePeriod": {"start": "2020-05-01"},
    }
    assert search_values(observation, "Observation") == [
        ("code", "http://loinc.org", "1234-5", None, None),
        ("code", None, "x", None, None),
        ("category", "s", "vital-signs", None, None),
        ("date", None, None, "2020-05-01T00:00:00.000000", "9999-12-31T23:59:59.999999"),
    ]


def test_utc_times_agree_with_calendar_arithmetic() -> None:
    """The UTC fast path (text padded, no datetime arithmetic) gives what the calendar does."""
    rng = random.Random(13)
    for _ in range(2000):
        moment = datetime(2000, 1, 1) + timedelta(seconds=rng.randrange(40 * 365 * 86400))
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 8)))
        zone = rng.choice(["", "Z", "+00:00", "-00:00"])
        text = moment.strftime("%Y-%m-%dT%H:%M:%S") + ("." + digits if digits else "") + zone
        kept = digits[:6]
        lo = moment.replace(microsecond=int(kept.ljust(6, "0") or 0))
        hi = lo + timedelta(microseconds=10 ** (6 - len(kept)) - 1)
        assert date_range(text) == (
            lo.isoformat(timespec="microseconds"),
            hi.isoformat(timespec="microseconds"),
        ), text
