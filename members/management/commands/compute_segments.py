"""`manage.py compute_segments [--as-of ISO-8601]`: the nightly RFM scoring and segments."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from members import services
from points.management.commands.expire_points import parse_as_of


class Command(BaseCommand):
    help = _("Score every member's RFM as of --as-of (default: now) and store the segments.")

    def add_arguments(self, parser):
        parser.add_argument("--as-of", dest="as_of", help=_("ISO 8601 moment (default: now)"))

    def handle(self, *args, as_of=None, **options):
        moment = parse_as_of(as_of)
        started = time.monotonic()
        run = services.compute_segments(as_of=moment)
        self.stdout.write(
            _(
                "%(members)d members scored for %(day)s, %(memberships)d segment memberships "
                "(%(seconds).1f s)."
            )
            % {
                "members": run.members_scored,
                "day": run.day.isoformat(),
                "memberships": run.memberships,
                "seconds": time.monotonic() - started,
            }
        )
