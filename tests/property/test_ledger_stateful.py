"""Random sequences of every ledger write and job, checked after every step against the
invariant and against a plain-Python model of what the member should see."""

from __future__ import annotations

import itertools
from datetime import datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from rest_framework.test import APIClient

from loyalty_site.api.keys import create_partner_key
from loyalty_site.exceptions import LoyaltyError
from points import services
from points.models import Lot, ProgrammeSettings
from points.selectors import member_points_summary
from tests.factories import MemberFactory, OperatorFactory
from tests.property.ledger_model import (
    ALLOW_NEGATIVE,
    TAKE_FROM_OTHER_POINTS,
    WRITE_OFF,
    ModelAccount,
    ModelOrder,
    Refused,
)

CENT = Decimal("0.01")
MEMBERS = 2
# Spans of simulated time (expiry dates, return windows, the clock moving on): sampled rather
# than drawn from a range, so that lots come due as often as they stay valid.
DAYS = st.sampled_from([0, 1, 2, 7, 30, 90, 365])
# Most writes go to the first member, so that they meet each other's lots; the second member
# keeps the jobs' chunks spanning accounts.
WHO = st.sampled_from([0, 0, 0, 1])
# Points used, as a share of what the member has: mostly affordable, sometimes too much.
PERCENT = st.integers(1, 120)
# The services' error for each refusal of the model.
ERROR_CODES = {
    "insufficient_points": "insufficient_points",
    "already_refunded": "already_refunded",
    "already_given_back": "validation_error",
}


def end_of_day(moment: datetime, days_later: int) -> datetime:
    """The last instant of the local day `days_later` days after `moment`'s (expiry dates)."""
    zone = ZoneInfo(django_settings.TIME_ZONE)
    day = moment.astimezone(zone).date() + timedelta(days=days_later)
    return datetime.combine(day, time.max, tzinfo=zone)


class LedgerWorld:
    """What every example shares, made once per test: members, a partner key, an operator."""

    def __init__(self) -> None:
        self.members = [MemberFactory() for _ in range(MEMBERS)]
        self.operator = OperatorFactory()
        self.api_key, plain_key = create_partner_key(
            partner_name="POS", scopes=["members:read", "events:write", "points:spend"]
        )
        self.partner = self.api_key.partner
        self.api = APIClient()
        self.api.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain_key}")
        # The simulated clock starts a day ahead of the real one, so that a lot made available
        # "later" on it is always pending for the services, which compare with the real now.
        self.start = timezone.now() + timedelta(days=1)


class LedgerMachine(RuleBasedStateMachine):
    world: LedgerWorld  # set by the test before the machine runs

    purchases = Bundle("purchases")
    takings = Bundle("takings")

    def __init__(self) -> None:
        super().__init__()
        # Every example starts from the same database and leaves nothing behind.
        self.savepoint = transaction.savepoint()
        self.clock = self.world.start
        self.references = itertools.count(1)
        self.policy = TAKE_FROM_OTHER_POINTS
        self.model: dict[int, ModelAccount] = {}

    def teardown(self) -> None:
        transaction.savepoint_rollback(self.savepoint)

    # --- helpers -----------------------------------------------------------------------------
    def account(self, index: int) -> ModelAccount:
        return self.model[self.world.members[index].pk]

    def write(self, service, *args, refused: Refused | None = None, **kwargs):
        """Run one service in its own transaction (as a request would); when the model refused
        the write, the service must refuse it with the same error and change nothing."""
        with transaction.atomic():
            if refused is None:
                return service(*args, **kwargs)
            with pytest.raises(LoyaltyError) as error:
                service(*args, **kwargs)
        assert error.value.code == ERROR_CODES[refused.code], error.value
        return None

    def any_lot(self, test) -> bool:
        """Whether a lot of the model passes `test` (the jobs run when they have work)."""
        return any(test(lot) for account in self.model.values() for lot in account.lots)

    def share_of_balance(self, who: int, percent: int, plus: int = 0) -> int:
        """`percent` of the member's available points (+ `plus`), at least 1: mostly what they
        can afford, sometimes (over 100 %) more."""
        return max(1, (max(self.account(who).available, 0) + plus) * percent // 100)

    def predict(self, change):
        """(result, None) of a change the model accepts, or (None, Refused)."""
        try:
            return change(), None
        except Refused as refusal:
            return None, refusal

    # --- the programme -----------------------------------------------------------------------
    @initialize(
        policy=st.sampled_from([TAKE_FROM_OTHER_POINTS, ALLOW_NEGATIVE, WRITE_OFF]),
        limit=st.sampled_from([0, 50, 300]),
    )
    def programme(self, policy, limit):
        programme = ProgrammeSettings.get()
        programme.refund_after_spend_policy = policy
        programme.negative_balance_limit = limit
        # Adjustments take the policy's expiry; "never" keeps them out of the clock's way.
        programme.expiry_policy = ProgrammeSettings.ExpiryPolicy.NEVER
        services.programme_settings_save(programme=programme)
        self.policy = policy
        self.model = {member.pk: ModelAccount(credit_limit=limit) for member in self.world.members}

    # --- rules: writes ------------------------------------------------------------------------
    @rule(
        target=purchases,
        who=WHO,
        as_purchase=st.booleans(),
        cents=st.integers(50, 30_000),
        expires_in=DAYS,
        pending_for=st.one_of(st.none(), DAYS),
    )
    def earn(self, who, as_purchase, cents, expires_in, pending_for):
        """Points earned by a purchase (a refundable order) or by anything else (earn)."""
        amount = Decimal(cents) / 100
        points = int(amount)  # the default rule: one point per 1.00, rounded down
        expires_at = end_of_day(self.clock, expires_in)
        available_at = None if pending_for is None else self.clock + timedelta(days=pending_for)
        member = self.world.members[who]
        lot = None
        if points:
            lot = self.account(who).credit(points, expires_at=expires_at, available_at=available_at)
        if not as_purchase:
            if lot is not None:
                result = self.write(
                    services.earn,
                    member=member,
                    points=points,
                    expires_at=expires_at,
                    available_at=available_at,
                )
                lot.db_id = result.lot.pk
            return multiple()
        reference = f"o-{next(self.references)}"
        result = self.write(
            services.record_purchase,
            member=member,
            partner=self.world.partner,
            reference=reference,
            amount=amount,
            currency="CNY",
            points=points,
            expires_at=expires_at,
            available_at=available_at,
        )
        if lot is not None:
            lot.db_id = result.earn.lot.pk
        return (who, reference, ModelOrder(amount=amount, points=points, lot=lot))

    @rule(purchase=purchases, full=st.booleans(), percent=st.integers(1, 120))
    def refund_purchase(self, purchase, full, percent):
        who, reference, order = purchase
        amount = None
        if not full:
            amount = max((order.amount * percent / 100).quantize(CENT, ROUND_DOWN), CENT)
        taken, refused = self.predict(
            lambda: self.account(who).refund_purchase(order, amount, self.policy)
        )
        result = self.write(
            services.refund_order,
            partner=self.world.partner,
            reference=reference,
            amount=amount,
            refused=refused,
        )
        if result is not None:
            assert result.points_reversed == taken

    @precondition(lambda self: any(account.available > 0 for account in self.model.values()))
    @rule(
        target=takings,
        who=WHO,
        percent=PERCENT,
        how=st.sampled_from(["pay", "pay_for_order", "redeem"]),
    )
    def use_points(self, who, percent, how):
        """Points leave: a payment (积分抵扣), with or without an order reference, or a
        redemption; the ones that can come back go to `takings`."""
        points = self.share_of_balance(who, percent)
        taking, refused = self.predict(lambda: self.account(who).spend(points))
        member = self.world.members[who]
        if how == "redeem":
            entry = self.write(
                services.take_for_redemption,
                member=member,
                points=points,
                redemption_id=f"r-{next(self.references)}",
                refused=refused,
            )
            return multiple() if refused else (who, "redemption", entry, taking)
        reference = f"pay-{next(self.references)}" if how == "pay_for_order" else ""
        self.write(
            services.spend,
            member=member,
            points=points,
            partner=self.world.partner,
            reference=reference,
            refused=refused,
        )
        # Only a payment for an order can come back (by a refund of that order).
        return multiple() if refused or not reference else (who, "payment", reference, taking)

    @rule(taking=takings)
    def points_come_back(self, taking):
        """A cancelled redemption or a refunded point payment: back to the same lots, once."""
        who, what, handle, points = taking
        account = self.account(who)
        if what == "redemption":
            _none, refused = self.predict(lambda: account.give_back(points))
            self.write(services.give_back_redemption, entry=handle, refused=refused)
        else:
            _none, refused = self.predict(lambda: account.refund_payment(points))
            self.write(
                services.refund_order, partner=self.world.partner, reference=handle, refused=refused
            )

    @rule(who=WHO, up=st.booleans(), percent=PERCENT)
    def adjust(self, who, up, percent):
        """An operator's correction: + a lot that never expires, - down to the credit limit."""
        account = self.account(who)
        limit = account.credit_limit
        points = (
            self.share_of_balance(who, percent)
            if up
            else -self.share_of_balance(who, percent, plus=limit)
        )
        refused = None
        lot = None
        if points > 0:
            lot = account.credit(points, expires_at=None, available_at=None)
        else:
            _none, refused = self.predict(lambda: account.adjust_down(-points))
        entry = self.write(
            services.adjust,
            member=self.world.members[who],
            points=points,
            reason="property test",
            operator=self.world.operator,
            refused=refused,
        )
        if lot is not None:
            lot.db_id = Lot.objects.get(earn_entry=entry).pk

    # --- rules: time and the jobs -------------------------------------------------------------
    @precondition(lambda self: self.any_lot(lambda lot: lot.state == "active" and lot.remaining))
    @rule(days=DAYS, batch_size=st.integers(1, 4))
    def expiry_job(self, days, batch_size):
        self.clock += timedelta(days=days)
        expected = sum(account.expire(self.clock) for account in self.model.values())
        run = services.run_expiry(as_of=self.clock, batch_size=batch_size)
        assert run.points == expected

    @precondition(lambda self: self.any_lot(lambda lot: lot.state == "pending"))
    @rule(days=DAYS, batch_size=st.integers(1, 4))
    def release_job(self, days, batch_size):
        self.clock += timedelta(days=days)
        expected = sum(account.release(self.clock) for account in self.model.values())
        assert services.release_pending_points(as_of=self.clock, batch_size=batch_size) == expected

    @rule(who=WHO)
    def member_reads_their_points_over_the_api(self, who):
        member = self.world.members[who]
        response = self.world.api.get(f"/api/v1/members/{member.external_id}")
        assert response.status_code == 200, response.content
        points = response.json()["points"]
        expected = self.account(who).summary()
        assert (points["available"], points["pending"]) == (
            expected["available"],
            expected["pending"],
        )
        assert [
            (item["amount"], datetime.fromisoformat(item["expires_at"]))
            for item in points["expiring"]
        ] == [(item["amount"], item["expires_at"]) for item in expected["expiring"]]

    # --- after every step -----------------------------------------------------------------------
    @invariant()
    def ledger_invariant_holds(self):
        assert services.check_ledger_invariants() == []

    @invariant()
    def members_see_what_the_model_says(self):
        if not self.model:
            return
        for member in self.world.members:
            assert member_points_summary(member=member) == self.model[member.pk].summary()
        # Lot by lot, so that a wrong FIFO order is caught before it shows in a balance.
        expected_lots = {
            lot.db_id: (lot.remaining, lot.state)
            for account in self.model.values()
            for lot in account.lots
        }
        db_lots = Lot.objects.filter(account__member__in=self.world.members)
        assert {
            pk: (remaining, state)
            for pk, remaining, state in db_lots.values_list("id", "remaining", "state")
        } == expected_lots


@pytest.mark.django_db
def test_random_sequences_of_ledger_writes_keep_the_invariant_and_the_members_balance():
    LedgerMachine.world = LedgerWorld()
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=50,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
