"""What the member page shows, in plain words, built from the read side's views.

Which actions a connection offers comes from the lifecycle itself (the view's ``allowed``
moves), so the page never offers a move the service would refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tether.connections.views import CodeableConcept, ConnectionView
from tether.directory.service import SearchPage
from tether.domain import SourceType, Status, SyncStatus
from tether.errors import ProblemError
from tether.sync.history import SyncRunView
from tether.web.oauth import MESSAGES as OAUTH_MESSAGES

TYPE_LABELS = {
    SourceType.CLINICAL: "Health system or clinic",
    SourceType.INSURANCE: "Insurer",
    SourceType.LAB: "Laboratory",
    SourceType.PHARMACY: "Pharmacy",
    SourceType.PRACTITIONER: "Practitioner",
}
# (label, tone): tone picks the badge colour in app.css.
STATUS_LABELS = {
    Status.CONNECTED: ("Connected", "ok"),
    Status.DISCONNECTED: ("Disconnected", "off"),
    Status.EXPIRED: ("Expired: reconnect to resume", "warn"),
    Status.ERROR: ("Connection problem", "bad"),
    Status.DELETED: ("Deleted", "off"),
    Status.ACCESS_ENDED: ("Access ended", "off"),
}
SYNC_LABELS = {
    SyncStatus.PENDING: ("Waiting to sync", "busy"),
    SyncStatus.RETRIEVING: ("Syncing", "busy"),
    SyncStatus.RETRIEVED: ("Up to date", "ok"),
    SyncStatus.ERROR: ("Sync problem", "bad"),
    SyncStatus.DELETING: ("Deleting data", "busy"),
    SyncStatus.DATA_DELETED: ("Data deleted", "off"),
}
SYNC_REQUESTED = ("Sync requested", "busy")
RESOURCE_LABELS = {
    "Patient": "Patient record",
    "AllergyIntolerance": "Allergies",
    "Condition": "Conditions",
    "Coverage": "Coverage",
    "DiagnosticReport": "Reports",
    "DocumentReference": "Documents",
    "Encounter": "Visits",
    "ExplanationOfBenefit": "Claims",
    "Immunization": "Immunizations",
    "MedicationRequest": "Medications",
    "Observation": "Observations",
    "Procedure": "Procedures",
    "Practitioner": "Care team",
    "PractitionerRole": "Care team roles",
    "Organization": "Organizations",
    "Location": "Locations",
    "Medication": "Medication details",
}
EXPIRING_NOTICE_DAYS = 14  # TETHER_EXPIRING_NOTICE_DAYS's default
NOTICES = {
    "disconnected": "{name} is disconnected. The records retrieved so far are kept.",
    "deleted": "{name} is deleted. Its records are being removed.",
    "sync": "A sync of {name} was requested. The status below updates by itself.",
}
OUTCOME_MESSAGES = {
    **OAUTH_MESSAGES,
    "invalid_grant": "The data source did not accept the sign-in. Please try again.",
    "authorization_error": "The data source reported a problem with the sign-in.",
}


@dataclass(frozen=True)
class Badge:
    code: str
    label: str
    tone: str


TRIGGER_LABELS = {
    "initial": "First sync",
    "scheduled": "Scheduled",
    "manual": "Sync now",
    "re-established": "After reconnecting",
}
SHOWN_SYNCS = 5  # "last syncs" on a card


@dataclass(frozen=True)
class SyncLine:
    """One of a connection's last syncs, in words."""

    finished: datetime
    trigger: str
    outcome: Badge
    summary: str

    @classmethod
    def of(cls, run: SyncRunView) -> SyncLine:
        added = sum(c.get("added", 0) for c in run.counts.values())
        updated = sum(c.get("updated", 0) for c in run.counts.values())
        if run.outcome == SyncStatus.RETRIEVED:
            summary = f"{added:,} new, {updated:,} updated" if added or updated else "No changes"
            outcome = Badge(run.outcome, "Completed", "ok")
        else:
            texts = [str(e.get("text") or "") for e in run.errors]
            summary = "; ".join(t for t in texts if t) or "The sync did not complete"
            outcome = Badge(run.outcome, "Failed", "bad")
        return cls(
            finished=run.finished,
            trigger=TRIGGER_LABELS.get(run.trigger, run.trigger),
            outcome=outcome,
            summary=summary,
        )


@dataclass(frozen=True)
class ConnectionCard:
    id: str
    name: str
    type_label: str
    status: Badge
    sync: Badge
    last_synced: datetime | None
    status_updated: datetime
    counts: list[tuple[str, int]]
    total: int
    errors: list[str]
    can_reconnect: bool
    can_disconnect: bool
    can_delete: bool
    can_sync: bool
    busy: bool
    syncs: list[SyncLine] = field(default_factory=list)  # newest first
    access_ends: datetime | None = None  # when the grant ends at the source
    access_note: str | None = None  # "Access ends in 12 days: reconnect to keep it"
    ending_soon: bool = False  # within the notice period: the note asks to reconnect
    not_shared: list[str] = field(default_factory=list)  # labels of the types not shared

    @classmethod
    def of(
        cls,
        view: ConnectionView,
        now: datetime,
        runs: Sequence[SyncRunView] = (),
        *,
        notice_days: int = EXPIRING_NOTICE_DAYS,
    ) -> ConnectionCard:
        status, sync = view.status, view.sync_status
        ends = view.authorization_expires
        ending_soon = ends is not None and ends - now <= timedelta(days=notice_days)
        # "Sync now" (or a schedule) made a sync due that no worker has picked up yet.
        due = (
            status == Status.CONNECTED
            and sync in (SyncStatus.RETRIEVED, SyncStatus.ERROR)
            and view.next_sync is not None
            and view.next_sync <= now
        )
        counts = sorted(
            ((RESOURCE_LABELS.get(k, k), n) for k, n in view.resource_counts.items()),
            key=lambda item: (-item[1], item[0]),
        )
        errors = [e.text or _display(e) for e in view.sync_errors]
        busy = (
            due
            or sync == SyncStatus.DELETING
            or (status == Status.CONNECTED and sync in (SyncStatus.PENDING, SyncStatus.RETRIEVING))
        )
        return cls(
            id=view.id,
            name=view.name,
            type_label=TYPE_LABELS.get(view.type, view.type),
            status=Badge(status.value, *STATUS_LABELS[status]),
            sync=Badge(sync.value, *(SYNC_REQUESTED if due else _sync_label(status, sync))),
            last_synced=view.last_synced,
            status_updated=view.status_updated,
            counts=counts,
            total=sum(n for _, n in counts),
            errors=[e for e in errors if e],
            # Reconnecting before a grant ends keeps it going (a new grant, same records).
            can_reconnect=(status != Status.CONNECTED or ending_soon)
            and Status.CONNECTED in view.allowed,
            can_disconnect=status != Status.DISCONNECTED and Status.DISCONNECTED in view.allowed,
            can_delete=status != Status.DELETED and Status.DELETED in view.allowed,
            can_sync=status == Status.CONNECTED and sync != SyncStatus.RETRIEVING,
            busy=busy,
            syncs=[SyncLine.of(run) for run in runs[:SHOWN_SYNCS]],
            access_ends=ends,
            access_note=_access_note(ends, now, ending_soon) if ends else None,
            ending_soon=ending_soon,
            not_shared=[RESOURCE_LABELS.get(t, t) for t in view.not_shared],
        )


def _access_note(ends: datetime, now: datetime, soon: bool) -> str:
    """When the member's grant ends at the source, in words."""
    left = ends - now
    if left <= timedelta(0):
        return "Access has ended at the source: reconnect to keep your records up to date."
    days = left.days
    when = "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"
    if soon:
        return f"Access ends {when}: reconnect to keep it."
    return f"Access ends {when} ({ends.strftime('%Y-%m-%d')})."


def _sync_label(status: Status, sync: SyncStatus) -> tuple[str, str]:
    """Records that stay but no longer update read as such, not as "up to date"."""
    if status != Status.CONNECTED and sync == SyncStatus.RETRIEVED:
        return "Kept, not updating", "off"
    if status != Status.CONNECTED and sync == SyncStatus.PENDING:
        return "No records yet", "off"
    return SYNC_LABELS[sync]


def _display(concept: CodeableConcept) -> str:
    first = concept.coding[0] if concept.coding else None
    return (first.display or first.code or "") if first else ""


@dataclass(frozen=True)
class SourceView:
    id: str
    name: str
    type_label: str
    place: str
    state: str  # "new", "connected", "reconnect" or "busy"


def source_views(page: SearchPage, connections: list[ConnectionCard]) -> list[SourceView]:
    mine = {c.id: c for c in connections}
    views = []
    for source in page.items:
        conn = mine.get(source.id)
        if conn is None:
            state = "new"
        elif conn.status.code == Status.CONNECTED:
            state = "connected"
        elif conn.can_reconnect:
            state = "reconnect"
        else:
            state = "busy"
        place = ", ".join(p for p in (source.city, source.state) if p)
        views.append(
            SourceView(
                source.id,
                source.name,
                TYPE_LABELS.get(SourceType(source.type), source.type),
                place,
                state,
            )
        )
    return views


@dataclass(frozen=True)
class Notice:
    text: str
    error: bool = False
    title: str | None = None


def problem_notice(exc: ProblemError) -> Notice:
    """A problem document in plain words: its title and its detail as a sentence."""
    detail = exc.detail.rstrip(".")
    return Notice(detail[:1].upper() + detail[1:] + ".", error=True, title=exc.title)


def outcome_notice(status_code: str | None, name: str | None) -> Notice | None:
    """What the sign-in at the source ended with (never echoes free text)."""
    if not status_code:
        return None
    text = OUTCOME_MESSAGES.get(status_code, "The connection could not be completed.")
    if status_code == "success" and name:
        text = f"{name} is connected. Your records will start arriving shortly."
    return Notice(text, error=status_code != "success")


def action_notice(kind: str | None, name: str | None) -> Notice | None:
    if kind not in NOTICES or not name:
        return None
    return Notice(NOTICES[kind].format(name=name))
