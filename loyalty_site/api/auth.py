"""`Authorization: Api-Key <key>` authentication and per-view scopes (api.md, "Conventions").

Keys are stored hashed (SHA-512 of a high-entropy key, djangorestframework-api-key). A verified
key is remembered in this process for a few seconds so that the hot path (POST /events) does
not pay a query per request; revoking a key takes effect within API_KEY_CACHE_SECONDS.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, permissions

from points.models import Partner, PartnerAPIKey

KEYWORD = "Api-Key"


@dataclass(frozen=True)
class PartnerPrincipal:
    """What `request.user` is on the partner API: the partner behind a verified key."""

    partner: Partner
    key_id: str
    key_prefix: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> int:
        return self.partner.pk

    def __str__(self) -> str:
        return str(self.partner)


class _VerifiedKeyCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, PartnerPrincipal]] = {}

    def get(self, digest: str) -> PartnerPrincipal | None:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, digest: str, principal: PartnerPrincipal) -> None:
        ttl = getattr(settings, "API_KEY_CACHE_SECONDS", 10)
        if ttl <= 0:
            return
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + ttl, principal)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


verified_keys = _VerifiedKeyCache()


def principal_for_key(key: str) -> PartnerPrincipal | None:
    """The partner behind a plain key, or None when the key is unknown, revoked or expired."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    principal = verified_keys.get(digest)
    if principal is not None:
        return principal
    prefix, dot, _secret = key.partition(".")
    if not dot:
        return None
    api_key = (
        PartnerAPIKey.objects.get_usable_keys()
        .select_related("partner")
        .filter(prefix=prefix)
        .first()
    )
    if api_key is None or not api_key.is_valid(key):
        return None
    if api_key.has_expired or not api_key.partner.is_active:
        return None
    principal = PartnerPrincipal(
        partner=api_key.partner,
        key_id=api_key.pk,
        key_prefix=api_key.prefix,
        scopes=frozenset(api_key.scopes),
    )
    verified_keys.put(digest, principal)
    return principal


class PartnerKeyAuthentication:
    """DRF authentication class for partner API keys."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        keyword, _sep, key = header.partition(" ")
        key = key.strip()
        if keyword.lower() != KEYWORD.lower() or not key or " " in key:
            raise exceptions.AuthenticationFailed(
                _("Use the header 'Authorization: Api-Key <key>'.")
            )
        principal = principal_for_key(key)
        if principal is None:
            raise exceptions.AuthenticationFailed(_("The API key is not valid or was revoked."))
        return principal, principal

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) when the key is missing or bad.
        return KEYWORD


class HasPartnerKey(permissions.BasePermission):
    """A valid partner key, and the scope the view declares in `required_scopes`."""

    def has_permission(self, request, view) -> bool:
        principal = request.user
        if not isinstance(principal, PartnerPrincipal):
            raise exceptions.NotAuthenticated(
                _("Send the partner API key as 'Authorization: Api-Key <key>'.")
            )
        needed = required_scopes(view, request.method)
        missing = [scope for scope in needed if scope not in principal.scopes]
        if missing:
            raise exceptions.PermissionDenied(
                _("This API key lacks the scope %(scopes)s.") % {"scopes": ", ".join(missing)}
            )
        return True


def required_scopes(view, method: str) -> list[str]:
    """The scopes `method` needs on `view`, from its `required_scopes` attribute.

    `required_scopes` is a list (every method) or a dict from HTTP method to a list. A method the
    view implements but the dict does not list is refused, so a new handler is never open to
    every key by omission; HEAD needs what GET needs; OPTIONS only describes the endpoint.
    """
    scopes = getattr(view, "required_scopes", None)
    if scopes is None:
        raise exceptions.PermissionDenied(_("This operation is not open to partner keys."))
    if not isinstance(scopes, dict):
        return list(scopes)
    method = "GET" if method == "HEAD" else method
    if method in scopes:
        return list(scopes[method])
    if method == "OPTIONS" or not hasattr(view, method.lower()):
        return []  # nothing to protect: OPTIONS describes, an unknown method gets 405
    raise exceptions.PermissionDenied(_("This operation is not open to partner keys."))
