"""Reads on members shared by the API, the admin and the mall."""

from __future__ import annotations

from members.exceptions import MemberNotFound
from members.models import Member


def member_by_external_id(*, external_id: str) -> Member:
    member = Member.objects.select_related("tier").filter(external_id=external_id).first()
    if member is None:
        raise MemberNotFound(external_id=external_id)
    return member
