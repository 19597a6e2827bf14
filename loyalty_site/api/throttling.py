"""Per-key rate limit (api.md): over it, 429 `throttled` with Retry-After.

A fixed-window counter per API key in the shared cache (the Redis of the deployment, so every
web process counts together). One atomic INCR per request instead of DRF's SimpleRateThrottle,
which reads and rewrites the whole request history of the key on every call. A client can send
up to twice the rate across a window boundary; that is the usual price of a fixed window.

On Redis the counter costs one round trip: a pipeline of SET NX EX (creates the window's key
with its expiry, only once) and INCR, sent through a client kept for the process on the cache's
own connection pool (Django's cache API would make two round trips and build a new client per
call; docs/adr/0019). Other cache backends take the portable incr/add path.
"""

from __future__ import annotations

import time

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from loyalty_site.api.auth import PartnerPrincipal

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """ "6000/min" -> (6000, 60): requests allowed and the window in seconds."""
    count, _slash, period = rate.partition("/")
    return int(count), PERIODS[period.strip()[0]]


class PartnerKeyRateThrottle(BaseThrottle):
    """At most DEFAULT_THROTTLE_RATES["partner_key"] requests per key per window."""

    scope = "partner_key"

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request, view) -> bool:
        principal = request.user
        if not isinstance(principal, PartnerPrincipal):
            return True  # unauthenticated requests are refused before they cost anything
        # Read per request, not at import, so a changed setting applies at once.
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        if not rate:
            return True
        limit, period = parse_rate(rate)
        now = time.time()
        window = int(now // period)
        key = f"throttle:{self.scope}:{principal.key_prefix}:{period}:{window}"
        count = _count(key, timeout=2 * period)
        if count <= limit:
            return True
        self._wait = (window + 1) * period - now
        return False

    def wait(self) -> float | None:
        return self._wait


_redis_clients: dict[int, tuple[RedisCache, object]] = {}


def _redis_client(backend: RedisCache):
    """A redis-py client on the cache's write connection pool, made once per cache object.

    (redis-py pools notice a fork and reconnect, so a client made before gunicorn forks is safe.)
    """
    known = _redis_clients.get(id(backend))
    if known is not None and known[0] is backend:
        return known[1]
    inner = backend._cache  # Django's RedisCacheClient: its pool and client class
    client = inner._client(connection_pool=inner._get_connection_pool(write=True))
    _redis_clients[id(backend)] = (backend, client)
    return client


def _count(key: str, *, timeout: int) -> int:
    """Add one to the window's counter and return it. The key outlives its window (timeout is
    twice the period), so it never expires between a request's check and its increment."""
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        full_key = cache.make_and_validate_key(key)
        pipe = _redis_client(cache).pipeline(transaction=False)
        # Stored as a plain integer, as Django's own incr() stores it.
        pipe.set(full_key, 0, ex=timeout, nx=True)
        pipe.incr(full_key)
        _created, count = pipe.execute()
        return count
    try:
        return cache.incr(key)
    except ValueError:
        # First request of the window.
        return 1 if cache.add(key, 1, timeout=timeout) else cache.incr(key)
