"""The registry of admin reports and their CSV / XLSX writers (docs/adr/0015).

A report is a selector that turns filters (a date range in the programme's time zone and an
optional merchant) into rows of plain values, plus the columns to show them under. Each app
registers its reports in its own `reports.py` (found by `autodiscover_modules`), so the
"Reports" admin page lists reports of apps that the ledger may not import: the mall's top
rewards, the members' tier distribution, and campaign return once campaigns register it:

    # campaigns/reports.py
    from loyalty_site.reports import Column, Report, register

    register(Report(key="campaign-return", title=_("Campaign return"), columns=[...],
                    rows=campaign_return_rows, order=70))
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.utils.module_loading import autodiscover_modules

from loyalty_site.db_router import reading_from_replica

# A by-day report over more days than this is exported by a Celery task, not in the request.
SYNC_EXPORT_MAX_DAYS = 400
# A background export computes this many days per step (its unit of progress).
EXPORT_CHUNK_DAYS = 31


@dataclass(frozen=True)
class ReportFilters:
    """Days from `date_from` to `date_to` inclusive (programme time zone); merchant or all."""

    date_from: date
    date_to: date
    partner_id: int | None = None

    def as_json(self) -> dict:
        return {
            "date_from": self.date_from.isoformat(),
            "date_to": self.date_to.isoformat(),
            "partner_id": self.partner_id,
        }

    @classmethod
    def from_json(cls, data: dict) -> ReportFilters:
        return cls(
            date_from=date.fromisoformat(data["date_from"]),
            date_to=date.fromisoformat(data["date_to"]),
            partner_id=data.get("partner_id"),
        )

    @property
    def days(self) -> int:
        return (self.date_to - self.date_from).days + 1

    def chunks(self, days: int = EXPORT_CHUNK_DAYS) -> list[ReportFilters]:
        """The same filters over consecutive date ranges of at most `days` days."""
        parts, start = [], self.date_from
        while start <= self.date_to:
            end = min(start + timedelta(days=days - 1), self.date_to)
            parts.append(ReportFilters(date_from=start, date_to=end, partner_id=self.partner_id))
            start = end + timedelta(days=1)
        return parts


@dataclass(frozen=True)
class Column:
    key: str
    label: Any  # a lazy translation
    kind: str = "int"  # int, money, percent, text, date


@dataclass
class Report:
    key: str
    title: Any
    columns: list[Column]
    rows: Callable[[ReportFilters], Iterable[dict]]
    description: Any = ""
    # Rows are one per day: a long range can be computed (and exported) in parts.
    by_day: bool = False
    uses_merchant: bool = True
    order: int = 100
    permission: str = "points.view_finance_reports"
    # Optional figures shown above the table, from the rows already read:
    # callable(filters, rows) -> [(label, value)].
    summary: Callable[[ReportFilters, list[dict]], list[tuple[Any, Any]]] | None = None


_registry: dict[str, Report] = {}
_discovered = False


def register(report: Report) -> Report:
    """Add a report (a later registration of the same key replaces it)."""
    _registry[report.key] = report
    return report


def _discover() -> None:
    global _discovered
    if not _discovered:
        _discovered = True
        autodiscover_modules("reports")


def registered_reports() -> list[Report]:
    _discover()
    return sorted(_registry.values(), key=lambda report: (report.order, report.key))


def get_report(key: str) -> Report | None:
    _discover()
    return _registry.get(key)


# --- Writers ----------------------------------------------------------------------------------
def read_report(report: Report, filters: ReportFilters) -> list[dict]:
    """The report's rows for `filters`, read from the replica when there is one (its ORM reads
    here, its raw SQL through `db_router.replica_connection`): the one way reports are read."""
    with reading_from_replica():
        return list(report.rows(filters))


def report_rows(report: Report, filters: ReportFilters) -> Iterator[dict]:
    """All rows; a by-day report is computed in parts so no query spans years at once."""
    parts = filters.chunks() if report.by_day else [filters]
    for part in parts:
        yield from read_report(report, part)


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _text(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else str(value)


class CsvWriter:
    """UTF-8 with a byte order mark, so spreadsheet programs read Chinese names right."""

    content_type = "text/csv; charset=utf-8"
    extension = "csv"

    def __init__(self, stream, columns: list[Column]) -> None:
        self.columns = columns
        self.stream = stream
        stream.write("\ufeff")
        self.writer = csv.writer(stream)
        self.writer.writerow([str(column.label) for column in columns])

    def write(self, row: dict) -> None:
        self.writer.writerow([_text(row.get(column.key)) for column in self.columns])

    def close(self) -> None:
        pass


class XlsxWriter:
    """openpyxl in write-only mode: rows are streamed, memory stays flat."""

    content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    extension = "xlsx"

    def __init__(self, stream, columns: list[Column], title: str = "Report") -> None:
        from openpyxl import Workbook

        self.stream = stream
        self.columns = columns
        self.book = Workbook(write_only=True)
        self.sheet = self.book.create_sheet(title=title[:31] or "Report")
        self.sheet.append([str(column.label) for column in columns])

    def write(self, row: dict) -> None:
        self.sheet.append([_cell(row.get(column.key)) for column in self.columns])

    def close(self) -> None:
        self.book.save(self.stream)


def open_writer(fmt: str, stream, report: Report):
    if fmt == "xlsx":
        return XlsxWriter(stream, report.columns, title=str(report.title))
    return CsvWriter(stream, report.columns)


def render_export(report: Report, filters: ReportFilters, fmt: str) -> tuple[bytes, int]:
    """The whole export in memory (small exports, in the request): (content, rows)."""
    buffer = io.BytesIO() if fmt == "xlsx" else io.StringIO()
    writer = open_writer(fmt, buffer, report)
    count = 0
    for row in report_rows(report, filters):
        writer.write(row)
        count += 1
    writer.close()
    content = buffer.getvalue()
    return (content.encode("utf-8") if isinstance(content, str) else content), count
