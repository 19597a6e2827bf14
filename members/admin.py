"""Members and tiers in the Django admin.

The member list stays fast on a million members: one query for the page (tier joined), no
unfiltered second count, and a search that only uses indexes (see members.selectors). Status
changes go through `member_set_status` with a reason, never through the change form.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from members.exceptions import InvalidStatusChange
from members.models import Member, MemberStatusChange, Tier
from members.selectors import member_search
from members.services import member_set_status
from points.selectors import member_points_summary

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


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    list_display = [
        "external_id",
        "name",
        "phone",
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
    # Counting a million rows for "N total" on every filtered page is not worth it.
    show_full_result_count = False
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
        "joined_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["external_id", "name", "phone", "email", "birthday", "language"]}),
        (_("Programme"), {"fields": ["status", "tier", "growth", "points_summary"]}),
        (
            _("Referral and consent"),
            {"fields": ["referral_code", "referred_by", "marketing_consent"]},
        ),
        (_("Dates"), {"fields": ["joined_at", "updated_at"]}),
    ]
    inlines = [MemberStatusChangeInline]
    actions = ["freeze_members", "unfreeze_members", "close_members"]

    def get_search_results(self, request, queryset, search_term):
        # Exact or prefix matches only, each served by an index; never a duplicate row.
        return member_search(queryset=queryset, term=search_term), False

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("tier", Tier.entry_tier())
        return initial

    @admin.display(description=_("points"))
    def points_summary(self, member: Member) -> str:
        if member.pk is None:
            return "-"
        summary = member_points_summary(member=member)
        return gettext("%(available)d available, %(pending)d pending") % {
            "available": summary["available"],
            "pending": summary["pending"],
        }

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


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ["rank", "code", "name", "growth_threshold"]
    list_display_links = ["code", "name"]
    ordering = ["rank"]
    search_fields = ["code", "name"]
