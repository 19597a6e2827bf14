"""members.services and members.selectors: profile upserts, status changes, search."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from members.exceptions import InvalidStatusChange, UnknownReferralCode
from members.models import Member, MemberStatusChange, Tier
from members.selectors import member_search
from members.services import member_set_status, member_upsert
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


class TestMemberUpsert:
    def test_a_new_member_starts_active_in_the_entry_tier(self):
        result = member_upsert(external_id="u-1", name="Ann")

        assert result.created
        assert result.member.status == Member.Status.ACTIVE
        assert result.member.tier == Tier.entry_tier()

    def test_only_given_fields_change_and_none_clears_the_birthday(self):
        member_upsert(external_id="u-1", name="Ann", phone="1", birthday=date(1990, 1, 2))

        member_upsert(external_id="u-1", phone="2")
        member = Member.objects.get(external_id="u-1")
        assert (member.name, member.phone, member.birthday) == ("Ann", "2", date(1990, 1, 2))

        member_upsert(external_id="u-1", birthday=None)
        assert Member.objects.get(external_id="u-1").birthday is None

    def test_an_update_that_changes_nothing_writes_nothing(self):
        member_upsert(external_id="u-1", name="Ann")

        with CaptureQueriesContext(connection) as queries:
            result = member_upsert(external_id="u-1", name="Ann")

        assert not result.created
        assert not [q for q in queries if q["sql"].startswith("UPDATE")]

    def test_the_referral_code_is_matched_ignoring_case_and_spaces(self):
        inviter = MemberFactory()

        code = f" {inviter.referral_code.lower()} "

        result = member_upsert(external_id="u-1", referral_code=code)

        assert result.member.referred_by == inviter

    def test_an_unknown_referral_code_creates_nothing(self):
        with pytest.raises(UnknownReferralCode):
            member_upsert(external_id="u-1", name="Ann", referral_code="NOPE22")

        assert not Member.objects.filter(external_id="u-1").exists()


class TestMemberSetStatus:
    def test_freezing_records_who_did_it_and_why(self, admin_user):
        member = MemberFactory()

        member_set_status(member=member, status="frozen", operator=admin_user, reason="fraud check")

        member.refresh_from_db()
        assert member.status == "frozen"
        change = MemberStatusChange.objects.get(member=member)
        assert (change.from_status, change.to_status) == ("active", "frozen")
        assert (change.operator, change.reason) == (admin_user, "fraud check")

    @pytest.mark.parametrize(
        ("start", "target"),
        [("active", "frozen"), ("frozen", "active"), ("active", "closed"), ("frozen", "closed")],
    )
    def test_allowed_transitions(self, start, target):
        member = MemberFactory(status=start)

        result = member_set_status(member=member, status=target, operator=None, reason="r")

        assert result.status == target
        assert member.status == target  # the caller's instance is up to date too

    @pytest.mark.parametrize(
        ("start", "target"),
        [
            ("active", "active"),
            ("frozen", "frozen"),
            ("closed", "active"),
            ("closed", "frozen"),
            ("closed", "closed"),
            ("active", "deleted"),
        ],
    )
    def test_refused_transitions_write_nothing(self, start, target):
        member = MemberFactory(status=start)

        with pytest.raises(InvalidStatusChange):
            member_set_status(member=member, status=target, operator=None, reason="r")

        member.refresh_from_db()
        assert member.status == start
        assert not MemberStatusChange.objects.exists()

    def test_a_reason_is_required(self):
        member = MemberFactory()

        with pytest.raises(InvalidStatusChange):
            member_set_status(member=member, status="frozen", operator=None, reason="  ")

        assert Member.objects.get(pk=member.pk).status == "active"

    @pytest.mark.django_db(transaction=True)
    @pytest.mark.usefixtures("entry_tier")
    def test_two_operators_freezing_at_once_freeze_once(self):
        member = MemberFactory()
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def freeze() -> None:
            try:
                barrier.wait(10)
                member_set_status(
                    member=Member.objects.get(pk=member.pk),
                    status="frozen",
                    operator=None,
                    reason="both saw it",
                )
                outcomes.append("frozen")
            except InvalidStatusChange:
                outcomes.append("refused")
            finally:
                connection.close()

        threads = [threading.Thread(target=freeze) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)

        assert sorted(outcomes) == ["frozen", "refused"]
        assert MemberStatusChange.objects.filter(member=member).count() == 1


class TestMemberSearch:
    @pytest.fixture
    def members(self):
        return {
            "ann": MemberFactory(external_id="u-100", name="Ann Lee", phone="13800000001"),
            "wang": MemberFactory(external_id="u-1000", name="王小明", phone="13800000002"),
            "bob": MemberFactory(
                external_id="crm-7", name="Bob", phone="13800000003", email="bob@example.com"
            ),
        }

    def found(self, term: str) -> set[str]:
        return {m.external_id for m in member_search(queryset=Member.objects.all(), term=term)}

    def test_an_external_id_matches_exactly_not_as_a_prefix(self, members):
        assert self.found("u-100") == {"u-100"}
        assert self.found("u-10") == set()

    def test_a_phone_matches_exactly(self, members):
        assert self.found(" 13800000002 ") == {"u-1000"}
        assert self.found("1380000000") == set()

    def test_a_name_matches_from_its_beginning_ignoring_case(self, members):
        assert self.found("ann") == {"u-100"}
        assert self.found("王") == {"u-1000"}
        assert self.found("小明") == set()  # not a prefix

    def test_an_email_matches_exactly(self, members):
        assert self.found("bob@example.com") == {"crm-7"}

    def test_an_empty_term_keeps_everything(self, members):
        assert self.found("  ") == {"u-100", "u-1000", "crm-7"}

    def test_every_branch_of_the_search_can_use_an_index(self, members):
        # Only bitmap index scans allowed: one branch no index serves forces a (disabled) seq
        # scan of the whole table, which is what a million-member search must never do.
        sql, params = member_search(
            queryset=Member.objects.all(), term="a@b.c"
        ).query.sql_with_params()
        with connection.cursor() as cursor:
            for setting in ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan"):
                cursor.execute(f"SET LOCAL {setting} = off")
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())

        assert "Seq Scan" not in plan, plan
        assert "BitmapOr" in plan, plan
        assert plan.count("Bitmap Index Scan") == 4, plan
