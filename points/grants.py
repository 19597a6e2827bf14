"""Maker-checker for manual adjustments, and bulk grants from a file (docs/adr/0013).

Rules these services keep:
- An adjustment of more than `ApprovalSettings.adjustment_threshold` points (either sign) is not
  written: it becomes an AdjustmentRequest. A bulk grant whose rows move more than
  `bulk_grant_threshold` points in all waits in state `awaiting_approval`.
- Another operator approves or rejects, never the maker (`OwnRequestApproval` here, a CHECK
  constraint in the database). A decision locks the request's (grant's) row and checks its
  state first, so two operators deciding at once decide once (`AlreadyDecided`).
- The entry of an approved adjustment names operator = the maker, approved_by = the checker.
- A bulk grant's rows are granted one transaction each: the row (locked, still pending), the
  ledger entry through `points.services.adjust`, the row's status and entry, the grant's
  counters. A re-run, two runs at once, or a run resumed after a kill grant only the rows still
  pending: every row is granted at most once. The same file (same normalised rows) uploaded
  again is refused (unique `content_hash`).
- Lock order: the request's or grant's row (a decision), then the account (inside `adjust`).
  A bulk grant row's transaction: the BulkGrantRow, then the account, then the BulkGrant row
  (its counters), which nothing locks before an account.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Sum
from django.db.models.functions import Abs
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty_site.exceptions import LoyaltyError
from members.models import Member
from points import services
from points.exceptions import (
    AlreadyDecided,
    BulkGrantFileInvalid,
    DuplicateBulkGrantFile,
    InsufficientPoints,
    InvalidLedgerRequest,
    InvalidPoints,
    IssuanceFrozen,
    OwnRequestApproval,
)
from points.models import AdjustmentRequest, ApprovalSettings, BulkGrant, BulkGrantRow, Entry

logger = logging.getLogger(__name__)

ADJUSTMENT_REQUEST_SOURCE = "adjustment_request"
BULK_GRANT_SOURCE = "bulk_grant"


def approval_settings() -> ApprovalSettings:
    return ApprovalSettings.get()


def _validate_adjustment(points, reason: str) -> None:
    # The same refusals as services.adjust, before anything is stored for later.
    if isinstance(points, bool) or not isinstance(points, int) or points == 0:
        raise InvalidPoints(points=str(points))
    if not (reason or "").strip():
        raise InvalidLedgerRequest(_("An adjustment needs a reason."))


def _ensure_another_operator(*, maker_id: int, checker) -> None:
    if checker is None or checker.pk == maker_id:
        raise OwnRequestApproval()


# --- Manual adjustments -----------------------------------------------------------------------
@dataclass(frozen=True)
class AdjustmentOutcome:
    """Either the entry written at once, or the request now waiting for a second operator."""

    entry: Entry | None = None
    request: AdjustmentRequest | None = None


def adjust_or_request_approval(
    *, member: Member, points: int, reason: str, operator
) -> AdjustmentOutcome:
    """Adjust at once when |points| is within the threshold; otherwise store a pending request.

    Nothing reaches the ledger for a request until another operator approves it.
    """
    _validate_adjustment(points, reason)
    if abs(points) <= approval_settings().adjustment_threshold:
        entry = services.adjust(member=member, points=points, reason=reason, operator=operator)
        return AdjustmentOutcome(entry=entry)
    request = AdjustmentRequest.objects.create(
        member=member, points=points, reason=reason.strip(), requested_by=operator
    )
    return AdjustmentOutcome(request=request)


def _lock_request(request_id: int) -> AdjustmentRequest:
    return (
        AdjustmentRequest.objects.select_for_update(of=("self",))
        .select_related("member", "requested_by")
        .get(pk=request_id)
    )


@transaction.atomic
def approve_adjustment_request(*, request_id: int, approver) -> AdjustmentRequest:
    """Write the requested adjustment, naming the maker (operator) and the checker (approved_by).

    Refused for the maker (`OwnRequestApproval`) and for a decided request (`AlreadyDecided`);
    a ledger refusal (e.g. `InsufficientPoints`) leaves the request pending.
    """
    request = _lock_request(request_id)
    if request.state != AdjustmentRequest.State.PENDING:
        raise AlreadyDecided(request=request.pk, state=request.state)
    _ensure_another_operator(maker_id=request.requested_by_id, checker=approver)
    entry = services.adjust(
        member=request.member,
        points=request.points,
        reason=request.reason,
        operator=request.requested_by,
        approved_by=approver,
        source_type=ADJUSTMENT_REQUEST_SOURCE,
        source_id=request.pk,
    )
    request.state = AdjustmentRequest.State.APPROVED
    request.decided_by = approver
    request.decided_at = timezone.now()
    request.entry = entry
    request.save(update_fields=["state", "decided_by", "decided_at", "entry"])
    return request


@transaction.atomic
def reject_adjustment_request(*, request_id: int, decided_by, reason: str) -> AdjustmentRequest:
    """Close the request without touching the ledger; the reason is kept for the maker."""
    if not (reason or "").strip():
        raise InvalidLedgerRequest(_("A rejection needs a reason."))
    request = _lock_request(request_id)
    if request.state != AdjustmentRequest.State.PENDING:
        raise AlreadyDecided(request=request.pk, state=request.state)
    _ensure_another_operator(maker_id=request.requested_by_id, checker=decided_by)
    request.state = AdjustmentRequest.State.REJECTED
    request.decided_by = decided_by
    request.decided_at = timezone.now()
    request.rejection_reason = reason.strip()
    request.save(update_fields=["state", "decided_by", "decided_at", "rejection_reason"])
    return request


# --- Bulk grants: upload --------------------------------------------------------------------------
def normalised_cell(value) -> str:
    """A cell as text, so that the same sheet saved as CSV or XLSX reads the same (12.0 -> 12)."""
    if value is None:
        return ""
    if isinstance(value, float | Decimal) and value == int(value):
        return str(int(value))
    return str(value).strip()


def bulk_grant_content_hash(rows: Iterable[tuple]) -> str:
    """SHA-256 of the file's (member, points, reason) rows, normalised and in file order.

    Hashing the content rather than the bytes: a spreadsheet saved again (new timestamps inside
    the XLSX) or exported as CSV is still the same grant and is refused the second time.
    """
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([normalised_cell(cell) for cell in row]).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _already_uploaded(grant: BulkGrant) -> DuplicateBulkGrantFile:
    return DuplicateBulkGrantFile(
        _(
            "This file was already uploaded as bulk grant #%(grant)s (%(state)s): "
            "it is not granted twice."
        )
        % {"grant": grant.pk, "state": grant.get_state_display()},
        grant=grant.pk,
    )


def open_bulk_grant(*, content_hash: str, file_name: str, uploaded_by) -> BulkGrant:
    """Create the grant of a file, refusing a file already uploaded (`DuplicateBulkGrantFile`)."""
    existing = BulkGrant.objects.filter(content_hash=content_hash).first()
    if existing is not None:
        raise _already_uploaded(existing)
    try:
        with transaction.atomic():
            return BulkGrant.objects.create(
                content_hash=content_hash, file_name=file_name[:255], uploaded_by=uploaded_by
            )
    except IntegrityError as error:
        # The same file confirmed twice at once: the unique hash lets one through.
        raise _already_uploaded(BulkGrant.objects.get(content_hash=content_hash)) from error


def submit_bulk_grant(*, grant: BulkGrant) -> BulkGrant:
    """Count the grant's rows; queue it, or hold it for approval when it moves too many points."""
    totals = grant.rows.aggregate(rows=Count("id"), points=Sum(Abs("points")))
    if not totals["rows"]:
        raise BulkGrantFileInvalid(_("The file has no rows to grant."))
    grant.total_rows = totals["rows"]
    grant.total_points = totals["points"] or 0
    needs_approval = grant.total_points > approval_settings().bulk_grant_threshold
    grant.state = BulkGrant.State.AWAITING_APPROVAL if needs_approval else BulkGrant.State.QUEUED
    grant.save(update_fields=["total_rows", "total_points", "state"])
    if not needs_approval:
        _queue_run(grant.pk)
    return grant


def _queue_run(grant_id: int) -> None:
    from points.tasks import run_bulk_grant  # tasks import this module

    transaction.on_commit(lambda: run_bulk_grant.delay(grant_id))


def _lock_grant(grant_id: int) -> BulkGrant:
    return BulkGrant.objects.select_for_update(of=("self",)).get(pk=grant_id)


@transaction.atomic
def approve_bulk_grant(*, grant_id: int, approver) -> BulkGrant:
    """Let a grant waiting for approval run (queued after commit); never by its uploader."""
    grant = _lock_grant(grant_id)
    if grant.state != BulkGrant.State.AWAITING_APPROVAL:
        raise AlreadyDecided(grant=grant.pk, state=grant.state)
    _ensure_another_operator(maker_id=grant.uploaded_by_id, checker=approver)
    grant.state = BulkGrant.State.QUEUED
    grant.decided_by = approver
    grant.decided_at = timezone.now()
    grant.save(update_fields=["state", "decided_by", "decided_at"])
    _queue_run(grant.pk)
    return grant


@transaction.atomic
def reject_bulk_grant(*, grant_id: int, decided_by, reason: str) -> BulkGrant:
    """Close a grant waiting for approval: none of its rows is ever granted."""
    if not (reason or "").strip():
        raise InvalidLedgerRequest(_("A rejection needs a reason."))
    grant = _lock_grant(grant_id)
    if grant.state != BulkGrant.State.AWAITING_APPROVAL:
        raise AlreadyDecided(grant=grant.pk, state=grant.state)
    _ensure_another_operator(maker_id=grant.uploaded_by_id, checker=decided_by)
    grant.state = BulkGrant.State.REJECTED
    grant.decided_by = decided_by
    grant.decided_at = timezone.now()
    grant.rejection_reason = reason.strip()
    grant.save(update_fields=["state", "decided_by", "decided_at", "rejection_reason"])
    return grant


@transaction.atomic
def resume_bulk_grant(*, grant_id: int) -> BulkGrant:
    """Queue a queued or running grant again (its worker died): only pending rows are granted."""
    grant = _lock_grant(grant_id)
    if grant.state not in (BulkGrant.State.QUEUED, BulkGrant.State.RUNNING):
        raise InvalidLedgerRequest(
            _("Only a queued or running bulk grant can be resumed."), grant=grant.pk
        )
    _queue_run(grant.pk)
    return grant


# --- Bulk grants: the run -------------------------------------------------------------------------
_MEMBER_SKIPS = {
    Member.Status.FROZEN: BulkGrantRow.SkipReason.MEMBER_FROZEN,
    Member.Status.CLOSED: BulkGrantRow.SkipReason.MEMBER_CLOSED,
}


def _grant_row(*, grant: BulkGrant, row_id: int, member: Member | None) -> str | None:
    """Grant one row in its own transaction, or record why it was skipped; None if another run
    holds it or already did it."""
    with transaction.atomic():
        row = (
            BulkGrantRow.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=row_id, status=BulkGrantRow.Status.PENDING)
            .first()
        )
        if row is None:
            return None
        entry, skip_reason, detail = None, "", ""
        if member is None:
            skip_reason = BulkGrantRow.SkipReason.MEMBER_NOT_FOUND
        elif member.status in _MEMBER_SKIPS:
            skip_reason = _MEMBER_SKIPS[member.status]
        else:
            try:
                # A savepoint: a refusal after the ledger wrote is undone, the row still recorded.
                with transaction.atomic():
                    entry = services.adjust(
                        member=member,
                        points=row.points,
                        reason=row.reason,
                        operator=grant.uploaded_by,
                        approved_by=grant.decided_by,
                        source_type=BULK_GRANT_SOURCE,
                        source_id=f"{grant.pk}:{row.row_number}",
                    )
            except InsufficientPoints as error:
                skip_reason, detail = BulkGrantRow.SkipReason.INSUFFICIENT_POINTS, error.message
            except IssuanceFrozen:
                raise  # not this row's fault: the run stops, the row stays pending for Resume
            except LoyaltyError as error:
                skip_reason, detail = BulkGrantRow.SkipReason.REFUSED, error.message
        row.processed_at = timezone.now()
        if entry is not None:
            row.status, row.entry = BulkGrantRow.Status.GRANTED, entry
            counters = {"granted_rows": F("granted_rows") + 1}
            counters["granted_points"] = F("granted_points") + row.points
        else:
            row.status, row.skip_reason, row.skip_detail = (
                BulkGrantRow.Status.SKIPPED,
                skip_reason,
                detail[:255],
            )
            counters = {"skipped_rows": F("skipped_rows") + 1}
        row.save(update_fields=["status", "entry", "skip_reason", "skip_detail", "processed_at"])
        BulkGrant.objects.filter(pk=grant.pk).update(done_rows=F("done_rows") + 1, **counters)
        return row.status


@dataclass(frozen=True)
class BulkGrantRun:
    grant: BulkGrant
    granted: int
    skipped: int


def run_bulk_grant(
    *,
    grant_id: int,
    chunk_size: int = 500,
    on_chunk: Callable[[BulkGrant], None] | None = None,
) -> BulkGrantRun:
    """Grant the pending rows of a queued (or interrupted) grant, chunk by chunk, in row order.

    Idempotent: run it again, twice at once, or after a kill, and each row is granted once.
    A grant not approved (or rejected, or done) is left alone. Ends `done` when no row is left.
    """
    with transaction.atomic():
        grant = _lock_grant(grant_id)
        if grant.state not in (BulkGrant.State.QUEUED, BulkGrant.State.RUNNING):
            return BulkGrantRun(grant=grant, granted=0, skipped=0)
        if grant.state == BulkGrant.State.QUEUED:
            grant.state = BulkGrant.State.RUNNING
            grant.started_at = grant.started_at or timezone.now()
            grant.save(update_fields=["state", "started_at"])
    grant = BulkGrant.objects.select_related("uploaded_by", "decided_by").get(pk=grant_id)
    granted = skipped = 0
    after = 0
    while True:
        chunk = list(
            BulkGrantRow.objects.filter(
                grant_id=grant_id, status=BulkGrantRow.Status.PENDING, row_number__gt=after
            )
            .order_by("row_number")
            .values_list("pk", "row_number", "member_external_id")[:chunk_size]
        )
        if not chunk:
            break
        # A freeze stops the run between chunks (rows stay pending; "Resume" after the freeze).
        services.ensure_issuance_open()
        members = {
            member.external_id: member
            for member in Member.objects.filter(external_id__in={row[2] for row in chunk})
        }
        for row_id, _row_number, external_id in chunk:
            status = _grant_row(grant=grant, row_id=row_id, member=members.get(external_id))
            granted += status == BulkGrantRow.Status.GRANTED
            skipped += status == BulkGrantRow.Status.SKIPPED
        after = chunk[-1][1]
        if on_chunk is not None:
            on_chunk(BulkGrant.objects.get(pk=grant_id))
    grant = _finish_bulk_grant(grant_id=grant_id)
    return BulkGrantRun(grant=grant, granted=granted, skipped=skipped)


@transaction.atomic
def _finish_bulk_grant(*, grant_id: int) -> BulkGrant:
    """Done once no row is pending; rows another run still holds make that run finish it."""
    grant = _lock_grant(grant_id)
    if grant.state != BulkGrant.State.RUNNING:
        return grant
    if grant.rows.filter(status=BulkGrantRow.Status.PENDING).exists():
        return grant
    grant.report = dict(
        grant.rows.filter(status=BulkGrantRow.Status.SKIPPED)
        .values_list("skip_reason")
        .annotate(rows=Count("id"))
        .order_by("skip_reason")
    )
    grant.state = BulkGrant.State.DONE
    grant.finished_at = timezone.now()
    grant.save(update_fields=["report", "state", "finished_at"])
    logger.info(
        "bulk grant #%s done: %s granted, %s skipped",
        grant.pk,
        grant.granted_rows,
        grant.skipped_rows,
    )
    return grant
