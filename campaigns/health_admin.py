"""Programme health in the admin: the dashboard page, alerts (acknowledge), thresholds and
settings (editable), the rollups (read-only)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from campaigns import health, health_selectors
from campaigns.models import (
    DailyMerchantRollup,
    DailyProgrammeRollup,
    HealthAlert,
    HealthDashboard,
    HealthSettings,
    HealthThreshold,
)
from loyalty_site.admin_base import ReadOnlyAdmin
from loyalty_site.admin_singleton import SingletonAdmin

DASHBOARD_PERIODS = (30, 90, 180, 365)


@admin.register(HealthDashboard)
class HealthDashboardAdmin(ReadOnlyAdmin):
    """The dashboard: each metric over time with its threshold, points flow, tiers, segments."""

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            days = int(request.GET.get("days", 180))
        except ValueError:
            days = 180
        if days not in DASHBOARD_PERIODS:
            days = 180
        dashboard = health_selectors.health_dashboard(days=days)
        chart_data = {key: value for key, value in dashboard.items() if key != "open_alerts"}
        chart_data["labels"] = {
            "lower": gettext("alert below"),
            "upper": gettext("alert above"),
            "issued": gettext("issued"),
            "spent": gettext("spent"),
            "redeemed": gettext("redeemed"),
            "expired": gettext("expired"),
            "members": gettext("members"),
        }
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Programme health"),
            "opts": self.model._meta,
            "dashboard": dashboard,
            "dashboard_chart_data": chart_data,
            "periods": DASHBOARD_PERIODS,
            "days": days,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/campaigns/health_dashboard.html", context)


@admin.register(HealthAlert)
class HealthAlertAdmin(ReadOnlyAdmin):
    list_display = [
        "metric",
        "day",
        "value",
        "lower",
        "upper",
        "state",
        "raised_at",
        "acknowledged_by",
        "recovered_on",
    ]
    list_filter = ["state", "metric"]
    date_hierarchy = "day"
    list_select_related = ["acknowledged_by"]
    actions = ["acknowledge"]

    def has_change_permission(self, request, obj=None) -> bool:
        # Changing an alert means acknowledging it (the action); its fields stay read-only.
        return request.user.has_perm("campaigns.change_healthalert")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    @admin.action(description=_("Acknowledge selected alerts"), permissions=["change"])
    def acknowledge(self, request, queryset):
        done = sum(health.acknowledge_alert(alert=alert, user=request.user) for alert in queryset)
        self.message_user(
            request,
            ngettext("%(count)d alert acknowledged.", "%(count)d alerts acknowledged.", done)
            % {"count": done},
            messages.SUCCESS,
        )


@admin.register(HealthThreshold)
class HealthThresholdAdmin(admin.ModelAdmin):
    list_display = ["metric", "lower", "upper", "weeks_running", "is_active"]
    list_editable = ["lower", "upper", "weeks_running", "is_active"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(HealthSettings)
class HealthSettingsAdmin(SingletonAdmin):
    fields = ["monthly_budget", "alert_group", "updated_at"]
    readonly_fields = ["updated_at"]


@admin.register(DailyProgrammeRollup)
class DailyProgrammeRollupAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "issued",
        "spent",
        "redeemed",
        "expired",
        "reversed",
        "returned",
        "net_change",
        "outstanding",
        "active_members",
        "active_30d",
        "members",
        "order_amount",
    ]
    date_hierarchy = "day"
    show_full_result_count = False


@admin.register(DailyMerchantRollup)
class DailyMerchantRollupAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "partner",
        "issued",
        "spent",
        "redeemed",
        "expired",
        "reversed",
        "returned",
        "net_change",
        "outstanding",
        "active_members",
    ]
    list_filter = ["partner"]
    list_select_related = ["partner"]
    date_hierarchy = "day"
    show_full_result_count = False
