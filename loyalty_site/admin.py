"""Admin of the audit trail, the API call records and the role groups: all read-only but groups."""

from __future__ import annotations

from decimal import Decimal

from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from pghistory.core import event_models

from loyalty_site.admin_base import ReadOnlyAdmin
from loyalty_site.admin_paginator import LargeTableAdmin
from loyalty_site.audit import DELETE, INSERT, PERSONAL_DATA, SHOWN_LABELS, UPDATE
from loyalty_site.models import ApiCallRecord, AuditEvent
from loyalty_site.roles import ROLE_LABELS

LABELS = {
    INSERT: _("created"),
    UPDATE: _("changed"),
    DELETE: _("deleted"),
    PERSONAL_DATA: _("personal data changed"),
}
EMPTY = "—"


def _tracked_models() -> dict[str, type]:
    """Audited models by label ("members.Tier"), each with its event model."""
    return {
        event_model.pgh_tracked_model._meta.label: event_model
        for event_model in event_models()
        if getattr(event_model, "pgh_tracked_model", None) is not None
    }


class TrackedModelFilter(admin.SimpleListFilter):
    title = _("record type")
    parameter_name = "model"

    def lookups(self, request, model_admin):
        found = [
            (label, event_model.pgh_tracked_model._meta.verbose_name)
            for label, event_model in _tracked_models().items()
        ]
        return sorted(found, key=lambda item: str(item[1]))

    def queryset(self, request, queryset):
        event_model = _tracked_models().get(self.value() or "")
        # Only that model's table is read, not the union of all of them.
        return queryset.across(event_model) if event_model else queryset


class ChangeKindFilter(admin.SimpleListFilter):
    title = _("change")
    parameter_name = "change"

    def lookups(self, request, model_admin):
        return list(LABELS.items())

    def queryset(self, request, queryset):
        return queryset.filter(pgh_label=self.value()) if self.value() in LABELS else queryset


class UserFilter(admin.SimpleListFilter):
    title = _("user")
    parameter_name = "user"

    def lookups(self, request, model_admin):
        staff = get_user_model().objects.filter(is_staff=True).order_by("username")
        return [(str(user.pk), user.get_username()) for user in staff]

    def queryset(self, request, queryset):
        if not (self.value() or "").isdigit():
            return queryset
        return queryset.filter(pgh_context__user=int(self.value()))


class ObjectFilter(admin.SimpleListFilter):
    """?object=<primary key>, together with a record type: one object's history (linked from
    the object column)."""

    title = _("object")
    parameter_name = "object"

    def lookups(self, request, model_admin):
        value = request.GET.get(self.parameter_name)
        return [(value, value)] if value else []

    def queryset(self, request, queryset):
        return queryset.filter(pgh_obj_id=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["pgh_created_at", "record_type", "object_link", "change", "who", "changes"]
    list_display_links = None
    list_filter = [
        TrackedModelFilter,
        ObjectFilter,
        UserFilter,
        ChangeKindFilter,
        ("pgh_created_at", admin.DateFieldListFilter),
    ]
    ordering = ["-pgh_created_at", "-pgh_id"]
    list_per_page = 50
    show_full_result_count = False
    actions = None

    def get_queryset(self, request):
        # The default manager of pghistory's aggregate is empty on purpose (dumpdata).
        return AuditEvent.objects.filter(pgh_label__in=SHOWN_LABELS)

    @admin.display(description=_("record type"))
    def record_type(self, event: AuditEvent) -> str:
        model = self._model(event)
        return model._meta.verbose_name if model else event.pgh_obj_model

    @admin.display(description=_("object"))
    def object_link(self, event: AuditEvent) -> str:
        history = f"?model={event.pgh_obj_model}&object={event.pgh_obj_id}"
        model = self._model(event)
        try:
            current = reverse(
                f"admin:{model._meta.app_label}_{model._meta.model_name}_change",
                args=[event.pgh_obj_id],
            )
        except (NoReverseMatch, AttributeError):
            return format_html('<a href="{}">#{}</a>', history, event.pgh_obj_id)
        return format_html(
            '<a href="{}">#{}</a> (<a href="{}">{}</a>)',
            history,
            event.pgh_obj_id,
            current,
            _("open"),
        )

    @admin.display(description=_("change"))
    def change(self, event: AuditEvent) -> str:
        return LABELS.get(event.pgh_label, event.pgh_label)

    @admin.display(description=_("by"))
    def who(self, event: AuditEvent) -> str:
        context = event.pgh_context or {}
        if context.get("username"):
            return context["username"]
        if context.get("partner_name"):
            return format_html(
                "{} ({}: {})", context["partner_name"], _("API key"), context.get("api_key", "")
            )
        return _("system")

    @admin.display(description=_("before → after"))
    def changes(self, event: AuditEvent) -> str:
        if event.pgh_label == PERSONAL_DATA:
            return _("Name, phone, email or birthday changed; the values are not kept.")
        model = self._model(event)
        if event.pgh_label == UPDATE:
            rows = [
                (
                    self._field_name(model, key),
                    self._value(model, key, before),
                    self._value(model, key, after),
                )
                for key, (before, after) in sorted((event.pgh_diff or {}).items())
            ]
        else:
            data = {k: v for k, v in (event.pgh_data or {}).items() if not k.startswith("pgh_")}
            rows = [
                (
                    self._field_name(model, key),
                    self._value(model, key, value) if event.pgh_label == DELETE else EMPTY,
                    self._value(model, key, value) if event.pgh_label == INSERT else EMPTY,
                )
                for key, value in sorted(data.items())
            ]
        if not rows:
            return EMPTY
        return format_html(
            '<table class="audit-diff">{}</table>',
            format_html_join("", "<tr><th>{}</th><td>{}</td><td>→ {}</td></tr>", rows),
        )

    @staticmethod
    def _model(event: AuditEvent):
        try:
            return apps.get_model(event.pgh_obj_model)
        except (LookupError, ValueError):
            return None

    @staticmethod
    def _field(model, column: str):
        if model is None:
            return None
        for field in model._meta.concrete_fields:
            if field.column == column:
                return field
        return None

    @classmethod
    def _field_name(cls, model, column: str) -> str:
        field = cls._field(model, column)
        return str(field.verbose_name) if field is not None else column

    @classmethod
    def _value(cls, model, column: str, value) -> str:
        if value is None or value == "":
            return EMPTY
        if isinstance(value, bool):
            return str(_("yes") if value else _("no"))
        field = cls._field(model, column)
        if isinstance(field, models.DecimalField) and isinstance(value, int | float):
            # JSON carries numerics as numbers: show them as the admin form does.
            return f"{Decimal(str(value)):.{field.decimal_places}f}"
        return str(value)


@admin.register(ApiCallRecord)
class ApiCallRecordAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = [
        "created_at",
        "partner",
        "api_key_prefix",
        "method",
        "path",
        "status_code",
        "idempotency_key",
        "request_id",
        "client_ip",
    ]
    list_display_links = None
    # One row per write, as many as ledger entries (docs/adr/0017): filters with an index
    # behind them only ((partner, created_at), BRIN on created_at); method and status would list
    # their values with a DISTINCT over the whole table (and only 2xx calls are recorded).
    list_filter = ["partner", "created_at"]
    list_select_related = ["partner"]
    search_fields = ["request_id", "idempotency_key", "api_key_prefix"]
    search_help_text = _(
        "Exact request id, Idempotency-Key or API key prefix; narrow by merchant or date first"
        " on a large table."
    )
    ordering = ["-id"]
    sortable_by = ["id"]
    actions = None

    def get_search_results(self, request, queryset, search_term):
        # Exact, case-sensitive equality (no UPPER() around the column), newest first.
        term = search_term.strip()
        if not term:
            return queryset, False
        found = Q(request_id=term) | Q(idempotency_key=term) | Q(api_key_prefix=term)
        return queryset.filter(found), False


admin.site.unregister(Group)


@admin.register(Group)
class RoleGroupAdmin(GroupAdmin):
    """Groups keep stable English names (loyalty_site/roles.py); the role's label is shown."""

    list_display = ["name", "role"]

    @admin.display(description=_("role"))
    def role(self, group: Group) -> str:
        return ROLE_LABELS.get(group.name, EMPTY)
