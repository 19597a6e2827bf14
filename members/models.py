from __future__ import annotations

import secrets
from decimal import ROUND_HALF_UP, Decimal

import pgtrigger
from django.conf import settings
from django.contrib.postgres.indexes import OpClass
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Now, Upper
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from loyalty_site.audit import audited
from loyalty_site.models import SingletonSettings

# Unambiguous characters only: members read referral codes aloud and type them on phones.
REFERRAL_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
REFERRAL_CODE_LENGTH = 6


def new_referral_code() -> str:
    return "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(REFERRAL_CODE_LENGTH))


@audited()
class Tier(models.Model):
    """A membership level (铜银金钻) and its benefits. The default programme has one tier every
    member starts in; members qualify for higher tiers on growth value (docs/adr/0007)."""

    class ExpiryPolicy(models.TextChoices):
        # The programme's policies (points/expiry.py), plus "" = no override.
        PROGRAMME = "", _("the programme's policy")
        ROLLING_DAYS = "rolling_days", _("N days after earning")
        ROLLING_MONTHS = "rolling_months", _("N months after earning")
        END_OF_YEAR_AFTER = "end_of_year_after", _("end of the calendar year after earning")
        END_OF_QUARTER = "end_of_quarter", _("end of the quarter, N months after earning")
        NEVER = "never", _("never")

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(
        _("name"), max_length=64, help_text=_("Shown in Chinese and whenever no English name.")
    )
    name_en = models.CharField(_("English name"), max_length=64, blank=True, default="")
    rank = models.PositiveSmallIntegerField(
        _("rank"), help_text=_("The lowest rank is the entry tier; higher ranks are better.")
    )
    growth_threshold = models.PositiveIntegerField(
        _("qualifying growth value"),
        default=0,
        help_text=_("Growth value over the qualifying window needed to reach this tier."),
    )
    earn_multiplier = models.DecimalField(
        _("earn multiplier"),
        max_digits=5,
        decimal_places=2,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Points earned by the earning rules are multiplied by this (1 = as is)."),
    )
    redemption_price_adjustment = models.DecimalField(
        _("redemption price adjustment (%)"),
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("-99")), MaxValueValidator(Decimal("500"))],
        help_text=_(
            "Per cent added to a reward's points price: -20 is a discount of a fifth (8折), "
            "20 a markup of a fifth. Explicit tier prices of a reward take precedence."
        ),
    )
    expiry_policy = models.CharField(
        _("expiry policy override"),
        max_length=32,
        choices=ExpiryPolicy.choices,
        blank=True,
        default=ExpiryPolicy.PROGRAMME,
        help_text=_(
            "Points earned while a member holds this tier expire by this policy instead of the "
            "programme's; points earned before keep their date."
        ),
    )
    expiry_period = models.PositiveIntegerField(
        _("expiry period"),
        default=12,
        help_text=_("N for the rolling and end-of-quarter policies (days or months)."),
    )

    class Meta:
        ordering = ["rank"]
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        constraints = [
            # Deferred, so the admin can swap two tiers' ranks in one save.
            models.UniqueConstraint(
                fields=["rank"], name="tier_rank_uniq", deferrable=models.Deferrable.DEFERRED
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        """The name in the active language (English name when the language is English)."""
        language = get_language() or ""
        if language.startswith("en") and self.name_en:
            return self.name_en
        return self.name

    @property
    def overrides_expiry(self) -> bool:
        return bool(self.expiry_policy)

    def adjusted_points_price(self, points: int) -> int:
        """A reward's points price for this tier's members: the adjustment applied, rounded
        half up to a whole point, never below 1 for a reward that costs points."""
        if not self.redemption_price_adjustment or points <= 0:
            return points
        factor = (Decimal(100) + self.redemption_price_adjustment) / Decimal(100)
        adjusted = (Decimal(points) * factor).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return max(int(adjusted), 1)

    @classmethod
    def entry_tier(cls) -> Tier:
        return cls.objects.order_by("rank").first()


# Personal data stays out of the trail (erasure must forget it); tier and growth move with
# purchases and the nightly job, which keep their own history (TierChange, GrowthEntry).
@audited(
    personal=["name", "phone", "email", "birthday"],
    quiet=["tier", "growth", "tier_since", "tier_period_ends_at"],
    inserts_in_context_only=True,
)
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
        help_text=_(
            "成长值 over the rolling qualifying window, as of the last growth entry or tier "
            "evaluation; never spendable."
        ),
    )
    tier_since = models.DateTimeField(_("tier since"), null=True, blank=True)
    tier_period_ends_at = models.DateTimeField(
        _("tier period ends at"),
        null=True,
        blank=True,
        help_text=_("The member can move down a tier only then; empty in the entry tier."),
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
            # The admin's "marketing consent" filter, in the list's order.
            models.Index(
                fields=["marketing_consent", "-joined_at"], name="member_consent_joined_idx"
            ),
            models.Index(fields=["name"], name="member_name_idx"),
            # The admin's case-insensitive name search (istartswith) on a million members.
            models.Index(
                OpClass(Upper("name"), name="text_pattern_ops"),
                name="member_name_upper_prefix_idx",
            ),
            # evaluate_tiers: the members whose tier period has ended.
            models.Index(
                fields=["tier_period_ends_at"],
                condition=models.Q(tier_period_ends_at__isnull=False),
                name="member_tier_period_idx",
            ),
        ]
        permissions = [
            ("view_personal_data", _("Can see members' phone numbers and email addresses")),
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


@audited()
class GrowthSettings(SingletonSettings):
    """How growth value (成长值) is earned and how tiers are kept: one row (pk=1), edited in admin.

    Growth is kept apart from points: its own append-only entries, never spendable.
    """

    growth_per_unit = models.DecimalField(
        _("growth per 1.00 spent"),
        max_digits=10,
        decimal_places=4,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Growth value a purchase earns per 1.00 paid with money, rounded down."),
    )
    window_months = models.PositiveSmallIntegerField(
        _("qualifying window (months)"),
        default=12,
        validators=[MinValueValidator(1)],
        help_text=_("Tiers qualify on the growth value earned over this many months."),
    )
    tier_period_months = models.PositiveSmallIntegerField(
        _("tier period (months)"),
        default=12,
        validators=[MinValueValidator(1)],
        help_text=_("A tier reached is kept at least this long; downgrades happen only then."),
    )
    max_tiers_down = models.PositiveSmallIntegerField(
        _("tiers down at most"),
        default=1,
        validators=[MinValueValidator(1)],
        help_text=_("How many tiers a member can move down at the end of one tier period."),
    )

    class Meta(SingletonSettings.Meta):
        verbose_name = _("growth and tier settings")
        verbose_name_plural = _("growth and tier settings")

    def __str__(self) -> str:
        return str(_("Growth and tier settings"))


@audited()
class GrowthEventRule(models.Model):
    """Growth value a configured event type earns (check-in, review, registration ...)."""

    event_type = models.SlugField(_("event type"), max_length=64, unique=True)
    growth = models.PositiveIntegerField(_("growth value"))
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["event_type"]
        verbose_name = _("growth for an event")
        verbose_name_plural = _("growth for events")

    def __str__(self) -> str:
        return f"{self.event_type}: {self.growth}"


class GrowthEntry(models.Model):
    """One change of a member's growth value. Append-only: the database refuses UPDATE and
    DELETE on this table.

    `counts_at` is the moment the growth counts from in the rolling window: a purchase's time,
    and for a refund's reversal the time of the purchase it reverses, so both leave the window
    together.
    """

    class Kind(models.TextChoices):
        PURCHASE = "purchase", _("purchase")
        EVENT = "event", _("event")
        REFUND = "refund", _("refund")
        ADJUST = "adjust", _("adjustment")

    member = models.ForeignKey(
        Member,
        on_delete=models.PROTECT,
        related_name="growth_entries",
        verbose_name=_("member"),
        db_index=False,  # covered by growthentry_member_window_idx
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    amount = models.IntegerField(_("amount"))
    reference = models.CharField(_("reference"), max_length=128, blank=True, db_default="")
    source_type = models.CharField(_("source type"), max_length=32, blank=True, db_default="")
    source_id = models.CharField(_("source id"), max_length=64, blank=True, db_default="")
    memo = models.CharField(_("memo"), max_length=255, blank=True, db_default="")
    counts_at = models.DateTimeField(_("counts from"))
    created_at = models.DateTimeField(_("created at"), db_default=Now())

    class Meta:
        ordering = ["-id"]
        verbose_name = _("growth entry")
        verbose_name_plural = _("growth entries")
        indexes = [
            models.Index(
                fields=["member", "counts_at"],
                include=["amount"],
                name="growthentry_member_window_idx",
            ),
            models.Index(
                fields=["source_type", "source_id"],
                condition=~models.Q(source_type=""),
                name="growthentry_source_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(amount=0), name="growthentry_amount_not_zero"
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="growthentry_append_only",
                operation=pgtrigger.Update | pgtrigger.Delete,
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.amount:+d}"


class TierChange(models.Model):
    """A member's move from one tier to another: when and why (the tier history)."""

    class Reason(models.TextChoices):
        UPGRADE = "upgrade", _("growth reached the threshold")
        PERIOD_END = "period_end", _("tier period ended")
        OPERATOR = "operator", _("changed by an operator")

    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="tier_changes", verbose_name=_("member")
    )
    from_tier = models.ForeignKey(
        Tier, on_delete=models.PROTECT, related_name="+", verbose_name=_("from tier")
    )
    to_tier = models.ForeignKey(
        Tier, on_delete=models.PROTECT, related_name="+", verbose_name=_("to tier")
    )
    reason = models.CharField(_("reason"), max_length=16, choices=Reason.choices)
    growth = models.IntegerField(_("growth value"), help_text=_("Growth value at the change."))
    changed_at = models.DateTimeField(_("changed at"))

    class Meta:
        ordering = ["-changed_at", "-id"]
        verbose_name = _("tier change")
        verbose_name_plural = _("tier changes")
        indexes = [models.Index(fields=["member", "-changed_at"], name="tierchange_member_idx")]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.from_tier_id} -> {self.to_tier_id}"


def _score_range(field: str, low: int, high: int) -> models.Q:
    return models.Q(**{f"{field}__gte": low, f"{field}__lte": high})


@audited()
class Segment(models.Model):
    """A named group of members by RFM scores (1-5 each; 0 = no purchase in the data).

    A member belongs to every active segment whose three ranges hold their scores, so segments
    may overlap (e.g. "high value" inside "active").
    """

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=64)
    name_en = models.CharField(_("English name"), max_length=64, blank=True, default="")
    description = models.TextField(_("description"), blank=True, default="")
    recency_min = models.PositiveSmallIntegerField(_("recency from"), default=1)
    recency_max = models.PositiveSmallIntegerField(_("recency to"), default=5)
    frequency_min = models.PositiveSmallIntegerField(_("frequency from"), default=1)
    frequency_max = models.PositiveSmallIntegerField(_("frequency to"), default=5)
    monetary_min = models.PositiveSmallIntegerField(_("monetary from"), default=1)
    monetary_max = models.PositiveSmallIntegerField(_("monetary to"), default=5)
    is_active = models.BooleanField(_("active"), default=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        ordering = ["position", "code"]
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        constraints = [
            models.CheckConstraint(
                condition=_score_range("recency_min", 0, 5)
                & _score_range("recency_max", 0, 5)
                & _score_range("frequency_min", 0, 5)
                & _score_range("frequency_max", 0, 5)
                & _score_range("monetary_min", 0, 5)
                & _score_range("monetary_max", 0, 5),
                name="segment_scores_0_to_5",
            ),
            models.CheckConstraint(
                condition=models.Q(recency_min__lte=models.F("recency_max"))
                & models.Q(frequency_min__lte=models.F("frequency_max"))
                & models.Q(monetary_min__lte=models.F("monetary_max")),
                name="segment_ranges_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        language = get_language() or ""
        if language.startswith("en") and self.name_en:
            return self.name_en
        return self.name


class RfmScore(models.Model):
    """A member's latest RFM scores (compute_segments), one row per member."""

    member = models.OneToOneField(
        Member, on_delete=models.CASCADE, related_name="rfm", verbose_name=_("member")
    )
    as_of = models.DateField(_("as of"))
    last_purchase_at = models.DateTimeField(_("last purchase"), null=True, blank=True)
    frequency = models.IntegerField(_("purchases in 12 months"), default=0)
    monetary = models.DecimalField(
        _("spent in 12 months"), max_digits=16, decimal_places=2, default=Decimal("0")
    )
    recency_score = models.PositiveSmallIntegerField(_("R"), default=0)
    frequency_score = models.PositiveSmallIntegerField(_("F"), default=0)
    monetary_score = models.PositiveSmallIntegerField(_("M"), default=0)

    class Meta:
        verbose_name = _("RFM score")
        verbose_name_plural = _("RFM scores")

    def __str__(self) -> str:
        scores = (self.recency_score, self.frequency_score, self.monetary_score)
        return f"{self.member_id}: R{scores[0]} F{scores[1]} M{scores[2]}"


class SegmentMembership(models.Model):
    """A member in a segment as computed for one day (recent days are kept for targeting)."""

    member = models.ForeignKey(
        Member,
        on_delete=models.CASCADE,
        related_name="segment_memberships",
        verbose_name=_("member"),
        db_index=False,  # covered by segmentmembership_uniq
    )
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("segment")
    )
    as_of = models.DateField(_("as of"))

    class Meta:
        verbose_name = _("segment membership")
        verbose_name_plural = _("segment memberships")
        constraints = [
            models.UniqueConstraint(
                fields=["member", "as_of", "segment"], name="segmentmembership_uniq"
            ),
        ]
        indexes = [
            models.Index(fields=["segment", "as_of"], name="segmentmembership_target_idx"),
            models.Index(fields=["as_of"], name="segmentmembership_asof_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id} in {self.segment_id} ({self.as_of})"


class SegmentSize(models.Model):
    """How many members a segment had on a day: the history the admin chart draws."""

    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="sizes", verbose_name=_("segment")
    )
    as_of = models.DateField(_("as of"))
    members = models.IntegerField(_("members"))

    class Meta:
        ordering = ["as_of"]
        verbose_name = _("segment size")
        verbose_name_plural = _("segment sizes")
        constraints = [
            models.UniqueConstraint(fields=["segment", "as_of"], name="segmentsize_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.segment_id} {self.as_of}: {self.members}"


class CheckIn(models.Model):
    """A member's daily check-in (签到): at most one per day in the programme's time zone."""

    member = models.ForeignKey(
        Member,
        on_delete=models.CASCADE,
        related_name="check_ins",
        verbose_name=_("member"),
        db_index=False,  # the unique (member, day) index starts with it
    )
    day = models.DateField(_("day"))
    streak = models.PositiveIntegerField(_("streak (days in a row)"))
    created_at = models.DateTimeField(_("created at"), db_default=Now())

    class Meta:
        ordering = ["-day"]
        verbose_name = _("check-in")
        verbose_name_plural = _("check-ins")
        constraints = [
            models.UniqueConstraint(fields=["member", "day"], name="check_in_once_a_day"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id} {self.day} ({self.streak})"


class InboxMessage(models.Model):
    """A message to a member, shown in the rewards mall (expiry reminders, notices).

    Written by the apps that notify members (campaigns' reminders) through
    `members.services.post_inbox_messages`; the member marks it read in the mall.
    """

    member = models.ForeignKey(
        Member,
        on_delete=models.CASCADE,
        related_name="inbox_messages",
        verbose_name=_("member"),
        db_index=False,  # covered by inboxmessage_member_newest_idx
    )
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("body"), blank=True, default="")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("inbox message")
        verbose_name_plural = _("inbox messages")
        indexes = [
            models.Index(
                fields=["member", "-created_at", "-id"], name="inboxmessage_member_newest_idx"
            ),
            # The unread count on the mall's home page.
            models.Index(
                fields=["member"],
                condition=models.Q(read_at__isnull=True),
                name="inboxmessage_unread_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_read(self) -> bool:
        return self.read_at is not None
