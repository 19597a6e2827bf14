"""`manage.py seed_demo`: the demo data `make run` creates once.

An admin user whose generated password is printed once, a partner "Demo POS" whose API key (all
scopes) is printed once, and a few dozen members with Chinese and English names, each with a
history of purchases, point payments, refunds and expired points written through the ledger's
own services. Names, amounts and dates come from a seeded random generator (dates relative to
today); passwords and keys never do.

The history is replayed in time order through the services, with the nightly jobs
(`expire_lots`, `release_pending_points`) run for every night that passed. Ledger rows are
written once, by the services, and never updated (the ledger is append-only); `LedgerClock`
makes them carry the moment they stand for, within the seed's one transaction.
"""

from __future__ import annotations

import contextlib
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.db.models import Min, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import engine
from loyalty_site.api.keys import create_partner_key
from members.models import Member
from members.services import member_upsert
from points.models import Account, ApiScope, Lot, Partner, ProgrammeSettings
from points.services import (
    expire_lots,
    record_purchase,
    refund_order,
    release_pending_points,
    spend,
)

ADMIN_USERNAME = "admin"
DEMO_PARTNER = "Demo POS"
DEMO_ID_PREFIX = "demo-"

# (hanzi, pinyin) pairs: surnames by frequency, given names common for people born 1960-2005.
SURNAMES = [
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
    ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"),
    ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"), ("胡", "hu"),
    ("郭", "guo"), ("何", "he"), ("林", "lin"), ("罗", "luo"), ("高", "gao"),
    ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"), ("唐", "tang"),
    ("许", "xu"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"),
]  # fmt: skip
GIVEN_NAMES = [
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("秀英", "xiuying"), ("敏", "min"),
    ("静", "jing"), ("丽", "li"), ("强", "qiang"), ("磊", "lei"), ("洋", "yang"),
    ("艳", "yan"), ("勇", "yong"), ("军", "jun"), ("杰", "jie"), ("娟", "juan"),
    ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("秀兰", "xiulan"), ("霞", "xia"),
    ("平", "ping"), ("刚", "gang"), ("桂英", "guiying"), ("思远", "siyuan"),
    ("子涵", "zihan"), ("雨桐", "yutong"), ("浩然", "haoran"), ("欣怡", "xinyi"),
    ("梓轩", "zixuan"), ("一诺", "yinuo"), ("宇航", "yuhang"), ("佳怡", "jiayi"),
]  # fmt: skip
ENGLISH_FIRST_NAMES = [
    "Emma", "Oliver", "Sophie", "James", "Charlotte", "Daniel", "Grace", "Thomas",
    "Hannah", "Michael", "Lucy", "David", "Amelia", "Jack", "Chloe", "Samuel",
]  # fmt: skip
ENGLISH_LAST_NAMES = [
    "Smith", "Johnson", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thompson",
    "Walker", "Roberts", "Clarke", "Wright", "Mitchell", "Turner", "Hughes", "Baker",
]  # fmt: skip
# Mainland mobile prefixes (China Mobile, Unicom, Telecom).
MOBILE_PREFIXES = ["134", "135", "136", "137", "138", "139", "150", "151", "152", "158",
                   "159", "182", "186", "187", "188", "189", "176", "177", "199"]  # fmt: skip
# Reserved for documentation (RFC 2606): no real mailbox gets demo mail.
EMAIL_DOMAINS = ["example.com", "example.net", "example.org"]
STORES = [f"store-{number:02d}" for number in range(1, 13)]


@dataclass(frozen=True)
class DemoPerson:
    external_id: str
    name: str
    phone: str
    email: str
    birthday: date | None
    marketing_consent: bool
    language: str
    joined_at: datetime


def demo_people(*, count: int, seed: int, today: date) -> list[DemoPerson]:
    """`count` believable members, the same for the same seed and day."""
    rng = random.Random(seed)
    zone = timezone.get_current_timezone()
    people = []
    for number in range(1, count + 1):
        if rng.random() < 0.7:
            surname, surname_pinyin = rng.choice(SURNAMES)
            given, given_pinyin = rng.choice(GIVEN_NAMES)
            name = surname + given
            handle = f"{given_pinyin}.{surname_pinyin}"
            language = Member.Language.ZH_HANS
        else:
            first, last = rng.choice(ENGLISH_FIRST_NAMES), rng.choice(ENGLISH_LAST_NAMES)
            name = f"{first} {last}"
            handle = f"{first}.{last}".lower()
            language = Member.Language.EN
        phone = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
        email = f"{handle}{rng.randrange(1, 100)}@{rng.choice(EMAIL_DOMAINS)}"
        birthday = None
        if rng.random() < 0.9:
            age_days = rng.randrange(18 * 365, 66 * 365)
            birthday = today - timedelta(days=age_days)
        joined_day = today - timedelta(days=rng.randrange(1, 730))
        joined_at = datetime.combine(
            joined_day, time(rng.randrange(9, 22), rng.randrange(60), rng.randrange(60)), zone
        )
        people.append(
            DemoPerson(
                external_id=f"{DEMO_ID_PREFIX}{number:04d}",
                name=name,
                phone=phone,
                email=email,
                birthday=birthday,
                marketing_consent=rng.random() < 0.6,
                language=language,
                joined_at=joined_at,
            )
        )
    return people


@dataclass(order=True)
class DemoEvent:
    """One thing that happens to a demo member, replayed in time order."""

    at: datetime
    sequence: int
    kind: str = field(compare=False)  # "purchase", "refund"
    external_id: str = field(compare=False)
    reference: str = field(compare=False)
    amount: Decimal = field(compare=False)
    pay_with_points: bool = field(compare=False, default=False)


def _price(rng: random.Random) -> Decimal:
    """A till amount: mostly tens to a few hundred yuan, now and then a big basket."""
    yuan = rng.lognormvariate(4.8, 0.8)  # median ~120
    cents = rng.choice(["00", "00", "50", "90", "80"])
    return Decimal(f"{min(max(int(yuan), 8), 3800)}.{cents}")


def demo_history(*, people: list[DemoPerson], seed: int, now: datetime) -> list[DemoEvent]:
    """Purchases from joining until now (each member shops at a rhythm of their own), a few
    paid partly with points, and some refunded in full or in part days later."""
    rng = random.Random(seed * 7919 + 1)
    events: list[DemoEvent] = []
    sequence = 0
    for person in people:
        mean_gap_days = rng.choice([9, 14, 21, 30, 45, 75])
        moment = person.joined_at + timedelta(hours=rng.uniform(0.2, 72))
        number = 0
        while moment < now:
            number += 1
            store = rng.choice(STORES)
            reference = f"POS-{store}-{moment:%Y%m%d}-{person.external_id[-4:]}{number:03d}"
            amount = _price(rng)
            sequence += 1
            events.append(
                DemoEvent(
                    at=moment,
                    sequence=sequence,
                    kind="purchase",
                    external_id=person.external_id,
                    reference=reference,
                    amount=amount,
                    pay_with_points=rng.random() < 0.15,
                )
            )
            if rng.random() < 0.08:
                refund_day = moment + timedelta(days=rng.randrange(1, 15))
                refund_at = refund_day.replace(hour=rng.randrange(10, 21), minute=rng.randrange(60))
                if refund_at < now:
                    part = Decimal(1) if rng.random() < 0.6 else Decimal(rng.randrange(2, 8)) / 10
                    sequence += 1
                    events.append(
                        DemoEvent(
                            at=refund_at,
                            sequence=sequence,
                            kind="refund",
                            external_id=person.external_id,
                            reference=reference,
                            amount=(amount * part).quantize(Decimal("0.01")),
                        )
                    )
            gap = rng.expovariate(1 / mean_gap_days)
            moment += timedelta(days=max(gap, 0.3))
            moment = moment.replace(hour=rng.randrange(9, 22), minute=rng.randrange(60))
    return sorted(events)


def _ledger_tables_stamped_with_now() -> list[str]:
    """Every points_* table whose created_at defaults to the time of the insert."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname
              FROM pg_attrdef d
              JOIN pg_class c ON c.oid = d.adrelid
              JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
             WHERE left(c.relname, 7) = 'points_' AND a.attname = 'created_at'
               AND c.relnamespace = 'public'::regnamespace
               AND pg_get_expr(d.adbin, d.adrelid) IN (
                     'statement_timestamp()', 'transaction_timestamp()', 'clock_timestamp()',
                     'now()', 'CURRENT_TIMESTAMP'
                   )
             ORDER BY c.relname
            """
        )
        return [table for (table,) in cursor.fetchall()]


CLOCK_SETTING = "loyalty.demo_clock"
CLOCK_FUNCTION = f"""
CREATE FUNCTION loyalty_demo_clock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('{CLOCK_SETTING}', true), '') <> '' THEN
        NEW.created_at := current_setting('{CLOCK_SETTING}')::timestamptz;
    END IF;
    RETURN NEW;
END $$
"""


class LedgerClock:
    """Makes the rows the ledger services insert carry `created_at` = a moment of the past.

    A BEFORE INSERT trigger reads the moment from a transaction-local setting. Trigger and
    function exist only inside the seed's transaction (created and dropped in it), so no other
    session ever sees them; the ledger's rows are inserted once and never updated.
    """

    def __init__(self) -> None:
        self.tables = _ledger_tables_stamped_with_now()
        if not self.tables:
            raise RuntimeError("no points_* table has a created_at defaulting to the time")

    def set(self, moment: datetime) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, %s, true)", [CLOCK_SETTING, moment.isoformat()])

    @contextlib.contextmanager
    def running(self) -> Iterator[LedgerClock]:
        assert connection.in_atomic_block, "the ledger clock needs a transaction"
        with connection.cursor() as cursor:
            cursor.execute(CLOCK_FUNCTION)
            for table in self.tables:
                cursor.execute(
                    f'CREATE TRIGGER loyalty_demo_clock BEFORE INSERT ON "{table}" '
                    "FOR EACH ROW EXECUTE FUNCTION loyalty_demo_clock()"
                )
        yield self
        # On an error the transaction's rollback removes them instead.
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, '', true)", [CLOCK_SETTING])
            # A table with deferred checks still to run cannot lose a trigger: run them now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for table in self.tables:
                cursor.execute(f'DROP TRIGGER loyalty_demo_clock ON "{table}"')
            cursor.execute("DROP FUNCTION loyalty_demo_clock()")


@dataclass
class HistoryTotals:
    purchases: int = 0
    paid_with_points: int = 0
    refunds: int = 0
    nights: int = 0
    lots_expired: int = 0


def _purchase_points(amount: Decimal, paid_with_points: Decimal, book, moment, tier) -> int:
    """What POST /events awards for this purchase by the programme's earning rules (no caps or
    budgets in the demo programme)."""
    facts = engine.Facts(
        type="purchase",
        local=moment,
        partner_id=None,
        amount=amount,
        paid_with_points=paid_with_points,
        tier_id=tier.pk,
        tier_multiplier=tier.earn_multiplier,
    )
    return sum(outcome.with_campaign for outcome in engine.evaluate(book, facts).rules)


def replay_history(*, events: list[DemoEvent], partner: Partner, now: datetime) -> HistoryTotals:
    """Write `events` through the ledger services in time order, running the nightly jobs for
    every night between them. Call inside a transaction."""
    zone = timezone.get_current_timezone()
    programme = ProgrammeSettings.get()
    currency = programme.currency
    book = engine.load_rulebook()
    members = {m.external_id: m for m in Member.objects.filter(external_id__startswith="demo-")}
    totals = HistoryTotals()
    clock = LedgerClock()
    nightly_run = time(0, 30)

    def night_of(moment: datetime) -> date:
        # The first nightly run (00:30 local) after `moment`.
        local = moment.astimezone(zone)
        return local.date() + timedelta(days=0 if local.time() < nightly_run else 1)

    def next_night_with_work() -> date | None:
        due = Lot.objects.aggregate(
            # What expire_lots and release_pending_points will take, as they select it.
            expiry=Min("expires_at", filter=Q(state=Lot.State.ACTIVE, remaining__gt=0)),
            release=Min("available_at", filter=Q(state=Lot.State.PENDING)),
        )
        moments = [moment for moment in due.values() if moment is not None]
        return night_of(min(moments)) if moments else None

    def run_nightly_jobs(until: date) -> None:
        """The nightly jobs of every night up to `until` on which they had something to do."""
        night = next_night_with_work()
        while night is not None and night <= until:
            moment = datetime.combine(night, nightly_run, zone)
            clock.set(moment)
            totals.lots_expired += expire_lots(as_of=moment)
            release_pending_points(as_of=moment)
            totals.nights += 1
            previous, night = night, next_night_with_work()
            if night is not None and night <= previous:
                raise RuntimeError(f"the nightly jobs of {previous} left work behind")

    with clock.running():
        for event in events:
            run_nightly_jobs(event.at.astimezone(zone).date())
            clock.set(event.at)
            member = members[event.external_id]
            if event.kind == "refund":
                refund_order(partner=partner, reference=event.reference, amount=event.amount)
                totals.refunds += 1
                continue
            paid_with_points = Decimal("0.00")
            if event.pay_with_points:
                available = Account.objects.filter(member=member).values_list(
                    "available", flat=True
                )
                usable = min(int(available.first() or 0), int(event.amount) * 50)
                points = usable // 100 * 100  # members redeem round hundreds at the till
                if points >= 100:
                    paid = spend(
                        member=member,
                        points=points,
                        partner=partner,
                        reference=event.reference,
                        memo="积分抵扣 / paid with points",
                    )
                    paid_with_points = paid.cash_value
                    totals.paid_with_points += 1
            record_purchase(
                member=member,
                partner=partner,
                reference=event.reference,
                amount=event.amount,
                currency=currency,
                paid_with_points=paid_with_points,
                points=_purchase_points(
                    event.amount, paid_with_points, book, event.at.astimezone(zone), member.tier
                ),
                occurred_at=event.at,
            )
            totals.purchases += 1
        run_nightly_jobs(now.astimezone(zone).date())
    return totals


class Command(BaseCommand):
    help = (
        "Create the demo data once: an admin user and a partner key (each printed once) and "
        "a few dozen members with a history. Safe to repeat: what exists is left alone."
    )

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=40, help="how many demo members")
        parser.add_argument("--seed", type=int, default=2024, help="random seed for the data")

    def handle(self, *args, members: int, seed: int, **options):
        self.ensure_admin()
        self.ensure_demo_partner()
        self.ensure_members(count=members, seed=seed)
        self.ensure_demo_programme()

    def ensure_demo_programme(self) -> None:
        """A few rules, a campaign, a task and check-in rewards to try the rule engine with;
        only ever added (an operator's changes to them are left alone)."""
        from campaigns.models import Campaign, CheckInReward, EarningRule, MemberTask

        EarningRule.objects.get_or_create(
            code="daily-check-in",
            defaults={
                "name": "每日签到 / Daily check-in",
                "event_type": "check_in",
                "status": EarningRule.Status.ACTIVE,
                "fixed_points": 5,
            },
        )
        EarningRule.objects.get_or_create(
            code="review",
            defaults={
                "name": "评价有礼 / Points for a review",
                "event_type": "review",
                "status": EarningRule.Status.ACTIVE,
                "fixed_points": 20,
                "cap_per_day": 40,
            },
        )
        CheckInReward.objects.get_or_create(streak_day=7, defaults={"points": 50})
        MemberTask.objects.get_or_create(
            code="first-three-check-ins",
            defaults={
                "name": "新人任务：签到 3 次 / Newcomer: check in 3 times",
                "kind": MemberTask.Kind.NEWCOMER,
                "event_type": "check_in",
                "required_count": 3,
                "within_days": 7,
                "reward_points": 30,
            },
        )
        if not Campaign.objects.filter(code="double-tuesday").exists():
            Campaign.objects.create(
                code="double-tuesday",
                name="周二双倍积分 / Double points Tuesday",
                status=Campaign.Status.ACTIVE,
                starts_at=timezone.now(),
                recurrence=Campaign.Recurrence.WEEKLY,
                weekdays=[2],
                multiplier=2,
                budget_points=100_000,
            )
            from campaigns.scheduling import sync_campaign_schedule

            sync_campaign_schedule(campaign=Campaign.objects.get(code="double-tuesday"))

    def ensure_admin(self) -> None:
        user_model = get_user_model()
        if user_model.objects.filter(username=ADMIN_USERNAME).exists():
            self.stdout.write(
                _(
                    "Admin user `%(username)s` exists; its password was printed when it was "
                    "created (reset it: manage.py changepassword %(username)s)."
                )
                % {"username": ADMIN_USERNAME}
            )
            return
        password = secrets.token_urlsafe(12)
        user_model.objects.create_superuser(
            username=ADMIN_USERNAME, email="admin@example.com", password=password
        )
        self.stdout.write(
            self.style.SUCCESS(_("Admin user created; the password is shown only this once:"))
        )
        self.stdout.write("  " + _("username: %(username)s") % {"username": ADMIN_USERNAME})
        self.stdout.write("  " + _("password: %(password)s") % {"password": password})

    def ensure_demo_partner(self) -> None:
        if Partner.objects.filter(name=DEMO_PARTNER, api_keys__isnull=False).exists():
            self.stdout.write(
                _(
                    "Partner `%(partner)s` has a key already (printed when it was created; "
                    "another: manage.py create_partner_key '%(partner)s' --scopes ...)."
                )
                % {"partner": DEMO_PARTNER}
            )
            return
        _api_key, plain_key = create_partner_key(
            partner_name=DEMO_PARTNER, scopes=ApiScope.values, key_name="demo"
        )
        self.stdout.write(
            self.style.SUCCESS(
                _("API key of partner `%(partner)s` (all scopes), shown only this once:")
                % {"partner": DEMO_PARTNER}
            )
        )
        self.stdout.write(f"  Authorization: Api-Key {plain_key}")

    def ensure_members(self, *, count: int, seed: int) -> None:
        if Member.objects.filter(external_id__startswith=DEMO_ID_PREFIX).exists():
            self.stdout.write(_("Demo members exist; left as they are."))
            return
        now = timezone.now()
        people = demo_people(count=count, seed=seed, today=timezone.localdate(now))
        partner = Partner.objects.get(name=DEMO_PARTNER)
        with transaction.atomic():
            for person in people:
                member = member_upsert(
                    external_id=person.external_id,
                    name=person.name,
                    phone=person.phone,
                    email=person.email,
                    birthday=person.birthday,
                    marketing_consent=person.marketing_consent,
                    language=person.language,
                ).member
                # Demo members joined in the past; the service stamps "now".
                Member.objects.filter(pk=member.pk).update(joined_at=person.joined_at)
            events = demo_history(people=people, seed=seed, now=now)
            totals = replay_history(events=events, partner=partner, now=now)
        self.stdout.write(
            self.style.SUCCESS(
                _(
                    "%(members)d demo members created, with %(purchases)d purchases "
                    "(%(paid)d partly paid with points), %(refunds)d refunds and %(expired)d "
                    "expired lots (%(nights)d nightly runs)."
                )
                % {
                    "members": len(people),
                    "purchases": totals.purchases,
                    "paid": totals.paid_with_points,
                    "refunds": totals.refunds,
                    "expired": totals.lots_expired,
                    "nights": totals.nights,
                }
            )
        )
