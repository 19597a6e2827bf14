"""What every benchmark process shares: Django set-up, sizes per scale, reporting rows."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict

from bench.harness import Row

SIZES = {
    "small": {
        "b1_members": 2_000,
        "b1_seconds": 8,
        "b2_members": 2_000,
        "b2_seconds": 8,
        "b3_accounts": 5_000,
        "b3_lots_per_account": 10,
        "b4_members": 1_000,
        "b4_stock": 100,
        "b6_members": 5_000,
        "b6_entries": 200_000,
        "b6_days": 120,
        "b6_partners": 20,
        "b6_orders": 40_000,
    },
    "full": {
        "b1_members": 100_000,
        "b1_seconds": 30,
        "b2_members": 100_000,
        "b2_seconds": 30,
        "b3_accounts": 100_000,
        "b3_lots_per_account": 10,
        "b4_members": 1_000,
        "b4_stock": 100,
        "b6_members": 200_000,
        "b6_entries": 10_000_000,
        "b6_days": 365,
        "b6_partners": 50,
        "b6_orders": 2_000_000,
    },
}


def setup() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", choices=list(SIZES), default="full")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_site.settings")
    import django

    django.setup()
    return {"scale": args.scale, **SIZES[args.scale]}


def emit(row: Row) -> None:
    print("ROW " + json.dumps(asdict(row), default=str), flush=True)


def log(message: str) -> None:
    print(message, flush=True)


def create_rulebook() -> None:
    """Issue 6's condition for B1 and B2: ten active earning rules and two active campaigns.

    The default purchase rule (migration) plus nine others whose conditions mostly do not match
    the bench purchase (pos, store-12, 128.50, one "drinks" item): other channels, stores,
    event types, a minimum amount; one matches, with a category rate. One campaign doubles
    points on a weekday that is not today, the other is a bonus for another event type.
    """
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from campaigns.models import Campaign, EarningRule, RuleRate
    from points.services import programme_settings

    active = EarningRule.Status.ACTIVE
    others = [
        {"code": "bench-online", "channels": ["online"], "points_per_unit": Decimal("2")},
        {"code": "bench-app", "channels": ["app"], "points_per_unit": Decimal("1.5")},
        {"code": "bench-flagship", "stores": ["store-1"], "points_per_unit": Decimal("1")},
        {"code": "bench-big-basket", "min_amount": Decimal("5000"), "fixed_points": 200},
        {"code": "bench-electronics", "categories": ["electronics"], "points_per_unit": 1},
        {"code": "bench-review", "event_type": "review", "fixed_points": 5},
        {"code": "bench-share", "event_type": "share", "fixed_points": 2},
        {"code": "bench-check-in", "event_type": "check_in", "fixed_points": 1},
    ]
    for fields in others:
        EarningRule.objects.update_or_create(
            code=fields.pop("code"),
            defaults={"name": "bench", "status": active, "priority": 20, **fields},
        )
    drinks, _created = EarningRule.objects.update_or_create(
        code="bench-drinks",
        defaults={"name": "bench", "status": active, "priority": 30, "points_per_unit": 0},
    )
    RuleRate.objects.update_or_create(
        rule=drinks,
        kind=RuleRate.Kind.CATEGORY,
        code="drinks",
        defaults={"points_per_unit": Decimal("0.5")},
    )
    assert EarningRule.objects.filter(status=active).count() == 10
    zone = programme_settings().zone
    today = timezone.now().astimezone(zone).isoweekday()
    Campaign.objects.update_or_create(
        code="bench-double-day",
        defaults={
            "name": "bench",
            "status": Campaign.Status.ACTIVE,
            "starts_at": timezone.now() - timedelta(days=30),
            "recurrence": Campaign.Recurrence.WEEKLY,
            "weekdays": [today % 7 + 1],  # tomorrow's weekday: never today
            "multiplier": Decimal("2"),
        },
    )
    Campaign.objects.update_or_create(
        code="bench-review-bonus",
        defaults={
            "name": "bench",
            "status": Campaign.Status.ACTIVE,
            "starts_at": timezone.now() - timedelta(days=30),
            "event_types": ["review"],
            "bonus_points": 10,
        },
    )
