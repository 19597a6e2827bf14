"""A real Celery worker builds a report export from the real broker (integration)."""

from __future__ import annotations

import csv
import io

import pytest

from points.models import ReportExport
from tests.integration.test_celery_worker import worker  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_worker_writes_the_export_file_with_its_progress(worker, tmp_path):  # noqa: F811
    export = ReportExport.objects.create(
        report="points-activity",
        filters={"date_from": "2026-01-01", "date_to": "2026-03-31", "partner_id": None},
        format="csv",
    )

    state = worker.send_task("points.build_report_export", args=[export.pk]).get(timeout=60)

    export.refresh_from_db()
    assert state == "done" == export.state
    assert (export.progress_done, export.progress_total, export.rows) == (3, 3, 90)
    # The worker's MEDIA_ROOT is in its own data folder (LOYALTY_DATA_DIR).
    written = tmp_path / "data" / "media" / export.file.name
    rows = list(csv.reader(io.StringIO(written.read_text(encoding="utf-8-sig"))))
    assert len(rows) == 91
    assert rows[1][0] == "2026-01-01"
