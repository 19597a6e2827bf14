"""The ledger in the Django admin: programme settings, partners and their keys, read-only
accounts, entries, lots, orders and outbox events, and webhook endpoints and deliveries.

Entry and lot lists stay fast on tens of millions of rows (docs/adr/0017): one query for the
page (member and merchant joined), no unfiltered second count, a count bounded by
LargeTablePaginator, an index behind the ordering, every default filter and the search, and
sorting only by indexed columns. Points change only through services: the "Adjust points"
action calls `adjust`, or stores a request for a second operator above the
approval threshold (maker-checker and bulk grants: points/grants_admin.py).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Q
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.formats import localize
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.admin import APIKeyModelAdmin

from loyalty_site.admin_base import ReadOnlyAdmin
from loyalty_site.admin_paginator import LargeTableAdmin
from loyalty_site.admin_singleton import SingletonAdmin
from loyalty_site.api.keys import create_partner_key
from loyalty_site.exceptions import LoyaltyError
from points import grants, services, webhooks
from points.models import (
    Account,
    ApiScope,
    Conversion,
    Entry,
    ExchangePartner,
    IssuanceFreeze,
    Lot,
    Order,
    OutboxEvent,
    Partner,
    PartnerAPIKey,
    ProgrammeSettings,
    Transfer,
    TransferSettings,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

# An action runs one transaction per selected row; more belongs in a batch job.
MAX_ACTION_ROWS = 500


def _action_form(modeladmin, request, queryset, *, form, action, title, explanation, submit):
    """Render the intermediate page of an action that needs input (a form) before it runs."""
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "explanation": explanation,
        "opts": modeladmin.model._meta,
        "items": [str(row) for row in queryset[:20]],
        "count": queryset.count(),
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action": action,
        "form": form,
        "submit_label": submit,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media,
    }
    return TemplateResponse(request, "admin/points/action_form.html", context)


def _accounts_found_by(term: str, *, by_phone: bool = False) -> list[int]:
    """Accounts of the member whose external id (or phone) is exactly `term`.

    The admin's "=field" search means iexact, which no index serves (a scan of a million
    members), and an OR across the member join defeats the ledger's indexes too: look the
    account up first, then filter the large table on its own account_id index.
    """
    condition = Q(member__external_id=term)
    if by_phone:
        condition |= Q(member__phone=term)
    return list(Account.objects.filter(condition).values_list("pk", flat=True))


# --- Programme settings -----------------------------------------------------------------------
@admin.register(ProgrammeSettings)
class ProgrammeSettingsAdmin(SingletonAdmin):
    """One settings row: the change list opens its change form; saving goes via the service."""

    fieldsets = [
        (_("Value"), {"fields": ["point_value", "currency", "time_zone"]}),
        (_("Earning"), {"fields": ["pending_days"]}),
        (_("Expiry"), {"fields": ["expiry_policy", "expiry_period"]}),
        (
            _("Refunds and debt"),
            {"fields": ["refund_after_spend_policy", "negative_balance_limit"]},
        ),
        (None, {"fields": ["updated_at"]}),
    ]
    readonly_fields = ["updated_at"]

    def save_model(self, request, obj, form, change) -> None:
        services.programme_settings_save(programme=obj)


# --- Partners and keys -----------------------------------------------------------------------
class PartnerAPIKeyInline(admin.TabularInline):
    model = PartnerAPIKey
    fields = ["name", "prefix", "scopes", "created", "expiry_date", "revoked"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # keys are created by the "Create an API key" action, shown once


class CreateKeyForm(forms.Form):
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"), choices=ApiScope.choices, widget=forms.CheckboxSelectMultiple
    )
    key_name = forms.CharField(label=_("Key name"), max_length=50, required=False)


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "is_active", "created_at"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name"]
    inlines = [PartnerAPIKeyInline]
    actions = ["create_api_key"]

    @admin.action(description=_("Create an API key for the selected partners"))
    def create_api_key(self, request, queryset):
        form = CreateKeyForm(request.POST if "apply" in request.POST else None)
        if not (form.is_bound and form.is_valid()):
            return _action_form(
                self,
                request,
                queryset,
                form=form,
                action="create_api_key",
                title=_("Create an API key"),
                explanation=_("The key is shown once, on the next page; only its hash is kept."),
                submit=gettext("Create"),
            )
        for partner in queryset.order_by("pk"):
            try:
                _api_key, plain_key = create_partner_key(
                    partner_name=partner.name,
                    scopes=form.cleaned_data["scopes"],
                    key_name=form.cleaned_data["key_name"],
                )
            except LoyaltyError as error:
                self.message_user(request, f"{partner}: {error.message}", messages.ERROR)
                continue
            self.message_user(
                request,
                gettext(
                    "API key for %(partner)s: %(key)s. Store it somewhere safe now: it will not "
                    "be shown again."
                )
                % {"partner": partner.name, "key": plain_key},
                messages.WARNING,
            )
        return None


@admin.register(PartnerAPIKey)
class PartnerAPIKeyAdmin(APIKeyModelAdmin):
    list_display = ["prefix", "name", "partner", "scopes", "created", "expiry_date", "revoked"]
    list_filter = ["partner", "revoked", "created"]
    list_select_related = ["partner"]
    search_fields = ["name", "prefix", "partner__name"]

    def has_add_permission(self, request) -> bool:
        return False  # through the partner's "Create an API key" action

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "partner", "scopes"]


# --- Accounts and the adjust action ------------------------------------------------------------
class AdjustPointsForm(forms.Form):
    points = forms.IntegerField(
        label=_("Points"), help_text=_("Positive to add points, negative to take them away.")
    )
    reason = forms.CharField(
        label=_("Reason"), max_length=1000, widget=forms.Textarea(attrs={"rows": 3, "cols": 60})
    )

    def clean_points(self) -> int:
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError(_("An adjustment cannot be zero."))
        return points


@admin.register(Account)
class AccountAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = ["member_external_id", "member_name", "available", "pending", "updated_at"]
    search_fields = ["=member__external_id", "=member__phone"]
    search_help_text = _("Exact member external id or phone.")
    list_select_related = ["member"]
    ordering = ["-id"]
    actions = ["adjust_points"]
    fields = [
        "member",
        "available",
        "pending",
        "lifetime_earned",
        "lifetime_spent",
        "lifetime_expired",
        "credit_limit",
        "updated_at",
    ]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(pk__in=_accounts_found_by(term, by_phone=True)), False

    @admin.display(description=_("member"), ordering="member__external_id")
    def member_external_id(self, account: Account) -> str:
        return account.member.external_id

    @admin.display(description=_("name"))
    def member_name(self, account: Account) -> str:
        return account.member.name

    def has_change_permission(self, request, obj=None) -> bool:
        # Needed for the adjust action to be offered; the form itself stays read-only.
        return obj is None and request.user.has_perm("points.change_account")

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    @admin.action(description=_("Adjust points"), permissions=["change"])
    def adjust_points(self, request, queryset):
        count = queryset.count()
        if count > MAX_ACTION_ROWS:
            self.message_user(
                request,
                gettext("Select at most %(max)d accounts at a time.") % {"max": MAX_ACTION_ROWS},
                messages.ERROR,
            )
            return None
        form = AdjustPointsForm(request.POST if "apply" in request.POST else None)
        if not (form.is_bound and form.is_valid()):
            return _action_form(
                self,
                request,
                queryset.select_related("member"),
                form=form,
                action="adjust_points",
                title=_("Adjust points"),
                explanation=_(
                    "Each selected member gets this adjustment, recorded with the reason."
                ),
                submit=gettext("Adjust"),
            )
        points, reason = form.cleaned_data["points"], form.cleaned_data["reason"]
        adjusted = requested = 0
        for account in queryset.select_related("member").order_by("pk"):
            try:
                # Above the approval threshold this stores a request for a second operator.
                outcome = grants.adjust_or_request_approval(
                    member=account.member, points=points, reason=reason, operator=request.user
                )
            except LoyaltyError as error:
                self.message_user(
                    request, f"{account.member.external_id}: {error.message}", messages.ERROR
                )
            else:
                adjusted += outcome.entry is not None
                requested += outcome.request is not None
        if requested:
            self.message_user(
                request,
                ngettext(
                    "%(count)d adjustment of %(points)+d points waits for another operator's "
                    "approval (Adjustment requests).",
                    "%(count)d adjustments of %(points)+d points wait for another operator's "
                    "approval (Adjustment requests).",
                    requested,
                )
                % {"count": requested, "points": points},
                messages.WARNING,
            )
        if adjusted:
            self.message_user(
                request,
                ngettext(
                    "Adjusted %(count)d account by %(points)+d points.",
                    "Adjusted %(count)d accounts by %(points)+d points.",
                    adjusted,
                )
                % {"count": adjusted, "points": points},
                messages.SUCCESS,
            )
        return None


# --- The ledger, read-only ----------------------------------------------------------------------
@admin.register(Entry)
class EntryAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = [
        "id",
        "created_at",
        "member_external_id",
        "kind",
        "amount",
        "balance_after",
        "partner",
        "reference",
        "memo",
    ]
    # Each filter has its index: (kind, id), (partner, id); created_at follows id (append-only),
    # so a date range is read newest first along the primary key or through the BRIN index.
    list_filter = ["kind", "partner", ("created_at", admin.DateFieldListFilter)]
    # Listed for the search box; get_search_results below decides how they are matched.
    search_fields = ["=account__member__external_id", "=reference"]
    search_help_text = _("Exact member external id or exact reference.")
    list_select_related = ["account__member", "partner"]
    ordering = ["-id"]
    # Sorting by another column would sort millions of rows on every page.
    sortable_by = ["id"]
    raw_id_fields = ["account", "related_entry", "operator", "approved_by"]

    def get_search_results(self, request, queryset, search_term):
        # Two index lookups (account_id, reference) combined by a BitmapOr.
        term = search_term.strip()
        if not term:
            return queryset, False
        accounts = _accounts_found_by(term)
        return queryset.filter(Q(account_id__in=accounts) | Q(reference=term)), False

    @admin.display(description=_("member"))
    def member_external_id(self, entry: Entry) -> str:
        return entry.account.member.external_id


@admin.register(Lot)
class LotAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = [
        "id",
        "member_external_id",
        "state",
        "amount",
        "remaining",
        "expires_at",
        "available_at",
        "partner",
        "created_at",
    ]
    # Each filter has its index: (state, id), (partner, id), (expires_at, id).
    list_filter = ["state", "partner", ("expires_at", admin.DateFieldListFilter)]
    # Listed for the search box; get_search_results below decides how it is matched.
    search_fields = ["=account__member__external_id"]
    search_help_text = _("Exact member external id.")
    list_select_related = ["account__member", "partner"]
    ordering = ["-id"]
    sortable_by = ["id", "expires_at"]
    raw_id_fields = ["account", "earn_entry"]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(account_id__in=_accounts_found_by(term)), False

    def get_ordering(self, request):
        # Lots expiring in a window are listed in expiry order: the (expires_at, id) index
        # then serves both the range and the order, where newest-first would read past every
        # lot earned since (expiry is a year after earning).
        if any(name.startswith("expires_at__") for name in request.GET):
            return ["-expires_at", "-id"]
        return super().get_ordering(request)

    @admin.display(description=_("member"))
    def member_external_id(self, lot: Lot) -> str:
        return lot.account.member.external_id


@admin.register(Order)
class OrderAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = [
        "reference",
        "partner",
        "member_external_id",
        "amount",
        "refunded_amount",
        "points_earned",
        "points_reversed",
        "points_spent",
        "points_returned",
        "created_at",
    ]
    list_filter = ["partner"]
    search_fields = ["=reference", "=account__member__external_id"]
    list_select_related = ["account__member", "partner"]
    ordering = ["-id"]
    raw_id_fields = ["account", "earn_entry", "spend_entry"]

    @admin.display(description=_("member"))
    def member_external_id(self, order: Order) -> str:
        return order.account.member.external_id


@admin.register(OutboxEvent)
class OutboxEventAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = ["id", "type", "member_external_id", "created_at", "published_at"]
    list_filter = ["type", ("published_at", admin.EmptyFieldListFilter)]
    search_fields = ["=member_external_id"]
    ordering = ["-id"]


# --- Transfers and exchange (docs/adr/0016) ----------------------------------------------------
@admin.register(TransferSettings)
class TransferSettingsAdmin(SingletonAdmin):
    """The daily limits of transfers between members: one row, opened from the change list."""

    fields = ["daily_out_limit", "daily_in_limit", "updated_at"]
    readonly_fields = ["updated_at"]


@admin.register(ExchangePartner)
class ExchangePartnerAdmin(admin.ModelAdmin):
    """Other programmes members exchange points with. The rate used is base rate x factor; the
    factor stays within its bounds (validated here, enforced by CHECK constraints)."""

    list_display = [
        "code",
        "name",
        "base_rate",
        "factor",
        "current_rate",
        "daily_out_limit",
        "daily_in_limit",
        "is_active",
    ]
    list_filter = ["is_active"]
    search_fields = ["code", "name"]
    fieldsets = [
        (None, {"fields": ["code", "name", "unit_name", "is_active"]}),
        (
            _("Rate (our points per partner unit)"),
            {"fields": ["base_rate", "min_factor", "max_factor", "factor", "current_rate"]},
        ),
        (_("Daily limits per member"), {"fields": ["daily_out_limit", "daily_in_limit"]}),
        (None, {"fields": ["updated_at"]}),
    ]
    readonly_fields = ["current_rate", "updated_at"]

    @admin.display(description=_("rate now"))
    def current_rate(self, exchange_partner: ExchangePartner) -> str:
        if exchange_partner.base_rate is None or exchange_partner.factor is None:
            return "-"
        return f"{services.exchange_rate(exchange_partner).normalize():f}"

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # conversions refer to it: make it inactive instead


@admin.register(Transfer)
class TransferAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = ["id", "created_at", "sender", "recipient", "points", "partner", "reference"]
    list_filter = ["partner", ("created_at", admin.DateFieldListFilter)]
    search_fields = [
        "=reference",
        "=from_account__member__external_id",
        "=to_account__member__external_id",
    ]
    list_select_related = ["from_account__member", "to_account__member", "partner"]
    ordering = ["-id"]
    raw_id_fields = ["from_account", "to_account", "out_entry", "in_entry"]

    @admin.display(description=_("from"))
    def sender(self, transfer: Transfer) -> str:
        return transfer.from_account.member.external_id

    @admin.display(description=_("to"))
    def recipient(self, transfer: Transfer) -> str:
        return transfer.to_account.member.external_id


@admin.register(Conversion)
class ConversionAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = [
        "id",
        "created_at",
        "member_external_id",
        "exchange_partner",
        "direction",
        "points",
        "partner_units",
        "rate",
        "partner",
        "reference",
    ]
    list_filter = ["exchange_partner", "direction", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["=reference", "=account__member__external_id"]
    list_select_related = ["account__member", "exchange_partner", "partner"]
    ordering = ["-id"]
    raw_id_fields = ["account", "entry"]

    @admin.display(description=_("member"))
    def member_external_id(self, conversion: Conversion) -> str:
        return conversion.account.member.external_id


# --- Webhooks (points/webhooks.py, docs/adr/0010) -----------------------------------------------
def _warn_about_disabled_endpoints(request) -> None:
    # The banner operators see on the webhook pages while an endpoint stays disabled by failures.
    for endpoint in WebhookEndpoint.objects.filter(
        is_active=False, disabled_at__isnull=False
    ).select_related("partner"):
        messages.error(
            request,
            gettext(
                "Webhook endpoint %(endpoint)s is disabled since %(when)s: %(reason)s Its events "
                "are kept; switch it back on when the receiver works again."
            )
            % {
                "endpoint": endpoint,
                "when": localize(timezone.localtime(endpoint.disabled_at)),
                "reason": endpoint.disabled_reason,
            },
        )


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        label=_("Event types"),
        choices=webhooks.EVENT_TYPES,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["partner", "url", "event_types", "is_active", "failure_limit"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = [
        "url",
        "partner",
        "subscribed_types",
        "is_active",
        "consecutive_failures",
        "disabled_at",
    ]
    list_filter = ["is_active", "partner"]
    list_select_related = ["partner"]
    search_fields = ["url", "partner__name"]
    readonly_fields = [
        "consecutive_failures",
        "paused_until",
        "disabled_at",
        "disabled_reason",
        "created_at",
    ]
    actions = ["switch_on", "roll_secret"]

    @admin.display(description=_("event types"))
    def subscribed_types(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.event_types)

    def save_model(self, request, obj, form, change) -> None:
        webhooks.endpoint_save(endpoint=obj)
        if not change:
            self.message_user(
                request,
                gettext(
                    "Signing secret of %(endpoint)s: %(secret)s. Give it to the partner now: it "
                    "will not be shown again."
                )
                % {"endpoint": obj, "secret": obj.secret},
                messages.WARNING,
            )

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            _warn_about_disabled_endpoints(request)
        return super().changelist_view(request, extra_context)

    @admin.action(description=_("Switch on again (clears the failures)"), permissions=["change"])
    def switch_on(self, request, queryset):
        switched = 0
        for endpoint in queryset.filter(is_active=False).order_by("pk"):
            webhooks.endpoint_enable(endpoint=endpoint)
            switched += 1
        self.message_user(
            request,
            ngettext(
                "%(count)d endpoint switched on.", "%(count)d endpoints switched on.", switched
            )
            % {"count": switched},
            messages.SUCCESS,
        )

    @admin.action(description=_("Roll the signing secret"), permissions=["change"])
    def roll_secret(self, request, queryset):
        for endpoint in queryset.select_related("partner").order_by("pk"):
            secret = webhooks.endpoint_roll_secret(endpoint=endpoint)
            self.message_user(
                request,
                gettext(
                    "New signing secret of %(endpoint)s: %(secret)s. Give it to the partner now: "
                    "it will not be shown again."
                )
                % {"endpoint": endpoint, "secret": secret},
                messages.WARNING,
            )


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ["attempted_at", "succeeded", "status_code", "duration_ms", "error", "response_body"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class WebhookEventTypeFilter(admin.SimpleListFilter):
    # The known types, not a DISTINCT over the outbox (which grows with the ledger).
    title = _("event type")
    parameter_name = "type"

    def lookups(self, request, model_admin):
        return webhooks.EVENT_TYPES

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(event__type=self.value())
        return queryset


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = [
        "id",
        "event_id",
        "event_type",
        "member_external_id",
        "endpoint",
        "state",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["state", WebhookEventTypeFilter, "endpoint"]
    search_fields = ["=event__member_external_id"]
    list_select_related = ["event", "endpoint__partner"]
    ordering = ["-id"]
    fields = [
        "endpoint",
        "event",
        "member_external_id",
        "state",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
        "created_at",
        "body",
    ]
    readonly_fields = fields
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    @admin.display(description=_("type"))
    def event_type(self, delivery: WebhookDelivery) -> str:
        return delivery.event.type

    @admin.display(description=_("member"))
    def member_external_id(self, delivery: WebhookDelivery) -> str:
        return delivery.event.member_external_id

    @admin.display(description=_("body"))
    def body(self, delivery: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", webhooks.event_body(delivery.event).decode())

    def has_change_permission(self, request, obj=None) -> bool:
        # Needed for the redeliver action to be offered; the form itself stays read-only.
        return obj is None and request.user.has_perm("points.change_webhookdelivery")

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            _warn_about_disabled_endpoints(request)
        return super().changelist_view(request, extra_context)

    @admin.action(description=_("Redeliver the selected deliveries"), permissions=["change"])
    def redeliver(self, request, queryset):
        count = queryset.count()
        if count > MAX_ACTION_ROWS:
            self.message_user(
                request,
                gettext("Select at most %(max)d deliveries at a time.") % {"max": MAX_ACTION_ROWS},
                messages.ERROR,
            )
            return None
        waiting = queryset.filter(endpoint__is_active=False).count()
        queued = webhooks.redeliver(delivery_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request,
            ngettext(
                "%(count)d delivery will be sent again within a few seconds.",
                "%(count)d deliveries will be sent again within a few seconds.",
                queued,
            )
            % {"count": queued},
            messages.SUCCESS,
        )
        if waiting:
            self.message_user(
                request,
                ngettext(
                    "%(count)d of them goes to a disabled endpoint: it waits until the endpoint "
                    "is switched on.",
                    "%(count)d of them go to a disabled endpoint: they wait until the endpoint "
                    "is switched on.",
                    waiting,
                )
                % {"count": waiting},
                messages.WARNING,
            )
        return None


# --- Issuance freeze (docs/adr/0018) -------------------------------------------------------------
class IssuanceFreezeForm(forms.ModelForm):
    class Meta:
        model = IssuanceFreeze
        fields = ["reason", "ends_at"]

    def clean_reason(self) -> str:
        reason = (self.cleaned_data.get("reason") or "").strip()
        if not reason:
            raise forms.ValidationError(_("A freeze needs a reason."))
        return reason

    def clean_ends_at(self):
        ends_at = self.cleaned_data.get("ends_at")
        if ends_at is not None and ends_at <= timezone.now():
            raise forms.ValidationError(_("The automatic end must be in the future."))
        return ends_at


@admin.register(IssuanceFreeze)
class IssuanceFreezeAdmin(admin.ModelAdmin):
    """The programme-wide switch: adding a freeze stops all issuance at once (the service),
    the "lift" action resumes it; every freeze stays listed, with who set and lifted it."""

    form = IssuanceFreezeForm
    list_display = ["started_at", "started_by", "reason", "ends_at", "lifted_at", "lifted_by"]
    list_select_related = ["started_by", "lifted_by"]
    actions = ["lift_freeze"]

    def has_change_permission(self, request, obj=None) -> bool:
        # The lift action needs it on the list; a freeze itself is never edited.
        return obj is None and request.user.has_perm("points.change_issuancefreeze")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["reason", "started_at", "started_by", "ends_at", "lifted_at", "lifted_by"]

    def get_fields(self, request, obj=None):
        return ["reason", "ends_at"] if obj is None else self.get_readonly_fields(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        freeze = services.freeze_issuance(
            reason=form.cleaned_data["reason"],
            ends_at=form.cleaned_data["ends_at"],
            operator=request.user,
        )
        obj.pk, obj.started_at, obj.started_by = freeze.pk, freeze.started_at, freeze.started_by

    @admin.action(description=_("Lift the freeze (resume issuance)"), permissions=["change"])
    def lift_freeze(self, request, queryset):
        lifted = services.lift_issuance_freeze(operator=request.user)
        if lifted:
            self.message_user(request, gettext("Issuance resumed."), messages.SUCCESS)
        else:
            self.message_user(request, gettext("No freeze was in force."), messages.WARNING)


# Maker-checker and bulk grants register their pages from their own module (docs/adr/0013).
# Finance reports, settlement and forecast pages (docs/adr/0015).
from points import admin_reports, grants_admin  # noqa: E402, F401
