"""`manage.py export_member_data EXTERNAL_ID [--output FILE]`: one member's data as JSON."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from members.exceptions import MemberNotFound
from members.personal_data import member_data_json
from members.selectors import member_by_external_id


class Command(BaseCommand):
    help = _("Print (or write to --output) everything the programme holds about a member.")

    def add_arguments(self, parser):
        parser.add_argument("external_id")
        parser.add_argument("--output", help=_("Write the JSON to this file instead."))

    def handle(self, *args, external_id, output=None, **options):
        try:
            member = member_by_external_id(external_id=external_id)
        except MemberNotFound as error:
            raise CommandError(error.message) from error
        document = member_data_json(member=member)
        if output:
            with open(output, "w", encoding="utf-8") as file:
                file.write(document)
            self.stderr.write(_("Written to %(file)s.") % {"file": output})
        else:
            self.stdout.write(document)
