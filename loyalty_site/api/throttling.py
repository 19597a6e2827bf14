"""Per-key rate limit (api.md): over it, 429 `throttled` with Retry-After."""

from rest_framework.throttling import SimpleRateThrottle

from loyalty_site.api.auth import PartnerPrincipal


class PartnerKeyRateThrottle(SimpleRateThrottle):
    scope = "partner_key"

    def get_cache_key(self, request, view):
        principal = request.user
        if not isinstance(principal, PartnerPrincipal):
            return None  # unauthenticated requests are refused before they cost anything
        return self.cache_format % {"scope": self.scope, "ident": principal.key_id}
