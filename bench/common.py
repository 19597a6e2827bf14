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
