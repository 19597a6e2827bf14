"""Admin of earning rules, campaigns, tasks, check-in, referrals, A/B experiments and events.

Expiry reminders: their settings, the templates (Chinese and English) and the delivery log, where
email and SMS left in doubt or failed can be queued again."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from campaigns import reminders, scheduling, services
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
    HeldEvent,
    MemberTask,
    MessageTemplate,
    ReferralReward,
    ReferralSettings,
    ReminderDelivery,
    ReminderSettings,
    RiskLimits,
    RuleRate,
    TaskProgress,
)
from loyalty_site.admin_base import ReadOnlyAdmin
from loyalty_site.admin_paginator import LargeTableAdmin
from loyalty_site.admin_singleton import SingletonAdmin
from loyalty_site.exceptions import LoyaltyError
from members.admin import (
    MemberAdmin,
    can_see_personal_data,
    mask_email,
    mask_phone,
)
from points.admin import MAX_ACTION_ROWS, _action_form


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


@admin.register(ReferralReward)
class ReferralRewardAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "inviter", "invitee", "outcome", "points", "device_id", "ip"]
    list_filter = ["outcome"]
    list_select_related = ["inviter", "invitee"]
    search_fields = ["inviter__external_id", "invitee__external_id"]


@admin.register(Event)
class EventAdmin(LargeTableAdmin, ReadOnlyAdmin):
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
    # As many rows as earns (docs/adr/0017): newest first along the primary key, no sorting by
    # other columns, and the search finds a member through its unique external id.
    list_filter = ["type", "outcome"]
    list_select_related = ["member", "partner"]
    search_fields = ["member__external_id"]
    search_help_text = _("Exact member external id.")
    ordering = ["-id"]
    sortable_by = ["id"]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(member__external_id=term), False


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
class ReminderDeliveryAdmin(LargeTableAdmin, ReadOnlyAdmin):
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


# --- Risk control (docs/adr/0018) -----------------------------------------------------------------
@admin.register(RiskLimits)
class RiskLimitsAdmin(SingletonAdmin):
    fieldsets = [
        (
            _("Anomaly limits (empty = off)"),
            {
                "fields": [
                    "max_points_per_event",
                    "max_points_per_member_day",
                    "max_events_per_member_hour",
                    "max_rewards_per_device_day",
                ]
            },
        ),
        (None, {"fields": ["updated_at"]}),
    ]
    readonly_fields = ["updated_at"]


class HeldReasonFilter(admin.SimpleListFilter):
    title = _("reason")
    parameter_name = "reason"

    def lookups(self, request, model_admin):
        return HeldEvent.Reason.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(reasons__contains=[self.value()])
        return queryset


class RejectHeldEventsForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"), max_length=1000, widget=forms.Textarea(attrs={"rows": 3, "cols": 60})
    )


@admin.register(HeldEvent)
class HeldEventAdmin(ReadOnlyAdmin):
    """The review queue: events held by a risk limit, why, and the decision. Reviewers (the
    `review_event` permission) approve (the held points are granted then) or reject with a
    reason, one by one or in bulk; nothing is deleted."""

    list_display = [
        "held_at",
        "event_link",
        "member",
        "event_type",
        "reference",
        "points",
        "reasons_display",
        "status",
        "reviewer",
        "decided_at",
    ]
    list_filter = ["status", HeldReasonFilter, ("held_at", admin.DateFieldListFilter)]
    list_select_related = ["event__member", "reviewer"]
    search_fields = ["=event__reference", "=event__member__external_id"]
    show_full_result_count = False
    actions = ["approve_selected", "reject_selected"]
    fields = [
        "event_link",
        "member",
        "event_type",
        "reference",
        "reasons_display",
        "details",
        "awards",
        "points",
        "growth_spent",
        "status",
        "held_at",
        "reviewer",
        "decided_at",
        "decision_reason",
    ]
    readonly_fields = fields

    def has_review_permission(self, request) -> bool:
        return request.user.has_perm("campaigns.review_event")

    @admin.display(description=_("event"))
    def event_link(self, hold: HeldEvent):
        url = reverse("admin:campaigns_event_change", args=[hold.event_id])
        return format_html('<a href="{}">#{}</a>', url, hold.event_id)

    @admin.display(description=_("member"), ordering="event__member__external_id")
    def member(self, hold: HeldEvent) -> str:
        return hold.event.member.external_id

    @admin.display(description=_("type"))
    def event_type(self, hold: HeldEvent) -> str:
        return hold.event.type

    @admin.display(description=_("reference"))
    def reference(self, hold: HeldEvent) -> str:
        return hold.event.reference

    @admin.display(description=_("why held"))
    def reasons_display(self, hold: HeldEvent) -> str:
        labels = dict(HeldEvent.Reason.choices)
        parts = []
        for reason in hold.reasons:
            seen = hold.details.get(reason, {})
            parts.append(
                gettext("%(reason)s: %(value)s > %(limit)s")
                % {
                    "reason": labels.get(reason, reason),
                    "value": seen.get("value", "?"),
                    "limit": seen.get("limit", "?"),
                }
            )
        return "; ".join(parts)

    def _decide(self, request, queryset, decide) -> tuple[int, int]:
        done = skipped = 0
        for hold_id in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                if decide(hold_id):
                    done += 1
                else:
                    skipped += 1
            except LoyaltyError as error:
                self.message_user(request, f"#{hold_id}: {error.message}", messages.ERROR)
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(count)d event was already decided and was left as it is.",
                    "%(count)d events were already decided and were left as they are.",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )
        return done, skipped

    @admin.action(description=_("Approve: grant the held points"), permissions=["review"])
    def approve_selected(self, request, queryset):
        if queryset.count() > MAX_ACTION_ROWS:
            self.message_user(
                request,
                gettext("Select at most %(max)d events at a time.") % {"max": MAX_ACTION_ROWS},
                messages.ERROR,
            )
            return
        done, _skipped = self._decide(
            request,
            queryset,
            lambda hold_id: services.approve_held_event(hold_id=hold_id, reviewer=request.user),
        )
        if done:
            self.message_user(
                request,
                ngettext(
                    "Approved %(count)d event: its points were granted.",
                    "Approved %(count)d events: their points were granted.",
                    done,
                )
                % {"count": done},
                messages.SUCCESS,
            )

    @admin.action(description=_("Reject (with a reason)"), permissions=["review"])
    def reject_selected(self, request, queryset):
        if queryset.count() > MAX_ACTION_ROWS:
            self.message_user(
                request,
                gettext("Select at most %(max)d events at a time.") % {"max": MAX_ACTION_ROWS},
                messages.ERROR,
            )
            return None
        form = RejectHeldEventsForm(request.POST if "apply" in request.POST else None)
        if not (form.is_bound and form.is_valid()):
            return _action_form(
                self,
                request,
                queryset,
                form=form,
                action="reject_selected",
                title=_("Reject held events"),
                explanation=_(
                    "The selected events get no points; the reason is recorded with each."
                ),
                submit=gettext("Reject"),
            )
        reason = form.cleaned_data["reason"]
        done, _skipped = self._decide(
            request,
            queryset,
            lambda hold_id: services.reject_held_event(
                hold_id=hold_id, reviewer=request.user, reason=reason
            ),
        )
        if done:
            self.message_user(
                request,
                ngettext("Rejected %(count)d event.", "Rejected %(count)d events.", done)
                % {"count": done},
                messages.SUCCESS,
            )
        return None


# Programme health: dashboard, alerts, thresholds (registrations happen on import).
from campaigns import health_admin  # noqa: E402, F401
