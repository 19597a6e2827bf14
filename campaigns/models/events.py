from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Event(models.Model):
    """A partner event as received (purchase, check-in, ...), kept for audit and replay.

    Stored in the same transaction as the points it earned, so the event log and the ledger can
    never disagree about what happened.
    """

    class Outcome(models.TextChoices):
        AWARDED = "awarded", _("points awarded")
        NO_POINTS = "no_points", _("no points")
        HELD = "held", _("held for review")

    partner = models.ForeignKey(
        "points.Partner", on_delete=models.PROTECT, related_name="+", verbose_name=_("partner")
    )
    type = models.CharField(_("type"), max_length=64)
    member = models.ForeignKey(
        "members.Member",
        on_delete=models.PROTECT,
        related_name="events",
        verbose_name=_("member"),
    )
    reference = models.CharField(_("reference"), max_length=128, blank=True)
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now)
    received_at = models.DateTimeField(_("received at"), db_default=models.functions.Now())
    payload = models.JSONField(_("payload"), default=dict)
    points_awarded = models.IntegerField(_("points awarded"), default=0)
    points_pending = models.IntegerField(_("points pending"), default=0)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    rules_applied = models.JSONField(_("rules applied"), default=list)
    # Who the member was when the rules ran (tier, multiplier, segments, A/B arms): what a
    # replay (simulation) needs to evaluate the event exactly as it was evaluated.
    context = models.JSONField(_("context"), default=dict)

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        indexes = [
            models.Index(fields=["member", "-occurred_at"], name="event_member_time_idx"),
            models.Index(fields=["type", "-occurred_at"], name="event_type_time_idx"),
            models.Index(fields=["-received_at"], name="event_received_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.reference}".strip()
