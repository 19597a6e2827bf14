"""`manage.py close_settlement_month [--month YYYY-MM] [--as-of ISO-8601]`: close a month of
coalition settlement into a statement that never changes (default: the month before --as-of)."""

from __future__ import annotations

from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty_site.exceptions import LoyaltyError
from points.management.commands.expire_points import parse_as_of
from points.models import ProgrammeSettings
from points.settlement import close_settlement_month


class Command(BaseCommand):
    help = _("Close a month of coalition settlement between merchants (irreversible).")

    def add_arguments(self, parser):
        parser.add_argument("--month", help=_("YYYY-MM (default: the month before --as-of)"))
        parser.add_argument("--as-of", help=_("ISO 8601 moment to act as of (default: now)"))

    def handle(self, *args, month: str | None, as_of: str | None, **options):
        moment = parse_as_of(as_of)
        if month:
            try:
                chosen = date.fromisoformat(f"{month}-01")
            except ValueError as error:
                raise CommandError(_("--month must be YYYY-MM: %s") % month) from error
        else:
            local = timezone.localdate(moment, timezone=ProgrammeSettings.get().zone)
            chosen = (local.replace(day=1) - timedelta(days=1)).replace(day=1)
        try:
            statement = close_settlement_month(month=chosen, now=moment)
        except LoyaltyError as error:
            raise CommandError(error.message) from error
        self.stdout.write(
            _(
                "%(month)s closed: %(entries)d entries (%(late)d late), %(lines)d lines, "
                "%(amount)s %(currency)s settled."
            )
            % {
                "month": statement,
                "entries": statement.entries,
                "late": statement.late_entries,
                "lines": statement.lines.count(),
                "amount": statement.amount_settled,
                "currency": statement.currency,
            }
        )
