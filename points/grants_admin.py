"""Maker-checker and bulk grants in the admin (docs/adr/0013); imported by points/admin.py.

Adjustment requests and bulk grants are read-only pages: they change only through the actions
below, which call points.grants. A bulk grant file comes in through django-import-export: the
preview lists every row's errors (unknown member, points that are not a whole number, no
reason) and nothing is stored until the operator confirms a file without errors.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from import_export import fields, resources, widgets
from import_export.admin import ImportMixin
from import_export.formats.base_formats import CSV, XLSX

from loyalty_site.admin_base import ReadOnlyAdmin
from loyalty_site.admin_paginator import LargeTableAdmin
from loyalty_site.admin_singleton import SingletonAdmin
from loyalty_site.exceptions import LoyaltyError
from members.models import Member
from points import grants
from points.admin import MAX_ACTION_ROWS, _action_form
from points.exceptions import BulkGrantFileInvalid
from points.models import AdjustmentRequest, ApprovalSettings, BulkGrant, BulkGrantRow
from points.selectors import bulk_grant_progress

# Header names accepted for each column (lower-cased), the first is the one documented.
COLUMN_ALIASES = {
    "member": ("member", "external_id", "member_id", "会员", "会员编号"),
    "points": ("points", "积分"),
    "reason": ("reason", "原因", "备注"),
}
MEMBER_LOOKUP_CHUNK = 5000
SKIPPED_ROWS_SHOWN = 50


class RejectForm(forms.Form):
    rejection_reason = forms.CharField(
        label=_("Reason for rejecting"),
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )


def _each_decision(modeladmin, request, objects, decide, done_message) -> None:
    """Run one decision service per selected row; report each refusal, count the rest."""
    done = 0
    for obj in objects[:MAX_ACTION_ROWS]:
        try:
            decide(obj.pk)
        except LoyaltyError as error:
            modeladmin.message_user(request, f"#{obj.pk}: {error.message}", messages.ERROR)
        else:
            done += 1
    if done:
        modeladmin.message_user(request, done_message(done), messages.SUCCESS)


# --- Approval settings -----------------------------------------------------------------------
@admin.register(ApprovalSettings)
class ApprovalSettingsAdmin(SingletonAdmin):
    """One row: the change list opens its change form."""

    fields = ["adjustment_threshold", "bulk_grant_threshold", "updated_at"]
    readonly_fields = ["updated_at"]


# --- Adjustment requests ------------------------------------------------------------------------
@admin.register(AdjustmentRequest)
class AdjustmentRequestAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "requested_at",
        "member",
        "points",
        "reason",
        "state",
        "requested_by",
        "decided_by",
        "decided_at",
    ]
    list_filter = ["state"]
    search_fields = ["=member__external_id"]
    list_select_related = ["member", "requested_by", "decided_by"]
    raw_id_fields = ["member", "entry"]
    actions = ["approve_requests", "reject_requests"]

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm("points.approve_adjustmentrequest")

    @admin.action(description=_("Approve the selected requests"), permissions=["approve"])
    def approve_requests(self, request, queryset):
        _each_decision(
            self,
            request,
            queryset.order_by("pk"),
            lambda pk: grants.approve_adjustment_request(request_id=pk, approver=request.user),
            lambda count: (
                ngettext(
                    "%(count)d adjustment approved and written to the ledger.",
                    "%(count)d adjustments approved and written to the ledger.",
                    count,
                )
                % {"count": count}
            ),
        )

    @admin.action(description=_("Reject the selected requests"), permissions=["approve"])
    def reject_requests(self, request, queryset):
        form = RejectForm(request.POST if "apply" in request.POST else None)
        if not (form.is_bound and form.is_valid()):
            return _action_form(
                self,
                request,
                queryset,
                form=form,
                action="reject_requests",
                title=_("Reject adjustment requests"),
                explanation=_("Nothing is written to the ledger; the reason is kept."),
                submit=gettext("Reject"),
            )
        reason = form.cleaned_data["rejection_reason"]
        _each_decision(
            self,
            request,
            queryset.order_by("pk"),
            lambda pk: grants.reject_adjustment_request(
                request_id=pk, decided_by=request.user, reason=reason
            ),
            lambda count: (
                ngettext(
                    "%(count)d adjustment request rejected.",
                    "%(count)d adjustment requests rejected.",
                    count,
                )
                % {"count": count}
            ),
        )
        return None


# --- Bulk grant files ---------------------------------------------------------------------------
class PointsWidget(widgets.Widget):
    """Whole points other than zero; '1.5', 'ten' and '' are errors, never rounded."""

    def clean(self, value, row=None, **kwargs):
        text = grants.normalised_cell(value).replace(",", "")
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite() or number != number.to_integral_value():
            raise ValueError(
                gettext("Points must be a whole number, not “%(value)s”.") % {"value": text}
            )
        if number == 0:
            raise ValueError(gettext("Points cannot be 0."))
        return int(number)


class TextCellWidget(widgets.CharWidget):
    def clean(self, value, row=None, **kwargs):
        return grants.normalised_cell(value)


class BulkGrantRowResource(resources.ModelResource):
    """A bulk grant file: columns member (external id), points (+ grants, - takes), reason."""

    member = fields.Field(
        attribute="member_external_id", column_name="member", widget=TextCellWidget()
    )
    points = fields.Field(attribute="points", column_name="points", widget=PointsWidget())
    reason = fields.Field(attribute="reason", column_name="reason", widget=TextCellWidget())

    # Errors are shown under the file's column names, not the model's field names.
    ERROR_COLUMNS = {"member_external_id": "member"}

    class Meta:
        model = BulkGrantRow
        name = _("Bulk grant file")
        fields = ("member", "points", "reason")
        force_init_instance = True  # every line is a new row of this grant
        clean_model_instances = True
        use_transactions = True
        skip_diff = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.grant: BulkGrant | None = None
        self.known_members: set[str] = set()

    def _normalise_headers(self, dataset) -> None:
        headers = [str(header or "").strip().lower() for header in dataset.headers or []]
        for column, aliases in COLUMN_ALIASES.items():
            for index, header in enumerate(headers):
                if header in aliases:
                    headers[index] = column
                    break
        dataset.headers = headers

    def _refuse_file(self, dataset, error: LoyaltyError):
        # No row is worth a preview line once the file as a whole is refused.
        del dataset[0 : len(dataset)]
        raise error

    def before_import(self, dataset, **kwargs):
        if not dataset.headers:
            raise BulkGrantFileInvalid(_("The file has no header row."))
        self._normalise_headers(dataset)
        missing = [column for column in COLUMN_ALIASES if column not in dataset.headers]
        if missing:
            self._refuse_file(
                dataset,
                BulkGrantFileInvalid(
                    gettext("The file needs the columns member, points and reason; missing: %s")
                    % ", ".join(missing)
                ),
            )
        # Blank lines (a spreadsheet's trailing rows) are not rows of the grant.
        for index in range(len(dataset) - 1, -1, -1):
            if not any(grants.normalised_cell(cell) for cell in dataset[index]):
                del dataset[index]
        rows = zip(dataset["member"], dataset["points"], dataset["reason"], strict=True)
        try:
            self.grant = grants.open_bulk_grant(
                content_hash=grants.bulk_grant_content_hash(rows),
                file_name=kwargs.get("file_name") or "",
                uploaded_by=kwargs["user"],
            )
        except LoyaltyError as error:
            self._refuse_file(dataset, error)
        external_ids = sorted({grants.normalised_cell(cell) for cell in dataset["member"]})
        for start in range(0, len(external_ids), MEMBER_LOOKUP_CHUNK):
            self.known_members.update(
                Member.objects.filter(
                    external_id__in=external_ids[start : start + MEMBER_LOOKUP_CHUNK]
                ).values_list("external_id", flat=True)
            )

    def after_init_instance(self, instance, new, row, **kwargs):
        instance.grant = self.grant
        instance.row_number = kwargs["row_number"]

    def import_instance(self, instance, row, **kwargs):
        errors = {}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        external_id = instance.member_external_id
        unknown = external_id and external_id not in self.known_members
        if unknown and "member_external_id" not in errors:
            errors["member_external_id"] = ValidationError(
                gettext("No member with the external id “%(member)s”.") % {"member": external_id}
            )
        if errors:
            raise ValidationError(errors)

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        errors = dict(import_validation_errors or {})
        try:
            # Uniqueness and constraints are the database's job; a query per row is not needed.
            instance.full_clean(
                exclude=[*errors, "grant", "entry"],
                validate_unique=False,
                validate_constraints=False,
            )
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        if errors:
            raise ValidationError(
                {self.ERROR_COLUMNS.get(name, name): messages for name, messages in errors.items()}
            )

    def after_import(self, dataset, result, **kwargs):
        # ModelResource.after_import resets the id sequence (for files with ids): not wanted.
        if self.grant is None or kwargs.get("dry_run"):
            return
        if result.has_errors() or result.has_validation_errors():
            return  # the whole import is rolled back
        grants.submit_bulk_grant(grant=self.grant)


@admin.register(BulkGrant)
class BulkGrantAdmin(ImportMixin, ReadOnlyAdmin):
    resource_classes = [BulkGrantRowResource]
    formats = [CSV, XLSX]
    skip_admin_log = True  # one log entry per line of a file is noise; the grant records who
    import_error_display = ("message",)
    change_form_template = "admin/points/bulkgrant/change_form.html"
    list_display = [
        "id",
        "file_name",
        "state",
        "uploaded_by",
        "uploaded_at",
        "total_rows",
        "total_points",
        "progress_text",
        "granted_rows",
        "skipped_rows",
        "decided_by",
    ]
    list_filter = ["state"]
    search_fields = ["=id", "file_name"]
    list_select_related = ["uploaded_by", "decided_by"]
    actions = ["approve_grants", "reject_grants", "resume_grants"]
    fieldsets = [
        (None, {"fields": ["file_name", "state", "uploaded_by", "uploaded_at"]}),
        (
            _("Approval"),
            {"fields": ["decided_by", "decided_at", "rejection_reason"]},
        ),
        (
            _("Rows"),
            {
                "fields": [
                    "total_rows",
                    "total_points",
                    "done_rows",
                    "granted_rows",
                    "granted_points",
                    "skipped_rows",
                    "started_at",
                    "finished_at",
                ]
            },
        ),
        (_("Skipped rows"), {"fields": ["skip_report"]}),
    ]
    readonly_fields = [
        "file_name",
        "state",
        "uploaded_by",
        "uploaded_at",
        "decided_by",
        "decided_at",
        "rejection_reason",
        "total_rows",
        "total_points",
        "done_rows",
        "granted_rows",
        "granted_points",
        "skipped_rows",
        "started_at",
        "finished_at",
        "skip_report",
    ]

    # -- permissions
    def has_import_permission(self, request) -> bool:
        return request.user.has_perm("points.add_bulkgrant")

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm("points.approve_bulkgrant")

    def has_resume_permission(self, request) -> bool:
        return self.has_import_permission(request) or self.has_approve_permission(request)

    # -- pages
    @admin.display(description=_("progress"))
    def progress_text(self, grant: BulkGrant) -> str:
        return f"{grant.done_rows}/{grant.total_rows}"

    @admin.display(description=_("skipped rows"))
    def skip_report(self, grant: BulkGrant):
        skipped = list(
            grant.rows.filter(status=BulkGrantRow.Status.SKIPPED).order_by("row_number")[
                : SKIPPED_ROWS_SHOWN + 1
            ]
        )
        if not skipped:
            return "-"
        reasons = dict(BulkGrantRow.SkipReason.choices)
        counts = grant.report or dict(
            (reason, sum(1 for row in skipped if row.skip_reason == reason))
            for reason in {row.skip_reason for row in skipped}
        )
        summary = format_html_join(
            "",
            "<li>{}: {}</li>",
            ((reasons.get(reason, reason), count) for reason, count in sorted(counts.items())),
        )
        lines = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    row.row_number,
                    row.member_external_id,
                    f"{row.points:+d}",
                    row.get_skip_reason_display(),
                    row.skip_detail,
                )
                for row in skipped[:SKIPPED_ROWS_SHOWN]
            ),
        )
        all_rows = (
            reverse("admin:points_bulkgrantrow_changelist")
            + f"?grant__exact={grant.pk}&status__exact=skipped"
        )
        return format_html(
            '<ul class="skip-summary">{}</ul><table class="skipped-rows"><thead><tr><th>{}</th>'
            "<th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}">{}</a></p>',
            summary,
            gettext("row"),
            gettext("member"),
            gettext("points"),
            gettext("skip reason"),
            gettext("details"),
            lines,
            all_rows,
            gettext("All skipped rows"),
        )

    def get_urls(self):
        return [
            path(
                "<int:grant_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="points_bulkgrant_progress",
            ),
            *super().get_urls(),
        ]

    def progress_view(self, request, grant_id: int):
        """JSON the grant's page polls while it runs."""
        if not self.has_view_permission(request):
            return JsonResponse({}, status=403)
        grant = get_object_or_404(BulkGrant, pk=grant_id)
        return JsonResponse(bulk_grant_progress(grant=grant))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        grant = self.get_object(request, object_id)
        extra_context = {**(extra_context or {})}
        if grant is not None:
            extra_context["progress"] = bulk_grant_progress(grant=grant)
        return super().change_view(request, object_id, form_url, extra_context)

    def process_result(self, result, request):
        """After the confirmed import: to the new grant's page, saying what happens next."""
        if result.has_errors() or result.has_validation_errors():
            for error in result.base_errors:
                messages.error(request, str(error.error))
            if result.has_validation_errors():
                messages.error(request, gettext("The file has errors: nothing was imported."))
            return HttpResponseRedirect(reverse("admin:points_bulkgrant_import"))
        grant = BulkGrant.objects.get(pk=result.rows[0].instance.grant_id)
        if grant.state == BulkGrant.State.AWAITING_APPROVAL:
            text = gettext(
                "Bulk grant #%(grant)s: %(rows)d rows, %(points)d points in all. It waits for "
                "another operator's approval (more than %(threshold)d points)."
            )
        else:
            text = gettext(
                "Bulk grant #%(grant)s: %(rows)d rows, %(points)d points in all. Granting has "
                "been queued."
            )
        messages.success(
            request,
            text
            % {
                "grant": grant.pk,
                "rows": grant.total_rows,
                "points": grant.total_points,
                "threshold": grants.approval_settings().bulk_grant_threshold,
            },
        )
        return HttpResponseRedirect(reverse("admin:points_bulkgrant_change", args=[grant.pk]))

    # -- actions
    @admin.action(description=_("Approve the selected bulk grants"), permissions=["approve"])
    def approve_grants(self, request, queryset):
        _each_decision(
            self,
            request,
            queryset.order_by("pk"),
            lambda pk: grants.approve_bulk_grant(grant_id=pk, approver=request.user),
            lambda count: (
                ngettext(
                    "%(count)d bulk grant approved: granting has been queued.",
                    "%(count)d bulk grants approved: granting has been queued.",
                    count,
                )
                % {"count": count}
            ),
        )

    @admin.action(description=_("Reject the selected bulk grants"), permissions=["approve"])
    def reject_grants(self, request, queryset):
        form = RejectForm(request.POST if "apply" in request.POST else None)
        if not (form.is_bound and form.is_valid()):
            return _action_form(
                self,
                request,
                queryset,
                form=form,
                action="reject_grants",
                title=_("Reject bulk grants"),
                explanation=_("None of their rows will be granted; the reason is kept."),
                submit=gettext("Reject"),
            )
        reason = form.cleaned_data["rejection_reason"]
        _each_decision(
            self,
            request,
            queryset.order_by("pk"),
            lambda pk: grants.reject_bulk_grant(
                grant_id=pk, decided_by=request.user, reason=reason
            ),
            lambda count: (
                ngettext("%(count)d bulk grant rejected.", "%(count)d bulk grants rejected.", count)
                % {"count": count}
            ),
        )
        return None

    @admin.action(
        description=_("Resume the selected bulk grants (only rows not yet done)"),
        permissions=["resume"],
    )
    def resume_grants(self, request, queryset):
        _each_decision(
            self,
            request,
            queryset.order_by("pk"),
            lambda pk: grants.resume_bulk_grant(grant_id=pk),
            lambda count: (
                ngettext(
                    "%(count)d bulk grant queued again.",
                    "%(count)d bulk grants queued again.",
                    count,
                )
                % {"count": count}
            ),
        )


@admin.register(BulkGrantRow)
class BulkGrantRowAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = [
        "grant",
        "row_number",
        "member_external_id",
        "points",
        "reason",
        "status",
        "skip_reason",
        "skip_detail",
        "entry",
    ]
    list_filter = ["status", "skip_reason"]
    # `entry` is nullable: Django's automatic select_related leaves it out (a query per row).
    list_select_related = ["grant", "entry"]
    search_fields = ["=member_external_id", "=grant__id"]
    raw_id_fields = ["grant", "entry"]
    ordering = ["grant", "row_number"]
