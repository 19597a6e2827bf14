"""`manage.py create_partner_key PARTNER_NAME --scopes a,b,c` (api.md, "Conventions")."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from loyalty_site.api.keys import PartnerKeyError, create_partner_key, parse_scopes
from points.models import ApiScope


class Command(BaseCommand):
    help = (
        "Create an API key for a partner (the partner is created if it does not exist) and "
        "print the key alone on the last line. The key is stored hashed and never shown again."
    )

    def add_arguments(self, parser):
        parser.add_argument("partner_name", help="the partner's name, e.g. 'Demo POS'")
        parser.add_argument(
            "--scopes",
            required=True,
            help=f"comma-separated, from: {', '.join(ApiScope.values)}",
        )
        parser.add_argument("--name", default="", help="a label for the key (default: date)")

    def handle(self, *args, partner_name, scopes, name, **options):
        try:
            api_key, plain_key = create_partner_key(
                partner_name=partner_name, scopes=parse_scopes(scopes), key_name=name
            )
        except PartnerKeyError as error:
            raise CommandError(error.message) from error
        partner = api_key.partner
        self.stdout.write(_("Partner: %(name)s") % {"name": partner.name})
        if not partner.is_active:
            self.stderr.write(
                _("Warning: this partner is inactive; its keys are refused until it is active.")
            )
        self.stdout.write(
            _("Key: %(name)s (prefix %(prefix)s)")
            % {"name": api_key.name, "prefix": api_key.prefix}
        )
        self.stdout.write(_("Scopes: %(scopes)s") % {"scopes": ", ".join(api_key.scopes)})
        self.stdout.write(_("Store this key now: it is shown only once. The key:"))
        self.stdout.write(plain_key)
