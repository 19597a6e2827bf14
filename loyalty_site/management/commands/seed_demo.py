"""`manage.py seed_demo`: the demo data `make run` creates once.

An admin user whose generated password is printed once, a partner "Demo POS" whose API key (all
scopes) is printed once, and a few dozen members with Chinese and English names, each with a
history of purchases, point payments, refunds and expired points written through the ledger's
own services. Names, amounts and dates come from a seeded random generator (dates relative to
today); passwords and keys never do.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from loyalty_site.api.keys import create_partner_key
from members.models import Member
from members.services import member_upsert
from points.models import ApiScope, Partner

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

    def ensure_admin(self) -> None:
        user_model = get_user_model()
        if user_model.objects.filter(username=ADMIN_USERNAME).exists():
            self.stdout.write(
                f"Admin user `{ADMIN_USERNAME}` exists; its password was printed when it was "
                f"created (reset it: manage.py changepassword {ADMIN_USERNAME})."
            )
            return
        password = secrets.token_urlsafe(12)
        user_model.objects.create_superuser(
            username=ADMIN_USERNAME, email="admin@example.com", password=password
        )
        self.stdout.write(self.style.SUCCESS("Admin user created; the password is shown once:"))
        self.stdout.write(f"  username: {ADMIN_USERNAME}")
        self.stdout.write(f"  password: {password}")

    def ensure_demo_partner(self) -> None:
        if Partner.objects.filter(name=DEMO_PARTNER, api_keys__isnull=False).exists():
            self.stdout.write(
                f"Partner `{DEMO_PARTNER}` has a key already (printed when it was created; "
                f"another: manage.py create_partner_key '{DEMO_PARTNER}' --scopes ...)."
            )
            return
        _api_key, plain_key = create_partner_key(
            partner_name=DEMO_PARTNER, scopes=ApiScope.values, key_name="demo"
        )
        self.stdout.write(
            self.style.SUCCESS(f"Partner `{DEMO_PARTNER}` API key (all scopes), shown once:")
        )
        self.stdout.write(f"  Authorization: Api-Key {plain_key}")

    def ensure_members(self, *, count: int, seed: int) -> None:
        if Member.objects.filter(external_id__startswith=DEMO_ID_PREFIX).exists():
            self.stdout.write("Demo members exist; left as they are.")
            return
        people = demo_people(count=count, seed=seed, today=timezone.localdate())
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
        self.stdout.write(self.style.SUCCESS(f"{len(people)} demo members created."))
