"""The rewards mall (积分商城): catalogue, stock, coupon-code pools, redemptions, mall logins.

Stock is a column of the Reward row that a CHECK keeps at or above zero; every redemption locks
that row first (docs/adr/0001-lock-order.md), so stock can never be oversold. A coupon reward's
stock is the number of its unused codes.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import FileExtensionValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Now
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from loyalty_site.audit import audited
from members.models import Member, Tier
from points.models import Entry, Partner

IMAGE_EXTENSIONS = ["jpg", "jpeg", "png", "webp", "gif", "svg"]


def _in_language(chinese: str, english: str) -> str:
    """The text in the active language, falling back to the other one when it is blank."""
    language = (get_language() or "zh-hans").lower()
    first, second = (english, chinese) if language.startswith("en") else (chinese, english)
    return first or second


@audited()
class Category(models.Model):
    code = models.SlugField(_("code"), max_length=64, unique=True)
    name_zh = models.CharField(_("name (Chinese)"), max_length=128)
    name_en = models.CharField(_("name (English)"), max_length=128, blank=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["position", "code"]
        verbose_name = _("reward category")
        verbose_name_plural = _("reward categories")

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return _in_language(self.name_zh, self.name_en)


# Redemptions and cancellations move stock all day; each is its own record (Redemption).
@audited(quiet=["stock"])
class Reward(models.Model):
    """Something members redeem points for: goods, a coupon code, or a service."""

    class Kind(models.TextChoices):
        PHYSICAL = "physical", _("physical goods")
        COUPON = "coupon", _("coupon code")
        SERVICE = "service", _("service or experience")

    code = models.SlugField(_("code"), max_length=64, unique=True)
    category = models.ForeignKey(
        Category,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="rewards",
        verbose_name=_("category"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.PHYSICAL)
    name_zh = models.CharField(_("name (Chinese)"), max_length=200)
    name_en = models.CharField(_("name (English)"), max_length=200, blank=True)
    description_zh = models.TextField(_("description (Chinese)"), blank=True)
    description_en = models.TextField(_("description (English)"), blank=True)
    image = models.FileField(
        _("image"),
        upload_to="rewards/",
        blank=True,
        validators=[FileExtensionValidator(IMAGE_EXTENSIONS)],
    )
    points_price = models.PositiveIntegerField(_("points price"))
    cash_price = models.DecimalField(
        _("cash price"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Optional: paid in money on top of the points (points + cash)."),
    )
    stock = models.IntegerField(
        _("stock"),
        default=0,
        validators=[MinValueValidator(0)],
        help_text=_("Units still available. For a coupon reward: its unused codes."),
    )
    per_member_limit = models.PositiveIntegerField(
        _("limit per member"),
        null=True,
        blank=True,
        help_text=_("Units one member may redeem in all (cancelled ones excepted); empty = none."),
    )
    available_from = models.DateTimeField(_("available from"), null=True, blank=True)
    available_until = models.DateTimeField(_("available until"), null=True, blank=True)
    tiers = models.ManyToManyField(
        Tier,
        blank=True,
        related_name="+",
        verbose_name=_("tiers allowed"),
        help_text=_("Only members of these tiers may redeem it; none selected = every tier."),
    )
    is_featured = models.BooleanField(
        _("featured"), default=False, help_text=_("Shown first as a limited-time hot item.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    partner = models.ForeignKey(
        Partner,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("merchant"),
        help_text=_("The merchant whose catalogue it comes from, if any."),
    )
    position = models.PositiveIntegerField(_("position"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-is_featured", "position", "id"]
        verbose_name = _("reward")
        verbose_name_plural = _("rewards")
        constraints = [
            # The database, not only Python, refuses to sell stock it does not have.
            models.CheckConstraint(
                condition=models.Q(stock__gte=0), name="reward_stock_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(available_from__isnull=True)
                | models.Q(available_until__isnull=True)
                | models.Q(available_from__lt=models.F("available_until")),
                name="reward_window_in_order",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def name(self) -> str:
        return _in_language(self.name_zh, self.name_en)

    @property
    def description(self) -> str:
        return _in_language(self.description_zh, self.description_en)

    @property
    def needs_address(self) -> bool:
        return self.kind == self.Kind.PHYSICAL


@audited()
class TierPrice(models.Model):
    """An explicit price of a reward for the members of one tier (overrides the list price)."""

    reward = models.ForeignKey(
        Reward, on_delete=models.CASCADE, related_name="tier_prices", verbose_name=_("reward")
    )
    tier = models.ForeignKey(
        Tier, on_delete=models.CASCADE, related_name="+", verbose_name=_("tier")
    )
    points_price = models.PositiveIntegerField(_("points price"))
    cash_price = models.DecimalField(
        _("cash price"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
    )

    class Meta:
        verbose_name = _("tier price")
        verbose_name_plural = _("tier prices")
        constraints = [
            models.UniqueConstraint(fields=["reward", "tier"], name="tierprice_reward_tier_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.reward_id} @ {self.tier_id}: {self.points_price}"


class Redemption(models.Model):
    """A member's redemption order. Its status changes only through rewards_mall.services,
    along PIPELINE below (django-oscar's pipeline: the allowed transitions written as data)."""

    class Status(models.TextChoices):
        PLACED = "placed", _("placed")
        FULFILLED = "fulfilled", _("fulfilled")
        SHIPPED = "shipped", _("shipped")
        DELIVERED = "delivered", _("delivered")
        CANCELLED = "cancelled", _("cancelled")

    class Channel(models.TextChoices):
        API = "api", _("partner API")
        MALL = "mall", _("mall pages")

    # From each status, the statuses it may go to; anything else is refused.
    PIPELINE: dict[str, tuple[str, ...]] = {
        Status.PLACED: (Status.FULFILLED, Status.SHIPPED, Status.CANCELLED),
        Status.SHIPPED: (Status.DELIVERED,),
        Status.FULFILLED: (),
        Status.DELIVERED: (),
        Status.CANCELLED: (),
    }

    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="redemptions", verbose_name=_("member")
    )
    reward = models.ForeignKey(
        Reward, on_delete=models.PROTECT, related_name="redemptions", verbose_name=_("reward")
    )
    partner = models.ForeignKey(
        Partner,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("placed by partner"),
    )
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    request_token = models.CharField(
        _("request token"),
        max_length=64,
        null=True,
        blank=True,
        help_text=_("The confirmation form's one-time token: a double submit places one order."),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PLACED
    )
    quantity = models.PositiveIntegerField(_("quantity"), default=1)
    points_spent = models.PositiveIntegerField(_("points spent"))
    cash_due = models.DecimalField(
        _("cash due"), max_digits=12, decimal_places=2, default=Decimal("0")
    )
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    shipping_address = models.JSONField(_("shipping address"), default=dict, blank=True)
    tracking_number = models.CharField(_("tracking number"), max_length=64, blank=True)
    carrier = models.CharField(_("carrier"), max_length=64, blank=True)
    redeem_entry = models.OneToOneField(
        Entry,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("ledger entry"),
    )
    return_entry = models.OneToOneField(
        Entry,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("give-back entry"),
    )
    cancel_reason = models.CharField(_("cancellation reason"), max_length=255, blank=True)
    placed_at = models.DateTimeField(_("placed at"), db_default=Now())
    fulfilled_at = models.DateTimeField(_("fulfilled at"), null=True, blank=True)
    shipped_at = models.DateTimeField(_("shipped at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("redemption")
        verbose_name_plural = _("redemptions")
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gte=1), name="redemption_quantity"),
            models.UniqueConstraint(
                fields=["member", "request_token"],
                condition=models.Q(request_token__isnull=False),
                name="redemption_member_request_token_uniq",
            ),
        ]
        indexes = [
            models.Index(fields=["member", "-id"], name="redemption_member_newest_idx"),
            # The per-member limit counts under the reward lock: (reward, member) lookups.
            models.Index(fields=["reward", "member"], name="redemption_reward_member_idx"),
            models.Index(fields=["status", "-id"], name="redemption_status_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.status}"

    def can_become(self, status: str) -> bool:
        return status in self.PIPELINE.get(self.status, ())

    @property
    def is_cancellable(self) -> bool:
        return self.can_become(self.Status.CANCELLED)


class CouponCode(models.Model):
    """One code of a coupon reward's pool; handed out with FOR UPDATE SKIP LOCKED."""

    reward = models.ForeignKey(
        Reward, on_delete=models.PROTECT, related_name="coupon_codes", verbose_name=_("reward")
    )
    code = models.CharField(_("code"), max_length=128)
    redemption = models.ForeignKey(
        Redemption,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="coupon_codes",
        verbose_name=_("redemption"),
    )
    imported_at = models.DateTimeField(_("imported at"), db_default=Now())
    issued_at = models.DateTimeField(_("issued at"), null=True, blank=True)

    class Meta:
        verbose_name = _("coupon code")
        verbose_name_plural = _("coupon codes")
        constraints = [
            models.UniqueConstraint(fields=["reward", "code"], name="couponcode_reward_code_uniq"),
        ]
        indexes = [
            models.Index(
                fields=["reward", "id"],
                condition=models.Q(redemption__isnull=True),
                name="couponcode_unused_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class MallCredential(models.Model):
    """A member's mall password (demo members and members who set one); stored hashed."""

    member = models.OneToOneField(
        Member, on_delete=models.CASCADE, related_name="mall_credential", verbose_name=_("member")
    )
    password = models.CharField(_("password"), max_length=128)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("mall password")
        verbose_name_plural = _("mall passwords")

    def __str__(self) -> str:
        return str(self.member_id)


class MallLoginLink(models.Model):
    """A signed single-use link into the mall pages. Only a hash of its nonce is stored;
    `used_at` is set by the one request that consumes it."""

    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="+", verbose_name=_("member")
    )
    nonce_hash = models.CharField(_("nonce hash"), max_length=64, unique=True)
    partner = models.ForeignKey(
        Partner,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    created_at = models.DateTimeField(_("created at"), db_default=Now())
    expires_at = models.DateTimeField(_("expires at"))
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("mall login link")
        verbose_name_plural = _("mall login links")
        indexes = [models.Index(fields=["expires_at"], name="malllink_expires_idx")]

    def __str__(self) -> str:
        return f"{self.member_id} until {self.expires_at:%Y-%m-%d %H:%M}"
