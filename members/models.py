from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.postgres.indexes import OpClass
from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# Unambiguous characters only: members read referral codes aloud and type them on phones.
REFERRAL_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
REFERRAL_CODE_LENGTH = 6


def new_referral_code() -> str:
    return "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(REFERRAL_CODE_LENGTH))


class Tier(models.Model):
    """A membership level (铜银金钻). The default programme has one tier every member starts in."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=64)
    rank = models.PositiveSmallIntegerField(
        _("rank"), unique=True, help_text=_("0 is the entry tier; higher ranks are better.")
    )
    growth_threshold = models.PositiveIntegerField(
        _("qualifying growth value"),
        default=0,
        help_text=_("Growth value over the qualifying window needed to reach this tier."),
    )

    class Meta:
        ordering = ["rank"]
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")

    def __str__(self) -> str:
        return self.name

    @classmethod
    def entry_tier(cls) -> Tier:
        return cls.objects.order_by("rank").first()


class Member(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        FROZEN = "frozen", _("frozen")
        CLOSED = "closed", _("closed")

    class Language(models.TextChoices):
        ZH_HANS = "zh-hans", _("Simplified Chinese")
        EN = "en", _("English")

    external_id = models.CharField(
        _("external id"),
        max_length=128,
        unique=True,
        help_text=_("The member's id in the partner systems (for example the CRM user id)."),
    )
    name = models.CharField(_("name"), max_length=128, blank=True)
    phone = models.CharField(_("phone"), max_length=32, blank=True, db_index=True)
    email = models.EmailField(_("email"), blank=True, db_index=True)
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    marketing_consent = models.BooleanField(_("marketing consent"), default=False)
    language = models.CharField(
        _("language"), max_length=8, choices=Language.choices, default=Language.ZH_HANS
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE
    )
    tier = models.ForeignKey(
        Tier,
        on_delete=models.PROTECT,
        related_name="members",
        verbose_name=_("tier"),
    )
    growth = models.IntegerField(
        _("growth value"),
        default=0,
        help_text=_("成长值: qualifies the member for tiers; never spendable."),
    )
    referral_code = models.CharField(
        _("referral code"), max_length=16, unique=True, default=new_referral_code
    )
    referred_by = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="referrals",
        verbose_name=_("referred by"),
    )
    joined_at = models.DateTimeField(_("joined at"), default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-joined_at", "-id"]
        verbose_name = _("member")
        verbose_name_plural = _("members")
        indexes = [
            models.Index(fields=["status", "-joined_at"], name="member_status_joined_idx"),
            models.Index(fields=["tier", "-joined_at"], name="member_tier_joined_idx"),
            models.Index(fields=["name"], name="member_name_idx"),
            # The admin's case-insensitive name search (istartswith) on a million members.
            models.Index(
                OpClass(Upper("name"), name="text_pattern_ops"),
                name="member_name_upper_prefix_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} {self.name}".strip()

    @property
    def is_frozen(self) -> bool:
        return self.status == self.Status.FROZEN


class MemberStatusChange(models.Model):
    """One freeze, unfreeze or close of a member: who did it and why (append-only audit)."""

    member = models.ForeignKey(
        Member,
        on_delete=models.CASCADE,
        related_name="status_changes",
        verbose_name=_("member"),
    )
    from_status = models.CharField(_("from status"), max_length=16, choices=Member.Status.choices)
    to_status = models.CharField(_("to status"), max_length=16, choices=Member.Status.choices)
    reason = models.TextField(_("reason"))
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("operator"),
    )
    created_at = models.DateTimeField(_("changed at"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("member status change")
        verbose_name_plural = _("member status changes")
        indexes = [
            models.Index(fields=["member", "-created_at"], name="member_status_change_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.from_status} -> {self.to_status}"
