from __future__ import annotations

import pgtrigger
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.utils.translation import gettext_lazy as _
from pghistory.models import Events


class IdempotencyRecord(models.Model):
    """The stored outcome of a write sent with an Idempotency-Key (api.md, "Conventions").

    Written in the same transaction as the write's effects, so a record exists exactly when the
    effects do. Kept for IDEMPOTENCY_KEY_TTL_HOURS (at least 24 hours, as api.md promises).
    """

    # No index of its own: the unique (partner, key) index starts with it. A second index on
    # partner alone once led the planner to find a key by scanning all of a partner's records.
    partner = models.ForeignKey(
        "points.Partner",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("partner"),
        db_index=False,
    )
    key = models.CharField(_("idempotency key"), max_length=255)
    fingerprint = models.CharField(_("request fingerprint"), max_length=64)
    method = models.CharField(_("method"), max_length=8)
    path = models.CharField(_("path"), max_length=512)
    response_status = models.PositiveSmallIntegerField(_("response status"))
    response_body = models.JSONField(_("response body"), null=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")
        constraints = [
            models.UniqueConstraint(fields=["partner", "key"], name="idempotency_partner_key_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.partner_id}:{self.key}"


class SingletonSettings(models.Model):
    """Settings kept in exactly one row (pk=1), edited in admin; the database refuses a second.

    `get()` reads the row fresh and creates it with the field defaults when it is missing (a
    test that emptied the tables, a fresh database before the data migration ran).
    """

    SINGLETON_PK = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_PK, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        abstract = True
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="%(class)s_singleton"),
        ]

    @classmethod
    def get(cls):
        row, _created = cls.objects.get_or_create(pk=cls.SINGLETON_PK)
        return row


class ApiCallRecord(models.Model):
    """One partner API call that changed points or stock: who, from where, with which keys.

    Written by the call's own transaction (loyalty_site/audit.py), so a record exists exactly
    when the change does. Append-only: the database refuses UPDATE and DELETE.
    """

    partner = models.ForeignKey(
        "points.Partner",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("partner"),
        db_index=False,  # covered by apicallrecord_partner_idx
    )
    # The key's public prefix: unique per key and what the admin shows; the key's primary key
    # embeds its hash.
    api_key_prefix = models.CharField(_("API key"), max_length=16)
    method = models.CharField(_("method"), max_length=8)
    path = models.CharField(_("path"), max_length=512)
    idempotency_key = models.CharField(_("idempotency key"), max_length=255, blank=True)
    request_id = models.CharField(_("request id"), max_length=128, blank=True)
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(_("status code"))
    created_at = models.DateTimeField(_("created at"), db_default=models.functions.Now())

    class Meta:
        ordering = ["-id"]
        verbose_name = _("API call")
        verbose_name_plural = _("API calls")
        indexes = [
            # One row per earn: keep the indexes few (perf.md B2). BRIN for date ranges.
            models.Index(fields=["partner", "-created_at"], name="apicallrecord_partner_idx"),
            BrinIndex(fields=["created_at"], name="apicallrecord_created_brin"),
        ]
        triggers = [
            pgtrigger.Protect(
                name="apicallrecord_append_only",
                operation=pgtrigger.Update | pgtrigger.Delete,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.request_id})"


class AuditEvent(Events):
    """The audit trail: every recorded change of every audited model (loyalty_site/audit.py),
    read through pghistory's aggregate of the event tables. Never written directly; who made a
    change is in `pgh_context` (user / partner, url, request id, IP)."""

    class Meta:
        proxy = True
        verbose_name = _("audit event")
        verbose_name_plural = _("audit trail")
