"""Row locks of the ledger, in the one order every writer takes them.

Lock order (docs/adr/0001-lock-order.md): a reward's stock row first (rewards_mall), then
points Account rows by ascending id, then the Order row. Lots, allocations and entries of an
account are only written while its Account row is locked, so the account row is their mutex.
Every helper returns a pk-ordered SELECT ... FOR UPDATE OF the table itself, so joins made
with select_related never lock the member or the partner.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from points.models import Account, Order


def account_qs_select_for_update() -> QuerySet[Account]:
    return Account.objects.order_by("pk").select_for_update(of=("self",))


def order_qs_select_for_update() -> QuerySet[Order]:
    return Order.objects.order_by("pk").select_for_update(of=("self",))


def lock_accounts(*, account_ids: Iterable[int]) -> list[Account]:
    """Lock several accounts at once, in ascending id order (e.g. a transfer's two sides)."""
    return list(
        account_qs_select_for_update().select_related("member").filter(pk__in=set(account_ids))
    )


def lock_account(*, account_id: int) -> Account:
    return account_qs_select_for_update().select_related("member").get(pk=account_id)


def lock_account_of_member(*, member_id: int) -> Account | None:
    return (
        account_qs_select_for_update().select_related("member").filter(member_id=member_id).first()
    )


def lock_order(*, order_id: int) -> Order:
    """Lock an order row; its account must be locked first."""
    return order_qs_select_for_update().get(pk=order_id)
