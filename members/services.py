"""Writes on members. Every function is keyword-only and runs in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from members.exceptions import InvalidStatusChange, UnknownReferralCode
from members.models import Member, MemberStatusChange, Tier, new_referral_code


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


# "Not given" for member_upsert, as opposed to None, which clears a nullable field.
UNSET: Any = _Unset()

# Which status a member may go to from each status; closing is final.
STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    Member.Status.ACTIVE: frozenset({Member.Status.FROZEN, Member.Status.CLOSED}),
    Member.Status.FROZEN: frozenset({Member.Status.ACTIVE, Member.Status.CLOSED}),
    Member.Status.CLOSED: frozenset(),
}

REFERRAL_CODE_ATTEMPTS = 5


@dataclass(frozen=True)
class MemberUpsert:
    member: Member
    created: bool


def _constraint_name(error: IntegrityError) -> str:
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) or ""


def _normalized_referral_code(code: str) -> str:
    return code.strip().upper()


@transaction.atomic
def member_upsert(
    *,
    external_id: str,
    name: str = UNSET,
    phone: str = UNSET,
    email: str = UNSET,
    birthday: date | None = UNSET,
    marketing_consent: bool = UNSET,
    language: str = UNSET,
    referral_code: str | None = None,
) -> MemberUpsert:
    """Create the member, or update the profile fields that were given.

    Fields left UNSET keep their value; `birthday=None` clears the birthday. A new member starts
    in the entry tier. `referral_code` (the inviter's) is used only when the member is created:
    an existing member's inviter never changes. Two concurrent calls for the same new
    `external_id` create one member; the later one updates it.
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
        if value is not UNSET
    }
    member = (
        Member.objects.select_for_update(of=("self",))
        .select_related("tier")
        .filter(external_id=external_id)
        .first()
    )
    if member is not None:
        changed = [field for field, value in given.items() if getattr(member, field) != value]
        for field in changed:
            setattr(member, field, given[field])
        if changed:
            member.save(update_fields=[*changed, "updated_at"])
        return MemberUpsert(member=member, created=False)

    inviter = None
    if referral_code and referral_code.strip():
        inviter = Member.objects.filter(
            referral_code=_normalized_referral_code(referral_code)
        ).first()
        if inviter is None:
            raise UnknownReferralCode(referral_code=referral_code)
    member = Member(external_id=external_id, tier=Tier.entry_tier(), referred_by=inviter, **given)
    for _attempt in range(REFERRAL_CODE_ATTEMPTS):
        try:
            with transaction.atomic():
                member.save(force_insert=True)
            return MemberUpsert(member=member, created=True)
        except IntegrityError as error:
            constraint = _constraint_name(error)
            if "external_id" in constraint:
                # A concurrent request created the same member first: this one is an update.
                return member_upsert(external_id=external_id, **given)
            if "referral_code" not in constraint:
                raise
            # A referral code collision is rare (32^6 codes): draw again rather than fail.
            member.referral_code = new_referral_code()
    raise IntegrityError("no free referral code after several attempts")


@transaction.atomic
def member_set_status(
    *,
    member: Member,
    status: str,
    operator: AbstractBaseUser | None,
    reason: str,
) -> Member:
    """Freeze, unfreeze or close a member, recording who did it and why.

    Allowed: active <-> frozen, active or frozen -> closed; closed is final. The member row is
    locked, so two operators changing the same member at once apply one after the other and the
    second sees the first's result. Raises InvalidStatusChange for anything else or a blank
    reason; nothing is written then.
    """
    reason = reason.strip()
    if not reason:
        raise InvalidStatusChange(_("Give a reason for the status change."))
    locked = Member.objects.select_for_update(of=("self",)).get(pk=member.pk)
    if status not in STATUS_TRANSITIONS.get(locked.status, ()):
        raise InvalidStatusChange(
            _("A %(current)s member cannot become %(new)s.")
            % {
                "current": Member.Status(locked.status).label,
                "new": Member.Status(status).label if status in Member.Status else status,
            },
            current=locked.status,
        )
    MemberStatusChange.objects.create(
        member=locked,
        from_status=locked.status,
        to_status=status,
        reason=reason,
        operator=operator,
    )
    locked.status = status
    locked.save(update_fields=["status", "updated_at"])
    member.status = locked.status
    member.updated_at = locked.updated_at
    return locked
