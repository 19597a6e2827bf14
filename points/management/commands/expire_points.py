"""`manage.py expire_points [--as-of ISO-8601]`: expire the lots due as of a moment."""

from __future__ import annotations

import sys
import time
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.translation import gettext as _

from points import services
from points.models import ProgrammeSettings


def parse_as_of(value: str | None) -> datetime:
    """ISO 8601; a time without offset (or a bare date) is in the programme's time zone."""
    if not value:
        return timezone.now()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise CommandError(_("--as-of must be an ISO 8601 date or time: %s") % value) from error
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=ProgrammeSettings.get().zone)
    return moment


class ProgressLine:
    """A one-line progress display, only when the output is a terminal."""

    def __init__(self, stream, label: str) -> None:
        self.stream = stream
        self.label = label
        self.enabled = hasattr(stream, "isatty") and stream.isatty()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        share = done / total if total else 1.0
        bar = "#" * int(share * 30)
        self.stream.write(f"\r{self.label} [{bar:<30}] {done}/{total}")
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\n")


class Command(BaseCommand):
    help = _("Expire the points whose expiry date is before --as-of (default: now).")

    def add_arguments(self, parser):
        parser.add_argument("--as-of", dest="as_of", help=_("ISO 8601 moment (default: now)"))
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args, as_of=None, batch_size=5000, **options):
        moment = parse_as_of(as_of)
        progress = ProgressLine(sys.stderr, _("expiring"))
        started = time.monotonic()
        run = services.run_expiry(as_of=moment, batch_size=batch_size, progress=progress)
        progress.finish()
        self.stdout.write(
            _(
                "Expired %(lots)d lots, %(points)d points, in %(chunks)d chunks "
                "as of %(as_of)s (%(seconds).1f s)."
            )
            % {
                "lots": run.lots,
                "points": run.points,
                "chunks": run.chunks,
                "as_of": moment.isoformat(),
                "seconds": time.monotonic() - started,
            }
        )
