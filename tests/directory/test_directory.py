"""The directory file is validated entry by entry; search finds sources by word, type and place."""

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tether.connections.retirement import import_directory
from tether.directory.schema import BUNDLED_DIRECTORY, load_file
from tether.directory.service import parse_near, search_data_sources
from tether.domain import SourceType
from tether.errors import InvalidRequest
from tether.runtime import Runtime
from tether.store.models import DataSource


def _source(i: int, **extra) -> dict:
    entry = {
        "id": f"src-{i}",
        "name": f"Clinic {i}",
        "type": "CLINICAL",
        "fhir_base_url": "https://fhir.example.test/r4",
        "oauth": {"client_id": "c", "client_secret": "s3cret-client"},
    }
    entry.update(extra)
    return entry


def test_bundled_directory_is_valid() -> None:
    ids = {entry.id for entry in load_file(BUNDLED_DIRECTORY)}
    assert {"sandbox-clinic", "sandbox-insurer", "sandbox-lab"} <= ids


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"type": "HOSPITAL"}, "entry 2 (id 'src-1'): type"),
        ({"id": "Not A Slug"}, "entry 2 (id 'Not A Slug'): id"),
        ({"address": {"zip": "1234"}}, "entry 2 (id 'src-1'): address.zip"),
        ({"oauth": None}, "needs fhir_base_url and oauth"),
        ({"id": "src-0"}, "duplicate id 'src-0'"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_entry_is_named_and_nothing_is_written(
    tmp_path: Path, runtime: Runtime, bad: dict, message: str
) -> None:
    path = tmp_path / "sources.json"
    path.write_text(json.dumps({"sources": [_source(0), _source(1, **bad)]}))
    with pytest.raises(InvalidRequest) as caught:
        import_directory(runtime, path)
    assert message in str(caught.value)
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(DataSource)) == 0


def test_import_upserts_and_seals_client_secrets(tmp_path: Path, runtime: Runtime) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(json.dumps([_source(0), _source(1)]))
    assert import_directory(runtime, path) == 2
    path.write_text(json.dumps([_source(0, name="Renamed Clinic"), _source(1)]))
    import_directory(runtime, path)
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(DataSource)) == 2
        renamed = session.get(DataSource, "src-0")
        assert renamed is not None and renamed.name == "Renamed Clinic"
        assert "s3cret-client" not in json.dumps(renamed.settings)
        found = search_data_sources(session, query="renamed")
        assert [s.id for s in found.items] == ["src-0"]


def test_search_by_prefix_word_type_and_place(tmp_path: Path, runtime: Runtime) -> None:
    entries = [
        _source(
            1,
            name="St. Mary's Hospital",
            aliases=["Mercy Saint Mary"],
            address={"city": "Rochester", "state": "MN", "zip": "55902"},
            location={"lat": 44.0225, "lon": -92.4799},
        ),
        _source(
            2,
            name="Mayo Clinic",
            type="CLINICAL",
            address={"city": "Rochester", "state": "MN", "zip": "55905"},
            location={"lat": 44.0225, "lon": -92.4666},
        ),
        _source(
            3,
            name="Quest Diagnostics",
            type="LAB",
            address={"city": "Secaucus", "state": "NJ", "zip": "07094"},
            location={"lat": 40.7895, "lon": -74.0565},
        ),
        _source(4, name="Mary Retired Clinic", retired=True),
    ]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(entries))
    import_directory(runtime, path)
    with runtime.db.read() as session:

        def ids(**kw) -> list[str]:
            return [s.id for s in search_data_sources(session, **kw).items]

        assert ids(query="mar") == ["src-1"]  # word prefix, retired excluded
        assert ids(query="saint") == ["src-1"]  # alias word
        assert ids(query="hosp mary") == ["src-1"]  # every word must match
        assert ids(query="mayo") == ["src-2"]
        assert ids(query="zzz") == []
        assert ids(source_type=SourceType.LAB) == ["src-3"]
        assert set(ids(near=parse_near("55901", 10))) == {"src-1", "src-2"}
        assert ids(near=parse_near("40.79,-74.05", 5)) == ["src-3"]
        page = search_data_sources(session, limit=1, offset=1)
        assert page.total == 3 and len(page.items) == 1


@pytest.mark.parametrize(
    ("near", "radius"), [("abc", None), ("99999", None), ("91,0", None), ("55901", 0), (None, 5)]
)
def test_bad_near_is_rejected(near: str | None, radius: float | None) -> None:
    with pytest.raises(InvalidRequest):
        parse_near(near, radius)
