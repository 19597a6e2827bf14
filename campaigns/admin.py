"""Admin of campaigns. Expiry reminders: their settings, the templates (Chinese and English) and
the delivery log, where email and SMS left in doubt or failed can be queued again."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from campaigns import reminders
from campaigns.models import Channel, MessageTemplate, ReminderDelivery, ReminderSettings
from members.admin import SingletonAdmin, can_see_personal_data, mask_email, mask_phone
from points.admin import CappedCountPaginator, ReadOnlyAdmin


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
