"""Report exports written to a file by a Celery task, with progress (docs/adr/0015)."""

from __future__ import annotations

import io
import logging
import tempfile
import uuid

from django.core.files import File
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty_site.reports import ReportFilters, get_report, open_writer, read_report
from points.exceptions import InvalidLedgerRequest
from points.models import ReportExport

logger = logging.getLogger(__name__)


def request_report_export(
    *, report_key: str, filters: ReportFilters, fmt: str, requested_by=None
) -> ReportExport:
    """Record an export and queue its task once the row is committed."""
    if get_report(report_key) is None:
        raise InvalidLedgerRequest(_("No such report."), report=report_key)
    if fmt not in ReportExport.Format.values:
        raise InvalidLedgerRequest(_("Unknown export format."), format=fmt)
    export = ReportExport.objects.create(
        report=report_key, filters=filters.as_json(), format=fmt, requested_by=requested_by
    )
    from points.tasks import build_report_export

    transaction.on_commit(lambda: build_report_export.delay(export.pk))
    return export


def build_report_export(*, export_id: int) -> ReportExport:
    """Write the export's file part by part (a by-day report: 31 days a part), recording the
    parts done after each one so the admin page can show progress. A finished export is left
    as it is; a failed or interrupted one starts again from the beginning."""
    export = ReportExport.objects.get(pk=export_id)
    if export.state == ReportExport.State.DONE:
        return export
    report = get_report(export.report)
    filters = ReportFilters.from_json(export.filters)
    parts = filters.chunks() if report is not None and report.by_day else [filters]
    ReportExport.objects.filter(pk=export.pk).update(
        state=ReportExport.State.RUNNING, progress_done=0, progress_total=len(parts), rows=0
    )
    try:
        if report is None:
            raise InvalidLedgerRequest(_("No such report."), report=export.report)
        with tempfile.TemporaryFile() as stream:
            text = None
            if export.format == ReportExport.Format.CSV:
                text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
            writer = open_writer(export.format, text or stream, report)
            rows = 0
            for done, part in enumerate(parts, start=1):
                for row in read_report(report, part):
                    writer.write(row)
                    rows += 1
                ReportExport.objects.filter(pk=export.pk).update(progress_done=done, rows=rows)
            writer.close()
            if text is not None:
                text.flush()
            stream.seek(0)
            name = f"{export.report}-{filters.date_from}-{filters.date_to}-{uuid.uuid4().hex}"
            export.refresh_from_db()
            export.file.save(f"{name}.{export.format}", File(stream), save=False)
            if text is not None:
                text.detach()
        export.state = ReportExport.State.DONE
        export.finished_at = timezone.now()
        export.save(update_fields=["file", "state", "finished_at"])
    except Exception as error:
        logger.exception("report export %s failed", export_id)
        ReportExport.objects.filter(pk=export.pk).update(
            state=ReportExport.State.FAILED, error=str(error)[:2000], finished_at=timezone.now()
        )
        export.refresh_from_db()
    return export
