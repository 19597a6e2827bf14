"""`manage.py compute_health_metrics [--as-of ISO-8601] [--day YYYY-MM-DD]`: the nightly
health rollup, metrics and alerts."""

from __future__ import annotations

import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from campaigns import health
from points.management.commands.expire_points import parse_as_of


class Command(BaseCommand):
    help = _(
        "Roll up the ledger's days not rolled up yet (up to the day before --as-of), or "
        "recompute --day; store the health metrics and raise or clear alerts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--as-of", dest="as_of", help=_("ISO 8601 moment (default: now)"))
        parser.add_argument("--day", help=_("recompute this day only (YYYY-MM-DD)"))

    def handle(self, *args, as_of=None, day=None, **options):
        moment = parse_as_of(as_of)
        try:
            one_day = date.fromisoformat(day) if day else None
        except ValueError as error:
            raise CommandError(_("--day must be a date (YYYY-MM-DD): %s") % day) from error
        started = time.monotonic()
        try:
            run = health.compute_health_metrics(
                as_of=moment, day=one_day, progress=lambda line: self.stdout.write(line)
            )
        except health.HealthDayNotClosed as error:
            raise CommandError(str(error.message)) from error
        self.stdout.write(
            _(
                "%(days)d days rolled up (%(rows)d merchant rows), %(raised)d alerts raised, "
                "%(recovered)d recovered (%(seconds).1f s)."
            )
            % {
                "days": len(run.days),
                "rows": run.merchant_rows,
                "raised": run.alerts_raised,
                "recovered": run.alerts_recovered,
                "seconds": time.monotonic() - started,
            }
        )
