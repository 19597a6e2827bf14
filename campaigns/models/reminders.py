"""Expiry reminders: when to remind (settings), what to say (templates), and one row per
message so that each is sent once (docs/adr/0011-expiry-reminders.md)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.template import Template, TemplateSyntaxError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from loyalty_site.models import SingletonSettings

MAX_WINDOW_DAYS = 366


def parse_windows(value: str) -> list[int]:
    """ "30,7" -> [7, 30]: the reminder windows in days, smallest first, without repeats."""
    days = set()
    for part in (value or "").replace("，", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or not 0 <= int(part) <= MAX_WINDOW_DAYS:
            raise ValidationError(
                _("Windows are whole numbers of days from 0 to %(max)d, separated by commas."),
                params={"max": MAX_WINDOW_DAYS},
            )
        days.add(int(part))
    return sorted(days)


def validate_windows(value: str) -> None:
    if not parse_windows(value):
        raise ValidationError(_("Give at least one window, for example 30,7."))


class ReminderSettings(SingletonSettings):
    """When members are reminded of points about to expire, and through which channels: one
    row (pk=1), edited in admin."""

    windows = models.CharField(
        _("windows (days before expiry)"),
        max_length=64,
        default="30,7",
        validators=[validate_windows],
        help_text=_(
            "Comma-separated, e.g. 30,7: a member is reminded once per window and expiry date; "
            "points expiring within 7 days get the 7-day reminder even if the 30-day one was "
            "never sent."
        ),
    )
    email_enabled = models.BooleanField(_("send email"), default=True)
    sms_enabled = models.BooleanField(_("send SMS"), default=True)
    inbox_enabled = models.BooleanField(_("post to the mall inbox"), default=True)
    webhook_enabled = models.BooleanField(
        _("notify partners (points.expiring_soon webhook)"), default=True
    )

    class Meta(SingletonSettings.Meta):
        verbose_name = _("expiry reminder settings")
        verbose_name_plural = _("expiry reminder settings")

    def __str__(self) -> str:
        return str(_("Expiry reminder settings"))

    @property
    def window_days(self) -> list[int]:
        return parse_windows(self.windows)

    def enabled_channels(self) -> list[str]:
        flags = {
            Channel.EMAIL: self.email_enabled,
            Channel.SMS: self.sms_enabled,
            Channel.INBOX: self.inbox_enabled,
            Channel.WEBHOOK: self.webhook_enabled,
        }
        return [channel for channel, enabled in flags.items() if enabled]


class Channel(models.TextChoices):
    EMAIL = "email", _("email")
    SMS = "sms", _("SMS")
    INBOX = "inbox", _("mall inbox")
    WEBHOOK = "webhook", _("webhook")


TEMPLATE_HELP = _(
    "Django template syntax. Variables: {{ name }} (the member's name), {{ points }}, "
    '{{ expires_on|date:"Y-m-d" }}, {{ days_left }}, {{ window_days }}, {{ mall_url }}.'
)


def validate_template(value: str) -> None:
    try:
        Template(value)
    except TemplateSyntaxError as error:
        raise ValidationError(
            _("Template error: %(error)s"), params={"error": str(error)}
        ) from error


class MessageTemplate(models.Model):
    """What a reminder says on one channel, in Chinese and English; a member gets the language
    of their profile (English falls back to Chinese when left empty). SMS ignores the subject."""

    channel = models.CharField(
        _("channel"),
        max_length=16,
        unique=True,
        choices=[c for c in Channel.choices if c[0] != Channel.WEBHOOK],
    )
    subject_zh_hans = models.CharField(
        _("subject (Chinese)"), max_length=200, blank=True, validators=[validate_template]
    )
    body_zh_hans = models.TextField(
        _("body (Chinese)"), validators=[validate_template], help_text=TEMPLATE_HELP
    )
    subject_en = models.CharField(
        _("subject (English)"), max_length=200, blank=True, validators=[validate_template]
    )
    body_en = models.TextField(
        _("body (English)"), blank=True, validators=[validate_template], help_text=TEMPLATE_HELP
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["channel"]
        verbose_name = _("reminder template")
        verbose_name_plural = _("reminder templates")

    def __str__(self) -> str:
        return self.get_channel_display()

    def sources(self, language: str) -> tuple[str, str]:
        """(subject, body) template sources for a member's language."""
        if language.startswith("en") and self.body_en.strip():
            return self.subject_en or self.subject_zh_hans, self.body_en
        return self.subject_zh_hans, self.body_zh_hans


class ReminderDelivery(models.Model):
    """One reminder to one member on one channel for one window and expiry date.

    The unique constraint is the "exactly once": a run claims the row (status `claimed`)
    before anything is sent; inbox and webhook are written in the claim's transaction (`sent`);
    email and SMS go `sending` (committed) -> handed to the backend -> `sent`. A row left
    `sending` by a killed run is in doubt and never sent again by the job (at most once).
    """

    class Status(models.TextChoices):
        CLAIMED = "claimed", _("to send")
        SENDING = "sending", _("sending (in doubt if the job died)")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")
        SKIPPED = "skipped", _("skipped: the date passed")

    member = models.ForeignKey(
        "members.Member",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("member"),
        db_index=False,  # covered by reminderdelivery_once
    )
    window_days = models.PositiveSmallIntegerField(_("window (days)"))
    expires_on = models.DateField(_("expires on"))
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    points = models.BigIntegerField(_("points expiring"))
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.CLAIMED
    )
    recipient = models.CharField(_("recipient"), max_length=254, blank=True, default="")
    language = models.CharField(_("language"), max_length=8, blank=True, default="")
    subject = models.CharField(_("subject"), max_length=200, blank=True, default="")
    body = models.TextField(_("body"), blank=True, default="")
    as_of = models.DateTimeField(_("run as of"))
    claimed_at = models.DateTimeField(_("claimed at"), default=timezone.now)
    attempted_at = models.DateTimeField(_("last attempt at"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    error = models.TextField(_("last error"), blank=True, default="")

    class Meta:
        ordering = ["-id"]
        verbose_name = _("reminder delivery")
        verbose_name_plural = _("reminder deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["member", "window_days", "expires_on", "channel"],
                name="reminderdelivery_once",
            ),
        ]
        indexes = [
            # The send queue: email and SMS rows still to send (or to retry).
            models.Index(
                fields=["id"],
                condition=models.Q(status__in=["claimed", "failed"]),
                name="reminderdelivery_queue_idx",
            ),
            models.Index(fields=["status", "-id"], name="reminderdelivery_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id} {self.channel} {self.window_days}d {self.expires_on}"
