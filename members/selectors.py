"""Reads on members shared by the API, the admin and the mall."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from members.exceptions import MemberNotFound
from members.models import Member


def member_by_external_id(*, external_id: str) -> Member:
    """The member with this external id (tier loaded), or MemberNotFound (404 not_found)."""
    member = Member.objects.select_related("tier").filter(external_id=external_id).first()
    if member is None:
        raise MemberNotFound(external_id=external_id)
    return member


def member_search(*, queryset: QuerySet[Member], term: str) -> QuerySet[Member]:
    """Members whose external id or phone is exactly `term`, or whose name starts with it
    (case-insensitive); an email is matched exactly too.

    Every branch is served by an index (members_member_*_like, member_name_upper_prefix_idx),
    so the search stays fast on a million members; a "contains" search would scan them all.
    """
    term = term.strip()
    if not term:
        return queryset
    condition = Q(external_id=term) | Q(phone=term) | Q(name__istartswith=term)
    if "@" in term:
        condition |= Q(email=term)
    return queryset.filter(condition)
