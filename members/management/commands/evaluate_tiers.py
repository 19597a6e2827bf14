"""`manage.py evaluate_tiers [--as-of ISO-8601]`: the nightly tier evaluation."""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from members import services
from points.management.commands.expire_points import ProgressLine, parse_as_of


class Command(BaseCommand):
    help = _(
        "Refresh every member's growth over the window, upgrade those who reached a higher "
        "tier and move down those whose tier period ended as of --as-of (default: now)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--as-of", dest="as_of", help=_("ISO 8601 moment (default: now)"))
        parser.add_argument("--chunk-size", type=int, default=20_000)

    def handle(self, *args, as_of=None, chunk_size=20_000, **options):
        moment = parse_as_of(as_of)
        progress = ProgressLine(sys.stderr, _("evaluating tiers"))
        started = time.monotonic()
        run = services.evaluate_tiers(as_of=moment, chunk_size=chunk_size, progress=progress)
        progress.finish()
        self.stdout.write(
            _(
                "%(members)d members evaluated as of %(as_of)s: %(upgraded)d up, "
                "%(downgraded)d down, %(updated)d updated, in %(chunks)d chunks "
                "(%(seconds).1f s)."
            )
            % {
                "members": run.members,
                "as_of": moment.isoformat(),
                "upgraded": run.upgraded,
                "downgraded": run.downgraded,
                "updated": run.updated,
                "chunks": run.chunks,
                "seconds": time.monotonic() - started,
            }
        )
