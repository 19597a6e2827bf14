"""The admin banner's count of health alerts waiting to be acknowledged."""

from __future__ import annotations

from django import template

from campaigns.health_selectors import open_alert_count

register = template.Library()


@register.simple_tag
def open_health_alert_count(user) -> int:
    """Raised alerts, for staff who may see them (0 otherwise, without a query)."""
    if not (user.is_active and user.is_staff and user.has_perm("campaigns.view_healthalert")):
        return 0
    return open_alert_count()
