"""Per-key rate limit (api.md): over it, 429 `throttled` with Retry-After.

A fixed-window counter per API key in the shared cache (the Redis of the deployment, so every
web process counts together). One atomic INCR per request instead of DRF's SimpleRateThrottle,
which reads and rewrites the whole request history of the key on every call. A client can send
up to twice the rate across a window boundary; that is the usual price of a fixed window.
"""

from __future__ import annotations

import time

from django.core.cache import cache
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
        try:
            count = cache.incr(key)
        except ValueError:
            # First request of the window. The key outlives its window, so it never expires
            # between the existence check and the increment of a later request.
            count = 1 if cache.add(key, 1, timeout=2 * period) else cache.incr(key)
        if count <= limit:
            return True
        self._wait = (window + 1) * period - now
        return False

    def wait(self) -> float | None:
        return self._wait
