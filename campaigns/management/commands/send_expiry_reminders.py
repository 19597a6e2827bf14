"""`manage.py send_expiry_reminders [--as-of ISO-8601]`: remind members of points expiring soon."""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from campaigns import reminders
from points.management.commands.expire_points import ProgressLine, parse_as_of


class Command(BaseCommand):
    help = _(
        "Send expiry reminders (email, SMS, mall inbox, webhook) for points expiring within the "
        "configured windows as of --as-of (default: now); each at most once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--as-of", dest="as_of", help=_("ISO 8601 moment (default: now)"))
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args, as_of=None, batch_size=1000, **options):
        moment = parse_as_of(as_of)
        started = time.monotonic()
        claiming = ProgressLine(sys.stderr, _("claiming"))
        run = reminders.claim_reminders(as_of=moment, batch_size=batch_size, progress=claiming)
        claiming.finish()
        sending = ProgressLine(sys.stderr, _("sending"))
        run = reminders.send_claimed_reminders(as_of=moment, progress=sending, run=run)
        sending.finish()
        claimed = ", ".join(f"{channel} {count}" for channel, count in sorted(run.claimed.items()))
        self.stdout.write(
            _(
                "Reminders as of %(as_of)s: %(groups)d due groups, new: %(claimed)s; "
                "sent %(sent)d, failed %(failed)d, skipped %(skipped)d (%(seconds).1f s)."
            )
            % {
                "as_of": moment.isoformat(),
                "groups": run.groups,
                "claimed": claimed or "-",
                "sent": run.sent,
                "failed": run.failed,
                "skipped": run.skipped,
                "seconds": time.monotonic() - started,
            }
        )
