"""A paginator for admin change lists over tables of millions of rows (docs/adr/0017).

Django's Paginator runs COUNT(*) over the filtered list on every page, which on the ledger is a
scan of ten million rows. This one counts at most `count_cap` + 1 rows (a LIMIT under the
count, so the cost is bounded whatever the table's size), and past that:

- with no filter or search, it shows PostgreSQL's own estimate of the table's rows
  (pg_class.reltuples, kept by autovacuum's ANALYZE): "about 10,000,000 ledger entries";
- with a filter or search, it says "more than 10,000" rather than count them all.

Pages stop at `count_cap` rows: a deeper page would be an OFFSET over millions of rows, and
nobody pages through a million rows by hand; they filter or search instead.
"""

from __future__ import annotations

import math

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
        # Without ORDER BY the scan stops after count_cap + 1 matching rows, in any order.
        counted = self.object_list.order_by()[: self.count_cap + 1].count()
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
