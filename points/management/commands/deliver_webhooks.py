"""`manage.py deliver_webhooks [--as-of ISO-8601]`: queue new outbox events for the webhook
endpoints and send the deliveries due as of a moment (what the beat task does every 10 s)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from points import webhooks
from points.management.commands.expire_points import parse_as_of


class Command(BaseCommand):
    help = _("Queue new outbox events for the webhook endpoints and send what is due.")

    def add_arguments(self, parser):
        parser.add_argument("--as-of", dest="as_of", help=_("ISO 8601 moment (default: now)"))

    def handle(self, *args, as_of=None, **options):
        moment = parse_as_of(as_of)
        started = time.monotonic()
        run = webhooks.deliver_webhooks(now=moment)
        self.stdout.write(
            _(
                "Queued %(queued)d deliveries of %(events)d events; %(attempts)d attempts, "
                "%(delivered)d delivered, %(failed)d failed (%(seconds).1f s)."
            )
            % {
                "queued": run.fan_out.deliveries,
                "events": run.fan_out.events,
                "attempts": run.send.attempts,
                "delivered": run.send.delivered,
                "failed": run.send.failed,
                "seconds": time.monotonic() - started,
            }
        )
