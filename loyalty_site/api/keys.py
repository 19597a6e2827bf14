"""Creating partner API keys: the one place the `create_partner_key` command, seed_demo and the
admin go through. The plain key is returned once and only its hash is stored."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from loyalty_site.exceptions import LoyaltyError
from points.models import ApiScope, Partner, PartnerAPIKey

KEY_NAME_MAX_LENGTH = 50  # AbstractAPIKey.name


class PartnerKeyError(LoyaltyError):
    code = "validation_error"
    status = 422
    default_message = _("The partner key cannot be created.")


def parse_scopes(raw: str) -> list[str]:
    """ "members:read, events:write" -> ["members:read", "events:write"] (blanks dropped)."""
    return [scope.strip() for scope in raw.split(",") if scope.strip()]


def validated_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes in ApiScope's order, without duplicates; PartnerKeyError names the valid ones."""
    wanted = set(scopes)
    unknown = sorted(wanted - set(ApiScope.values))
    if unknown:
        raise PartnerKeyError(
            _("Unknown scope(s): %(unknown)s. Valid scopes: %(valid)s.")
            % {"unknown": ", ".join(unknown), "valid": ", ".join(ApiScope.values)},
            unknown=", ".join(unknown),
        )
    if not wanted:
        raise PartnerKeyError(
            _("Give at least one scope. Valid scopes: %(valid)s.")
            % {"valid": ", ".join(ApiScope.values)}
        )
    return [scope for scope in ApiScope.values if scope in wanted]


@transaction.atomic
def create_partner_key(
    *, partner_name: str, scopes: Iterable[str], key_name: str = ""
) -> tuple[PartnerAPIKey, str]:
    """Create an API key with `scopes` for the partner named `partner_name` (created if new).

    Returns the key row and the plain key, which exists nowhere else: show it once.
    """
    partner_name = partner_name.strip()
    max_length = Partner._meta.get_field("name").max_length
    if not partner_name or len(partner_name) > max_length:
        raise PartnerKeyError(
            _("The partner's name must be 1 to %(max)d characters.") % {"max": max_length}
        )
    scopes = validated_scopes(scopes)
    partner, _created = Partner.objects.get_or_create(name=partner_name)
    name = key_name.strip() or f"{partner_name} {timezone.localdate():%Y-%m-%d}"
    return PartnerAPIKey.objects.create_key(
        partner=partner, name=name[:KEY_NAME_MAX_LENGTH], scopes=scopes
    )
