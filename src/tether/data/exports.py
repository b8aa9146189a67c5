"""FHIR Bulk Data exports (Bulk Data Access IG 2.0): kick-off, status, files, cancel.

An export is a row in ``bulk_exports`` and a job (``exports.run``) on the queue:

- **kick-off** stores what was asked (types, ``_since``, the scope: one member, or every
  member of the tenant) and queues the job; the client polls the status URL.
- **the job** claims the row (``running``, attempt n), writes one NDJSON file per type —
  split once it passes ``TETHER_EXPORT_FILE_BYTES`` — straight from the stored JSON texts
  (never parsed or re-serialised), a page of rows at a time, and renews the row's heartbeat
  every few seconds (and after each type). Only when every file is written does one
  transaction mark it ``completed`` with the manifest: a file listed there is always whole.
- **a crash** leaves the row ``running`` with an old heartbeat: the ``exports`` sweep queues
  the job again, which starts over in a fresh attempt directory (after three attempts the
  export is ``failed``, and says so in the status).
- **cancel** (DELETE) removes the row and every file; a job still running notices at its next
  heartbeat and stops.
- files are removed ``TETHER_EXPORT_TTL_HOURS`` after the export finished.

``transactionTime`` is when the job started reading, less :data:`WRITE_GRACE`: a sync write
stamped before that instant but committed after the job read its rows is then still newer
than the next ``_since``. A resource changed inside that window can appear in two consecutive
incremental exports, never in neither. ``_since`` itself is exact: the resources whose
tether ``meta.lastUpdated`` is after it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select, update

from tether.data.fhir import Scope
from tether.data.search import SearchError
from tether.domain import STORED_TYPES
from tether.errors import Conflict, NotFound, ProblemError, RateLimited
from tether.fhir.search_values import date_range
from tether.ids import new_id
from tether.logging import get_logger
from tether.runtime import Runtime
from tether.store.db import PARAM_MARKER
from tether.store.models import BulkExport, FhirResource, Member

log = get_logger("tether.exports")

NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
WRITE_GRACE = timedelta(seconds=30)
STALE_AFTER = timedelta(minutes=2)  # a running export without a heartbeat this long is dead
MAX_ATTEMPTS = 3
MAX_ACTIVE = 4  # exports accepted or running per tenant at once
PAGE = 5000  # rows read per query: the memory bound (~5 MB of stored JSON)
HEARTBEAT_EVERY = 5.0  # seconds between an export's heartbeats (and cancellation checks)
RETRY_AFTER = 2  # seconds a client is told to wait between status polls
ACTIVE = ("accepted", "running")
R = FhirResource


@dataclass(frozen=True)
class ExportRequest:
    types: list[str]
    since_key: str | None  # _since as the changed_at it compares with


def parse_kickoff(pairs: list[tuple[str, str]], *, strict: bool) -> ExportRequest:
    """Read a kick-off's parameters; unknown ones are refused under ``handling=strict`` and
    ignored otherwise (Bulk Data IG: ``_typeFilter``, ``_elements`` … are not supported)."""
    types: list[str] = []
    since_key = None
    for name, value in pairs:
        if name == "_type":
            for rtype in value.split(","):
                if rtype not in STORED_TYPES:
                    raise SearchError(f"_type: {rtype!r} is not a type tether exports")
                if rtype not in types:
                    types.append(rtype)
        elif name == "_since":
            try:
                since_key = date_range(value)[0]  # the instant itself: "after" is ">"
            except (ValueError, OverflowError) as exc:
                raise SearchError(f"_since: {value!r} is not a FHIR instant") from exc
        elif name == "_outputFormat":
            if value not in OUTPUT_FORMATS:
                raise SearchError("_outputFormat: only application/fhir+ndjson is written")
        elif strict or name in ("_typeFilter", "_elements", "patient", "includeAssociatedData"):
            raise SearchError(f"the export parameter {name!r} is not supported")
    return ExportRequest(types or list(STORED_TYPES), since_key)


def kick_off(runtime: Runtime, scope: Scope, request: ExportRequest, request_url: str) -> str:
    """Accept an export of ``scope``'s data; returns its id (429 when the tenant already has
    :data:`MAX_ACTIVE` under way)."""
    now = runtime.clock()
    export_id = new_id("exp")
    with runtime.db.write() as session:
        active = session.scalar(
            select(func.count())
            .select_from(BulkExport)
            .where(BulkExport.tenant_id == scope.tenant_id, BulkExport.status.in_(ACTIVE))
        )
        if (active or 0) >= MAX_ACTIVE:
            raise RateLimited(
                f"{MAX_ACTIVE} exports are under way already: retry when one is done",
                code="TOO_MANY_EXPORTS",
                retryAfter=60,
            )
        session.add(
            BulkExport(
                id=export_id,
                tenant_id=scope.tenant_id,
                member_id=scope.member_id,
                owner=scope.owner,
                request_url=request_url,
                types=request.types,
                since=request.since_key,
                status="accepted",
                attempts=0,
                transaction_time="",
                progress={},
                output=[],
                created_at=now,
                expires_at=now + timedelta(hours=runtime.settings.export_ttl_hours),
            )
        )
    runtime.enqueue("exports.run", export_id=export_id)
    return export_id


def _owned(session: Any, scope: Scope, export_id: str) -> BulkExport:
    """The export, if ``scope``'s credential started it (a tenant's key sees its members'
    exports too); 404 otherwise, without telling which."""
    row: BulkExport | None = session.get(BulkExport, export_id)
    if row is None or row.tenant_id != scope.tenant_id:
        raise NotFound("no such export", code="UNKNOWN_EXPORT")
    if scope.member_id is not None and row.owner != scope.owner:
        raise NotFound("no such export", code="UNKNOWN_EXPORT")
    return row


@dataclass(frozen=True)
class ExportView:
    id: str
    status: str
    request_url: str
    transaction_time: str
    progress: dict[str, Any]
    output: list[dict[str, Any]]
    error: str | None
    types: list[str]
    expires_at: datetime


def export_status(runtime: Runtime, scope: Scope, export_id: str) -> ExportView:
    with runtime.db.read() as session:
        row = _owned(session, scope, export_id)
        return ExportView(
            row.id,
            row.status,
            row.request_url,
            row.transaction_time,
            dict(row.progress),
            list(row.output),
            row.error,
            list(row.types),
            row.expires_at,
        )


def cancel(runtime: Runtime, scope: Scope, export_id: str) -> None:
    """Cancel an export under way, or delete a finished one with its files."""
    with runtime.db.write() as session:
        row = _owned(session, scope, export_id)
        session.delete(row)
    storage(runtime).remove(export_id)


def open_file(runtime: Runtime, scope: Scope, export_id: str, name: str) -> Iterator[bytes]:
    """The bytes of one of a completed export's files (404 for anything else)."""
    with runtime.db.read() as session:
        row = _owned(session, scope, export_id)
        if row.status != "completed":
            raise Conflict("the export is not complete", code="EXPORT_NOT_READY")
        keys = {item["url"].rsplit("/", 1)[-1]: item["key"] for item in row.output}
    if name not in keys:
        raise NotFound("no such file", code="UNKNOWN_FILE")
    return storage(runtime).read(keys[name])


def latest_export(runtime: Runtime, scope: Scope) -> ExportView | None:
    """The newest export ``scope``'s credential started (the member page's download)."""
    with runtime.db.read() as session:
        export_id = session.scalar(
            select(BulkExport.id)
            .where(BulkExport.tenant_id == scope.tenant_id, BulkExport.owner == scope.owner)
            .order_by(BulkExport.created_at.desc())
            .limit(1)
        )
    return None if export_id is None else export_status(runtime, scope, export_id)


def archive(runtime: Runtime, scope: Scope, export_id: str) -> Iterator[bytes]:
    """A completed export as one ZIP of its NDJSON files, streamed: the member's own copy
    (a file at a time, a chunk at a time; nothing is held whole)."""
    with runtime.db.read() as session:
        row = _owned(session, scope, export_id)
        if row.status != "completed":
            raise Conflict("the export is not complete", code="EXPORT_NOT_READY")
        keys = [(item["url"].rsplit("/", 1)[-1], item["key"]) for item in row.output]
    files = storage(runtime)
    return _zipped(files, keys)


class _Spool:
    """A write-only stream whose bytes are taken as they come (zipfile writes to it)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def _zipped(files: Files, keys: list[tuple[str, str]]) -> Iterator[bytes]:
    spool = _Spool()
    with zipfile.ZipFile(spool, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, key in keys:
            with bundle.open(name, "w", force_zip64=True) as member:
                for chunk in files.read(key):
                    member.write(chunk)
                    if spool.parts:
                        yield spool.take()
    yield spool.take()


# ---------------------------------------------------------------------------- storage
class LocalFiles:
    """Export files under ``data_dir/exports/<export id>/<attempt>/``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def writer(self, key: str) -> IO[bytes]:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("wb")

    def read(self, key: str) -> Iterator[bytes]:
        path = self.root / key
        if not path.is_file():
            raise NotFound("the file has expired", code="UNKNOWN_FILE")
        return _chunks(path)

    def remove(self, prefix: str) -> None:
        shutil.rmtree(self.root / prefix, ignore_errors=True)


def _chunks(path: Path, size: int = 1 << 16) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk


class _Upload:
    """A file being written to object storage: spooled to disk (memory stays small) and
    uploaded (multipart when large) when it is closed."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115

    def write(self, data: bytes) -> int:
        return self.spool.write(data)

    def close(self) -> None:
        self.spool.seek(0)
        try:
            self.client.upload_fileobj(self.spool, self.bucket, self.key)
        finally:
            self.spool.close()


class ObjectFiles:
    """Export files in S3-compatible object storage (``TETHER_EXPORT_STORAGE_URL=s3://bucket/
    prefix``), through boto3; the endpoint and keys come from boto3's own configuration
    (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` …)."""

    def __init__(self, url: str) -> None:
        import boto3  # type: ignore[import-untyped]  # the s3 extra: only when configured

        parts = urlsplit(url)
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.client = boto3.client("s3")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def writer(self, key: str) -> IO[bytes]:
        return cast(IO[bytes], _Upload(self.client, self.bucket, self._key(key)))

    def read(self, key: str) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except self.client.exceptions.NoSuchKey as exc:
            raise NotFound("the file has expired", code="UNKNOWN_FILE") from exc
        return cast(Iterator[bytes], body.iter_chunks(1 << 16))

    def remove(self, prefix: str) -> None:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix) + "/"
        )
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})


Files = LocalFiles | ObjectFiles


def storage(runtime: Runtime) -> Files:
    """Where export files are kept: the data directory, or object storage when configured."""
    url = runtime.settings.export_storage_url
    if url:
        return ObjectFiles(url)
    return LocalFiles(runtime.settings.data_dir / "exports")


# ---------------------------------------------------------------------------- the job
def _claim(runtime: Runtime, export_id: str) -> BulkExport | None:
    now = runtime.clock()
    with runtime.db.write() as session:
        row = session.get(BulkExport, export_id, with_for_update=True)
        if row is None or row.status not in ACTIVE:
            return None
        if row.status == "running" and row.heartbeat_at and now - row.heartbeat_at < STALE_AFTER:
            return None  # another worker has it
        if row.attempts >= MAX_ATTEMPTS:
            row.status, row.error, row.finished_at = "failed", "the export failed 3 times", now
            return None
        row.status = "running"
        row.attempts += 1
        row.heartbeat_at = now
        row.progress, row.output = {}, []
        row.transaction_time = _instant(now - WRITE_GRACE)
        session.flush()
        session.expunge(row)
        return row


def _instant(when: datetime) -> str:
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


class ExportFailed(ProblemError):
    """The status of an export that failed (Bulk Data IG: a 5xx with an OperationOutcome)."""

    status = 500
    slug = "export-failed"
    title = "Export failed"


class _Stopped(Exception):
    """The export was cancelled or taken over: this attempt stops."""


def run_export(runtime: Runtime, export_id: str) -> str | None:
    """The ``exports.run`` job: write the export's files; returns its final status (None
    when there was nothing for this worker to do)."""
    row = _claim(runtime, export_id)
    if row is None:
        return None
    files = storage(runtime)
    prefix = f"{export_id}/{row.attempts}"
    try:
        output = _write_files(runtime, row, files, prefix)
    except _Stopped:
        files.remove(prefix)
        return None
    with runtime.db.write() as session:
        done = session.execute(
            update(BulkExport)
            .where(BulkExport.id == export_id, BulkExport.attempts == row.attempts)
            .where(BulkExport.status == "running")
            .values(
                status="completed",
                output=output,
                finished_at=runtime.clock(),
                expires_at=runtime.clock() + timedelta(hours=runtime.settings.export_ttl_hours),
            )
        )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        files.remove(prefix)
        return None
    for attempt in range(1, row.attempts):  # what the attempts before this one left
        files.remove(f"{export_id}/{attempt}")
    log.info("export completed", export=export_id, files=len(output))
    return "completed"


def _members(runtime: Runtime, row: BulkExport) -> Iterator[str]:
    if row.member_id is not None:
        yield row.member_id
        return
    after = ""
    while True:
        with runtime.db.read() as session:
            ids = session.scalars(
                select(Member.id)
                .where(Member.tenant_id == row.tenant_id, Member.id > after)
                .order_by(Member.id)
                .limit(PAGE)
            ).all()
        yield from ids
        if len(ids) < PAGE:
            return
        after = ids[-1]


class _TypeFiles:
    """The NDJSON files of one type, split at the size limit."""

    def __init__(self, files: Files, row: BulkExport, prefix: str, rtype: str, base: str):
        self.files, self.row, self.prefix, self.rtype, self.base = files, row, prefix, rtype, base
        self.limit = 0
        self.part = self.count = self.size = 0
        self.handle: IO[bytes] | None = None
        self.output: list[dict[str, Any]] = []

    def write(self, texts: list[str]) -> None:
        """Append one NDJSON line per stored JSON text (a page at a time: one write call)."""
        page = ("\n".join(texts) + "\n").encode() if texts else b""
        if self.size + len(page) < self.limit:  # the common case: the page fits whole
            self.count += len(texts)
            self.size += len(page)
            if page:
                self._flush([page])
            return
        lines: list[bytes] = []
        for data in texts:  # the page crosses the size limit: split it where it does
            line = data.encode() + b"\n"
            lines.append(line)
            self.count += 1
            self.size += len(line)
            if self.size >= self.limit:
                self._flush(lines)
                lines = []
                self.close()
        if lines:
            self._flush(lines)

    def _flush(self, lines: list[bytes]) -> None:
        if self.handle is None:
            self.part += 1
            self.handle = self.files.writer(f"{self.prefix}/{self._name()}")
        self.handle.write(b"".join(lines))

    def close(self) -> None:
        if self.handle is None:
            return
        self.handle.close()
        self.handle = None
        name = self._name()
        self.output.append(
            {
                "type": self.rtype,
                "url": f"{self.base}/v1/fhir/bulkfiles/{self.row.id}/{name}",
                "count": self.count,
                "key": f"{self.prefix}/{name}",
            }
        )
        self.count = self.size = 0

    def _name(self) -> str:
        return f"{self.rtype}-{self.part}.ndjson"


def _write_files(
    runtime: Runtime, row: BulkExport, files: Files, prefix: str
) -> list[dict[str, Any]]:
    output: list[dict[str, Any]] = []
    progress: dict[str, int] = {}
    beat = _Beat(runtime, row, progress)
    for rtype in row.types:
        writer = _TypeFiles(files, row, prefix, rtype, runtime.settings.public_base_url)
        writer.limit = runtime.settings.export_file_bytes
        try:
            for member_id in _members(runtime, row):
                after = 0
                while True:
                    with runtime.db.read() as session:
                        rows = _page(session, member_id, rtype, row.since, after)
                    writer.write([data for _, data in rows])
                    progress[rtype] = progress.get(rtype, 0) + len(rows)
                    beat.maybe()
                    if len(rows) < PAGE:
                        break
                    after = rows[-1][0]
        finally:
            writer.close()
        output.extend(writer.output)
        beat.now()  # a type done: the progress says so
    return output


# The export's read: driver-level, as many rows as a page, no row objects built (measured on
# SQLite: SQLAlchemy's Row objects were a quarter of an export's time).
_PAGE_SQL = (
    "SELECT id, data FROM fhir_resources WHERE member_id = {p} AND resource_type = {p}"
    " AND id > {p}{since} ORDER BY id LIMIT {limit}"
)


def _page(
    session: Any, member_id: str, rtype: str, since: str | None, after: int
) -> list[tuple[int, str]]:
    p = PARAM_MARKER[session.get_bind().dialect.name]
    sql = _PAGE_SQL.format(p=p, since=f" AND changed_at > {p}" if since else "", limit=PAGE)
    params = (member_id, rtype, after, since) if since else (member_id, rtype, after)
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(sql, params)
        rows: list[tuple[int, str]] = cursor.fetchall()
    finally:
        cursor.close()
    return rows


class _Beat:
    """The running export's heartbeat and progress, written at most every
    :data:`HEARTBEAT_EVERY` seconds; raises :class:`_Stopped` once the export was cancelled
    or another attempt took it over."""

    def __init__(self, runtime: Runtime, row: BulkExport, progress: dict[str, int]) -> None:
        self.runtime, self.row, self.progress = runtime, row, progress
        self.last = time.monotonic()

    def maybe(self) -> None:
        if time.monotonic() - self.last >= HEARTBEAT_EVERY:
            self.now()

    def now(self) -> None:
        self.last = time.monotonic()
        with self.runtime.db.write() as session:
            result = session.execute(
                update(BulkExport)
                .where(BulkExport.id == self.row.id, BulkExport.attempts == self.row.attempts)
                .where(BulkExport.status == "running")
                .values(heartbeat_at=self.runtime.clock(), progress=dict(self.progress))
            )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise _Stopped()


def fail_export(runtime: Runtime, export_id: str, reason: str) -> None:
    """Mark an export failed (the job raised): the status says why, the files go."""
    with runtime.db.write() as session:
        session.execute(
            update(BulkExport)
            .where(BulkExport.id == export_id, BulkExport.status.in_(ACTIVE))
            .values(status="failed", error=reason, finished_at=runtime.clock())
        )


# ---------------------------------------------------------------------------- the sweep
def sweep(runtime: Runtime) -> int:
    """Remove expired exports with their files; queue again the ones whose job died.
    Returns how many exports it acted on."""
    now = runtime.clock()
    files = storage(runtime)
    with runtime.db.write() as session:
        expired = session.scalars(
            select(BulkExport.id).where(BulkExport.expires_at < now).limit(500)
        ).all()
        if expired:
            session.execute(delete(BulkExport).where(BulkExport.id.in_(expired)))
        stale = session.scalars(
            select(BulkExport.id).where(
                BulkExport.status.in_(ACTIVE),
                (BulkExport.heartbeat_at.is_(None) & (BulkExport.created_at < now - STALE_AFTER))
                | (BulkExport.heartbeat_at < now - STALE_AFTER),
            )
        ).all()
    for export_id in expired:
        files.remove(export_id)
    for export_id in stale:
        runtime.enqueue("exports.run", export_id=export_id)
    return len(expired) + len(stale)
