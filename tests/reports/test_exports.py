"""Background exports: the Celery task writes the file part by part with progress, and staff
download it through a view that checks the permission."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from loyalty_site import reports as registry
from loyalty_site.reports import Column, Report, ReportFilters
from points.models import ReportExport
from points.report_exports import request_report_export
from points.tasks import build_report_export

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def probe_report():
    """A by-day report that notes the export's progress each time a part is computed."""
    seen: list[tuple[int, int]] = []

    def rows(filters: ReportFilters):
        export = ReportExport.objects.order_by("-id").first()
        seen.append((export.progress_done, export.progress_total))
        days = (filters.date_to - filters.date_from).days + 1
        for n in range(days):
            day = date.fromordinal(filters.date_from.toordinal() + n)
            yield {"day": day, "points": n, "name": "会员 Member"}

    report = registry.register(
        Report(
            key="probe",
            title="Probe",
            columns=[
                Column("day", "day", "date"),
                Column("points", "points"),
                Column("name", "name", "text"),
            ],
            rows=rows,
            by_day=True,
        )
    )
    yield report, seen
    registry._registry.pop("probe", None)


def test_the_task_writes_the_file_with_progress(probe_report, finance_user):
    # given: 70 days, computed 31 days at a time: 3 parts
    _report, seen = probe_report
    filters = ReportFilters(date(2026, 1, 1), date(2026, 3, 11))
    export = request_report_export(
        report_key="probe", filters=filters, fmt="csv", requested_by=finance_user
    )
    assert export.state == ReportExport.State.QUEUED

    # when: the Celery task runs (called as the worker would)
    state = build_report_export(export.pk)

    # then
    export.refresh_from_db()
    assert state == "done" == export.state
    assert seen == [(0, 3), (1, 3), (2, 3)]
    assert (export.progress_done, export.progress_total, export.rows) == (3, 3, 70)
    assert export.percent == 100
    rows = list(csv.reader(io.StringIO(export.file.read().decode("utf-8-sig"))))
    assert rows[0] == ["day", "points", "name"]
    assert len(rows) == 71
    assert rows[32] == ["2026-02-01", "0", "会员 Member"]  # the second part starts again at 0


def test_an_xlsx_export_is_downloaded_by_staff_with_the_permission(
    probe_report, finance_user, finance_client, client, django_user_model
):
    filters = ReportFilters(date(2026, 1, 1), date(2026, 1, 10))
    export = request_report_export(report_key="probe", filters=filters, fmt="xlsx")
    status_url = reverse("admin:points_reportexport_status", args=[export.pk])
    download_url = reverse("admin:points_reportexport_download", args=[export.pk])
    assert finance_client.get(status_url).json()["download_url"] is None
    assert finance_client.get(download_url).status_code == 404

    build_report_export(export.pk)

    status = finance_client.get(status_url).json()
    assert status["state"] == "done"
    assert status["percent"] == 100
    assert status["download_url"] == download_url
    response = finance_client.get(download_url)
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("day", "points", "name")
    assert len(rows) == 11
    page = finance_client.get(reverse("admin:points_reportexport_progress", args=[export.pk]))
    assert download_url in page.content.decode()

    other = django_user_model.objects.create_user(username="ops", password="x", is_staff=True)
    client.force_login(other)
    assert client.get(download_url).status_code == 403
    assert client.get(status_url).status_code == 403


def test_a_failing_report_marks_the_export_failed(finance_user):
    def rows(filters):
        raise RuntimeError("the database went away")

    registry.register(Report(key="broken", title="Broken", columns=[], rows=rows))
    try:
        export = request_report_export(
            report_key="broken",
            filters=ReportFilters(date(2026, 1, 1), date(2026, 1, 2)),
            fmt="csv",
        )
        build_report_export(export.pk)
    finally:
        registry._registry.pop("broken", None)
    export.refresh_from_db()
    assert export.state == ReportExport.State.FAILED
    assert "went away" in export.error
    assert not export.file


def test_a_long_range_download_goes_to_the_background(finance_client):
    url = reverse("admin:points_report", args=["points-activity"])
    response = finance_client.get(
        url, {"date_from": "2024-01-01", "date_to": "2026-01-31", "download": "csv"}
    )
    export = ReportExport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:points_reportexport_progress", args=[export.pk])
    assert export.report == "points-activity"
    assert export.filters["date_from"] == "2024-01-01"


def test_the_export_button_queues_an_export(finance_client):
    url = reverse("admin:points_report", args=["liability"])
    response = finance_client.post(
        f"{url}?date_from=2026-09-01&date_to=2026-09-05", {"export": "xlsx"}
    )
    export = ReportExport.objects.get()
    assert response.status_code == 302
    assert (export.report, export.format) == ("liability", "xlsx")
