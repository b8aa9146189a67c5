"""FHIR Bulk Data exports from the SDK: kick off, poll, download the NDJSON files.

``ConnectionManager`` exports the member's own records; ``TenantClient`` every member's, or
one member's (``member_id``). The status and file URLs the server answers are followed on this
client's own base URL only (their paths), so the credential never goes to another origin.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from tether.client import _validation as check
from tether.client._exceptions import TetherError, client_validation_error, error_for_response
from tether.client._transport import SyncSender

DEFAULT_EXPORT_TIMEOUT = 600.0
DEFAULT_EXPORT_INTERVAL = 1.0


@dataclass(frozen=True)
class ExportFile:
    """One NDJSON file of an export: its resource type, URL, line count, and where it was
    saved (``path``, once downloaded)."""

    type: str
    url: str
    count: int
    path: Path | None = None


@dataclass(frozen=True)
class Export:
    """A completed export's manifest."""

    status_url: str
    transaction_time: datetime
    files: list[ExportFile]

    @property
    def total(self) -> int:
        return sum(f.count for f in self.files)


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def start(
    sender: SyncSender,
    *,
    member_id: str | None,
    types: Iterable[str] | None,
    since: datetime | None,
) -> str:
    """Kick off an export; returns the status URL to poll."""
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("_outputFormat", "application/fhir+ndjson")
    ]
    if types:
        params.append(("_type", ",".join(check.resource_type(t) for t in types)))
    if since is not None:
        if since.tzinfo is None:
            raise client_validation_error("since must be timezone-aware")
        params.append(("_since", since.isoformat()))
    base = f"/v1/members/{check.member_id(member_id)}/fhir" if member_id else "/v1/fhir"
    response = sender.http.get(
        f"{base}/$export",
        params=params,
        headers={"Prefer": "respond-async", "Accept": "application/fhir+json"},
    )
    if response.status_code != 202:
        raise error_for_response(response)
    return response.headers["content-location"]


def manifest(sender: SyncSender, status_url: str) -> Export | None:
    """The export's manifest once complete; None while it is being written."""
    response = sender.http.get(_path(status_url))
    if response.status_code == 202:
        return None
    if response.status_code != 200:
        raise error_for_response(response)
    body = response.json()
    when = datetime.fromisoformat(body["transactionTime"].replace("Z", "+00:00"))
    files = [ExportFile(o["type"], o["url"], int(o["count"])) for o in body["output"]]
    return Export(status_url, when, files)


def download(sender: SyncSender, export: Export, directory: Path) -> Export:
    """Save every file of ``export`` under ``directory``; returns it with the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    saved = []
    for item in export.files:
        target = directory / Path(urlsplit(item.url).path).name
        with sender.http.stream("GET", _path(item.url)) as response:
            if response.status_code != 200:
                response.read()
                raise error_for_response(response)
            with target.open("wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
        saved.append(replace(item, path=target))
    return replace(export, files=saved)


def export_records(
    sender: SyncSender,
    directory: Path | str,
    *,
    member_id: str | None = None,
    types: Iterable[str] | None = None,
    since: datetime | None = None,
    timeout: float = DEFAULT_EXPORT_TIMEOUT,
    interval: float = DEFAULT_EXPORT_INTERVAL,
) -> Export:
    """Kick off, wait (polling at the server's ``Retry-After`` or ``interval``), download."""
    status_url = start(sender, member_id=member_id, types=types, since=since)
    deadline = time.monotonic() + timeout
    while (done := manifest(sender, status_url)) is None:
        if time.monotonic() > deadline:
            raise TetherError(
                {"title": "Timed out", "detail": f"the export was not done in {timeout:g} s"}
            )
        time.sleep(interval)
    return download(sender, done, Path(directory))
