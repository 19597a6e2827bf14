from __future__ import annotations

import zoneinfo
from decimal import Decimal

import pgtrigger
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey

from loyalty_site.audit import audited
from loyalty_site.models import SingletonSettings
from members.models import Member

# TRUNCATE is refused unless the session says otherwise: only the test suite's database does
# (tests/conftest.py), because Django empties tables with TRUNCATE between transactional tests.
TRUNCATE_GUARD_FUNC = """
IF current_setting('loyalty.allow_ledger_truncate', true) IS DISTINCT FROM 'on' THEN
    RAISE EXCEPTION 'pgtrigger: Cannot truncate % table: the ledger is append-only',
        TG_TABLE_NAME;
END IF;
RETURN NULL;
"""


@audited()
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


@audited(exclude=["hashed_key"])
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


def default_time_zone() -> str:
    return settings.TIME_ZONE


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("Unknown time zone: %(zone)s"), params={"zone": value})


@audited()
class ProgrammeSettings(SingletonSettings):
    """The programme's ledger settings: one row (pk=1), created by a migration, edited in admin.

    The expiry date is fixed on each lot when it is earned: changing the policy here never moves
    points already earned.
    """

    class ExpiryPolicy(models.TextChoices):
        ROLLING_DAYS = "rolling_days", _("N days after earning")
        ROLLING_MONTHS = "rolling_months", _("N months after earning")
        END_OF_YEAR_AFTER = "end_of_year_after", _("end of the calendar year after earning")
        END_OF_QUARTER = "end_of_quarter", _("end of the quarter, N months after earning")
        NEVER = "never", _("never")

    class RefundAfterSpendPolicy(models.TextChoices):
        TAKE_FROM_OTHER_POINTS = "take_from_other_points", _("take from the member's other points")
        ALLOW_NEGATIVE = "allow_negative", _("allow a negative balance down to the limit")
        WRITE_OFF = "write_off", _("write off what was already spent")

    point_value = models.DecimalField(
        _("value of one point"),
        max_digits=12,
        decimal_places=6,
        default=Decimal("0.01"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Money value of ONE point: 0.01 means 100 points are worth 1.00."),
    )
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        default=default_time_zone,
        validators=[validate_time_zone],
        help_text=_("Day boundaries (expiry at the end of a day) are taken in this time zone."),
    )
    expiry_policy = models.CharField(
        _("expiry policy"),
        max_length=32,
        choices=ExpiryPolicy.choices,
        default=ExpiryPolicy.ROLLING_MONTHS,
    )
    expiry_period = models.PositiveIntegerField(
        _("expiry period"),
        default=12,
        help_text=_("N for the rolling and end-of-quarter policies (days or months)."),
    )
    pending_days = models.PositiveIntegerField(
        _("pending days"),
        default=0,
        help_text=_("Return window: purchase points become available after this many days."),
    )
    refund_after_spend_policy = models.CharField(
        _("refund after spend"),
        max_length=32,
        choices=RefundAfterSpendPolicy.choices,
        default=RefundAfterSpendPolicy.TAKE_FROM_OTHER_POINTS,
        help_text=_("What a refund does when the points the order earned were already spent."),
    )
    negative_balance_limit = models.PositiveIntegerField(
        _("negative balance limit"),
        default=0,
        help_text=_("How far below zero a member's available points may go (0 = never)."),
    )

    class Meta(SingletonSettings.Meta):
        verbose_name = _("programme settings")
        verbose_name_plural = _("programme settings")

    def __str__(self) -> str:
        return str(_("Programme settings"))

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class Account(models.Model):
    """A member's points: one row per member, the row every balance change locks.

    Invariants (CHECK constraints and `check_ledger`): available >= -credit_limit, pending >= 0;
    available = sum of available_delta of its entries, pending = sum of pending_delta; the
    remaining points of its active lots add up to max(available, 0) (a negative balance is a
    debt that the next points coming in pay first).
    """

    member = models.OneToOneField(
        Member, on_delete=models.PROTECT, related_name="account", verbose_name=_("member")
    )
    available = models.BigIntegerField(_("available"), default=0)
    pending = models.BigIntegerField(_("pending"), default=0)
    lifetime_earned = models.BigIntegerField(_("lifetime earned"), default=0)
    lifetime_spent = models.BigIntegerField(
        _("lifetime spent"), default=0, help_text=_("Redeemed plus spent, net of returns.")
    )
    lifetime_expired = models.BigIntegerField(_("lifetime expired"), default=0)
    credit_limit = models.BigIntegerField(
        _("credit limit"),
        default=0,
        help_text=_("Copy of the programme's negative balance limit."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True, db_default=Now())

    class Meta:
        verbose_name = _("points account")
        verbose_name_plural = _("points accounts")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(available__gte=-models.F("credit_limit")),
                name="account_available_within_credit_limit",
            ),
            models.CheckConstraint(
                condition=models.Q(pending__gte=0), name="account_pending_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(credit_limit__gte=0), name="account_credit_limit_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.available}"


class Entry(models.Model):
    """One change of a member's points. Append-only: the database refuses UPDATE, DELETE and
    TRUNCATE on this table (triggers below).

    `amount` is the change of the member's points (available + pending), split into
    `available_delta` and `pending_delta`; `balance_after` is the available balance after it.
    """

    class Kind(models.TextChoices):
        EARN = "earn", _("earn")
        REDEEM = "redeem", _("redeem")
        EXPIRE = "expire", _("expire")
        REVERSE = "reverse", _("reverse")
        ADJUST = "adjust", _("adjust")
        SPEND = "spend", _("spend")
        TRANSFER = "transfer", _("transfer")
        CONVERT = "convert", _("convert")
        RELEASE = "release", _("release")

    account = models.ForeignKey(
        Account,
        on_delete=models.PROTECT,
        related_name="entries",
        verbose_name=_("account"),
        db_index=False,  # covered by entry_account_newest_idx
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    amount = models.BigIntegerField(_("amount"))
    available_delta = models.BigIntegerField(_("available change"), default=0)
    pending_delta = models.BigIntegerField(_("pending change"), default=0)
    balance_after = models.BigIntegerField(_("available after"))
    partner = models.ForeignKey(
        Partner,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("merchant"),
        db_index=False,
    )
    reference = models.CharField(_("reference"), max_length=128, blank=True, db_default="")
    memo = models.CharField(_("memo"), max_length=255, blank=True, db_default="")
    reason = models.TextField(_("reason"), blank=True, db_default="")
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("operator"),
        db_index=False,
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("approved by"),
        db_index=False,
    )
    source_type = models.CharField(_("source type"), max_length=32, blank=True, db_default="")
    source_id = models.CharField(_("source id"), max_length=64, blank=True, db_default="")
    related_entry = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("related entry"),
        db_index=False,  # partial index below
    )
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    available_at = models.DateTimeField(_("available at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), db_default=Now())

    class Meta:
        ordering = ["-id"]
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        indexes = [
            models.Index(fields=["account", "-id"], name="entry_account_newest_idx"),
            models.Index(
                fields=["related_entry"],
                condition=models.Q(related_entry__isnull=False),
                name="entry_related_idx",
            ),
            BrinIndex(fields=["created_at"], name="entry_created_brin"),
            # The admin's filters and search on ten million entries (docs/adr/0017).
            models.Index(fields=["kind", "-id"], name="entry_kind_newest_idx"),
            models.Index(fields=["partner", "-id"], name="entry_partner_newest_idx"),
            models.Index(
                fields=["reference"],
                condition=~models.Q(reference=""),
                name="entry_reference_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount=models.F("available_delta") + models.F("pending_delta")),
                name="entry_amount_is_sum_of_deltas",
            ),
            # A redemption's points are given back at most once.
            models.UniqueConstraint(
                fields=["related_entry"],
                condition=models.Q(kind="reverse", source_type="redemption"),
                name="entry_redemption_given_back_once",
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="entry_append_only",
                operation=pgtrigger.Update | pgtrigger.Delete,
            ),
            pgtrigger.Trigger(
                name="entry_no_truncate",
                level=pgtrigger.Statement,
                when=pgtrigger.Before,
                operation=pgtrigger.Truncate,
                func=TRUNCATE_GUARD_FUNC,
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.amount:+d}"


class Lot(models.Model):
    """Points earned together, with their own expiry date.

    States: `pending` (earned, not yet available: the return window), `active` (counts in the
    available balance; a lot used up stays active with remaining 0 so points can be given back
    to it) and `expired` (remaining 0, expired by the expiry job; a give-back re-activates it
    and the next expiry run expires it again). remaining = amount + sum of its allocations.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("pending")
        ACTIVE = "active", _("active")
        EXPIRED = "expired", _("expired")

    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="lots", verbose_name=_("account")
    )
    earn_entry = models.OneToOneField(
        Entry, on_delete=models.PROTECT, related_name="lot", verbose_name=_("earning entry")
    )
    partner = models.ForeignKey(
        Partner,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("merchant"),
        db_index=False,
    )
    amount = models.BigIntegerField(_("amount"))
    remaining = models.BigIntegerField(_("remaining"))
    state = models.CharField(_("state"), max_length=16, choices=State.choices)
    available_at = models.DateTimeField(_("available at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), db_default=Now())

    class Meta:
        verbose_name = _("lot")
        verbose_name_plural = _("lots")
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="lot_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(remaining__gte=0, remaining__lte=models.F("amount")),
                name="lot_remaining_within_amount",
            ),
            models.CheckConstraint(
                condition=~models.Q(state="expired") | models.Q(remaining=0),
                name="lot_expired_is_empty",
            ),
            models.CheckConstraint(
                condition=~models.Q(state="pending") | models.Q(available_at__isnull=False),
                name="lot_pending_has_available_at",
            ),
        ]
        indexes = [
            # Spending order: soonest expiry first, never-expiring last, then oldest.
            models.Index(
                models.F("account"),
                models.F("expires_at").asc(nulls_last=True),
                models.F("id"),
                condition=models.Q(state="active", remaining__gt=0),
                name="lot_fifo_idx",
            ),
            models.Index(
                fields=["expires_at", "id"],
                condition=models.Q(state="active", remaining__gt=0),
                name="lot_expiry_scan_idx",
            ),
            models.Index(
                fields=["available_at", "id"],
                condition=models.Q(state="pending"),
                name="lot_release_scan_idx",
            ),
            # An account's pending lots, for the release job's chunk (docs/scaling.md).
            models.Index(
                fields=["account", "available_at"],
                condition=models.Q(state="pending"),
                name="lot_pending_account_idx",
            ),
            # The admin's filters on millions of lots (docs/adr/0017).
            models.Index(fields=["state", "-id"], name="lot_state_newest_idx"),
            models.Index(fields=["partner", "-id"], name="lot_partner_newest_idx"),
            models.Index(fields=["expires_at", "id"], name="lot_expires_idx"),
        ]

    def __str__(self) -> str:
        return f"lot #{self.pk} {self.remaining}/{self.amount} {self.state}"


class Allocation(models.Model):
    """Points an entry took from a lot (negative) or gave back to it (positive).

    Append-only like entries. For every lot: remaining = amount + sum(points).
    """

    entry = models.ForeignKey(
        Entry, on_delete=models.PROTECT, related_name="allocations", verbose_name=_("entry")
    )
    lot = models.ForeignKey(
        Lot, on_delete=models.PROTECT, related_name="allocations", verbose_name=_("lot")
    )
    points = models.BigIntegerField(_("points"))

    class Meta:
        verbose_name = _("allocation")
        verbose_name_plural = _("allocations")
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(points=0), name="allocation_points_not_zero"
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="allocation_append_only",
                operation=pgtrigger.Update | pgtrigger.Delete,
            ),
        ]

    def __str__(self) -> str:
        return f"entry #{self.entry_id} lot #{self.lot_id} {self.points:+d}"


class Order(models.Model):
    """A partner's purchase or point payment by reference: what a refund of it works from.

    Refund bookkeeping: `points_reversed` earned points dealt with by refunds so far, of which
    `points_written_off` could not be taken back (`points_lapsed` of them had expired).
    """

    partner = models.ForeignKey(
        Partner,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="orders",
        verbose_name=_("merchant"),
        db_index=False,  # covered by order_partner_reference_uniq
    )
    reference = models.CharField(_("reference"), max_length=128)
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="orders", verbose_name=_("account")
    )
    amount = models.DecimalField(
        _("amount"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    paid_with_points = models.DecimalField(
        _("paid with points"), max_digits=14, decimal_places=2, default=Decimal("0")
    )
    refunded_amount = models.DecimalField(
        _("refunded amount"), max_digits=14, decimal_places=2, default=Decimal("0")
    )
    points_earned = models.BigIntegerField(_("points earned"), default=0)
    points_reversed = models.BigIntegerField(_("points reversed"), default=0)
    points_written_off = models.BigIntegerField(_("points written off"), default=0)
    points_lapsed = models.BigIntegerField(_("points lapsed"), default=0)
    points_spent = models.BigIntegerField(_("points spent"), default=0)
    points_returned = models.BigIntegerField(_("points returned"), default=0)
    earn_entry = models.ForeignKey(
        Entry,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("earning entry"),
        db_index=False,
    )
    spend_entry = models.ForeignKey(
        Entry,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("spending entry"),
        db_index=False,
    )
    created_at = models.DateTimeField(_("created at"), db_default=Now())
    updated_at = models.DateTimeField(_("updated at"), auto_now=True, db_default=Now())

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        indexes = [
            # campaigns' daily health rollup reads one day of orders (member spend).
            BrinIndex(fields=["created_at"], name="order_created_brin"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "reference"],
                nulls_distinct=False,
                name="order_partner_reference_uniq",
            ),
            models.CheckConstraint(
                condition=models.Q(refunded_amount__gte=0)
                & (
                    models.Q(amount__isnull=True)
                    | models.Q(refunded_amount__lte=models.F("amount"))
                ),
                name="order_refund_within_amount",
            ),
            models.CheckConstraint(
                condition=models.Q(points_reversed__lte=models.F("points_earned"))
                & models.Q(points_written_off__lte=models.F("points_reversed"))
                & models.Q(points_lapsed__lte=models.F("points_written_off"))
                & models.Q(points_returned__lte=models.F("points_spent")),
                name="order_points_bookkeeping",
            ),
        ]

    def __str__(self) -> str:
        return self.reference


class OutboxEvent(models.Model):
    """A domain event, written in the same transaction as the change it reports.

    A publisher (webhooks, notifications) delivers rows with no `published_at` and sets it.
    """

    type = models.CharField(_("type"), max_length=64)
    account = models.ForeignKey(
        Account,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("account"),
        db_index=False,
    )
    member_external_id = models.CharField(_("member"), max_length=128, blank=True)
    payload = models.JSONField(_("payload"), default=dict)
    created_at = models.DateTimeField(_("created at"), db_default=Now())
    published_at = models.DateTimeField(_("published at"), null=True, blank=True)

    class Meta:
        verbose_name = _("outbox event")
        verbose_name_plural = _("outbox events")
        indexes = [
            models.Index(
                fields=["id"],
                condition=models.Q(published_at__isnull=True),
                name="outbox_unpublished_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"


# --- Transfers between members and exchange with other programmes (docs/adr/0016) -------------
class TransferSettings(SingletonSettings):
    """Daily limits of member-to-member transfers: one row (pk=1), edited in admin.

    A day is a calendar day in the programme's time zone. An empty limit means no limit; 0
    means none at all (transfers switched off in that direction).
    """

    daily_out_limit = models.PositiveIntegerField(
        _("points a member may give per day"),
        null=True,
        blank=True,
        default=10_000,
        help_text=_("Empty: no limit. 0: members cannot give points."),
    )
    daily_in_limit = models.PositiveIntegerField(
        _("points a member may receive per day"),
        null=True,
        blank=True,
        default=10_000,
        help_text=_("Empty: no limit. 0: members cannot receive points."),
    )

    class Meta(SingletonSettings.Meta):
        verbose_name = _("transfer settings")
        verbose_name_plural = _("transfer settings")

    def __str__(self) -> str:
        return str(_("Transfer settings"))


class Transfer(models.Model):
    """Points one member gave another: a `transfer` entry on each side, written together.

    The receiving side is a new lot; its expiry date follows the points given (ADR 0016).
    `reference` is unique per partner when given.
    """

    partner = models.ForeignKey(
        Partner,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("merchant"),
        db_index=False,
    )
    reference = models.CharField(_("reference"), max_length=128, blank=True, default="")
    from_account = models.ForeignKey(
        Account,
        on_delete=models.PROTECT,
        related_name="transfers_out",
        verbose_name=_("from"),
        db_index=False,  # transfer_out_day_idx
    )
    to_account = models.ForeignKey(
        Account,
        on_delete=models.PROTECT,
        related_name="transfers_in",
        verbose_name=_("to"),
        db_index=False,  # transfer_in_day_idx
    )
    points = models.BigIntegerField(_("points"))
    out_entry = models.OneToOneField(
        Entry,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("giving entry"),
    )
    in_entry = models.OneToOneField(
        Entry,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("receiving entry"),
    )
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        ordering = ["-id"]
        verbose_name = _("transfer")
        verbose_name_plural = _("transfers")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(points__gt=0), name="transfer_points_positive"
            ),
            models.CheckConstraint(
                condition=~models.Q(from_account=models.F("to_account")),
                name="transfer_between_two_accounts",
            ),
            models.UniqueConstraint(
                fields=["partner", "reference"],
                condition=~models.Q(reference=""),
                nulls_distinct=False,
                name="transfer_partner_reference_uniq",
            ),
        ]
        indexes = [
            # The daily limits: what an account gave / received since the start of the day.
            models.Index(fields=["from_account", "created_at"], name="transfer_out_day_idx"),
            models.Index(fields=["to_account", "created_at"], name="transfer_in_day_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.points}"


class ExchangePartner(models.Model):
    """Another loyalty programme members exchange points with (跨平台积分互通).

    The rate is OUR points per ONE of the partner's units: base rate (基准汇率) x the current
    adjustment factor (动态调节), which the database keeps between the factor's bounds. Daily
    limits are per member and per direction, counted in our points.
    """

    code = models.SlugField(_("code"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=128)
    unit_name = models.CharField(
        _("unit name"), max_length=32, blank=True, default="", help_text=_("e.g. miles")
    )
    base_rate = models.DecimalField(
        _("base rate"),
        max_digits=12,
        decimal_places=6,
        help_text=_("Our points per ONE partner unit, before the adjustment factor."),
    )
    min_factor = models.DecimalField(
        _("lowest adjustment factor"), max_digits=8, decimal_places=4, default=Decimal("0.8")
    )
    max_factor = models.DecimalField(
        _("highest adjustment factor"), max_digits=8, decimal_places=4, default=Decimal("1.2")
    )
    factor = models.DecimalField(
        _("current adjustment factor"),
        max_digits=8,
        decimal_places=4,
        default=Decimal("1"),
        help_text=_("Rate used = base rate x this factor; kept between the two bounds."),
    )
    daily_out_limit = models.PositiveIntegerField(
        _("points a member may convert out per day"),
        null=True,
        blank=True,
        default=10_000,
        help_text=_("Counted in our points. Empty: no limit. 0: no conversions out."),
    )
    daily_in_limit = models.PositiveIntegerField(
        _("points a member may receive by conversion per day"),
        null=True,
        blank=True,
        default=10_000,
        help_text=_("Counted in our points. Empty: no limit. 0: no conversions in."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("exchange partner")
        verbose_name_plural = _("exchange partners")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(base_rate__gt=0), name="exchange_base_rate_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(min_factor__gt=0)
                & models.Q(min_factor__lte=models.F("max_factor")),
                name="exchange_factor_bounds_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(factor__gte=models.F("min_factor"))
                & models.Q(factor__lte=models.F("max_factor")),
                name="exchange_factor_within_bounds",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def clean(self) -> None:
        if None in (self.min_factor, self.max_factor, self.factor):
            return
        if self.min_factor <= 0 or self.min_factor > self.max_factor:
            raise ValidationError(
                {"max_factor": _("The bounds must be above 0 and the lowest <= the highest.")}
            )
        if not self.min_factor <= self.factor <= self.max_factor:
            raise ValidationError(
                {"factor": _("The factor must lie between its lowest and highest values.")}
            )


class Conversion(models.Model):
    """One exchange of a member's points with another programme, and the rate it used.

    `out`: the member's points left as `partner_units` of the other programme; `in`: the other
    programme's units came in as `points`. The `convert` entry is the ledger side.
    """

    class Direction(models.TextChoices):
        OUT = "out", _("out (our points to partner units)")
        IN = "in", _("in (partner units to our points)")

    exchange_partner = models.ForeignKey(
        ExchangePartner,
        on_delete=models.PROTECT,
        related_name="conversions",
        verbose_name=_("exchange partner"),
        db_index=False,  # conversion_day_idx
    )
    account = models.ForeignKey(
        Account,
        on_delete=models.PROTECT,
        related_name="conversions",
        verbose_name=_("account"),
        db_index=False,  # conversion_day_idx
    )
    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices)
    points = models.BigIntegerField(_("points"))
    partner_units = models.BigIntegerField(_("partner units"))
    rate = models.DecimalField(
        _("rate"), max_digits=20, decimal_places=10, help_text=_("Our points per partner unit.")
    )
    partner = models.ForeignKey(
        Partner,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("merchant"),
        db_index=False,
    )
    reference = models.CharField(_("reference"), max_length=128, blank=True, default="")
    entry = models.OneToOneField(
        Entry,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("entry"),
    )
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        ordering = ["-id"]
        verbose_name = _("conversion")
        verbose_name_plural = _("conversions")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(points__gt=0, partner_units__gt=0),
                name="conversion_amounts_positive",
            ),
            models.UniqueConstraint(
                fields=["partner", "reference"],
                condition=~models.Q(reference=""),
                nulls_distinct=False,
                name="conversion_partner_reference_uniq",
            ),
        ]
        indexes = [
            # The daily limits: what an account converted with a partner since the day began.
            models.Index(
                fields=["account", "exchange_partner", "direction", "created_at"],
                name="conversion_day_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.direction} {self.points}"


# --- Outbound webhooks (docs/adr/0010) ----------------------------------------------------------
class WebhookEndpoint(models.Model):
    """A partner's URL that receives the outbox events of the types it subscribes to, signed with
    its secret (api.md, "Webhooks (outbound)").

    The secret is kept in clear because every delivery is signed with it (HMAC); the admin shows
    it once, when the endpoint is created. After `failure_limit` failed attempts in a row the
    endpoint is disabled (`disabled_at`, `disabled_reason`) and operators are alerted.
    """

    partner = models.ForeignKey(
        Partner,
        on_delete=models.CASCADE,
        related_name="webhook_endpoints",
        verbose_name=_("partner"),
    )
    url = models.URLField(_("URL"), max_length=500)
    secret = models.CharField(_("signing secret"), max_length=128, editable=False)
    event_types = ArrayField(
        models.CharField(max_length=64), default=list, verbose_name=_("event types")
    )
    is_active = models.BooleanField(
        _("active"),
        default=True,
        help_text=_(
            "Switched off by hand, it gets nothing. Disabled after failures, its events are "
            "kept and sent when it is switched back on."
        ),
    )
    failure_limit = models.PositiveIntegerField(
        _("disable after failures"),
        default=10,
        validators=[MinValueValidator(1)],
        help_text=_(
            "Failed attempts in a row, with no success in between, after which the endpoint is "
            "disabled and operators are alerted (10 in a row is about 30 hours of failures)."
        ),
    )
    consecutive_failures = models.PositiveIntegerField(_("failures in a row"), default=0)
    paused_until = models.DateTimeField(
        _("paused until"),
        null=True,
        blank=True,
        help_text=_("After a failure nothing is sent to the endpoint before this moment."),
    )
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True)
    disabled_reason = models.TextField(_("why it was disabled"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["partner__name", "url"]

    def __str__(self) -> str:
        return f"{self.partner} → {self.url}"


class WebhookDelivery(models.Model):
    """One outbox event to one endpoint: its state, attempts so far and next attempt.

    Unique per (endpoint, event), so fanning out an event twice queues it once. `member` orders
    deliveries: one of a member is not sent while an earlier one (lower event id) of that member
    to the same endpoint is still pending or retrying.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("waiting to be sent")
        RETRYING = "retrying", _("retrying")
        DELIVERED = "delivered", _("delivered to the partner")
        FAILED = "failed", _("failed (gave up)")

    endpoint = models.ForeignKey(
        WebhookEndpoint,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("endpoint"),
        db_index=False,  # covered by webhook_delivery_endpoint_event
    )
    event = models.ForeignKey(
        OutboxEvent, on_delete=models.PROTECT, related_name="+", verbose_name=_("event")
    )
    member = models.ForeignKey(
        Member,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("member"),
        db_index=False,  # covered by webhook_delivery_member_queue
    )
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(
        _("last response code"), null=True, blank=True
    )
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), db_default=Now())

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event"], name="webhook_delivery_endpoint_event"
            ),
        ]
        indexes = [
            # The sender's scan for due deliveries.
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=models.Q(state__in=["pending", "retrying"]),
                name="webhook_delivery_due_idx",
            ),
            # Per-member ordering: is an earlier delivery of this member still undelivered?
            models.Index(
                fields=["endpoint", "member", "event"],
                condition=models.Q(state__in=["pending", "retrying"]),
                name="webhook_delivery_member_queue",
            ),
            # The retention purge, oldest first (rows are appended in time order).
            BrinIndex(fields=["created_at"], name="webhook_delivery_created_brin"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id} ({self.state})"


class WebhookAttempt(models.Model):
    """One HTTP POST of a delivery: when, the response code (none when the request never got an
    answer), how long it took and what went wrong."""

    delivery = models.ForeignKey(
        WebhookDelivery,
        on_delete=models.CASCADE,
        related_name="attempt_log",
        verbose_name=_("delivery"),
    )
    attempted_at = models.DateTimeField(_("attempted at"))
    succeeded = models.BooleanField(_("succeeded"))
    status_code = models.PositiveSmallIntegerField(_("response code"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"))
    error = models.TextField(_("error"), blank=True)
    response_body = models.TextField(_("response (start)"), blank=True)

    class Meta:
        verbose_name = _("webhook attempt")
        verbose_name_plural = _("webhook attempts")
        ordering = ["attempted_at", "id"]

    def __str__(self) -> str:
        return f"{self.delivery_id} @ {self.attempted_at:%Y-%m-%d %H:%M:%S} {self.status_code}"


# --- Maker-checker and bulk grants (docs/adr/0013) ------------------------------------------------
class ApprovalSettings(SingletonSettings):
    """How large a manual change of points may be before a second operator must approve it."""

    adjustment_threshold = models.PositiveIntegerField(
        _("adjustment approval threshold"),
        default=1000,
        help_text=_(
            "A manual adjustment of more than this many points (either sign) waits for a second "
            "operator's approval."
        ),
    )
    bulk_grant_threshold = models.PositiveIntegerField(
        _("bulk grant approval threshold"),
        default=1000,
        help_text=_(
            "A bulk grant file moving more than this many points in all (sum of the absolute "
            "points of its rows) waits for a second operator's approval."
        ),
    )

    class Meta(SingletonSettings.Meta):
        verbose_name = _("approval settings")
        verbose_name_plural = _("approval settings")

    def __str__(self) -> str:
        return str(_("Approval settings"))


class AdjustmentRequest(models.Model):
    """A manual adjustment above the threshold, waiting for a second operator (maker-checker).

    The database refuses a decision by the operator who asked (CHECK decided_by <> requested_by)
    and an approved request without its ledger entry.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("waiting for approval")
        APPROVED = "approved", _("approved")
        REJECTED = "rejected", _("rejected")

    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="+", verbose_name=_("member")
    )
    points = models.BigIntegerField(_("points"))
    reason = models.TextField(_("reason"))
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.PENDING
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("requested by"),
    )
    requested_at = models.DateTimeField(_("requested at"), db_default=Now())
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    rejection_reason = models.TextField(_("rejection reason"), blank=True, default="")
    entry = models.OneToOneField(
        Entry,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("ledger entry"),
    )

    class Meta:
        ordering = ["-id"]
        verbose_name = _("adjustment request")
        verbose_name_plural = _("adjustment requests")
        permissions = [
            ("approve_adjustmentrequest", _("Can approve or reject adjustment requests"))
        ]
        indexes = [
            models.Index(
                fields=["id"], condition=models.Q(state="pending"), name="adjrequest_pending_idx"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(points=0), name="adjrequest_points_not_zero"
            ),
            models.CheckConstraint(
                condition=models.Q(decided_by__isnull=True)
                | ~models.Q(decided_by=models.F("requested_by")),
                name="adjrequest_decided_by_another_operator",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    state="pending", decided_by__isnull=True, decided_at__isnull=True
                )
                | models.Q(
                    state__in=["approved", "rejected"],
                    decided_by__isnull=False,
                    decided_at__isnull=False,
                ),
                name="adjrequest_decision_recorded",
            ),
            models.CheckConstraint(
                condition=models.Q(state="approved", entry__isnull=False)
                | (~models.Q(state="approved") & models.Q(entry__isnull=True)),
                name="adjrequest_approved_has_entry",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.points:+d}"


class BulkGrant(models.Model):
    """Points granted from an uploaded file (member, points, reason), one BulkGrantRow a line.

    Idempotent per file: `content_hash` (of the file's normalised rows) is unique, so the same
    file uploaded again is refused; each row is granted at most once (BulkGrantRow.entry).
    Counters are updated in the same transaction as each row, so they are always exact.
    """

    class State(models.TextChoices):
        AWAITING_APPROVAL = "awaiting_approval", _("waiting for approval")
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        REJECTED = "rejected", _("rejected")

    content_hash = models.CharField(_("content hash"), max_length=64, unique=True)
    file_name = models.CharField(_("file name"), max_length=255, blank=True, default="")
    state = models.CharField(
        _("state"), max_length=20, choices=State.choices, default=State.AWAITING_APPROVAL
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    uploaded_at = models.DateTimeField(_("uploaded at"), db_default=Now())
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("approved or rejected by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    rejection_reason = models.TextField(_("rejection reason"), blank=True, default="")
    total_rows = models.PositiveIntegerField(_("rows"), default=0)
    total_points = models.BigIntegerField(
        _("points in all"), default=0, help_text=_("Sum of the absolute points of the rows.")
    )
    done_rows = models.PositiveIntegerField(_("rows done"), default=0)
    granted_rows = models.PositiveIntegerField(_("rows granted"), default=0)
    skipped_rows = models.PositiveIntegerField(_("rows skipped"), default=0)
    granted_points = models.BigIntegerField(_("points granted"), default=0)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    report = models.JSONField(
        _("report"), default=dict, blank=True, help_text=_("Skipped rows by reason.")
    )

    class Meta:
        ordering = ["-id"]
        verbose_name = _("bulk grant")
        verbose_name_plural = _("bulk grants")
        permissions = [("approve_bulkgrant", _("Can approve or reject bulk grants"))]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(decided_by__isnull=True)
                | ~models.Q(decided_by=models.F("uploaded_by")),
                name="bulkgrant_decided_by_another_operator",
            ),
            models.CheckConstraint(
                condition=models.Q(done_rows=models.F("granted_rows") + models.F("skipped_rows"))
                & models.Q(done_rows__lte=models.F("total_rows")),
                name="bulkgrant_counters_add_up",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.file_name}"


class BulkGrantRow(models.Model):
    """One line of a bulk grant file. Granted in its own transaction together with its entry."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        GRANTED = "granted", _("granted")
        SKIPPED = "skipped", _("skipped")

    class SkipReason(models.TextChoices):
        MEMBER_NOT_FOUND = "member_not_found", _("member not found")
        MEMBER_FROZEN = "member_frozen", _("member frozen")
        MEMBER_CLOSED = "member_closed", _("member closed")
        INSUFFICIENT_POINTS = "insufficient_points", _("not enough points to take")
        REFUSED = "refused", _("refused by the ledger")

    grant = models.ForeignKey(
        BulkGrant,
        on_delete=models.CASCADE,
        related_name="rows",
        verbose_name=_("bulk grant"),
        db_index=False,  # covered by bulkgrantrow_grant_row_uniq
    )
    row_number = models.PositiveIntegerField(_("row"))
    member_external_id = models.CharField(_("member"), max_length=128)
    points = models.BigIntegerField(_("points"))
    reason = models.CharField(_("reason"), max_length=1000)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    skip_reason = models.CharField(
        _("skip reason"), max_length=32, choices=SkipReason.choices, blank=True, default=""
    )
    skip_detail = models.CharField(_("details"), max_length=255, blank=True, default="")
    entry = models.OneToOneField(
        Entry,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("ledger entry"),
    )
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        ordering = ["grant", "row_number"]
        verbose_name = _("bulk grant row")
        verbose_name_plural = _("bulk grant rows")
        constraints = [
            models.UniqueConstraint(
                fields=["grant", "row_number"], name="bulkgrantrow_grant_row_uniq"
            ),
            models.CheckConstraint(
                condition=~models.Q(points=0), name="bulkgrantrow_points_not_zero"
            ),
            models.CheckConstraint(
                condition=models.Q(status="pending", entry__isnull=True, skip_reason="")
                | models.Q(status="granted", entry__isnull=False, skip_reason="")
                | (models.Q(status="skipped", entry__isnull=True) & ~models.Q(skip_reason="")),
                name="bulkgrantrow_status_consistent",
            ),
        ]
        indexes = [
            models.Index(
                fields=["grant", "row_number"],
                condition=models.Q(status="pending"),
                name="bulkgrantrow_pending_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.grant_id}:{self.row_number} {self.member_external_id} {self.points:+d}"


# --- Finance reports and coalition settlement (docs/adr/0015) ---------------------------------
class SettlementStatement(models.Model):
    """One closed month of coalition settlement: what merchants owe each other for points issued
    at one and spent or redeemed at another, valued at the point value of the day it closed.

    Written once by `points.settlement.close_settlement_month` and never changed: the database
    refuses UPDATE and DELETE on it, its lines and its settled entries. Entries that arrive
    after the close (a transaction that began in the month and committed later) are settled by
    the next statement (SettledEntry: every entry is settled by exactly one statement).
    """

    month = models.DateField(_("month"), unique=True, help_text=_("First day of the month."))
    period_start = models.DateTimeField(_("period start"))
    period_end = models.DateTimeField(_("period end"))
    point_value = models.DecimalField(_("value of one point"), max_digits=12, decimal_places=6)
    currency = models.CharField(_("currency"), max_length=3)
    entries = models.PositiveIntegerField(_("entries settled"))
    late_entries = models.PositiveIntegerField(
        _("late entries"),
        help_text=_("Entries of earlier months that arrived after those months were closed."),
    )
    points_used_elsewhere = models.BigIntegerField(
        _("points used at another merchant"),
        help_text=_("Points issued by one party and spent or redeemed at another (gross)."),
    )
    amount_settled = models.DecimalField(
        _("amount settled"), max_digits=16, decimal_places=2, help_text=_("Sum of net amounts.")
    )
    closed_at = models.DateTimeField(_("closed at"))
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("closed by"),
        db_index=False,
    )

    class Meta:
        ordering = ["-month"]
        verbose_name = _("settlement statement")
        verbose_name_plural = _("settlement statements")
        triggers = [
            pgtrigger.Protect(
                name="settlement_statement_closed",
                operation=pgtrigger.Update | pgtrigger.Delete,
            ),
        ]

    def __str__(self) -> str:
        return self.month.strftime("%Y-%m")


class SettlementLine(models.Model):
    """The netted position between two parties in a statement: `payer` pays `payee` `amount`.

    A party is a merchant (Partner) or, when empty, the programme itself (points it issued by
    adjustment or bonus; rewards redeemed in the mall pages without a merchant).
    """

    statement = models.ForeignKey(
        SettlementStatement,
        on_delete=models.PROTECT,
        related_name="lines",
        verbose_name=_("statement"),
    )
    payer = models.ForeignKey(
        Partner,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("payer"),
    )
    payee = models.ForeignKey(
        Partner,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("payee"),
    )
    payer_points_used_at_payee = models.BigIntegerField(
        _("payer's points used at payee"),
        help_text=_("Points the payer issued that members spent or redeemed at the payee."),
    )
    payee_points_used_at_payer = models.BigIntegerField(
        _("payee's points used at payer"),
        help_text=_("Points the payee issued that members spent or redeemed at the payer."),
    )
    net_points = models.BigIntegerField(_("net points"))
    amount = models.DecimalField(_("amount"), max_digits=16, decimal_places=2)

    class Meta:
        ordering = ["statement", "id"]
        verbose_name = _("settlement line")
        verbose_name_plural = _("settlement lines")
        constraints = [
            models.UniqueConstraint(
                fields=["statement", "payer", "payee"],
                nulls_distinct=False,
                name="settlement_line_pair_uniq",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    net_points=models.F("payer_points_used_at_payee")
                    - models.F("payee_points_used_at_payer"),
                    net_points__gte=0,
                ),
                name="settlement_line_netted",
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="settlement_line_closed",
                operation=pgtrigger.Update | pgtrigger.Delete,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.statement}: {self.payer_id} -> {self.payee_id} {self.amount}"


class SettledEntry(models.Model):
    """Which statement settled a spending, redeeming or give-back entry (at most one)."""

    entry = models.OneToOneField(
        Entry,
        on_delete=models.PROTECT,
        primary_key=True,
        related_name="+",
        verbose_name=_("entry"),
    )
    statement = models.ForeignKey(
        SettlementStatement,
        on_delete=models.PROTECT,
        related_name="settled_entries",
        verbose_name=_("statement"),
    )

    class Meta:
        verbose_name = _("settled entry")
        verbose_name_plural = _("settled entries")
        triggers = [
            pgtrigger.Protect(
                name="settled_entry_closed",
                operation=pgtrigger.Update | pgtrigger.Delete,
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.entry_id} in {self.statement_id}"


class ReportExport(models.Model):
    """A report written to a file by a Celery task, with its progress, for a staff download."""

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "XLSX"

    class State(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    report = models.CharField(_("report"), max_length=64)
    filters = models.JSONField(_("filters"), default=dict)
    format = models.CharField(_("format"), max_length=8, choices=Format.choices)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.QUEUED)
    progress_done = models.PositiveIntegerField(_("parts done"), default=0)
    progress_total = models.PositiveIntegerField(_("parts"), default=0)
    rows = models.PositiveIntegerField(_("rows"), default=0)
    file = models.FileField(_("file"), upload_to="report-exports/", blank=True)
    error = models.TextField(_("error"), blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("report")
        verbose_name_plural = _("reports")
        permissions = [
            ("view_finance_reports", _("Can see finance reports and download their exports")),
        ]

    def __str__(self) -> str:
        return f"{self.report} #{self.pk}"

    @property
    def percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        return int(100 * self.progress_done / self.progress_total) if self.progress_total else 0


# --- Issuance freeze (docs/adr/0018) -------------------------------------------------------------
class IssuanceFreeze(models.Model):
    """One programme-wide stop of points issuance, kept for the record (never deleted).

    A freeze is in force from `started_at` until it is lifted or `ends_at` passes, whichever
    comes first; the earn statement's guard reads this table (points.services._credit_sql), so
    a freeze applies to every process at once.
    """

    reason = models.TextField(_("reason"))
    started_at = models.DateTimeField(_("frozen at"), db_default=Now())
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("frozen by"),
    )
    ends_at = models.DateTimeField(
        _("ends automatically at"),
        null=True,
        blank=True,
        help_text=_("Optional: issuance resumes by itself at this moment."),
    )
    lifted_at = models.DateTimeField(_("lifted at"), null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("lifted by"),
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("issuance freeze")
        verbose_name_plural = _("issuance freezes")
        indexes = [
            # The earn guard looks only at freezes not lifted yet: a handful of rows at most.
            models.Index(
                fields=["ends_at"],
                condition=models.Q(lifted_at__isnull=True),
                name="issuancefreeze_open_idx",
            ),
        ]

    def __str__(self) -> str:
        return str(_("Issuance freeze of %(moment)s") % {"moment": self.started_at})

    def in_force(self, now) -> bool:
        return (
            self.lifted_at is None
            and self.started_at <= now
            and (self.ends_at is None or self.ends_at > now)
        )
