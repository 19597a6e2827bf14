"""A plain-Python model of the ledger's rules (architecture.md, points/services.py docstrings),
written from the rules and never from the database: what a member should see after each write.

Lots are kept in creation order (the order of their ids). Points leave FIFO: soonest expiry
first, never-expiring last, then the oldest lot. A negative balance is a debt that the next
points becoming available pay first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

TAKE_FROM_OTHER_POINTS = "take_from_other_points"
ALLOW_NEGATIVE = "allow_negative"
WRITE_OFF = "write_off"


class Refused(Exception):
    """The model refuses the write; `code` names the domain error the service must raise."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class ModelLot:
    amount: int
    remaining: int
    state: str  # pending | active | expired
    expires_at: datetime | None
    available_at: datetime | None
    expired: int = 0  # points the expiry job took from it, over its life
    db_id: int | None = None  # only to compare with the database afterwards


@dataclass
class Taking:
    """Points an outgoing write took, lot by lot (what a give-back returns)."""

    points: int
    taken: list[tuple[ModelLot, int]]
    given_back: bool = False


@dataclass
class ModelOrder:
    """A purchase (amount, earned points) as refunds see it."""

    amount: Decimal
    points: int
    lot: ModelLot | None
    refunded: Decimal = Decimal("0")
    reversed: int = 0
    lapsed: int = 0


@dataclass
class ModelAccount:
    credit_limit: int
    available: int = 0
    pending: int = 0
    lots: list[ModelLot] = field(default_factory=list)

    # --- the two movements everything else is made of ---------------------------------------
    def _fifo(self) -> list[ModelLot]:
        spendable = [lot for lot in self.lots if lot.state == "active" and lot.remaining > 0]
        # sorted() is stable: ties keep creation (id) order.
        return sorted(
            spendable, key=lambda lot: (lot.expires_at is None, lot.expires_at or datetime.min)
        )

    def _take_fifo(self, points: int) -> list[tuple[ModelLot, int]]:
        taken = []
        for lot in self._fifo():
            if points <= 0:
                break
            part = min(points, lot.remaining)
            lot.remaining -= part
            points -= part
            taken.append((lot, part))
        assert points == 0, "the model's lots do not cover its balance"
        return taken

    def _debit(self, points: int) -> list[tuple[ModelLot, int]]:
        """Take `points` from the available balance: FIFO from the lots, the rest as debt."""
        taken = self._take_fifo(min(points, max(self.available, 0)))
        self.available -= points
        return taken

    def _return(self, taken: list[tuple[ModelLot, int]]) -> None:
        """Give points back to the lots they came from; a returned point pays a debt first."""
        before = self.available
        total = 0
        for lot, points in taken:
            lot.remaining += points
            if lot.state == "expired":
                lot.state = "active"  # the next expiry run expires it again
            total += points
        self.available += total
        self._take_fifo(min(total, max(-before, 0)))

    # --- services ------------------------------------------------------------------------------
    def credit(
        self, points: int, *, expires_at: datetime | None, available_at: datetime | None
    ) -> ModelLot:
        """earn / a purchase's points / a positive adjustment: a new lot."""
        if available_at is not None:
            lot = ModelLot(points, points, "pending", expires_at, available_at)
            self.pending += points
        else:
            paid = min(points, max(-self.available, 0))  # the new points pay the debt first
            lot = ModelLot(points, points - paid, "active", expires_at, None)
            self.available += points
        self.lots.append(lot)
        return lot

    def spend(self, points: int) -> Taking:
        """spend and take_for_redemption: nothing below zero."""
        if self.available < points:
            raise Refused("insufficient_points")
        return Taking(points, self._debit(points))

    def adjust_down(self, points: int) -> None:
        if self.available - points < -self.credit_limit:
            raise Refused("insufficient_points")
        self._debit(points)

    def give_back(self, taking: Taking) -> None:
        if taking.given_back:
            raise Refused("already_given_back")
        taking.given_back = True
        self._return(taking.taken)

    def refund_purchase(self, order: ModelOrder, amount: Decimal | None, policy: str) -> int:
        """Reverse the refunded share of what the order earned; returns the points taken back."""
        left = order.amount - order.refunded
        amount = left if amount is None else amount
        if left <= 0 or amount > left:
            raise Refused("already_refunded")
        order.refunded += amount
        share = order.points
        if order.refunded < order.amount:
            share = int(
                (order.points * order.refunded / order.amount).to_integral_value(ROUND_FLOOR)
            )
        to_reverse = share - order.reversed
        order.reversed = share
        if to_reverse <= 0:
            return 0
        lot = order.lot
        from_lot = min(to_reverse, lot.remaining)
        lot.remaining -= from_lot
        if lot.state == "pending":
            self.pending -= from_lot
        else:
            self.available -= from_lot
        shortfall = to_reverse - from_lot
        # What expired already left the balance; what was used follows the programme's policy.
        lapsed = min(shortfall, max(lot.expired - order.lapsed, 0))
        order.lapsed += lapsed
        used = shortfall - lapsed
        can_take = 0
        if policy == TAKE_FROM_OTHER_POINTS:
            can_take = min(used, max(self.available, 0))
        elif policy == ALLOW_NEGATIVE:
            can_take = min(used, max(self.available + self.credit_limit, 0))
        if can_take:
            self._debit(can_take)
        return from_lot + can_take

    def refund_payment(self, payment: Taking) -> None:
        """A refund of a point payment returns its points to the lots they came from, once."""
        if payment.given_back:
            raise Refused("already_refunded")
        payment.given_back = True
        self._return(payment.taken)

    # --- jobs ----------------------------------------------------------------------------------
    def expire(self, as_of: datetime) -> int:
        points = 0
        for lot in self.lots:
            due = lot.expires_at is not None and lot.expires_at < as_of
            if lot.state == "active" and lot.remaining > 0 and due:
                lot.expired += lot.remaining
                points += lot.remaining
                lot.remaining, lot.state = 0, "expired"
        self.available -= points
        return points

    def release(self, as_of: datetime) -> int:
        released = [
            lot
            for lot in self.lots
            if lot.state == "pending" and lot.available_at is not None and lot.available_at <= as_of
        ]
        points = sum(lot.remaining for lot in released)
        debt = min(points, max(-self.available, 0))
        for lot in sorted(
            released, key=lambda lot: (lot.expires_at is None, lot.expires_at or datetime.min)
        ):
            lot.state = "active"
            paid = min(debt, lot.remaining)
            lot.remaining -= paid
            debt -= paid
        self.available += points
        self.pending -= points
        return len(released)

    # --- what the member sees --------------------------------------------------------------------
    def summary(self, shown: int = 3) -> dict:
        expiring: dict[datetime, int] = {}
        for lot in self.lots:
            if lot.state == "active" and lot.remaining > 0 and lot.expires_at is not None:
                expiring[lot.expires_at] = expiring.get(lot.expires_at, 0) + lot.remaining
        return {
            "available": self.available,
            "pending": self.pending,
            "expiring": [
                {"amount": expiring[moment], "expires_at": moment}
                for moment in sorted(expiring)[:shown]
            ],
        }
