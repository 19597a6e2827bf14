"""Bulk grants from a file: preview errors per row, maker-checker, an idempotent chunked run."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from points import grants, services
from points.exceptions import AlreadyDecided, OwnRequestApproval
from points.models import Account, BulkGrant, BulkGrantRow, Entry
from points.tasks import run_bulk_grant as run_bulk_grant_task
from tests.factories import MemberFactory
from tests.grants.conftest import grant_file, upload_grant

pytestmark = pytest.mark.django_db

IMPORT_URL = "/admin/points/bulkgrant/import/"
CONFIRM_URL = "/admin/points/bulkgrant/process_import/"
CSV_FORMAT, XLSX_FORMAT = "0", "1"  # BulkGrantAdmin.formats


def balances() -> dict[str, int]:
    return dict(Account.objects.values_list("member__external_id", "available"))


@pytest.fixture
def members(db):
    return [MemberFactory(external_id=f"m-{n}") for n in range(1, 6)]


@pytest.fixture
def five_rows(members):
    return [(member.external_id, 10 * n, "spring campaign") for n, member in enumerate(members, 1)]


class SimulatedKill(Exception):
    """Stands for the worker dying between two chunks."""


# --- Upload through the admin -------------------------------------------------------------------
def _preview(client, content: bytes, name: str, fmt: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        IMPORT_URL,
        {"resource": "0", "format": fmt, "import_file": SimpleUploadedFile(name, content)},
    )


def _confirm(client, preview):
    return client.post(CONFIRM_URL, preview.context["confirm_form"].initial)


def _row_errors(preview) -> dict[int, list[str]]:
    """Line number -> the error messages the preview shows for it."""
    return {
        row.number: [str(message) for messages in row.error_dict.values() for message in messages]
        for row in preview.context["result"].invalid_rows
    }


def _error_columns(preview) -> dict[int, list[str]]:
    """Line number -> the columns the preview flags on it."""
    return {row.number: sorted(row.error_dict) for row in preview.context["result"].invalid_rows}


def test_a_csv_file_with_bad_rows_shows_each_rows_errors_and_imports_nothing(
    members, maker, staff_client
):
    client = staff_client(maker, "view_bulkgrant", "add_bulkgrant")
    content = grant_file(
        [
            ("m-1", "100", "welcome"),
            ("nobody", "100", "welcome"),
            ("m-2", "1.5", "welcome"),
            ("m-3", "ten", "welcome"),
            ("m-4", "50", ""),
            ("m-5", "0", "welcome"),
        ]
    )

    preview = _preview(client, content, "spring.csv", CSV_FORMAT)

    assert preview.status_code == 200
    errors = _row_errors(preview)
    assert sorted(errors) == [2, 3, 4, 5, 6]
    assert "No member with the external id “nobody”." in errors[2]
    assert any("whole number" in message and "1.5" in message for message in errors[3])
    assert any("whole number" in message and "ten" in message for message in errors[4])
    assert "Points cannot be 0." in errors[6]
    assert _error_columns(preview) == {
        2: ["member"],
        3: ["points"],
        4: ["points"],
        5: ["reason"],
        6: ["points"],
    }
    assert "confirm_form" not in preview.context
    page = preview.content.decode()
    assert "Some rows failed to validate" in page
    assert "No member with the external id “nobody”." in page
    assert not BulkGrant.objects.exists() and not BulkGrantRow.objects.exists()


def test_a_file_without_the_columns_is_refused_as_a_whole(members, maker, staff_client):
    client = staff_client(maker, "view_bulkgrant", "add_bulkgrant")
    content = grant_file([("m-1", "5")], headers=("member", "amount"))

    preview = _preview(client, content, "wrong.csv", CSV_FORMAT)

    assert "confirm_form" not in preview.context
    assert "missing: points, reason" in preview.content.decode()
    assert not BulkGrant.objects.exists()


def test_an_xlsx_file_is_previewed_then_confirmed_into_a_queued_grant(
    five_rows, maker, staff_client, thresholds, django_capture_on_commit_callbacks
):
    thresholds(bulk_grant=1000)
    client = staff_client(maker, "view_bulkgrant", "add_bulkgrant")
    content = grant_file(five_rows, fmt="xlsx")

    preview = _preview(client, content, "spring.xlsx", XLSX_FORMAT)
    assert preview.status_code == 200 and "confirm_form" in preview.context
    assert not BulkGrant.objects.exists()  # the preview stores nothing
    confirmed = _confirm(client, preview)

    grant = BulkGrant.objects.get()
    assert confirmed.status_code == 302
    assert confirmed.url == reverse("admin:points_bulkgrant_change", args=[grant.pk])
    assert (grant.state, grant.total_rows, grant.total_points) == ("queued", 5, 150)
    assert (grant.file_name, grant.uploaded_by_id) == ("spring.xlsx", maker.pk)
    assert list(grant.rows.values_list("row_number", "member_external_id", "points")) == [
        (n, f"m-{n}", 10 * n) for n in range(1, 6)
    ]
    assert not Entry.objects.exists()  # granted by the task, not by the request


def test_a_grant_above_the_threshold_waits_for_approval(five_rows, maker, staff_client, thresholds):
    thresholds(bulk_grant=100)
    client = staff_client(maker, "view_bulkgrant", "add_bulkgrant")
    preview = _preview(client, grant_file(five_rows), "big.csv", CSV_FORMAT)

    _confirm(client, preview)

    grant = BulkGrant.objects.get()
    assert (grant.state, grant.total_points) == ("awaiting_approval", 150)
    run_bulk_grant_task(grant.pk)
    assert not Entry.objects.exists()


def test_the_same_file_uploaded_twice_grants_once(five_rows, maker, checker, staff_client):
    client = staff_client(maker, "view_bulkgrant", "add_bulkgrant")
    first = _preview(client, grant_file(five_rows), "spring.csv", CSV_FORMAT)
    _confirm(client, first)
    grant = BulkGrant.objects.get()
    run_bulk_grant_task(grant.pk)

    # the same rows, saved again as XLSX, by another operator
    other = staff_client(checker, "view_bulkgrant", "add_bulkgrant")
    second = _preview(other, grant_file(five_rows, fmt="xlsx"), "spring (2).xlsx", XLSX_FORMAT)

    assert "confirm_form" not in second.context
    assert f"already uploaded as bulk grant #{grant.pk}" in second.content.decode()
    assert BulkGrant.objects.count() == 1
    assert Entry.objects.count() == 5
    assert balances() == {f"m-{n}": 10 * n for n in range(1, 6)}


def test_a_second_confirmation_of_the_same_file_is_refused(five_rows, maker, staff_client):
    client = staff_client(maker, "view_bulkgrant", "add_bulkgrant")
    first = _preview(client, grant_file(five_rows), "a.csv", CSV_FORMAT)
    second = _preview(client, grant_file(five_rows), "a.csv", CSV_FORMAT)  # two tabs

    _confirm(client, first)
    refused = _confirm(client, second)

    assert refused.status_code == 302 and refused.url == IMPORT_URL
    assert BulkGrant.objects.count() == 1
    assert BulkGrantRow.objects.count() == 5


def test_the_database_refuses_a_second_grant_with_the_same_content(five_rows, maker):
    _result, grant = upload_grant(five_rows, user=maker)

    with pytest.raises(IntegrityError), transaction.atomic():
        BulkGrant.objects.create(content_hash=grant.content_hash, uploaded_by=maker)


# --- The run ---------------------------------------------------------------------------------
def test_the_task_run_twice_grants_once(five_rows, maker):
    _result, grant = upload_grant(five_rows, user=maker)

    first = run_bulk_grant_task(grant.pk, chunk_size=2)
    second = run_bulk_grant_task(grant.pk, chunk_size=2)

    assert first == {"grant": grant.pk, "state": "done", "granted": 5, "skipped": 0}
    assert second == {"grant": grant.pk, "state": "done", "granted": 0, "skipped": 0}
    assert Entry.objects.count() == 5
    assert balances() == {f"m-{n}": 10 * n for n in range(1, 6)}
    entry = Entry.objects.get(account__member__external_id="m-3")
    assert (entry.kind, entry.amount, entry.reason) == ("adjust", 30, "spring campaign")
    assert (entry.source_type, entry.source_id) == ("bulk_grant", f"{grant.pk}:3")
    assert (entry.operator_id, entry.approved_by_id) == (maker.pk, None)
    assert BulkGrantRow.objects.get(grant=grant, row_number=3).entry_id == entry.pk


def test_a_killed_run_resumed_grants_the_rest_exactly_once(five_rows, maker):
    _result, grant = upload_grant(five_rows, user=maker)

    def die_after_first_chunk(progress):
        raise SimulatedKill

    with pytest.raises(SimulatedKill):
        grants.run_bulk_grant(grant_id=grant.pk, chunk_size=2, on_chunk=die_after_first_chunk)

    grant.refresh_from_db()
    assert (grant.state, grant.done_rows, grant.granted_rows) == ("running", 2, 2)
    assert balances() == {"m-1": 10, "m-2": 20}

    resumed = grants.run_bulk_grant(grant_id=grant.pk, chunk_size=2)

    assert (resumed.granted, resumed.grant.state) == (3, "done")
    assert Entry.objects.count() == 5
    assert balances() == {f"m-{n}": 10 * n for n in range(1, 6)}


def test_a_row_interrupted_inside_its_transaction_is_granted_on_resume(
    five_rows, maker, monkeypatch
):
    _result, grant = upload_grant(five_rows, user=maker)
    real_adjust = services.adjust
    calls = []

    def adjust_then_die_on_the_third_row(**kwargs):
        calls.append(kwargs["source_id"])
        entry = real_adjust(**kwargs)
        if len(calls) == 3:
            raise SimulatedKill  # after the entry was written, before the row was marked
        return entry

    monkeypatch.setattr(services, "adjust", adjust_then_die_on_the_third_row)
    with pytest.raises(SimulatedKill):
        grants.run_bulk_grant(grant_id=grant.pk, chunk_size=10)
    monkeypatch.setattr(services, "adjust", real_adjust)

    assert Entry.objects.count() == 2  # the third row's entry was rolled back with it
    grants.run_bulk_grant(grant_id=grant.pk, chunk_size=10)

    assert Entry.objects.count() == 5
    assert balances() == {f"m-{n}": 10 * n for n in range(1, 6)}


def test_progress_numbers_follow_the_run(five_rows, maker, english_admin):
    _result, grant = upload_grant(five_rows, user=maker)
    seen = []

    grants.run_bulk_grant(
        grant_id=grant.pk,
        chunk_size=2,
        on_chunk=lambda g: seen.append((g.done_rows, g.granted_rows, g.total_rows)),
    )

    assert seen == [(2, 2, 5), (4, 4, 5), (5, 5, 5)]
    progress = english_admin.get(reverse("admin:points_bulkgrant_progress", args=[grant.pk]))
    assert progress.json() == {
        "state": "done",
        "state_label": "done",
        "total": 5,
        "done": 5,
        "granted": 5,
        "skipped": 0,
        "granted_points": 150,
        "percent": 100,
        "finished": True,
    }


def test_the_grant_page_shows_a_progress_bar_that_polls_while_running(
    five_rows, maker, english_admin
):
    _result, grant = upload_grant(five_rows, user=maker)
    with pytest.raises(SimulatedKill):
        grants.run_bulk_grant(
            grant_id=grant.pk,
            chunk_size=2,
            on_chunk=lambda g: (_ for _ in ()).throw(SimulatedKill()),
        )

    page = english_admin.get(reverse("admin:points_bulkgrant_change", args=[grant.pk]))
    listing = english_admin.get(reverse("admin:points_bulkgrant_changelist"))

    html = page.content.decode()
    assert page.status_code == 200
    assert '<progress max="5" value="2"' in html
    assert "40%" in html
    assert reverse("admin:points_bulkgrant_progress", args=[grant.pk]) in html
    assert "setTimeout(poll" in html
    assert "2/5" in listing.content.decode()


def test_skipped_rows_are_reported_with_their_reason(members, maker, english_admin):
    MemberFactory(external_id="frozen-1", status="frozen")
    MemberFactory(external_id="closed-1", status="closed")
    services.earn(member=members[1], points=5)
    rows = [
        ("m-1", "100", "gift"),
        ("frozen-1", "100", "gift"),
        ("closed-1", "100", "gift"),
        ("m-2", "-50", "clawback"),
        ("m-3", "-2", "clawback"),
    ]
    services.earn(member=members[2], points=10)
    _result, grant = upload_grant(rows, user=maker)

    run = grants.run_bulk_grant(grant_id=grant.pk)

    grant = run.grant
    assert (grant.state, grant.granted_rows, grant.skipped_rows, grant.done_rows) == (
        "done",
        2,
        3,
        5,
    )
    assert grant.granted_points == 98
    assert grant.report == {"insufficient_points": 1, "member_closed": 1, "member_frozen": 1}
    skipped = dict(
        grant.rows.filter(status="skipped").values_list("member_external_id", "skip_reason")
    )
    assert skipped == {
        "frozen-1": "member_frozen",
        "closed-1": "member_closed",
        "m-2": "insufficient_points",
    }
    assert balances() == {"m-1": 100, "m-2": 5, "m-3": 8}
    page = english_admin.get(reverse("admin:points_bulkgrant_change", args=[grant.pk]))
    html = page.content.decode()
    assert "member frozen" in html and "not enough points to take" in html
    assert "frozen-1" in html


def test_a_member_gone_between_upload_and_run_is_skipped(five_rows, maker):
    _result, grant = upload_grant(five_rows, user=maker)
    BulkGrantRow.objects.filter(grant=grant, row_number=2).update(member_external_id="ghost")

    run = grants.run_bulk_grant(grant_id=grant.pk)

    assert run.grant.report == {"member_not_found": 1}
    assert Entry.objects.count() == 4


# --- Maker-checker for bulk grants -------------------------------------------------------------
def test_the_uploader_cannot_approve_their_own_grant(five_rows, maker, thresholds):
    thresholds(bulk_grant=100)
    _result, grant = upload_grant(five_rows, user=maker)

    with pytest.raises(OwnRequestApproval):
        grants.approve_bulk_grant(grant_id=grant.pk, approver=maker)
    with pytest.raises(IntegrityError), transaction.atomic():
        BulkGrant.objects.filter(pk=grant.pk).update(decided_by=maker, decided_at=timezone.now())

    grant.refresh_from_db()
    assert grant.state == "awaiting_approval"


def test_an_approved_grant_is_queued_and_its_entries_name_both_operators(
    five_rows, maker, checker, thresholds, django_capture_on_commit_callbacks
):
    thresholds(bulk_grant=100)
    _result, grant = upload_grant(five_rows, user=maker)

    with django_capture_on_commit_callbacks() as queued:
        grants.approve_bulk_grant(grant_id=grant.pk, approver=checker)
    run_bulk_grant_task(grant.pk)

    assert len(queued) == 1  # run_bulk_grant.delay after commit
    with pytest.raises(AlreadyDecided):
        grants.approve_bulk_grant(grant_id=grant.pk, approver=checker)
    assert set(Entry.objects.values_list("operator_id", "approved_by_id")) == {
        (maker.pk, checker.pk)
    }
    assert Entry.objects.count() == 5


def test_a_rejected_grant_grants_nothing(five_rows, maker, checker, thresholds):
    thresholds(bulk_grant=100)
    _result, grant = upload_grant(five_rows, user=maker)

    grants.reject_bulk_grant(grant_id=grant.pk, decided_by=checker, reason="wrong campaign")
    result = run_bulk_grant_task(grant.pk)

    assert result["state"] == "rejected"
    assert not Entry.objects.exists()


def test_approval_and_rejection_in_the_admin(five_rows, maker, checker, thresholds, staff_client):
    from django.contrib.admin import helpers

    thresholds(bulk_grant=10)
    _result, first = upload_grant(five_rows, user=maker, file_name="a.csv")
    _result, second = upload_grant(five_rows[:2], user=maker, file_name="b.csv")
    changelist = reverse("admin:points_bulkgrant_changelist")
    as_maker = staff_client(maker, "view_bulkgrant", "add_bulkgrant", "approve_bulkgrant")
    as_checker = staff_client(checker, "view_bulkgrant", "approve_bulkgrant")

    own = as_maker.post(
        changelist, {"action": "approve_grants", helpers.ACTION_CHECKBOX_NAME: [first.pk]}
    )
    approved = as_checker.post(
        changelist, {"action": "approve_grants", helpers.ACTION_CHECKBOX_NAME: [first.pk]}
    )
    rejected = as_checker.post(
        changelist,
        {
            "action": "reject_grants",
            helpers.ACTION_CHECKBOX_NAME: [second.pk],
            "apply": "1",
            "rejection_reason": "duplicate campaign",
        },
    )

    assert own.status_code == approved.status_code == rejected.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, first.decided_by_id) == ("queued", checker.pk)
    assert (second.state, second.rejection_reason) == ("rejected", "duplicate campaign")


def test_an_operator_without_the_upload_permission_cannot_import(maker, staff_client):
    client = staff_client(maker, "view_bulkgrant")

    assert client.get(IMPORT_URL).status_code == 403


def test_chinese_column_headers_and_xlsx_numbers_are_read(members, maker):
    import tablib

    from points.grants_admin import BulkGrantRowResource

    dataset = tablib.Dataset(("m-1", 25.0, "春节"), ("m-2", 5, "春节"), ("", None, None))
    dataset.headers = ["会员", "积分", "原因"]

    result = BulkGrantRowResource().import_data(
        dataset, dry_run=False, user=maker, file_name="春节.xlsx"
    )

    assert not result.has_errors() and not result.has_validation_errors()
    grant = BulkGrant.objects.get()
    assert list(grant.rows.values_list("member_external_id", "points", "reason")) == [
        ("m-1", 25, "春节"),
        ("m-2", 5, "春节"),
    ]  # the blank line at the end is not a row


@pytest.mark.parametrize(
    "page",
    [
        ("admin:points_approvalsettings_changelist", False),
        ("admin:points_adjustmentrequest_changelist", False),
        ("admin:points_adjustmentrequest_change", "request"),
        ("admin:points_bulkgrant_changelist", False),
        ("admin:points_bulkgrant_import", False),
        ("admin:points_bulkgrantrow_changelist", False),
    ],
)
def test_the_pages_open(english_admin, five_rows, maker, thresholds, page):
    thresholds(adjustment=1)
    request = grants.adjust_or_request_approval(
        member=MemberFactory(), points=5, reason="r", operator=maker
    ).request
    upload_grant(five_rows, user=maker)
    name, with_object = page

    response = english_admin.get(
        reverse(name, args=[request.pk] if with_object else []), follow=True
    )

    assert response.status_code == 200


def test_a_stalled_grant_is_resumed_from_the_admin(
    five_rows, maker, staff_client, django_capture_on_commit_callbacks
):
    from django.contrib.admin import helpers

    _result, grant = upload_grant(five_rows, user=maker)
    with pytest.raises(SimulatedKill):
        grants.run_bulk_grant(
            grant_id=grant.pk,
            chunk_size=3,
            on_chunk=lambda g: (_ for _ in ()).throw(SimulatedKill()),
        )
    client = staff_client(maker, "view_bulkgrant", "add_bulkgrant")

    with django_capture_on_commit_callbacks() as queued:
        response = client.post(
            reverse("admin:points_bulkgrant_changelist"),
            {"action": "resume_grants", helpers.ACTION_CHECKBOX_NAME: [grant.pk]},
        )
    run_bulk_grant_task(grant.pk)

    assert response.status_code == 302
    assert len(queued) == 1
    grant.refresh_from_db()
    assert (grant.state, grant.granted_rows) == ("done", 5)
    assert Entry.objects.count() == 5


def test_an_unknown_grant_page_goes_back_to_the_list(english_admin):
    missing = english_admin.get(reverse("admin:points_bulkgrant_change", args=[999999]))

    assert missing.status_code == 302  # the admin's answer to an object that does not exist
