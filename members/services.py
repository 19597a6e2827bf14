"""Writes on members. Every function is keyword-only and runs in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db import IntegrityError, transaction

from members.exceptions import UnknownReferralCode
from members.models import Member, Tier, new_referral_code

PROFILE_FIELDS = ("name", "phone", "email", "birthday", "marketing_consent", "language")


@dataclass(frozen=True)
class MemberUpsert:
    member: Member
    created: bool


@transaction.atomic
def member_upsert(
    *,
    external_id: str,
    name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    birthday: date | None = None,
    marketing_consent: bool | None = None,
    language: str | None = None,
    referral_code: str | None = None,
) -> MemberUpsert:
    """Create the member, or update the profile fields that were given.

    A new member starts in the entry tier. `referral_code` (the inviter's) is used only when the
    member is created: an existing member's inviter never changes.
    """
    given = {
        field: value
        for field, value in {
            "name": name,
            "phone": phone,
            "email": email,
            "birthday": birthday,
            "marketing_consent": marketing_consent,
            "language": language,
        }.items()
        if value is not None
    }
    member = Member.objects.select_for_update().filter(external_id=external_id).first()
    if member is not None:
        for field, value in given.items():
            setattr(member, field, value)
        if given:
            member.save(update_fields=[*given, "updated_at"])
        return MemberUpsert(member=member, created=False)

    inviter = None
    if referral_code:
        inviter = Member.objects.filter(referral_code=referral_code.strip().upper()).first()
        if inviter is None:
            raise UnknownReferralCode(referral_code=referral_code)
    member = Member(external_id=external_id, tier=Tier.entry_tier(), referred_by=inviter, **given)
    # A referral code collision is rare (32^6 codes); draw again rather than fail the request.
    for _attempt in range(5):
        try:
            with transaction.atomic():
                member.save()
            break
        except IntegrityError as error:
            if "external_id" in str(error):
                # A concurrent request created the same member first: this one is an update.
                return member_upsert(external_id=external_id, **given)
            if "referral_code" not in str(error):
                raise
            member.referral_code = new_referral_code()
    return MemberUpsert(member=member, created=True)
