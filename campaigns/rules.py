"""How an event turns into points: the default programme's purchase rule.

The configurable rule engine (earning rules edited in admin) replaces this module's fixed rule;
until then a purchase earns `purchase_points_per_unit` points per 1.00 of the amount that was
paid with money and is not excluded, rounded DOWN to a whole point.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

DEFAULT_PURCHASE_RULE = "default-purchase"


@dataclass(frozen=True)
class EventFacts:
    """What the rules look at, taken from the request body."""

    type: str
    amount: Decimal = Decimal("0")
    paid_with_points: Decimal = Decimal("0")
    items: tuple[dict, ...] = ()
    channel: str = ""
    store: str = ""

    @property
    def earning_amount(self) -> Decimal:
        """The money part of the purchase that earns: no points-paid part, no excluded items."""
        excluded = sum(
            (Decimal(str(item.get("amount", "0"))) for item in self.items if item.get("excluded")),
            Decimal("0"),
        )
        return max(Decimal("0"), self.amount - self.paid_with_points - excluded)


@dataclass(frozen=True)
class RuleAward:
    rule: str
    points: int


def round_points(value: Decimal) -> int:
    """One rounding for every rule: down to a whole point (a member never gets a part point)."""
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def evaluate(facts: EventFacts, *, points_per_unit: Decimal) -> list[RuleAward]:
    if facts.type != "purchase":
        return []
    points = round_points(facts.earning_amount * points_per_unit)
    return [RuleAward(rule=DEFAULT_PURCHASE_RULE, points=points)]
