"""Members and tiers in the Django admin.

The member list stays fast on a million members: one query for the page (tier joined), no
unfiltered second count, and a search that only uses indexes (see members.selectors). Status
changes go through `member_set_status` with a reason, never through the change form.
"""

from __future__ import annotations

import itertools

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from loyalty_site.admin_base import ReadOnlyAdmin
from loyalty_site.admin_paginator import LargeTableAdmin
from loyalty_site.admin_singleton import SingletonAdmin
from loyalty_site.exceptions import LoyaltyError
from members.charts import line_chart
from members.exceptions import InvalidStatusChange
from members.models import (
    GrowthEntry,
    GrowthEventRule,
    GrowthSettings,
    Member,
    MemberStatusChange,
    RfmScore,
    Segment,
    SegmentSize,
    Tier,
    TierChange,
)
from members.personal_data import member_data_json
from members.selectors import (
    member_search,
    member_segments,
    member_tier_status,
    segment_size_history,
)
from members.services import erase_member, member_set_status
from points.selectors import expiring_schedule, member_ledger, member_points_summary

# The custom permission (Member.Meta.permissions) that shows phone numbers and emails in full.
PERSONAL_DATA_PERMISSION = "members.view_personal_data"
RECENT_ROWS = 10
MAX_EXPORTS = 50


def can_see_personal_data(request) -> bool:
    return request.user.has_perm(PERSONAL_DATA_PERMISSION)


def mask_phone(phone: str) -> str:
    """138****5678: the first three and last four digits stay, enough to confirm with a caller."""
    if not phone:
        return ""
    if len(phone) <= 7:
        return phone[:1] + "*" * (len(phone) - 1)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_email(email: str) -> str:
    """x***@example.com."""
    if not email:
        return ""
    local, _at, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else f"{local[:1]}***"


# A bulk status change runs one transaction per member; more belongs in a batch job.
MAX_STATUS_CHANGES = 1000


class StatusChangeForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=1000,
        help_text=_("Kept with each member's status history."),
    )


class MemberStatusChangeInline(admin.TabularInline):
    model = MemberStatusChange
    fields = ["created_at", "from_status", "to_status", "reason", "operator"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = _("status history")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("operator")


class TierChangeInline(admin.TabularInline):
    model = TierChange
    fields = ["changed_at", "from_tier", "to_tier", "reason", "growth"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = _("tier history")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("from_tier", "to_tier")


def _table(headers: list, rows: list[tuple]) -> str:
    if not rows:
        return "-"
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


def _when(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else "-"


@admin.register(Member)
class MemberAdmin(LargeTableAdmin):
    list_display = [
        "external_id",
        "name",
        "phone_masked",
        "tier",
        "status",
        "growth",
        "marketing_consent",
        "joined_at",
    ]
    list_display_links = ["external_id", "name"]
    list_filter = ["status", "tier", "joined_at", "marketing_consent"]
    list_select_related = ["tier"]
    list_per_page = 50
    # LargeTableAdmin: no unfiltered second count, a bounded count and bounded pages.
    # Only indexed columns: sorting by another would sort a million members on every page.
    sortable_by = ["external_id", "name", "joined_at"]
    # Listed for the search box; get_search_results below decides how they are matched.
    search_fields = ["external_id", "phone", "name"]
    search_help_text = _(
        "Exact external id, phone or email, or the beginning of the name (case-insensitive)."
    )
    ordering = ["-joined_at", "-id"]
    raw_id_fields = ["referred_by"]
    readonly_fields = [
        "status",
        "growth",
        "referral_code",
        "referred_by",
        "points_summary",
        "expiring_points",
        "tier_progress",
        "segments",
        "recent_entries",
        "recent_growth",
        "recent_redemptions",
        "phone_masked",
        "email_masked",
        "joined_at",
        "updated_at",
    ]
    inlines = [MemberStatusChangeInline, TierChangeInline]
    actions = [
        "freeze_members",
        "unfreeze_members",
        "close_members",
        "export_personal_data",
        "erase_personal_data",
    ]

    def get_fieldsets(self, request, obj=None):
        contact = ["phone", "email"] if can_see_personal_data(request) or obj is None else []
        if not contact:
            contact = ["phone_masked", "email_masked"]
        fieldsets = [
            (None, {"fields": ["external_id", "name", *contact, "birthday", "language"]}),
            (
                _("Programme"),
                {"fields": ["status", "tier", "growth", "tier_progress", "segments"]},
            ),
            (_("Points"), {"fields": ["points_summary", "expiring_points", "recent_entries"]}),
        ]
        if obj is not None:
            fieldsets.append(
                (_("Activity"), {"fields": ["recent_growth", "recent_redemptions"]}),
            )
        fieldsets += [
            (
                _("Referral and consent"),
                {"fields": ["referral_code", "referred_by", "marketing_consent"]},
            ),
            (_("Dates"), {"fields": ["joined_at", "updated_at"]}),
        ]
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("tier")  # tiers move by growth (services), not by editing
        return fields

    def get_search_results(self, request, queryset, search_term):
        # Exact or prefix matches only, each served by an index; never a duplicate row.
        return member_search(queryset=queryset, term=search_term), False

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("tier", Tier.entry_tier())
        return initial

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not can_see_personal_data(request):
            actions.pop("export_personal_data", None)
            actions.pop("erase_personal_data", None)
        return actions

    def get_list_display(self, request):
        if can_see_personal_data(request):
            return ["phone" if name == "phone_masked" else name for name in self.list_display]
        return self.list_display

    @admin.display(description=_("phone"))
    def phone_masked(self, member: Member) -> str:
        return mask_phone(member.phone)

    @admin.display(description=_("email"))
    def email_masked(self, member: Member) -> str:
        return mask_email(member.email)

    @admin.display(description=_("points"))
    def points_summary(self, member: Member) -> str:
        if member.pk is None:
            return "-"
        summary = member_points_summary(member=member)
        return gettext("%(available)d available, %(pending)d pending") % {
            "available": summary["available"],
            "pending": summary["pending"],
        }

    @admin.display(description=_("expiring points"))
    def expiring_points(self, member: Member) -> str:
        if member.pk is None:
            return "-"
        return _table(
            [gettext("expires at"), gettext("points")],
            [(_when(row["expires_at"]), row["amount"]) for row in expiring_schedule(member=member)],
        )

    @admin.display(description=_("tier progress"))
    def tier_progress(self, member: Member) -> str:
        if member.pk is None:
            return "-"
        status = member_tier_status(member=member)
        if status.next_tier is None:
            progress = gettext("top tier")
        else:
            progress = gettext("%(needed)d more growth value to reach %(tier)s") % {
                "needed": status.growth_needed,
                "tier": status.next_tier.display_name,
            }
        period = "-"
        if status.period_ends_at:
            period = gettext("period ends %(when)s: projected %(tier)s") % {
                "when": _when(status.period_ends_at),
                "tier": status.projected_tier.display_name,
            }
        return format_html(
            '<strong>{}</strong> <progress max="100" value="{}">{}%</progress> {}<br>{}',
            status.tier.display_name,
            status.percent,
            status.percent,
            progress,
            period,
        )

    @admin.display(description=_("segments"))
    def segments(self, member: Member) -> str:
        if member.pk is None:
            return "-"
        names = [segment.display_name for segment in member_segments(member=member)]
        rfm = RfmScore.objects.filter(member_id=member.pk).first()
        scores = ""
        if rfm is not None:
            scores = f" (R{rfm.recency_score} F{rfm.frequency_score} M{rfm.monetary_score})"
        return (", ".join(names) or "-") + scores

    @admin.display(description=_("recent ledger entries"))
    def recent_entries(self, member: Member) -> str:
        if member.pk is None:
            return "-"
        entries = member_ledger(member=member).select_related("partner")[:RECENT_ROWS]
        return _table(
            [
                gettext("time"),
                gettext("kind"),
                gettext("points"),
                gettext("balance"),
                gettext("reference"),
                gettext("merchant"),
            ],
            [
                (
                    _when(e.created_at),
                    e.get_kind_display(),
                    f"{e.amount:+d}",
                    e.balance_after,
                    e.reference or "-",
                    e.partner.name if e.partner_id else "-",
                )
                for e in entries
            ],
        )

    @admin.display(description=_("recent growth value"))
    def recent_growth(self, member: Member) -> str:
        if member.pk is None:
            return "-"
        rows = GrowthEntry.objects.filter(member_id=member.pk).order_by("-id")[:RECENT_ROWS]
        return _table(
            [gettext("time"), gettext("kind"), gettext("growth value"), gettext("reference")],
            [
                (_when(g.created_at), g.get_kind_display(), f"{g.amount:+d}", g.reference or "-")
                for g in rows
            ],
        )

    @admin.display(description=_("recent redemptions"))
    def recent_redemptions(self, member: Member) -> str:
        if member.pk is None or not apps.is_installed("rewards_mall"):
            return "-"
        # The mall sits above members: read its one selector only when it is installed.
        from rewards_mall.selectors import member_redemptions

        rows = member_redemptions(member=member).order_by("-id")[:RECENT_ROWS]
        return _table(
            [gettext("placed at"), gettext("reward"), gettext("status"), gettext("points")],
            [
                (_when(r.placed_at), str(r.reward), r.get_status_display(), r.points_spent)
                for r in rows
            ],
        )

    @admin.action(description=_("Freeze selected members"), permissions=["change"])
    def freeze_members(self, request, queryset):
        return self._change_status(
            request,
            queryset,
            status=Member.Status.FROZEN,
            action="freeze_members",
            title=_("Freeze members"),
            explanation=_(
                "A frozen member can neither earn nor spend points until unfrozen. "
                "Their points are kept."
            ),
        )

    @admin.action(description=_("Unfreeze selected members"), permissions=["change"])
    def unfreeze_members(self, request, queryset):
        return self._change_status(
            request,
            queryset,
            status=Member.Status.ACTIVE,
            action="unfreeze_members",
            title=_("Unfreeze members"),
            explanation=_("The members can earn and spend points again."),
        )

    @admin.action(description=_("Close selected members' accounts"), permissions=["change"])
    def close_members(self, request, queryset):
        return self._change_status(
            request,
            queryset,
            status=Member.Status.CLOSED,
            action="close_members",
            title=_("Close members' accounts"),
            explanation=_("Closing an account is final: it cannot be reopened."),
        )

    @admin.action(description=_("Export personal data (JSON)"), permissions=["view"])
    def export_personal_data(self, request, queryset):
        """PIPL access request: one member's data as a JSON download."""
        members = list(queryset.select_related("tier", "referred_by")[: MAX_EXPORTS + 1])
        if len(members) != 1:
            self.message_user(
                request, gettext("Select exactly one member to export."), messages.ERROR
            )
            return None
        member = members[0]
        response = HttpResponse(
            member_data_json(member=member), content_type="application/json; charset=utf-8"
        )
        response["Content-Disposition"] = (
            f'attachment; filename="member-{member.pk}-personal-data.json"'
        )
        self.log_change(request, member, gettext("Personal data exported"))
        return response

    @admin.action(description=_("Erase personal data (PIPL)"), permissions=["change"])
    def erase_personal_data(self, request, queryset):
        """Ask for a reason, then anonymise each member and close the account."""
        count = queryset.count()
        if count > MAX_STATUS_CHANGES:
            self.message_user(
                request,
                gettext("Select at most %(max)d members at a time.") % {"max": MAX_STATUS_CHANGES},
                messages.ERROR,
            )
            return None
        form = StatusChangeForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            erased, refused = 0, []
            for member in queryset.order_by("pk"):
                try:
                    erase_member(
                        member=member, operator=request.user, reason=form.cleaned_data["reason"]
                    )
                except LoyaltyError as error:
                    refused.append(f"#{member.pk}: {error.message}")
                else:
                    erased += 1
                    self.log_change(request, member, gettext("Personal data erased"))
            if erased:
                self.message_user(
                    request,
                    ngettext("%(count)d member erased.", "%(count)d members erased.", erased)
                    % {"count": erased},
                    messages.SUCCESS,
                )
            if refused:
                self.message_user(request, "; ".join(refused[:10]), messages.WARNING)
            return None
        return self._confirmation(
            request,
            queryset,
            count=count,
            form=form,
            action="erase_personal_data",
            title=_("Erase members' personal data"),
            explanation=_(
                "Name, phone, email and birthday are erased and the account is closed; this "
                "cannot be undone. The points ledger keeps its numbers."
            ),
        )

    def _confirmation(self, request, queryset, *, count, form, action, title, explanation):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "explanation": explanation,
            "opts": self.model._meta,
            "members": queryset.select_related("tier")[:20],
            "count": count,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action": action,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(
            request, "admin/members/member/status_change_confirmation.html", context
        )

    def _change_status(self, request, queryset, *, status, action, title, explanation):
        """Ask for a reason on an intermediate page, then change each member through the
        service; members already in that status or closed are skipped and reported."""
        count = queryset.count()
        if count > MAX_STATUS_CHANGES:
            self.message_user(
                request,
                gettext("Select at most %(max)d members at a time.") % {"max": MAX_STATUS_CHANGES},
                messages.ERROR,
            )
            return None
        form = StatusChangeForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            self._apply_status(request, queryset, status, form.cleaned_data["reason"])
            return None  # back to the change list, which shows the messages
        return self._confirmation(
            request,
            queryset,
            count=count,
            form=form,
            action=action,
            title=title,
            explanation=explanation,
        )

    def _apply_status(self, request, queryset, status, reason) -> None:
        changed, refused = 0, []
        for member in queryset.order_by("pk"):
            try:
                member_set_status(
                    member=member, status=status, operator=request.user, reason=reason
                )
            except InvalidStatusChange as error:
                refused.append(f"{member.external_id}: {error.message}")
            else:
                changed += 1
                self.log_change(
                    request,
                    member,
                    gettext("Status changed to %(status)s: %(reason)s")
                    % {"status": Member.Status(status).label, "reason": reason},
                )
        if changed:
            self.message_user(
                request,
                ngettext(
                    "%(count)d member is now %(status)s.",
                    "%(count)d members are now %(status)s.",
                    changed,
                )
                % {"count": changed, "status": Member.Status(status).label},
                messages.SUCCESS,
            )
        if refused:
            self.message_user(
                request,
                ngettext(
                    "%(count)d member was left unchanged: %(details)s",
                    "%(count)d members were left unchanged: %(details)s",
                    len(refused),
                )
                % {"count": len(refused), "details": "; ".join(refused[:10])},
                messages.WARNING,
            )


class TierAdminForm(forms.ModelForm):
    class Meta:
        model = Tier
        fields = [
            "code",
            "name",
            "name_en",
            "rank",
            "growth_threshold",
            "earn_multiplier",
            "redemption_price_adjustment",
            "expiry_policy",
            "expiry_period",
        ]

    def clean(self):
        data = super().clean()
        policy, period = data.get("expiry_policy"), data.get("expiry_period")
        needs_period = policy in {"rolling_days", "rolling_months"}
        if needs_period and not period:
            self.add_error("expiry_period", gettext("This policy needs a period of at least 1."))
        return data


class TierRankForm(forms.ModelForm):
    """A row of the tier list: the rank's uniqueness is checked over the whole list (below)
    and by the database at commit, so two tiers may swap ranks in one save."""

    def _get_validation_exclusions(self):
        return {*super()._get_validation_exclusions(), "rank"}


class TierRankFormSet(forms.BaseModelFormSet):
    def clean(self):
        super().clean()
        edited = {
            form.instance.pk: form.cleaned_data.get("rank")
            for form in self.forms
            if form.instance.pk and hasattr(form, "cleaned_data")
        }
        ranks = dict(Tier.objects.values_list("pk", "rank"))
        ranks.update({pk: rank for pk, rank in edited.items() if rank is not None})
        if len(set(ranks.values())) != len(ranks):
            raise forms.ValidationError(gettext("Two tiers cannot have the same rank."))


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    """Tiers in rank order; ranks and thresholds are editable in the list (the unique rank is
    checked at commit, so two tiers can swap ranks in one save)."""

    form = TierAdminForm
    list_display = [
        "rank",
        "code",
        "name",
        "name_en",
        "growth_threshold",
        "earn_multiplier",
        "redemption_price_adjustment",
        "expiry_policy",
        "expiry_period",
    ]
    list_display_links = ["code", "name"]
    list_editable = ["rank", "growth_threshold"]
    ordering = ["rank"]
    search_fields = ["code", "name", "name_en"]
    fieldsets = [
        (None, {"fields": ["code", "name", "name_en", "rank", "growth_threshold"]}),
        (
            _("Benefits"),
            {
                "fields": [
                    "earn_multiplier",
                    "redemption_price_adjustment",
                    "expiry_policy",
                    "expiry_period",
                ],
                "description": _(
                    "Tier-exclusive rewards are chosen on each reward (tiers allowed)."
                ),
            },
        ),
    ]

    def get_changelist_form(self, request, **kwargs):
        return super().get_changelist_form(request, form=TierRankForm, **kwargs)

    def get_changelist_formset(self, request, **kwargs):
        return super().get_changelist_formset(request, formset=TierRankFormSet, **kwargs)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        self._warn_about_thresholds(request)
        return response

    def _warn_about_thresholds(self, request) -> None:
        thresholds = list(Tier.objects.order_by("rank").values_list("growth_threshold", flat=True))
        if any(later <= earlier for earlier, later in itertools.pairwise(thresholds)):
            self.message_user(
                request,
                gettext(
                    "Qualifying growth values should rise with the rank: a member qualifies "
                    "for the highest-ranked tier whose threshold they reach."
                ),
                messages.WARNING,
            )


@admin.register(GrowthSettings)
class GrowthSettingsAdmin(SingletonAdmin):
    fieldsets = [
        (_("Growth value"), {"fields": ["growth_per_unit", "window_months"]}),
        (_("Tiers"), {"fields": ["tier_period_months", "max_tiers_down"]}),
        (None, {"fields": ["updated_at"]}),
    ]
    readonly_fields = ["updated_at"]


@admin.register(GrowthEventRule)
class GrowthEventRuleAdmin(admin.ModelAdmin):
    list_display = ["event_type", "growth", "is_active"]
    list_editable = ["growth", "is_active"]


@admin.register(GrowthEntry)
class GrowthEntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "member", "kind", "amount", "reference", "counts_at", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["member"]
    search_fields = ["member__external_id", "reference"]
    show_full_result_count = False
    raw_id_fields = ["member"]


@admin.register(TierChange)
class TierChangeAdmin(ReadOnlyAdmin):
    list_display = ["changed_at", "member", "from_tier", "to_tier", "reason", "growth"]
    list_filter = ["reason", "to_tier"]
    list_select_related = ["member", "from_tier", "to_tier"]
    search_fields = ["member__external_id"]
    show_full_result_count = False
    date_hierarchy = "changed_at"


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    """Named RFM segments as score ranges; the list shows each segment's size over time."""

    list_display = [
        "position",
        "code",
        "name",
        "name_en",
        "recency_range",
        "frequency_range",
        "monetary_range",
        "latest_size",
        "is_active",
    ]
    list_display_links = ["code", "name"]
    list_editable = ["position", "is_active"]
    fieldsets = [
        (None, {"fields": ["code", "name", "name_en", "description", "position", "is_active"]}),
        (
            _("Score ranges (1-5; 0 = no purchase)"),
            {
                "fields": [
                    ("recency_min", "recency_max"),
                    ("frequency_min", "frequency_max"),
                    ("monetary_min", "monetary_max"),
                ]
            },
        ),
    ]
    change_list_template = "admin/members/segment/change_list.html"
    chart_days = 90

    @admin.display(description=_("R"))
    def recency_range(self, segment: Segment) -> str:
        return f"{segment.recency_min}-{segment.recency_max}"

    @admin.display(description=_("F"))
    def frequency_range(self, segment: Segment) -> str:
        return f"{segment.frequency_min}-{segment.frequency_max}"

    @admin.display(description=_("M"))
    def monetary_range(self, segment: Segment) -> str:
        return f"{segment.monetary_min}-{segment.monetary_max}"

    @admin.display(description=_("members (latest)"))
    def latest_size(self, segment: Segment):
        size = SegmentSize.objects.filter(segment=segment).order_by("-as_of").first()
        return size.members if size else "-"

    def changelist_view(self, request, extra_context=None):
        history = segment_size_history(days=self.chart_days)
        chart = line_chart(
            days=history["days"],
            series=[(segment.display_name, sizes) for segment, sizes in history["series"]],
            title=gettext("Members per segment, last %(days)d days") % {"days": self.chart_days},
        )
        extra_context = {**(extra_context or {}), "segment_chart": chart}
        return super().changelist_view(request, extra_context)
