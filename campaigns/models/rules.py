"""Earning rules, campaigns, A/B experiments, tasks, check-in rewards and referrals: what operators
configure in admin and the rule engine (campaigns.engine) evaluates.

Rules and campaigns are read by the engine from a per-process cache that every save through
the services invalidates (campaigns.engine.rulebook); counters that must never be overspent
(budgets, caps) live in their own rows and are changed only by conditional UPDATEs.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from loyalty_site.audit import audited
from loyalty_site.models import SingletonSettings

PURCHASE = "purchase"


class EventType(models.Model):
    """A kind of event partners may post to POST /events (purchase, check_in, review, ...)."""

    code = models.SlugField(_("code"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=64)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("event type")
        verbose_name_plural = _("event types")

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Experiment(models.Model):
    """An A/B split: members fall into arms by a stable hash of member and experiment."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=128)
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = _("A/B experiment")
        verbose_name_plural = _("A/B experiments")

    def __str__(self) -> str:
        return self.name


class ExperimentArm(models.Model):
    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="arms", verbose_name=_("experiment")
    )
    code = models.SlugField(_("code"), max_length=16)
    weight = models.PositiveSmallIntegerField(
        _("share of members (%)"), validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    is_control = models.BooleanField(_("control arm"), default=False)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        ordering = ["experiment", "position", "code"]
        verbose_name = _("experiment arm")
        verbose_name_plural = _("experiment arms")
        constraints = [
            models.UniqueConstraint(fields=["experiment", "code"], name="arm_code_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.experiment.code}:{self.code}"


class Targeting(models.Model):
    """Who a rule or campaign is for: tiers, segments and an A/B arm (empty = everyone)."""

    tiers = models.ManyToManyField(
        "members.Tier", blank=True, related_name="+", verbose_name=_("tiers")
    )
    segments = models.ManyToManyField(
        "members.Segment", blank=True, related_name="+", verbose_name=_("segments")
    )
    experiment_arm = models.ForeignKey(
        ExperimentArm,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("A/B arm"),
        help_text=_("Only members who fall into this arm; empty = every member."),
    )

    class Meta:
        abstract = True


# Every earn moves budget_used: only an operator's own change of it is worth a trail row.
@audited(quiet=["budget_used"])
class EarningRule(Targeting):
    """How an event earns points. Evaluated by campaigns.engine; every condition left empty
    matches everything. Points are rounded DOWN to a whole point once, after multipliers."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        ACTIVE = "active", _("active")
        PAUSED = "paused", _("paused")

    code = models.SlugField(
        _("code"),
        max_length=64,
        unique=True,
        help_text=_("Named in the API's rules_applied and in ledger entries."),
    )
    name = models.CharField(_("name"), max_length=128)
    event_type = models.SlugField(_("event type"), max_length=64, default=PURCHASE)
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.DRAFT
    )
    priority = models.PositiveSmallIntegerField(
        _("order"), default=100, help_text=_("Rules are evaluated and listed in this order.")
    )
    # Effect
    points_per_unit = models.DecimalField(
        _("points per 1.00"),
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Points per 1.00 of the amount that earns (purchases)."),
    )
    fixed_points = models.PositiveIntegerField(_("fixed points"), default=0)
    # Conditions
    min_amount = models.DecimalField(
        _("minimum amount"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    channels = ArrayField(
        models.CharField(max_length=16), blank=True, default=list, verbose_name=_("channels")
    )
    stores = ArrayField(
        models.CharField(max_length=64), blank=True, default=list, verbose_name=_("stores")
    )
    partners = models.ManyToManyField(
        "points.Partner", blank=True, related_name="+", verbose_name=_("partners")
    )
    categories = ArrayField(
        models.CharField(max_length=64),
        blank=True,
        default=list,
        verbose_name=_("categories"),
        help_text=_("Only items of these categories earn (and at least one must be bought)."),
    )
    skus = ArrayField(
        models.CharField(max_length=64),
        blank=True,
        default=list,
        verbose_name=_("SKUs"),
        help_text=_("Only these SKUs earn (and at least one must be bought)."),
    )
    weekdays = ArrayField(
        models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(7)]),
        blank=True,
        default=list,
        verbose_name=_("weekdays"),
        help_text=_("1 = Monday ... 7 = Sunday, in the programme's time zone."),
    )
    time_from = models.TimeField(_("from time of day"), null=True, blank=True)
    time_to = models.TimeField(_("to time of day"), null=True, blank=True)
    starts_at = models.DateTimeField(_("starts at"), null=True, blank=True)
    ends_at = models.DateTimeField(_("ends at"), null=True, blank=True)
    # Caps
    cap_per_day = models.PositiveIntegerField(_("per member per day"), null=True, blank=True)
    cap_per_week = models.PositiveIntegerField(_("per member per week"), null=True, blank=True)
    cap_lifetime = models.PositiveIntegerField(_("per member lifetime"), null=True, blank=True)
    budget_points = models.PositiveBigIntegerField(_("total budget"), null=True, blank=True)
    budget_used = models.BigIntegerField(_("budget used"), default=0, editable=False)
    spend_ratio_cap = models.DecimalField(
        _("lifetime points at most x lifetime spend"),
        max_digits=8,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_(
            "A member's lifetime points earned may not pass this many times their lifetime spend."
        ),
    )
    pending_days = models.PositiveSmallIntegerField(
        _("pending days"),
        null=True,
        blank=True,
        help_text=_("Empty: the programme's return window for purchases, none for other events."),
    )
    tier_multiplier_applies = models.BooleanField(_("tier multiplier applies"), default=True)
    campaigns_apply = models.BooleanField(_("campaigns apply"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["priority", "code"]
        verbose_name = _("earning rule")
        verbose_name_plural = _("earning rules")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(budget_points__isnull=True)
                | models.Q(budget_used__lte=models.F("budget_points")),
                name="rule_budget_never_overspent",
            ),
            models.CheckConstraint(
                condition=models.Q(budget_used__gte=0), name="rule_budget_used_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class RuleRate(models.Model):
    """A different rate for items of a category or SKU (the rest earn the rule's rate)."""

    class Kind(models.TextChoices):
        CATEGORY = "category", _("category")
        SKU = "sku", _("SKU")

    rule = models.ForeignKey(
        EarningRule, on_delete=models.CASCADE, related_name="rates", verbose_name=_("rule")
    )
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    code = models.CharField(_("code"), max_length=64)
    points_per_unit = models.DecimalField(
        _("points per 1.00"),
        max_digits=10,
        decimal_places=4,
        validators=[MinValueValidator(Decimal("0"))],
    )

    class Meta:
        verbose_name = _("rate by category or SKU")
        verbose_name_plural = _("rates by category or SKU")
        constraints = [
            models.UniqueConstraint(fields=["rule", "kind", "code"], name="rule_rate_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.code} x{self.points_per_unit}"


class ExcludedProduct(models.Model):
    """SKUs and categories that never earn points (gift cards, deposits)."""

    kind = models.CharField(_("kind"), max_length=8, choices=RuleRate.Kind.choices)
    code = models.CharField(_("code"), max_length=64)
    note = models.CharField(_("note"), max_length=128, blank=True)

    class Meta:
        ordering = ["kind", "code"]
        verbose_name = _("product that never earns")
        verbose_name_plural = _("products that never earn")
        constraints = [
            models.UniqueConstraint(fields=["kind", "code"], name="excluded_product_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.code}"


@audited(quiet=["budget_used", "is_running"])
class Campaign(Targeting):
    """A multiplier or bonus for a period (double-points days are campaigns).

    In effect for an event whose local time (programme time zone) lies in [starts_at, ends_at)
    and, with a recurrence, on the given weekdays or days of the month, from local midnight to
    local midnight. Celery beat flips `is_running` at those boundaries for operators to see
    (their schedules are in django-celery-beat's admin); the engine decides by the event's time,
    so a late beat never changes who earns what.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        ACTIVE = "active", _("active")
        PAUSED = "paused", _("paused")

    class Recurrence(models.TextChoices):
        NONE = "none", _("every day in the date range")
        WEEKLY = "weekly", _("on weekdays")
        MONTHLY = "monthly", _("on days of the month")

    code = models.SlugField(_("code"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=128)
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.DRAFT
    )
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"), null=True, blank=True)
    recurrence = models.CharField(
        _("recurrence"), max_length=8, choices=Recurrence.choices, default=Recurrence.NONE
    )
    weekdays = ArrayField(
        models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(7)]),
        blank=True,
        default=list,
        verbose_name=_("weekdays"),
        help_text=_("1 = Monday ... 7 = Sunday (weekly recurrence)."),
    )
    month_days = ArrayField(
        models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(31)]),
        blank=True,
        default=list,
        verbose_name=_("days of the month"),
        help_text=_("For example 8 for the 8th of each month (monthly recurrence)."),
    )
    rules = models.ManyToManyField(
        EarningRule,
        blank=True,
        related_name="campaigns",
        verbose_name=_("rules"),
        help_text=_("The rules it multiplies; empty = every rule of the event types below."),
    )
    event_types = ArrayField(
        models.SlugField(max_length=64),
        blank=True,
        default=list,
        verbose_name=_("event types"),
        help_text=_("Empty = purchase."),
    )
    multiplier = models.DecimalField(
        _("multiplier"),
        max_digits=6,
        decimal_places=2,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("1"))],
    )
    bonus_points = models.PositiveIntegerField(_("bonus points per event"), default=0)
    budget_points = models.PositiveBigIntegerField(_("points budget"), null=True, blank=True)
    budget_used = models.BigIntegerField(_("budget used"), default=0, editable=False)
    is_running = models.BooleanField(_("running now"), default=False, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-starts_at", "code"]
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(budget_points__isnull=True)
                | models.Q(budget_used__lte=models.F("budget_points")),
                name="campaign_budget_never_overspent",
            ),
            models.CheckConstraint(
                condition=models.Q(multiplier__gte=1), name="campaign_multiplier_at_least_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def runs_on(self, local: datetime) -> bool:
        """Whether the campaign is in effect at `local` (aware, in the programme's zone)."""
        if local < self.starts_at or (self.ends_at is not None and local >= self.ends_at):
            return False
        day: date = local.date()
        if self.recurrence == self.Recurrence.WEEKLY:
            return day.isoweekday() in self.weekdays
        if self.recurrence == self.Recurrence.MONTHLY:
            return day.day in self.month_days
        return True


class RuleUsage(models.Model):
    """Points a rule gave one member in one period (day, ISO week, lifetime): what caps read.

    Written in the event's transaction under the member's account lock, so two events of one
    member cannot both pass a cap.
    """

    class Period(models.TextChoices):
        DAY = "day", _("day")
        WEEK = "week", _("week")
        LIFETIME = "life", _("lifetime")

    member = models.ForeignKey(
        "members.Member", on_delete=models.CASCADE, related_name="+", verbose_name=_("member")
    )
    rule = models.ForeignKey(
        EarningRule, on_delete=models.CASCADE, related_name="+", verbose_name=_("rule")
    )
    period = models.CharField(_("period"), max_length=4, choices=Period.choices)
    period_start = models.DateField(_("period start"))
    points = models.BigIntegerField(_("points"), default=0)

    class Meta:
        verbose_name = _("rule usage")
        verbose_name_plural = _("rule usage")
        constraints = [
            models.UniqueConstraint(
                fields=["member", "rule", "period", "period_start"], name="rule_usage_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.period} {self.period_start}: {self.points}"


class MemberTask(models.Model):
    """A task (任务): N events of a type within a period earn a reward."""

    class Kind(models.TextChoices):
        NEWCOMER = "newcomer", _("newcomer (within days of joining)")
        DAILY = "daily", _("daily (again every day)")
        ACHIEVEMENT = "achievement", _("achievement (once)")

    code = models.SlugField(_("code"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=128)
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    event_type = models.SlugField(_("event type"), max_length=64)
    required_count = models.PositiveSmallIntegerField(
        _("events needed"), default=1, validators=[MinValueValidator(1)]
    )
    within_days = models.PositiveSmallIntegerField(
        _("within days of joining"), default=7, help_text=_("Newcomer tasks only.")
    )
    reward_points = models.PositiveIntegerField(_("reward points"))
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["kind", "code"]
        verbose_name = _("task")
        verbose_name_plural = _("tasks")

    def __str__(self) -> str:
        return self.name


class TaskProgress(models.Model):
    """One member's progress on a task in one period (a day for daily tasks, else once)."""

    member = models.ForeignKey(
        "members.Member",
        on_delete=models.CASCADE,
        related_name="task_progress",
        verbose_name=_("member"),
    )
    task = models.ForeignKey(
        MemberTask, on_delete=models.CASCADE, related_name="progress", verbose_name=_("task")
    )
    period_start = models.DateField(_("period start"))
    count = models.PositiveIntegerField(_("events"), default=0)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    class Meta:
        ordering = ["-period_start", "task"]
        verbose_name = _("task progress")
        verbose_name_plural = _("task progress")
        constraints = [
            models.UniqueConstraint(
                fields=["member", "task", "period_start"], name="task_progress_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_id} {self.period_start}: {self.count}"


class CheckInReward(models.Model):
    """Extra points on a given day of a check-in streak (for example 50 on day 7)."""

    streak_day = models.PositiveSmallIntegerField(
        _("streak day"), unique=True, validators=[MinValueValidator(1)]
    )
    points = models.PositiveIntegerField(_("points"))

    class Meta:
        ordering = ["streak_day"]
        verbose_name = _("check-in streak reward")
        verbose_name_plural = _("check-in streak rewards")

    def __str__(self) -> str:
        return f"{self.streak_day}: {self.points}"


class ReferralSettings(SingletonSettings):
    """How inviting a friend is rewarded (one row)."""

    class RewardOn(models.TextChoices):
        REGISTRATION = "registration", _("when the invitee registers")
        FIRST_PURCHASE = "purchase", _("when the invitee first buys")

    is_active = models.BooleanField(_("active"), default=True)
    reward_on = models.CharField(
        _("reward on"), max_length=16, choices=RewardOn.choices, default=RewardOn.REGISTRATION
    )
    inviter_points = models.PositiveIntegerField(_("inviter's points"), default=50)
    invitee_points = models.PositiveIntegerField(_("invitee's points"), default=0)
    per_inviter_per_day = models.PositiveSmallIntegerField(
        _("rewarded invitations per inviter per day"), default=5
    )
    same_device_guard = models.BooleanField(
        _("refuse the same device or IP"),
        default=True,
        help_text=_(
            "No reward when the invitee's device or IP (the event's attributes device_id, ip) was "
            "already used by the inviter or another of their invitees."
        ),
    )

    class Meta(SingletonSettings.Meta):
        verbose_name = _("referral settings")
        verbose_name_plural = _("referral settings")

    def __str__(self) -> str:
        return str(_("Referral settings"))


class ReferralReward(models.Model):
    """One invitation's outcome: rewarded, or why not. One per invitee."""

    class Outcome(models.TextChoices):
        REWARDED = "rewarded", _("rewarded")
        DAILY_LIMIT = "daily_limit", _("inviter's daily limit reached")
        SAME_DEVICE = "same_device", _("same device or IP")

    inviter = models.ForeignKey(
        "members.Member", on_delete=models.CASCADE, related_name="+", verbose_name=_("inviter")
    )
    invitee = models.OneToOneField(
        "members.Member", on_delete=models.CASCADE, related_name="+", verbose_name=_("invitee")
    )
    outcome = models.CharField(_("outcome"), max_length=12, choices=Outcome.choices)
    points = models.PositiveIntegerField(_("inviter's points"), default=0)
    device_id = models.CharField(_("device"), max_length=128, blank=True)
    ip = models.CharField(_("IP"), max_length=64, blank=True)
    day = models.DateField(_("day"))
    created_at = models.DateTimeField(_("created at"), db_default=Now())

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("referral reward")
        verbose_name_plural = _("referral rewards")
        indexes = [models.Index(fields=["inviter", "day"], name="referral_inviter_day_idx")]

    def __str__(self) -> str:
        return f"{self.inviter_id} -> {self.invitee_id}: {self.outcome}"


class RulebookState(models.Model):
    """The version of the rulebook; every change to what the engine reads bumps it, and each
    process rebuilds its cached copy when it sees a new number (campaigns.engine.rulebook)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    version = models.BigIntegerField(_("version"), default=0)

    class Meta:
        verbose_name = _("rulebook version")
        verbose_name_plural = _("rulebook version")
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="rulebookstate_singleton"),
        ]

    def __str__(self) -> str:
        return str(self.version)

    @classmethod
    def bump(cls) -> None:
        if not cls.objects.filter(pk=1).update(version=models.F("version") + 1):
            cls.objects.get_or_create(pk=1)
            cls.objects.filter(pk=1).update(version=models.F("version") + 1)
