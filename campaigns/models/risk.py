"""Risk control of earning (docs/adr/0018): the anomaly limits operators set in admin, the events
held for review because they passed one, and the device log the per-device limit counts.

A held event is kept for good: approval grants exactly the points stored with it, rejection
keeps the reason; nothing here is ever deleted.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _

from loyalty_site.models import SingletonSettings


class RiskLimits(SingletonSettings):
    """Anomaly limits: an event that passes one is held for review instead of earning. Empty
    means the limit is off; with all of them off an event costs no extra query."""

    max_points_per_event = models.PositiveIntegerField(
        _("points in one event above"),
        null=True,
        blank=True,
        help_text=_("Hold an event that would award more than this many points."),
    )
    max_points_per_member_day = models.PositiveIntegerField(
        _("points to one member in a day above"),
        null=True,
        blank=True,
        help_text=_(
            "Hold an event that would take the member's points of that day (programme time "
            "zone) above this."
        ),
    )
    max_events_per_member_hour = models.PositiveIntegerField(
        _("events from one member in an hour above"),
        null=True,
        blank=True,
        help_text=_("Hold an event when the member sent more than this many in the last hour."),
    )
    max_rewards_per_device_day = models.PositiveIntegerField(
        _("referrals or tasks from one device or IP in a day above"),
        null=True,
        blank=True,
        help_text=_(
            "Hold a referral or task reward when its device or IP already had this many that day."
        ),
    )

    class Meta(SingletonSettings.Meta):
        verbose_name = _("risk limits")
        verbose_name_plural = _("risk limits")

    def __str__(self) -> str:
        return str(_("Risk limits"))

    @property
    def any_on(self) -> bool:
        return any(
            limit is not None
            for limit in (
                self.max_points_per_event,
                self.max_points_per_member_day,
                self.max_events_per_member_hour,
                self.max_rewards_per_device_day,
            )
        )

    @property
    def needs_plan(self) -> bool:
        """Limits that look at the points the event would award (all but the hourly count)."""
        return any(
            limit is not None
            for limit in (
                self.max_points_per_event,
                self.max_points_per_member_day,
                self.max_rewards_per_device_day,
            )
        )


class HeldEvent(models.Model):
    """An event held by risk control: why, the awards it would have had, and the decision."""

    class Reason(models.TextChoices):
        POINTS_PER_EVENT = "points_per_event", _("points in one event")
        POINTS_PER_MEMBER_DAY = "points_per_member_day", _("points to one member in a day")
        EVENTS_PER_MEMBER_HOUR = "events_per_member_hour", _("events from one member in an hour")
        REWARDS_PER_DEVICE_DAY = "rewards_per_device_day", _("referrals or tasks per device or IP")

    class Status(models.TextChoices):
        PENDING = "pending", _("waiting for review")
        APPROVED = "approved", _("approved")
        REJECTED = "rejected", _("rejected")

    event = models.OneToOneField(
        "campaigns.Event",
        on_delete=models.PROTECT,
        related_name="hold",
        verbose_name=_("event"),
    )
    reasons = ArrayField(
        models.CharField(max_length=32, choices=Reason.choices), verbose_name=_("reasons")
    )
    # What the limits saw: {"points": 500, "limit": 300, ...} per reason, for the reviewer.
    details = models.JSONField(_("details"), default=dict)
    # The awards approval grants, exactly: [{"rule", "points", "available_at", "member",
    # "source_type"}]; "member" is another member's external id (a referral's inviter).
    awards = models.JSONField(_("held awards"), default=list)
    points = models.PositiveIntegerField(_("points held"), default=0)
    # Money the purchase counts for growth value, granted with the points on approval.
    growth_spent = models.DecimalField(
        _("growth amount"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    held_at = models.DateTimeField(_("held at"), db_default=Now())
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("reviewer"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_reason = models.TextField(_("decision reason"), blank=True)

    class Meta:
        ordering = ["-held_at", "-id"]
        verbose_name = _("held event")
        verbose_name_plural = _("held events (review queue)")
        permissions = [("review_event", _("Can approve or reject events held for review"))]
        indexes = [
            models.Index(fields=["status", "-held_at"], name="heldevent_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status="pending")
                | models.Q(reviewer__isnull=False, decided_at__isnull=False),
                name="heldevent_decision_recorded",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="rejected") | ~models.Q(decision_reason=""),
                name="heldevent_rejection_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.event_id} {self.status}"


class DeviceReward(models.Model):
    """A referral or task reward an event earned (or was held with) from a device or IP: what
    the per-device daily limit counts. Written only for events that carry such a reward."""

    event = models.ForeignKey(
        "campaigns.Event", on_delete=models.PROTECT, related_name="+", verbose_name=_("event")
    )
    day = models.DateField(_("day"))
    device_id = models.CharField(_("device"), max_length=128, blank=True)
    ip = models.CharField(_("IP"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("device reward")
        verbose_name_plural = _("device rewards")
        indexes = [
            models.Index(
                fields=["day", "device_id"],
                condition=~models.Q(device_id=""),
                name="devicereward_device_idx",
            ),
            models.Index(
                fields=["day", "ip"], condition=~models.Q(ip=""), name="devicereward_ip_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.device_id or self.ip}"
