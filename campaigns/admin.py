"""Admin of earning rules, campaigns, tasks, check-in, referrals, A/B experiments and events.

Expiry reminders: their settings, the templates (Chinese and English) and the delivery log, where
email and SMS left in doubt or failed can be queued again."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from campaigns import reminders, scheduling
from campaigns.models import (
    Campaign,
    Channel,
    CheckInReward,
    EarningRule,
    Event,
    EventType,
    ExcludedProduct,
    Experiment,
    ExperimentArm,
    MemberTask,
    MessageTemplate,
    ReferralReward,
    ReferralSettings,
    ReminderDelivery,
    ReminderSettings,
    RuleRate,
    TaskProgress,
)
from members.admin import (
    MemberAdmin,
    SingletonAdmin,
    can_see_personal_data,
    mask_email,
    mask_phone,
)
from points.admin import CappedCountPaginator, ReadOnlyAdmin


class RuleRateInline(admin.TabularInline):
    model = RuleRate
    extra = 0


def _budget(obj) -> str:
    if obj.budget_points is None:
        return "-"
    return f"{obj.budget_used:,} / {obj.budget_points:,}"


@admin.register(EarningRule)
class EarningRuleAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "event_type", "status", "priority", "budget", "simulate"]
    list_filter = ["status", "event_type"]
    search_fields = ["code", "name"]
    inlines = [RuleRateInline]
    filter_horizontal = ["tiers", "segments", "partners"]
    readonly_fields = ["budget_used", "created_at", "updated_at"]
    actions = ["activate", "pause"]
    fieldsets = [
        (None, {"fields": ["code", "name", "event_type", "status", "priority"]}),
        (
            _("Points"),
            {
                "fields": [
                    "points_per_unit",
                    "fixed_points",
                    "tier_multiplier_applies",
                    "campaigns_apply",
                    "pending_days",
                ],
                "description": _(
                    "Points = floor((points per 1.00 x the amount that earns + fixed points) x "
                    "tier multiplier x the best campaign multiplier). Rates by category or SKU "
                    "below replace the rate for those items."
                ),
            },
        ),
        (
            _("Conditions (empty = any)"),
            {
                "fields": [
                    "min_amount",
                    "channels",
                    "stores",
                    "partners",
                    "categories",
                    "skus",
                    "tiers",
                    "segments",
                    "experiment_arm",
                    "weekdays",
                    ("time_from", "time_to"),
                    ("starts_at", "ends_at"),
                ]
            },
        ),
        (
            _("Caps and budget"),
            {
                "fields": [
                    ("cap_per_day", "cap_per_week", "cap_lifetime"),
                    "spend_ratio_cap",
                    ("budget_points", "budget_used"),
                ]
            },
        ),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description=_("budget used"))
    def budget(self, obj) -> str:
        return _budget(obj)

    @admin.display(description=_("simulation"))
    def simulate(self, obj) -> str:
        url = reverse("admin:campaigns_earningrule_simulate", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("simulate"))

    @admin.action(description=_("Activate the selected rules"), permissions=["change"])
    def activate(self, request, queryset):
        for rule in queryset:
            rule.status = EarningRule.Status.ACTIVE
            rule.save(update_fields=["status", "updated_at"])
        self.message_user(request, _("Rules activated."), messages.SUCCESS)

    @admin.action(description=_("Pause the selected rules"), permissions=["change"])
    def pause(self, request, queryset):
        for rule in queryset:
            rule.status = EarningRule.Status.PAUSED
            rule.save(update_fields=["status", "updated_at"])
        self.message_user(request, _("Rules paused."), messages.SUCCESS)

    def get_urls(self):
        from campaigns import simulation_views

        return [
            path(
                "<int:pk>/simulate/",
                self.admin_site.admin_view(simulation_views.simulate_rule(self)),
                name="campaigns_earningrule_simulate",
            ),
            *super().get_urls(),
        ]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "status",
        "is_running",
        "starts_at",
        "ends_at",
        "recurrence",
        "multiplier",
        "bonus_points",
        "budget",
        "schedule",
    ]
    list_filter = ["status", "is_running", "recurrence"]
    search_fields = ["code", "name"]
    filter_horizontal = ["tiers", "segments", "rules"]
    readonly_fields = ["budget_used", "is_running", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["code", "name", "status", "is_running"]}),
        (
            _("When (programme time zone; days run from local midnight to local midnight)"),
            {"fields": [("starts_at", "ends_at"), "recurrence", "weekdays", "month_days"]},
        ),
        (_("What"), {"fields": ["event_types", "rules", "multiplier", "bonus_points"]}),
        (_("Who (empty = everyone)"), {"fields": ["tiers", "segments", "experiment_arm"]}),
        (_("Budget"), {"fields": [("budget_points", "budget_used")]}),
    ]

    @admin.display(description=_("budget used"))
    def budget(self, obj) -> str:
        return _budget(obj)

    @admin.display(description=_("beat schedule"))
    def schedule(self, obj) -> str:
        url = reverse("admin:django_celery_beat_periodictask_changelist")
        return format_html('<a href="{}?q={}">{}</a>', url, f"campaign {obj.code}", _("tasks"))

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        scheduling.sync_campaign_schedule(campaign=form.instance)

    def delete_model(self, request, obj):
        scheduling.remove_campaign_schedule(campaign=obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for campaign in queryset:
            scheduling.remove_campaign_schedule(campaign=campaign)
        super().delete_queryset(request, queryset)

    def get_urls(self):
        from campaigns import simulation_views

        return [
            path(
                "<int:pk>/simulate/",
                self.admin_site.admin_view(simulation_views.simulate_campaign(self)),
                name="campaigns_campaign_simulate",
            ),
            *super().get_urls(),
        ]


class ExperimentArmInline(admin.TabularInline):
    model = ExperimentArm
    extra = 0


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "is_active", "started_at", "report"]
    inlines = [ExperimentArmInline]

    @admin.display(description=_("report"))
    def report(self, obj) -> str:
        url = reverse("admin:campaigns_experiment_report", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("compare arms"))

    def get_urls(self):
        from campaigns import simulation_views

        return [
            path(
                "<int:pk>/report/",
                self.admin_site.admin_view(simulation_views.experiment_report(self)),
                name="campaigns_experiment_report",
            ),
            *super().get_urls(),
        ]


@admin.register(EventType)
class EventTypeAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "is_active"]


@admin.register(ExcludedProduct)
class ExcludedProductAdmin(admin.ModelAdmin):
    list_display = ["kind", "code", "note"]
    list_filter = ["kind"]


@admin.register(MemberTask)
class MemberTaskAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "kind", "event_type", "required_count", "reward_points"]
    list_filter = ["kind", "is_active"]


@admin.register(CheckInReward)
class CheckInRewardAdmin(admin.ModelAdmin):
    list_display = ["streak_day", "points"]


@admin.register(ReferralSettings)
class ReferralSettingsAdmin(SingletonAdmin):
    pass


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ReferralReward)
class ReferralRewardAdmin(_ReadOnly):
    list_display = ["created_at", "inviter", "invitee", "outcome", "points", "device_id", "ip"]
    list_filter = ["outcome"]
    list_select_related = ["inviter", "invitee"]
    search_fields = ["inviter__external_id", "invitee__external_id"]


@admin.register(Event)
class EventAdmin(_ReadOnly):
    list_display = [
        "received_at",
        "type",
        "member",
        "partner",
        "reference",
        "points_awarded",
        "points_pending",
        "outcome",
    ]
    list_filter = ["type", "outcome"]
    list_select_related = ["member", "partner"]
    search_fields = ["reference", "member__external_id"]
    show_full_result_count = False


class TaskProgressInline(admin.TabularInline):
    model = TaskProgress
    fields = ["task", "period_start", "count", "completed_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0
    verbose_name_plural = _("tasks")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("task")


# The member page shows task progress (members knows nothing of campaigns: added from here).
MemberAdmin.inlines = [*MemberAdmin.inlines, TaskProgressInline]


# --- Expiry reminders ----------------------------------------------------------------------------
@admin.register(ReminderSettings)
class ReminderSettingsAdmin(SingletonAdmin):
    fieldsets = [
        (_("When"), {"fields": ["windows"]}),
        (
            _("Channels"),
            {"fields": ["email_enabled", "sms_enabled", "inbox_enabled", "webhook_enabled"]},
        ),
        (None, {"fields": ["updated_at"]}),
    ]
    readonly_fields = ["updated_at"]


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ["channel", "subject_zh_hans", "subject_en", "updated_at"]
    fieldsets = [
        (None, {"fields": ["channel"]}),
        (_("Chinese"), {"fields": ["subject_zh_hans", "body_zh_hans"]}),
        (_("English"), {"fields": ["subject_en", "body_en"]}),
    ]


@admin.register(ReminderDelivery)
class ReminderDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "member",
        "channel",
        "window_days",
        "expires_on",
        "points",
        "status",
        "recipient_shown",
        "claimed_at",
        "sent_at",
        "attempts",
    ]
    list_filter = ["status", "channel", "window_days", "expires_on"]
    list_select_related = ["member"]
    search_fields = ["=member__external_id"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    ordering = ["-id"]
    actions = ["queue_again"]
    fields = [
        "member",
        "channel",
        "window_days",
        "expires_on",
        "points",
        "status",
        "recipient_shown",
        "language",
        "subject",
        "body",
        "as_of",
        "claimed_at",
        "attempted_at",
        "attempts",
        "sent_at",
        "error",
    ]
    readonly_fields = fields

    def get_list_display(self, request):
        if can_see_personal_data(request):
            return ["recipient" if n == "recipient_shown" else n for n in self.list_display]
        return self.list_display

    def get_fields(self, request, obj=None):
        if can_see_personal_data(request):
            return ["recipient" if n == "recipient_shown" else n for n in self.fields]
        return self.fields

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    @admin.display(description=_("recipient"))
    def recipient_shown(self, delivery: ReminderDelivery) -> str:
        """Masked like the member's own page for operators without the personal data right."""
        if delivery.channel == Channel.EMAIL:
            return mask_email(delivery.recipient)
        if delivery.channel == Channel.SMS:
            return mask_phone(delivery.recipient)
        return delivery.recipient

    @admin.action(
        description=_("Send again with the next run (email/SMS in doubt or failed)"),
        permissions=["view"],
    )
    def queue_again(self, request, queryset) -> None:
        if not request.user.has_perm("campaigns.change_reminderdelivery"):
            self.message_user(request, _("You may not queue reminders."), messages.ERROR)
            return
        count = reminders.queue_deliveries_again(deliveries=queryset)
        self.message_user(
            request,
            ngettext(
                "%(count)d reminder will be sent with the next run.",
                "%(count)d reminders will be sent with the next run.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )


# Programme health: dashboard, alerts, thresholds (registrations happen on import).
from campaigns import health_admin  # noqa: E402, F401
