"""`manage.py release_pending_points [--as-of ISO-8601]`: end the return window of points."""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from points import services
from points.management.commands.expire_points import ProgressLine, parse_as_of


class Command(BaseCommand):
    help = _("Make pending points available whose return window ended by --as-of (default: now).")

    def add_arguments(self, parser):
        parser.add_argument("--as-of", dest="as_of", help=_("ISO 8601 moment (default: now)"))
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args, as_of=None, batch_size=5000, **options):
        moment = parse_as_of(as_of)
        progress = ProgressLine(sys.stderr, _("releasing"))
        started = time.monotonic()
        run = services.run_release(as_of=moment, batch_size=batch_size, progress=progress)
        progress.finish()
        self.stdout.write(
            _(
                "Released %(lots)d lots, %(points)d points, in %(chunks)d chunks "
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
