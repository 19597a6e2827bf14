"""The admin's banner while the programme's issuance is frozen (docs/adr/0018)."""

from __future__ import annotations

from django import template
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timezone import localtime
from django.utils.translation import gettext

from points.services import issuance_freeze

register = template.Library()


@register.simple_tag
def issuance_freeze_banner() -> str:
    """A warning on every admin page while a freeze is in force (the per-process copy: no
    query on most pages)."""
    freeze = issuance_freeze()
    if freeze is None:
        return ""
    values = {
        "since": date_format(localtime(freeze.started_at), "DATETIME_FORMAT"),
        "who": str(freeze.started_by or "-"),
        "reason": freeze.reason,
    }
    text = gettext("Points issuance is frozen since %(since)s by %(who)s: %(reason)s") % values
    if freeze.ends_at is not None:
        text += " " + gettext("It ends automatically at %(ends)s.") % {
            "ends": date_format(localtime(freeze.ends_at), "DATETIME_FORMAT")
        }
    return format_html(
        '<ul class="messagelist"><li class="warning" id="issuance-frozen">{} '
        '<a href="{}">{}</a></li></ul>',
        text,
        reverse("admin:points_issuancefreeze_changelist"),
        gettext("Manage the freeze"),
    )
