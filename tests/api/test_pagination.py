"""Lists use cursor pagination: {"results": [...], "next": url|null} (api.md)."""

from __future__ import annotations

import pytest

from tests.factories import MemberFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.plumbing_urls")]


def test_a_list_answers_results_and_next_only(partner_api):
    MemberFactory.create_batch(3)

    body = partner_api("members:read").get("/api/v1/test/members").json()

    assert set(body) == {"results", "next"}
    assert len(body["results"]) == 3
    assert body["next"] is None


def test_following_next_walks_every_item_once_newest_first(partner_api):
    members = MemberFactory.create_batch(5)
    client = partner_api("members:read")

    seen, url = [], "/api/v1/test/members?page_size=2"
    while url:
        body = client.get(url).json()
        assert len(body["results"]) <= 2
        seen += [item["external_id"] for item in body["results"]]
        url = body["next"]

    assert seen == [m.external_id for m in reversed(members)]


def test_the_cursor_is_stable_when_new_items_arrive(partner_api):
    first = MemberFactory.create_batch(4)
    client = partner_api("members:read")
    page_one = client.get("/api/v1/test/members?page_size=2").json()

    MemberFactory()  # newer than everything on page one
    page_two = client.get(page_one["next"]).json()

    assert [i["external_id"] for i in page_two["results"]] == [
        m.external_id for m in reversed(first[:2])
    ]
