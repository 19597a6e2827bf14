"""`manage.py erase_member EXTERNAL_ID --reason TEXT`: erase a member's personal data."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from loyalty_site.exceptions import LoyaltyError
from members.selectors import member_by_external_id
from members.services import erase_member


class Command(BaseCommand):
    help = _("Anonymise a member's personal data and close the account; the ledger's numbers stay.")

    def add_arguments(self, parser):
        parser.add_argument("external_id")
        parser.add_argument("--reason", required=True, help=_("Kept with the status history."))

    def handle(self, *args, external_id, reason, **options):
        try:
            member = member_by_external_id(external_id=external_id)
            erased = erase_member(member=member, operator=None, reason=reason)
        except LoyaltyError as error:
            raise CommandError(error.message) from error
        self.stdout.write(
            _("Member erased; it is now %(external_id)s.") % {"external_id": erased.external_id}
        )
