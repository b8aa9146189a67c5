"""The views' plain rows have what the view reads: VIEW_COLUMNS against ConnectionFacts."""

from __future__ import annotations

from tether.connections.queries import VIEW_COLUMNS, ConnectionFacts


def _members(protocol: type) -> set[str]:
    """The protocol's properties, its bases' included."""
    return {
        name
        for klass in protocol.__mro__
        for name, value in vars(klass).items()
        if not name.startswith("_") and isinstance(value, property)
    }


def test_view_columns_name_every_fact_a_view_reads() -> None:
    # A column dropped or relabelled would otherwise fail only when a view ran on that path.
    named = {column.key for column in VIEW_COLUMNS}
    assert named == _members(ConnectionFacts)
    secret = {"access_token", "refresh_token", "credentials", "sync_cursor"}
    assert not named & secret
