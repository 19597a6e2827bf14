"""`manage.py check_ledger`: check the ledger invariant; exit status 1 on any mismatch."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from points import services
from points.models import Account, Lot


class Command(BaseCommand):
    help = _(
        "Check, for every account, that available and pending equal the sums of its entries and "
        "of its lots, and that every lot's remaining equals its amount plus its allocations."
    )

    def handle(self, *args, **options):
        mismatches = services.check_ledger_invariants()
        accounts, lots = Account.objects.count(), Lot.objects.count()
        if not mismatches:
            self.stdout.write(
                _("Ledger OK: %(accounts)d accounts and %(lots)d lots checked.")
                % {"accounts": accounts, "lots": lots}
            )
            return
        for mismatch in mismatches:
            self.stdout.write(str(mismatch))
        raise CommandError(
            _("%(count)d ledger mismatches in %(accounts)d accounts and %(lots)d lots.")
            % {"count": len(mismatches), "accounts": accounts, "lots": lots},
            returncode=1,
        )
