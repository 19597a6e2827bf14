"""Writes of the rewards mall. Every function is keyword-only and runs in one transaction.

Rules every service keeps:
- Lock order: the reward's stock row first (`lock_reward`), then the redemption row, then the
  member's points account (taken by points.services). Nothing here locks in another order, so
  redemptions, cancellations and the ledger's own writers never deadlock.
- Stock never goes below zero: it is checked and decremented under the reward row lock, and a
  CHECK constraint (reward_stock_not_negative) backs it. The per-member limit is counted under
  the same lock, so a member's double click is serialised and the second click sees the first.
- A coupon reward's stock is its number of unused codes; codes are handed out with
  FOR UPDATE SKIP LOCKED.
- A redemption's status changes only here, along Redemption.PIPELINE.
- A failed redemption takes nothing: points, stock and codes move in one transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.hashers import check_password, make_password
from django.core import signing
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext as _

from members.models import Member, Tier
from points.models import OutboxEvent, Partner, ProgrammeSettings
from points.services import give_back_redemption, take_for_redemption
from rewards_mall.exceptions import (
    InvalidMallLink,
    InvalidRedemption,
    InvalidRewardChange,
    InvalidStatusTransition,
    LimitExceeded,
    OutOfStock,
    RedemptionNotFound,
    RewardUnavailable,
    TooManyLoginAttempts,
)
from rewards_mall.lock_objects import lock_redemption, lock_reward, take_unused_coupon_codes
from rewards_mall.models import (
    Category,
    CouponCode,
    MallCredential,
    MallLoginLink,
    Redemption,
    Reward,
)
from rewards_mall.selectors import member_price, unavailable_reason, units_redeemed

Status = Redemption.Status
MALL_LINK_LIFETIME = timedelta(minutes=5)
MALL_LINK_SALT = "rewards_mall.login_link"
MAX_QUANTITY = 99
MALL_LOGIN_ATTEMPTS = 10
MALL_LOGIN_LOCKOUT = timedelta(minutes=15)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


# "Not given" for reward_upsert, as opposed to None, which clears a nullable field.
UNSET: Any = _Unset()


# --- Redeeming ---------------------------------------------------------------------------------
def _record_redemption_event(redemption: Redemption, **extra) -> None:
    # Written in the same transaction as the change: the webhook publisher sends it later.
    OutboxEvent.objects.create(
        type="redemption.updated",
        member_external_id=redemption.member.external_id,
        payload={
            "redemption_id": redemption.pk,
            "member": redemption.member.external_id,
            "reward": redemption.reward.code,
            "status": redemption.status,
            "quantity": redemption.quantity,
            "points_spent": redemption.points_spent,
            "tracking_number": redemption.tracking_number,
            **extra,
        },
    )


def _clean_address(address: dict | None) -> dict:
    if not address:
        return {}
    if not isinstance(address, dict):
        raise InvalidRedemption(_("The shipping address must be an object of fields."))
    return {str(key): str(value).strip() for key, value in address.items() if value is not None}


def redeem(
    *,
    member: Member,
    reward_code: str,
    quantity: int = 1,
    shipping_address: dict | None = None,
    partner: Partner | None = None,
    channel: str = Redemption.Channel.API,
    request_token: str | None = None,
) -> Redemption:
    """Place a redemption: check, take the member's points (FIFO lots), decrement stock, hand
    out coupon codes, all in one transaction; on any refusal nothing is taken.

    Refusals: RewardUnavailable (unknown, inactive, outside its window, not for the member's
    tier), OutOfStock, LimitExceeded (per-member limit, counted under the reward lock),
    InsufficientPoints / MemberFrozen (from the ledger), InvalidRedemption (no address for
    goods, bad quantity). With `request_token` (the mall's confirmation form) a second submit
    of the same form returns the first redemption instead of placing another.
    """
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not quantity >= 1:
        raise InvalidRedemption(_("The quantity must be a whole number of at least 1."))
    if quantity > MAX_QUANTITY:
        raise InvalidRedemption(_("At most %(max)d units at once.") % {"max": MAX_QUANTITY})
    snapshot = Reward.objects.filter(code=reward_code).values("id", "stock").first()
    if snapshot is None:
        raise RewardUnavailable(_("No reward with this code."), reward=reward_code)
    # Refuse a sold-out reward without queueing on its lock: a flash sale's late comers are
    # most of the traffic. (A form re-submit goes on: it may find the order it placed.)
    if snapshot["stock"] < quantity and request_token is None:
        raise OutOfStock(reward=reward_code, stock_left=max(snapshot["stock"], 0))

    with transaction.atomic():
        reward = lock_reward(reward_id=snapshot["id"])
        if request_token:
            earlier = Redemption.objects.filter(member_id=member.pk, request_token=request_token)
            earlier = earlier.select_related("reward", "member").first()
            if earlier is not None:
                return earlier
        reason = unavailable_reason(reward=reward, member=member)
        if reason is not None:
            raise RewardUnavailable(reward=reward_code, reason=reason)
        if reward.stock < quantity:
            raise OutOfStock(reward=reward_code, stock_left=reward.stock)
        if reward.per_member_limit is not None:
            held = units_redeemed(reward_id=reward.pk, member_id=member.pk)
            if held + quantity > reward.per_member_limit:
                raise LimitExceeded(
                    reward=reward_code, limit=reward.per_member_limit, already_redeemed=held
                )
        address = _clean_address(shipping_address)
        if reward.needs_address and not any(address.values()):
            raise InvalidRedemption(_("Goods need a shipping address."), field="shipping_address")

        price = member_price(reward=reward, member=member).times(quantity)
        redemption = Redemption.objects.create(
            member=member,
            reward=reward,
            partner=partner,
            channel=channel,
            request_token=request_token or None,
            quantity=quantity,
            points_spent=price.points,
            cash_due=price.cash or Decimal("0"),
            currency=ProgrammeSettings.get().currency,
            shipping_address=address if reward.needs_address else {},
        )
        if price.points > 0:
            redemption.redeem_entry = take_for_redemption(
                member=member, points=price.points, redemption_id=redemption.pk, partner=partner
            )
            redemption.save(update_fields=["redeem_entry"])
        Reward.objects.filter(pk=reward.pk).update(stock=F("stock") - quantity)
        reward.stock -= quantity
        if reward.kind == Reward.Kind.COUPON:
            codes = take_unused_coupon_codes(reward_id=reward.pk, count=quantity)
            if len(codes) < quantity:
                raise OutOfStock(reward=reward_code, stock_left=len(codes))
            CouponCode.objects.filter(pk__in=[code.pk for code in codes]).update(
                redemption=redemption, issued_at=Now()
            )
        _record_redemption_event(redemption)
        return redemption


def redemption_coupon_codes(redemption: Redemption) -> list[str]:
    return [code.code for code in redemption.coupon_codes.order_by("id")]


# --- Status changes --------------------------------------------------------------------------
def _check_transition(redemption: Redemption, to: str) -> None:
    if not redemption.can_become(to):
        raise InvalidStatusTransition(
            _("A %(current)s redemption cannot become %(new)s.")
            % {"current": Status(redemption.status).label, "new": Status(to).label},
            current=redemption.status,
            requested=to,
        )


@transaction.atomic
def cancel_redemption(*, redemption: Redemption, reason: str = "") -> Redemption:
    """Cancel a placed redemption: its points go back to exactly the lots they came from, its
    stock is restored and its coupon codes return to the pool. Anything past `placed`
    (shipped, fulfilled, delivered) is InvalidStatusTransition (422 validation_error).

    Callers pass a redemption they found through a scoped selector (the member's own, the
    partner's own); the row is locked and re-read here, after its reward's row.
    """
    lock_reward(reward_id=redemption.reward_id)
    locked = lock_redemption(redemption_id=redemption.pk)
    _check_transition(locked, Status.CANCELLED)
    if locked.redeem_entry_id is not None:
        locked.return_entry = give_back_redemption(entry=locked.redeem_entry)
    Reward.objects.filter(pk=locked.reward_id).update(stock=F("stock") + locked.quantity)
    CouponCode.objects.filter(redemption=locked).update(redemption=None, issued_at=None)
    locked.status = Status.CANCELLED
    locked.cancelled_at = timezone.now()
    locked.cancel_reason = reason[:255]
    locked.save(
        update_fields=["status", "cancelled_at", "cancel_reason", "return_entry", "updated_at"]
    )
    _record_redemption_event(locked)
    return locked


def _move(redemption_id: int, to: str, **fields) -> Redemption:
    locked = lock_redemption(redemption_id=redemption_id)
    _check_transition(locked, to)
    locked.status = to
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.save(update_fields=["status", *fields, "updated_at"])
    _record_redemption_event(locked)
    return locked


@transaction.atomic
def mark_shipped(*, redemption: Redemption, tracking_number: str, carrier: str = "") -> Redemption:
    """placed -> shipped, with the parcel's tracking number (goods only)."""
    tracking_number = (tracking_number or "").strip()
    if not tracking_number:
        raise InvalidStatusTransition(_("A shipment needs its tracking number."))
    if redemption.reward.kind != Reward.Kind.PHYSICAL:
        raise InvalidStatusTransition(_("Only goods are shipped; mark the others fulfilled."))
    return _move(
        redemption.pk,
        Status.SHIPPED,
        tracking_number=tracking_number[:64],
        carrier=(carrier or "").strip()[:64],
        shipped_at=timezone.now(),
    )


@transaction.atomic
def mark_fulfilled(*, redemption: Redemption) -> Redemption:
    """placed -> fulfilled: the coupon was delivered, the service given, the goods handed over."""
    return _move(redemption.pk, Status.FULFILLED, fulfilled_at=timezone.now())


@transaction.atomic
def mark_delivered(*, redemption: Redemption) -> Redemption:
    """shipped -> delivered."""
    return _move(redemption.pk, Status.DELIVERED, delivered_at=timezone.now())


@dataclass
class ShipmentImport:
    shipped: list[int] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, message)


def bulk_mark_shipped(*, rows: Iterable[tuple[Any, Any, Any]]) -> ShipmentImport:
    """Mark many redemptions shipped from (redemption id, tracking number, carrier) rows, e.g.
    a warehouse's file. Each row commits on its own; the rows that fail are reported by line
    (line 2 is the first row after the header)."""
    result = ShipmentImport()
    for line, (redemption_id, tracking_number, carrier) in enumerate(rows, start=2):
        try:
            number = int(str(redemption_id).strip().lstrip("#"))
        except (TypeError, ValueError):
            result.errors.append(
                (line, _("%(value)s is not a redemption id.") % {"value": redemption_id})
            )
            continue
        redemption = Redemption.objects.select_related("reward").filter(pk=number).first()
        if redemption is None:
            result.errors.append((line, str(RedemptionNotFound.default_message)))
            continue
        try:
            mark_shipped(
                redemption=redemption,
                tracking_number=str(tracking_number or ""),
                carrier=str(carrier or ""),
            )
        except InvalidStatusTransition as error:
            result.errors.append((line, error.message))
        else:
            result.shipped.append(number)
    return result


# --- Catalogue -----------------------------------------------------------------------------
@transaction.atomic
def reward_save(*, reward: Reward) -> Reward:
    """Save a reward edited in the admin, under its row lock (a coupon reward keeps the stock
    its unused codes give)."""
    if reward.pk is not None:
        lock_reward(reward_id=reward.pk)
        if reward.kind == Reward.Kind.COUPON:
            reward.stock = _unused_codes(reward.pk)
    elif reward.kind == Reward.Kind.COUPON:
        reward.stock = 0
    reward.full_clean(exclude=["tiers"])
    reward.save()
    return reward


def _unused_codes(reward_id: int) -> int:
    return CouponCode.objects.filter(reward_id=reward_id, redemption__isnull=True).count()


@transaction.atomic
def reward_upsert(
    *,
    code: str,
    partner: Partner | None,
    name: str = UNSET,
    name_en: str = UNSET,
    description: str = UNSET,
    category: str | None = UNSET,
    kind: str = UNSET,
    points_price: int = UNSET,
    cash_price: Decimal | None = UNSET,
    stock: int = UNSET,
    per_member_limit: int | None = UNSET,
    available_from: datetime | None = UNSET,
    available_until: datetime | None = UNSET,
    tiers: Iterable[Tier] = UNSET,
    active: bool = UNSET,
) -> tuple[Reward, bool]:
    """Create or update a reward from a merchant's catalogue (PUT /rewards/{code}).

    Fields left UNSET keep their value. `stock` is the number of units available from now on
    and is set under the reward's row lock; a coupon reward's stock is its unused codes and
    cannot be set (InvalidRewardChange). A new reward needs `name` and `points_price`.
    Returns (reward, created).
    """
    given = {
        key: value
        for key, value in {
            "name": name,
            "name_en": name_en,
            "description": description,
            "category": category,
            "kind": kind,
            "points_price": points_price,
            "cash_price": cash_price,
            "stock": stock,
            "per_member_limit": per_member_limit,
            "available_from": available_from,
            "available_until": available_until,
            "tiers": tiers,
            "active": active,
        }.items()
        if value is not UNSET
    }
    reward = Reward.objects.filter(code=code).values_list("pk", flat=True).first()
    created = reward is None
    if created:
        if name is UNSET or points_price is UNSET:
            raise InvalidRewardChange(_("A new reward needs its name and points price."))
        reward = Reward(code=code, name_zh=name, points_price=points_price, partner=partner)
    else:
        reward = lock_reward(reward_id=reward)
    new_kind = reward.kind if kind is UNSET else kind
    coupon_stock = None if new_kind != Reward.Kind.COUPON or created else _unused_codes(reward.pk)
    if new_kind == Reward.Kind.COUPON and stock is not UNSET and stock != (coupon_stock or 0):
        raise InvalidRewardChange(
            _("A coupon reward's stock is its unused codes: import codes to add stock."),
            field="stock",
        )
    kind_changes = not created and kind is not UNSET and kind != reward.kind
    if kind_changes and CouponCode.objects.filter(reward_id=reward.pk).exists():
        raise InvalidRewardChange(_("A reward with coupon codes cannot change its kind."))
    simple = {
        "name_zh": name,
        "name_en": name_en,
        "description_zh": description,
        "kind": kind,
        "points_price": points_price,
        "cash_price": cash_price,
        "per_member_limit": per_member_limit,
        "available_from": available_from,
        "available_until": available_until,
        "is_active": active,
    }
    for attribute, value in simple.items():
        if value is not UNSET:
            setattr(reward, attribute, value)
    if stock is not UNSET and new_kind != Reward.Kind.COUPON:
        reward.stock = stock
    if category is not UNSET:
        reward.category = (
            Category.objects.get_or_create(code=category, defaults={"name_zh": category})[0]
            if category
            else None
        )
    if (
        reward.available_from is not None
        and reward.available_until is not None
        and reward.available_from >= reward.available_until
    ):
        raise InvalidRewardChange(
            _("available_until must be after available_from."), field="available_until"
        )
    if created:
        try:
            with transaction.atomic():
                reward.save(force_insert=True)
        except IntegrityError:
            # A concurrent PUT created it first: this one is an update of that reward.
            return reward_upsert(code=code, partner=partner, **given)
    else:
        reward.save()
    if tiers is not UNSET:
        reward.tiers.set(list(tiers))
    return reward, created


@transaction.atomic
def import_coupon_codes(*, reward: Reward, codes: Iterable[str]) -> int:
    """Add codes to a coupon reward's pool (duplicates are ignored); returns how many were new.
    The reward's stock becomes its number of unused codes."""
    locked = lock_reward(reward_id=reward.pk)
    if locked.kind != Reward.Kind.COUPON:
        raise InvalidRewardChange(_("Only coupon rewards have code pools."))
    cleaned = {str(code).strip() for code in codes if str(code or "").strip()}
    before = CouponCode.objects.filter(reward_id=locked.pk).count()
    CouponCode.objects.bulk_create(
        [CouponCode(reward_id=locked.pk, code=code) for code in sorted(cleaned)],
        ignore_conflicts=True,
    )
    added = CouponCode.objects.filter(reward_id=locked.pk).count() - before
    sync_coupon_stock(reward_ids=[locked.pk])
    reward.stock = Reward.objects.values_list("stock", flat=True).get(pk=locked.pk)
    return added


@transaction.atomic
def sync_coupon_stock(*, reward_ids: Iterable[int]) -> None:
    """Set each coupon reward's stock to its number of unused codes, under its row lock."""
    for reward_id in sorted(set(reward_ids)):
        reward = lock_reward(reward_id=reward_id)
        if reward.kind == Reward.Kind.COUPON:
            Reward.objects.filter(pk=reward_id).update(stock=_unused_codes(reward_id))


# --- Entering the mall ---------------------------------------------------------------------
@dataclass(frozen=True)
class MallLink:
    token: str
    expires_at: datetime


def _nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


@transaction.atomic
def create_mall_link(*, member: Member, partner: Partner | None = None) -> MallLink:
    """A signed, single-use token that logs `member` into the mall pages, valid 5 minutes.
    Only a hash of its random nonce is stored; the token itself is shown once."""
    if member.status == Member.Status.CLOSED:
        raise InvalidMallLink(_("A closed member cannot enter the mall."))
    nonce = secrets.token_urlsafe(24)
    expires_at = timezone.now() + MALL_LINK_LIFETIME
    MallLoginLink.objects.create(
        member=member, nonce_hash=_nonce_hash(nonce), partner=partner, expires_at=expires_at
    )
    token = signing.TimestampSigner(salt=MALL_LINK_SALT).sign(nonce)
    return MallLink(token=token, expires_at=expires_at)


@transaction.atomic
def consume_mall_link(*, token: str) -> Member:
    """The member a mall link is for; the link can never be used again. A forged, expired or
    already used link is InvalidMallLink. One UPDATE ... WHERE used_at IS NULL marks it used,
    so two requests racing with the same link let exactly one in."""
    try:
        nonce = signing.TimestampSigner(salt=MALL_LINK_SALT).unsign(
            token, max_age=MALL_LINK_LIFETIME
        )
    except signing.BadSignature as error:  # SignatureExpired is a BadSignature too
        raise InvalidMallLink() from error
    used = (
        MallLoginLink.objects.filter(
            nonce_hash=_nonce_hash(nonce), used_at__isnull=True, expires_at__gt=Now()
        )
        .select_for_update()
        .first()
    )
    if used is None:
        raise InvalidMallLink()
    MallLoginLink.objects.filter(pk=used.pk).update(used_at=Now())
    member = Member.objects.select_related("tier").get(pk=used.member_id)
    if member.status == Member.Status.CLOSED:
        raise InvalidMallLink(_("A closed member cannot enter the mall."))
    return member


@transaction.atomic
def set_mall_password(*, member: Member, raw: str | None) -> None:
    """Set (or with None, remove) the member's mall password; only its hash is stored."""
    if raw is None:
        MallCredential.objects.filter(member=member).delete()
        return
    MallCredential.objects.update_or_create(
        member=member, defaults={"password": make_password(raw)}
    )


def _failed_logins_key(login: str) -> str:
    return "mall-login-failures:" + hashlib.sha256(login.lower().encode()).hexdigest()


def authenticate_mall_member(*, login: str, password: str) -> Member | None:
    """The member whose external id or phone is `login` and whose mall password matches.

    After MALL_LOGIN_ATTEMPTS failures for one login within MALL_LOGIN_LOCKOUT, that login is
    refused (TooManyLoginAttempts) until the window has passed, right password or not.
    """
    login = (login or "").strip()
    key = _failed_logins_key(login)
    if (cache.get(key) or 0) >= MALL_LOGIN_ATTEMPTS:
        raise TooManyLoginAttempts()
    member = _check_mall_password(login, password)
    if member is None:
        cache.add(key, 0, timeout=int(MALL_LOGIN_LOCKOUT.total_seconds()))
        cache.incr(key)
    else:
        cache.delete(key)
    return member


def _check_mall_password(login: str, password: str) -> Member | None:
    credential = None
    if login:
        credential = (
            MallCredential.objects.select_related("member__tier")
            .filter(member__external_id=login)
            .first()
        ) or (
            MallCredential.objects.select_related("member__tier")
            .filter(member__phone=login)
            .order_by("member_id")
            .first()
        )
    if credential is None:
        make_password(password)  # spend the same time as a real check: no user enumeration
        return None
    if not check_password(password, credential.password):
        return None
    if credential.member.status == Member.Status.CLOSED:
        return None
    return credential.member


def erase_mall_personal_data(*, member: Member) -> None:
    """Personal data erasure step (members.personal_data): shipping addresses, the mall password
    and login links go; redemptions, their points and stock figures stay."""
    Redemption.objects.filter(member=member).exclude(shipping_address={}).update(
        shipping_address={"erased": True}
    )
    MallCredential.objects.filter(member=member).delete()
    MallLoginLink.objects.filter(member=member).delete()
