"""The catalogue and the fulfilment of redemptions in the Django admin.

Every write goes through rewards_mall.services: a reward is saved under its row lock, coupon
codes come in through django-import-export and the pool's stock is recounted after, and a
redemption's status changes only through the actions below (never through a change form).
"""

from __future__ import annotations

import tablib
from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from import_export import fields, resources
from import_export.admin import ExportMixin, ImportExportMixin
from import_export.formats.base_formats import CSV, XLSX
from import_export.widgets import ForeignKeyWidget

from loyalty_site.exceptions import LoyaltyError
from rewards_mall.models import Category, CouponCode, Redemption, Reward, TierPrice
from rewards_mall.services import (
    bulk_mark_shipped,
    cancel_redemption,
    mark_delivered,
    mark_fulfilled,
    reward_save,
    sync_coupon_stock,
)

FILE_FORMATS = [CSV, XLSX]
# One transaction per redemption; a larger batch belongs in a file import.
MAX_BULK_ACTION = 500


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["code", "name_zh", "name_en", "position", "is_active"]
    list_editable = ["position", "is_active"]
    search_fields = ["code", "name_zh", "name_en"]


class TierPriceInline(admin.TabularInline):
    model = TierPrice
    extra = 0
    verbose_name_plural = _("prices per tier (override the list price)")


@admin.register(Reward)
class RewardAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "name_zh",
        "kind",
        "category",
        "points_price",
        "cash_price",
        "stock",
        "per_member_limit",
        "available_from",
        "available_until",
        "is_featured",
        "is_active",
    ]
    list_filter = ["kind", "category", "is_featured", "is_active", "tiers"]
    search_fields = ["code", "name_zh", "name_en"]
    list_select_related = ["category"]
    filter_horizontal = ["tiers"]
    inlines = [TierPriceInline]
    fieldsets = [
        (None, {"fields": ["code", "kind", "category", "is_active", "is_featured", "position"]}),
        (
            _("Names and description"),
            {"fields": ["name_zh", "name_en", "description_zh", "description_en", "image"]},
        ),
        (
            _("Price, stock and limits"),
            {"fields": ["points_price", "cash_price", "stock", "per_member_limit"]},
        ),
        (_("Availability"), {"fields": ["available_from", "available_until", "tiers"]}),
        (_("Source"), {"fields": ["partner"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # A coupon reward's stock is its unused codes: it changes by importing codes.
        if obj is not None and obj.kind == Reward.Kind.COUPON:
            return ["stock"]
        return []

    def save_model(self, request, obj, form, change):
        reward_save(reward=obj)


class CouponCodeResource(resources.ModelResource):
    """Columns `reward` (the reward's code) and `code`; a code already in the pool is skipped."""

    reward = fields.Field(
        attribute="reward", column_name="reward", widget=ForeignKeyWidget(Reward, field="code")
    )

    class Meta:
        model = CouponCode
        fields = ("reward", "code")
        import_id_fields = ("reward", "code")
        skip_unchanged = True
        report_skipped = True

    def before_import_row(self, row, **kwargs):
        code = str(row.get("reward") or "").strip()
        kind = Reward.objects.filter(code=code).values_list("kind", flat=True).first()
        if kind is None:
            raise ValueError(gettext("No reward with the code %(code)s.") % {"code": code})
        if kind != Reward.Kind.COUPON:
            raise ValueError(
                gettext("%(code)s is not a coupon reward: it has no code pool.") % {"code": code}
            )
        row["code"] = str(row.get("code") or "").strip()

    def after_import(self, dataset, result, **kwargs):
        codes = (
            {str(code or "").strip() for code in dataset["reward"]} if dataset.headers else set()
        )
        reward_ids = Reward.objects.filter(code__in=codes).values_list("pk", flat=True)
        sync_coupon_stock(reward_ids=list(reward_ids))


@admin.register(CouponCode)
class CouponCodeAdmin(ImportExportMixin, admin.ModelAdmin):
    resource_classes = [CouponCodeResource]
    formats = FILE_FORMATS
    list_display = ["code", "reward", "redemption", "imported_at", "issued_at"]
    list_filter = [("redemption", admin.EmptyFieldListFilter), "reward"]
    search_fields = ["code", "reward__code"]
    list_select_related = ["reward"]
    readonly_fields = ["reward", "code", "redemption", "imported_at", "issued_at"]

    def has_add_permission(self, request) -> bool:
        return False  # codes come in by import, which keeps the reward's stock right

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class WarehouseExportResource(resources.ModelResource):
    """What the warehouse needs to pick, pack and ship, one redemption a line."""

    reward_code = fields.Field(attribute="reward__code", column_name="reward")
    reward_name = fields.Field(attribute="reward__name_zh", column_name="reward_name")
    member = fields.Field(attribute="member__external_id", column_name="member")
    recipient = fields.Field(column_name="recipient")
    phone = fields.Field(column_name="phone")
    address = fields.Field(column_name="address")
    city = fields.Field(column_name="city")
    postcode = fields.Field(column_name="postcode")

    class Meta:
        model = Redemption
        fields = (
            "id",
            "placed_at",
            "status",
            "reward_code",
            "reward_name",
            "quantity",
            "member",
            "recipient",
            "phone",
            "address",
            "city",
            "postcode",
            "tracking_number",
            "carrier",
        )
        export_order = fields

    def _address(self, redemption: Redemption, key: str) -> str:
        return (redemption.shipping_address or {}).get(key, "")

    def dehydrate_recipient(self, redemption):
        return self._address(redemption, "recipient")

    def dehydrate_phone(self, redemption):
        return self._address(redemption, "phone")

    def dehydrate_address(self, redemption):
        return self._address(redemption, "address")

    def dehydrate_city(self, redemption):
        return self._address(redemption, "city")

    def dehydrate_postcode(self, redemption):
        return self._address(redemption, "postcode")


class TrackingImportForm(forms.Form):
    file = forms.FileField(
        label=_("File (CSV or XLSX)"),
        help_text=_("Columns: redemption, tracking_number, carrier (optional), with a header row."),
    )


def read_tracking_rows(upload) -> list[tuple]:
    """(redemption, tracking_number, carrier) rows of an uploaded CSV or XLSX file."""
    content = upload.read()
    name = (upload.name or "").lower()
    if name.endswith(".xlsx"):
        dataset = tablib.Dataset().load(content, format="xlsx")
    else:
        dataset = tablib.Dataset().load(content.decode("utf-8-sig"), format="csv")
    headers = [str(header or "").strip().lower() for header in dataset.headers or []]

    def column(*names):
        for name in names:
            if name in headers:
                return headers.index(name)
        return None

    id_col = column("redemption", "id", "redemption_id")
    tracking_col = column("tracking_number", "tracking")
    carrier_col = column("carrier")
    if id_col is None or tracking_col is None:
        raise ValueError(gettext("The file needs the columns redemption and tracking_number."))
    return [
        (
            row[id_col],
            row[tracking_col],
            row[carrier_col] if carrier_col is not None else "",
        )
        for row in dataset
    ]


@admin.register(Redemption)
class RedemptionAdmin(ExportMixin, admin.ModelAdmin):
    resource_classes = [WarehouseExportResource]
    formats = FILE_FORMATS
    import_export_change_list_template = "admin/rewards_mall/redemption/change_list.html"
    list_display = [
        "id",
        "placed_at",
        "member",
        "reward",
        "quantity",
        "points_spent",
        "status",
        "tracking_number",
        "channel",
    ]
    list_filter = ["status", "channel", "reward__kind", "reward"]
    search_fields = ["=id", "=member__external_id", "=tracking_number", "reward__code"]
    list_select_related = ["member", "reward"]
    date_hierarchy = "placed_at"
    actions = ["mark_fulfilled_action", "mark_delivered_action", "cancel_action"]
    readonly_fields = [field.name for field in Redemption._meta.fields if field.name != "id"] + [
        "coupon_code_list"
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("coupon codes"))
    def coupon_code_list(self, obj):
        return ", ".join(code.code for code in obj.coupon_codes.all()) or "-"

    def get_urls(self):
        return [
            path(
                "import-tracking/",
                self.admin_site.admin_view(self.import_tracking_view),
                name="rewards_mall_redemption_import_tracking",
            ),
            *super().get_urls(),
        ]

    def import_tracking_view(self, request):
        """Bulk "mark shipped": tracking numbers from the warehouse's file."""
        if not self.has_change_permission(request):
            return redirect("admin:index")
        form = TrackingImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                rows = read_tracking_rows(form.cleaned_data["file"])
            except Exception as error:  # a broken file of any kind is reported, not a 500
                form.add_error(
                    "file", gettext("Cannot read the file: %(error)s") % {"error": error}
                )
            else:
                result = bulk_mark_shipped(rows=rows)
                if result.shipped:
                    messages.success(
                        request,
                        ngettext(
                            "%(count)d redemption marked shipped.",
                            "%(count)d redemptions marked shipped.",
                            len(result.shipped),
                        )
                        % {"count": len(result.shipped)},
                    )
                for line, message in result.errors:
                    messages.error(
                        request,
                        gettext("Line %(line)d: %(message)s") % {"line": line, "message": message},
                    )
                return redirect(reverse("admin:rewards_mall_redemption_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": gettext("Mark shipped from a file of tracking numbers"),
        }
        return TemplateResponse(
            request, "admin/rewards_mall/redemption/import_tracking.html", context
        )

    def _each(self, request, queryset, service, done_message):
        done = failed = 0
        for redemption in queryset.select_related("reward", "member")[:MAX_BULK_ACTION]:
            try:
                service(redemption=redemption)
            except LoyaltyError as error:
                failed += 1
                messages.error(request, f"#{redemption.pk}: {error.message}")
            else:
                done += 1
        if done:
            messages.success(request, done_message % {"count": done})

    @admin.action(description=_("Mark fulfilled (coupon delivered, service given)"))
    def mark_fulfilled_action(self, request, queryset):
        self._each(request, queryset, mark_fulfilled, gettext("%(count)d marked fulfilled."))

    @admin.action(description=_("Mark delivered"))
    def mark_delivered_action(self, request, queryset):
        self._each(request, queryset, mark_delivered, gettext("%(count)d marked delivered."))

    @admin.action(description=_("Cancel: give the points and the stock back"))
    def cancel_action(self, request, queryset):
        def cancel(*, redemption):
            return cancel_redemption(
                redemption=redemption,
                reason=gettext("Cancelled by %(user)s") % {"user": request.user.get_username()},
            )

        self._each(request, queryset, cancel, gettext("%(count)d cancelled."))
