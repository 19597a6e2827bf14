from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey


class Partner(models.Model):
    """A merchant or system that talks to the programme (POS, shop, app, outlet).

    Every ledger entry records the partner that caused it, which is what coalition settlement
    between merchants is computed from.
    """

    class Kind(models.TextChoices):
        MERCHANT = "merchant", _("merchant")
        SYSTEM = "system", _("system")

    name = models.CharField(_("name"), max_length=128, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.MERCHANT)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("partner")
        verbose_name_plural = _("partners")

    def __str__(self) -> str:
        return self.name


class ApiScope(models.TextChoices):
    MEMBERS_READ = "members:read", "members:read"
    MEMBERS_WRITE = "members:write", "members:write"
    EVENTS_WRITE = "events:write", "events:write"
    POINTS_SPEND = "points:spend", "points:spend"
    REDEMPTIONS_WRITE = "redemptions:write", "redemptions:write"
    REWARDS_READ = "rewards:read", "rewards:read"
    REWARDS_WRITE = "rewards:write", "rewards:write"


class PartnerAPIKey(AbstractAPIKey):
    """An API key of a partner, stored hashed; the plain key is shown once at creation."""

    partner = models.ForeignKey(
        Partner, on_delete=models.CASCADE, related_name="api_keys", verbose_name=_("partner")
    )
    scopes = ArrayField(
        models.CharField(max_length=32, choices=ApiScope.choices),
        default=list,
        blank=True,
        verbose_name=_("scopes"),
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = _("partner API key")
        verbose_name_plural = _("partner API keys")

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
