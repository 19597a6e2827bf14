"""A paginator for admin change lists over tables of millions of rows (docs/adr/0017).

Django's Paginator runs COUNT(*) over the filtered list on every page, which on the ledger is a
scan of ten million rows. This one counts at most `count_cap` + 1 rows (a LIMIT under the
count, so the cost is bounded whatever the table's size), and past that:

- with no filter or search, it shows PostgreSQL's own estimate of the table's rows
  (pg_class.reltuples, kept by autovacuum's ANALYZE): "about 10,000,000 ledger entries";
- with a filter or search, it says "more than 10,000" rather than count them all.

Pages stop at `count_cap` rows: a deeper page would be an OFFSET over millions of rows, and
nobody pages through a million rows by hand; they filter or search instead. A page reads its
primary keys first and joins only those rows (`page`).
"""

from __future__ import annotations

import math

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property


class LargeTablePaginator(Paginator):
    """Counts at most `count_cap` + 1 rows; never COUNT(*) over a whole large table."""

    count_cap = 10_000

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Filled in by `count`: True when the figure shown is exact, False for "about" (an
        # estimate of the whole table) and "more than" (a filtered list past the cap).
        self.count_is_exact = True
        self.count_is_estimate = False

    @cached_property
    def count(self) -> int:
        unfiltered = not self.object_list.query.where
        # Asked whether needed or not, so that a page costs the same queries at any size.
        estimate = self._estimated_table_rows() if unfiltered else 0
        # The keys of the first count_cap + 1 rows in the list's order: the index that serves the
        # page serves the count (without ORDER BY the planner may pick a scan that meets the
        # matching rows only after millions of others).
        counted = self.object_list.values_list("pk", flat=True)[: self.count_cap + 1].count()
        if counted <= self.count_cap:
            return counted
        self.count_is_exact = False
        if estimate > counted:
            self.count_is_estimate = True
            return estimate
        return counted

    @cached_property
    def num_pages(self) -> int:
        pages = super().num_pages
        if self.count_is_exact:
            return pages
        # Only the pages within the counted rows can be reached (bounded OFFSET).
        return min(pages, max(1, math.ceil(self.count_cap / self.per_page)))

    def page(self, number):
        # Deferred join: the OFFSET walks the list's own index for primary keys only, then the
        # page's rows are read with their joins (members, accounts, merchants) for those keys.
        # Joining first would look up every skipped row's member too.
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        keys = list(self.object_list.values_list("pk", flat=True)[bottom : bottom + self.per_page])
        return self._get_page(self.object_list.filter(pk__in=keys), number, self)

    def _estimated_table_rows(self) -> int:
        model = self.object_list.model
        with connections[self.object_list.db].cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                [model._meta.db_table],
            )
            row = cursor.fetchone()
        # -1 (never analysed) or missing: no estimate, the caller keeps the capped count.
        return int(row[0]) if row and row[0] and row[0] > 0 else 0


class LargeTableChangeList(ChangeList):
    """A change list whose one-page lists also go through `LargeTablePaginator.page` (keys,
    then rows), so that a list costs the same queries with 10 rows as with 10,000,000."""

    def get_results(self, request) -> None:
        super().get_results(request)
        if not self.multi_page and not self.show_all:
            self.result_list = self.paginator.page(1).object_list


class LargeTableAdmin(admin.ModelAdmin):
    """Change lists over tables of millions of rows (docs/adr/0017): bounded counts, bounded
    pages, deferred joins, no unfiltered second count. Put it first among the bases."""

    paginator = LargeTablePaginator
    show_full_result_count = False

    def get_changelist(self, request, **kwargs):
        return LargeTableChangeList
