"""Per-key rate limit: over it, 429 `throttled` with Retry-After (api.md)."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from tests.api.assertions import assert_problem

pytestmark = pytest.mark.django_db

URL = "/api/v1/members/u-throttle"


@pytest.fixture
def three_per_day(settings):
    # A day-long window: the test cannot straddle a window boundary in practice.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"partner_key": "3/day"},
    }


def test_counters_live_in_the_shared_redis_cache():
    # Every web process must count together; a per-process cache would multiply the limit.
    assert isinstance(caches["default"], RedisCache)


def test_a_key_over_its_rate_gets_429_throttled_with_retry_after(three_per_day, partner_api):
    client = partner_api("members:read")

    statuses = [client.get(URL).status_code for _ in range(3)]
    response = client.get(URL)

    assert statuses == [404, 404, 404]  # counted, whatever the answer
    assert_problem(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 86400


def test_each_key_has_its_own_budget(three_per_day, partner_api):
    busy, quiet = partner_api("members:read"), partner_api("members:read")
    for _ in range(4):
        busy.get(URL)

    assert busy.get(URL).status_code == 429
    assert quiet.get(URL).status_code == 404


def test_requests_without_a_key_are_refused_before_counting(three_per_day, partner_api):
    from rest_framework.test import APIClient

    for _ in range(5):
        assert APIClient().get(URL).status_code == 401
    assert partner_api("members:read").get(URL).status_code == 404


def test_the_window_counter_in_redis_expires_after_two_windows(three_per_day, partner_api):
    # One pipeline creates the counter with its expiry and counts; a counter without expiry
    # would live in Redis forever.
    from loyalty_site.api.throttling import _redis_client

    redis = _redis_client(caches["default"])
    before = set(redis.keys("*throttle:partner_key:*"))
    client = partner_api("members:read")
    client.get(URL)
    client.get(URL)

    (key,) = set(redis.keys("*throttle:partner_key:*")) - before
    assert int(redis.get(key)) == 2
    assert 0 < redis.ttl(key) <= 2 * 86400


def test_a_cache_other_than_redis_counts_too(three_per_day, partner_api, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    client = partner_api("members:read")

    statuses = [client.get(URL).status_code for _ in range(4)]

    assert statuses == [404, 404, 404, 429]
