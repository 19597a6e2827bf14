"""Programme health: daily rollups of the ledger, the metrics computed from them, their
thresholds and the alerts raised when a threshold is crossed (docs/adr/0014)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from loyalty_site.models import SingletonSettings


class HealthMetric(models.TextChoices):
    OUTSTANDING_POINTS = "outstanding_points", _("outstanding points")
    OUTSTANDING_PER_MEMBER = "outstanding_per_member", _("outstanding points per member")
    POINTS_USED_WOW_CHANGE = "points_used_wow_change", _("points used, week-on-week change %")
    REDEMPTION_RATE = "redemption_rate", _("redemption rate % (week)")
    BREAKAGE = "breakage", _("breakage % (expired / issued, 365 days)")
    COST_VS_BUDGET = "cost_vs_budget", _("cost of points issued vs budget % (month to date)")
    COST_TO_MEMBER_VALUE = "cost_to_member_value", _("issuance cost / member spend (30 days)")
    INACTIVE_30D_SHARE = "inactive_30d_share", _("members inactive 30 days %")


class DailyMerchantRollup(models.Model):
    """One day of the ledger at one merchant (partner empty: entries without a merchant, such
    as expiry). Points are positive amounts; `outstanding` is the running total of
    `net_change` for that merchant up to the end of the day."""

    day = models.DateField(_("day"))
    partner = models.ForeignKey(
        "points.Partner",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("merchant"),
        db_index=False,  # covered by dailymerchantrollup_uniq
    )
    issued = models.BigIntegerField(_("issued"), default=0)
    spent = models.BigIntegerField(_("spent"), default=0)
    redeemed = models.BigIntegerField(_("redeemed"), default=0)
    expired = models.BigIntegerField(_("expired"), default=0)
    reversed = models.BigIntegerField(_("reversed"), default=0)
    returned = models.BigIntegerField(_("given back"), default=0)
    net_change = models.BigIntegerField(_("net change"), default=0)
    active_members = models.IntegerField(_("active members"), default=0)
    outstanding = models.BigIntegerField(_("outstanding"), default=0)

    class Meta:
        ordering = ["-day", "partner"]
        verbose_name = _("daily merchant rollup")
        verbose_name_plural = _("daily merchant rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "day"],
                nulls_distinct=False,
                name="dailymerchantrollup_uniq",
            ),
        ]
        indexes = [models.Index(fields=["day"], name="dailymerchantrollup_day_idx")]

    def __str__(self) -> str:
        return f"{self.day} {self.partner_id or '-'}"


class DailyProgrammeRollup(models.Model):
    """One day of the whole programme. The latest row is the rollup's "days done" marker: the
    next run starts the day after it."""

    day = models.DateField(_("day"), unique=True)
    issued = models.BigIntegerField(_("issued"), default=0)
    spent = models.BigIntegerField(_("spent"), default=0)
    redeemed = models.BigIntegerField(_("redeemed"), default=0)
    expired = models.BigIntegerField(_("expired"), default=0)
    reversed = models.BigIntegerField(_("reversed"), default=0)
    returned = models.BigIntegerField(_("given back"), default=0)
    net_change = models.BigIntegerField(_("net change"), default=0)
    active_members = models.IntegerField(_("active members"), default=0)
    active_30d = models.IntegerField(_("active in 30 days"), default=0)
    members = models.IntegerField(_("members"), default=0)
    order_amount = models.DecimalField(
        _("member spend"), max_digits=18, decimal_places=2, default=Decimal("0")
    )
    outstanding = models.BigIntegerField(_("outstanding"), default=0)

    class Meta:
        ordering = ["-day"]
        verbose_name = _("daily programme rollup")
        verbose_name_plural = _("daily programme rollups")

    def __str__(self) -> str:
        return str(self.day)


class DailyTierSize(models.Model):
    """How many members (not closed) a tier had when the rollup of `day` ran."""

    day = models.DateField(_("day"))
    tier = models.ForeignKey(
        "members.Tier", on_delete=models.CASCADE, related_name="+", verbose_name=_("tier")
    )
    members = models.IntegerField(_("members"))

    class Meta:
        verbose_name = _("daily tier size")
        verbose_name_plural = _("daily tier sizes")
        constraints = [
            models.UniqueConstraint(fields=["day", "tier"], name="dailytiersize_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.tier_id}: {self.members}"


class HealthMetricValue(models.Model):
    """A metric's value on a day (empty when it cannot be computed, e.g. nothing issued)."""

    day = models.DateField(_("day"))
    metric = models.CharField(_("metric"), max_length=32, choices=HealthMetric.choices)
    value = models.DecimalField(_("value"), max_digits=20, decimal_places=4, null=True, blank=True)

    class Meta:
        ordering = ["-day", "metric"]
        verbose_name = _("health metric value")
        verbose_name_plural = _("health metric values")
        constraints = [
            models.UniqueConstraint(fields=["day", "metric"], name="healthmetricvalue_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.metric}: {self.value}"


class HealthThreshold(models.Model):
    """When a metric is unhealthy: below `lower` or above `upper` (either may be empty), on
    the evaluated day and, with `weeks_running` > 1, on the same weekday of the weeks before."""

    metric = models.CharField(_("metric"), max_length=32, choices=HealthMetric.choices, unique=True)
    lower = models.DecimalField(
        _("alert below"), max_digits=20, decimal_places=4, null=True, blank=True
    )
    upper = models.DecimalField(
        _("alert above"), max_digits=20, decimal_places=4, null=True, blank=True
    )
    weeks_running = models.PositiveSmallIntegerField(
        _("weeks running"),
        default=1,
        validators=[MinValueValidator(1)],
        help_text=_("Alert only when crossed this many weeks in a row (1 = on the day)."),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["metric"]
        verbose_name = _("health threshold")
        verbose_name_plural = _("health thresholds")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(weeks_running__gte=1), name="healththreshold_weeks_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.get_metric_display()

    def is_crossed_by(self, value: Decimal | None) -> bool:
        if value is None:
            return False
        return (self.lower is not None and value < self.lower) or (
            self.upper is not None and value > self.upper
        )


class HealthSettings(SingletonSettings):
    """Inputs of the cost metrics and who is told about alerts."""

    monthly_budget = models.DecimalField(
        _("monthly points budget"),
        max_digits=16,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_(
            "Money the programme may spend on points issued in a month (points x value of one "
            "point); 0 = no budget, the budget metric is not computed."
        ),
    )
    alert_group = models.ForeignKey(
        "auth.Group",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("alert email group"),
        help_text=_("Users of this group with an email address receive health alerts."),
    )

    class Meta(SingletonSettings.Meta):
        verbose_name = _("health settings")
        verbose_name_plural = _("health settings")

    def __str__(self) -> str:
        return str(_("Health settings"))


class HealthAlert(models.Model):
    """A threshold crossed on a day. Raised once per crossing: while one is raised for a
    metric no other is raised; acknowledging it or the metric recovering ends that."""

    class State(models.TextChoices):
        RAISED = "raised", _("raised")
        ACKNOWLEDGED = "acknowledged", _("acknowledged")
        RECOVERED = "recovered", _("recovered")

    metric = models.CharField(_("metric"), max_length=32, choices=HealthMetric.choices)
    day = models.DateField(_("day"))
    value = models.DecimalField(_("value"), max_digits=20, decimal_places=4)
    lower = models.DecimalField(
        _("alert below"), max_digits=20, decimal_places=4, null=True, blank=True
    )
    upper = models.DecimalField(
        _("alert above"), max_digits=20, decimal_places=4, null=True, blank=True
    )
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.RAISED)
    raised_at = models.DateTimeField(_("raised at"), auto_now_add=True)
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("acknowledged by"),
    )
    recovered_on = models.DateField(_("recovered on"), null=True, blank=True)

    class Meta:
        ordering = ["-day", "-id"]
        verbose_name = _("health alert")
        verbose_name_plural = _("health alerts")
        indexes = [
            models.Index(
                fields=["metric"],
                condition=models.Q(state__in=["raised", "acknowledged"]),
                name="healthalert_open_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_metric_display()} {self.day}"


class HealthDashboard(HealthMetricValue):
    """The admin's health dashboard page (a proxy so that it has its own admin entry and
    view permission)."""

    class Meta:
        proxy = True
        verbose_name = _("health dashboard")
        verbose_name_plural = _("health dashboard")
