"""Finance pages in the admin (docs/adr/0015): the Reports page listing every registered report,
each report with a date range and merchant filter and CSV / XLSX downloads, background exports
with progress, coalition settlement (preview, close a month, statements) and the liability
forecast. Pages need the permission "Can see finance reports and download their exports";
closing a month needs "Can add settlement statement".
"""

from __future__ import annotations

from datetime import date, timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from loyalty_site.exceptions import LoyaltyError
from loyalty_site.reports import (
    SYNC_EXPORT_MAX_DAYS,
    ReportFilters,
    get_report,
    read_report,
    registered_reports,
    render_export,
)
from points import settlement
from points.charts import band_chart
from points.forecast import liability_forecast
from points.models import (
    Partner,
    ProgrammeSettings,
    ReportExport,
    SettlementLine,
    SettlementStatement,
)
from points.report_exports import request_report_export

VIEW_PERMISSION = "points.view_finance_reports"
CLOSE_PERMISSION = "points.add_settlementstatement"
MAX_RANGE_DAYS = 3 * 366 + 1


def _require(request, permission: str = VIEW_PERMISSION) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def _today() -> date:
    return timezone.localdate(timezone=ProgrammeSettings.get().zone)


class ReportFilterForm(forms.Form):
    date_from = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))
    partner = forms.ModelChoiceField(
        label=_("Merchant"),
        queryset=Partner.objects.order_by("name"),
        required=False,
        empty_label=_("All merchants"),
    )

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end:
            if end < start:
                raise forms.ValidationError(_("The end date is before the start date."))
            if (end - start).days >= MAX_RANGE_DAYS:
                raise forms.ValidationError(_("Choose at most three years."))
        return data

    def filters(self) -> ReportFilters:
        partner = self.cleaned_data.get("partner")
        return ReportFilters(
            date_from=self.cleaned_data["date_from"],
            date_to=self.cleaned_data["date_to"],
            partner_id=partner.pk if partner else None,
        )


def filter_form(request) -> ReportFilterForm:
    today = _today()
    data = request.GET.copy()
    data.setdefault("date_from", (today - timedelta(days=29)).isoformat())
    data.setdefault("date_to", today.isoformat())
    return ReportFilterForm(data)


def _context(admin_site, request, **extra) -> dict:
    return {
        **admin_site.each_context(request),
        "opts": ReportExport._meta,
        "app_label": "points",
        **extra,
    }


# --- Reports and their exports -----------------------------------------------------------------
@admin.register(ReportExport)
class ReportExportAdmin(admin.ModelAdmin):
    """Its change list is the Reports page: every registered report, the settlement and the
    forecast, and the latest background exports."""

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(VIEW_PERMISSION)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("report/<slug:key>/", wrap(self.report_view), name="points_report"),
            path("export/<int:pk>/", wrap(self.export_view), name="points_reportexport_progress"),
            path(
                "export/<int:pk>/status/",
                wrap(self.export_status),
                name="points_reportexport_status",
            ),
            path(
                "export/<int:pk>/download/",
                wrap(self.export_download),
                name="points_reportexport_download",
            ),
            path("settlement/", wrap(self.settlement_view), name="points_settlement"),
            path("forecast/", wrap(self.forecast_view), name="points_forecast"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        _require(request)
        reports = [
            report for report in registered_reports() if request.user.has_perm(report.permission)
        ]
        exports = ReportExport.objects.select_related("requested_by")[:20]
        return TemplateResponse(
            request,
            "admin/points/reports/index.html",
            _context(
                self.admin_site,
                request,
                title=_("Reports"),
                reports=reports,
                exports=exports,
                report_titles={report.key: report.title for report in registered_reports()},
            ),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return redirect("admin:points_reportexport_progress", pk=object_id)

    def report_view(self, request, key: str):
        _require(request)
        report = get_report(key)
        if report is None:
            raise Http404
        _require(request, report.permission)
        form = filter_form(request)
        rows, summary = [], []
        if form.is_valid():
            filters = form.filters()
            fmt = request.GET.get("download")
            if request.method == "POST" and request.POST.get("export") in ("csv", "xlsx"):
                export = request_report_export(
                    report_key=key,
                    filters=filters,
                    fmt=request.POST["export"],
                    requested_by=request.user,
                )
                return redirect("admin:points_reportexport_progress", pk=export.pk)
            if fmt in ("csv", "xlsx"):
                if report.by_day and filters.days > SYNC_EXPORT_MAX_DAYS:
                    export = request_report_export(
                        report_key=key, filters=filters, fmt=fmt, requested_by=request.user
                    )
                    messages.info(
                        request, gettext("A large export: it is written in the background.")
                    )
                    return redirect("admin:points_reportexport_progress", pk=export.pk)
                return self._download(report, filters, fmt)
            rows = read_report(report, filters)
            summary = report.summary(filters, rows) if report.summary else []
        query = urlencode({k: v for k, v in request.GET.items() if k != "download"})
        return TemplateResponse(
            request,
            "admin/points/reports/report.html",
            _context(
                self.admin_site,
                request,
                title=report.title,
                report=report,
                form=form,
                rows=rows,
                table=[[row.get(column.key) for column in report.columns] for row in rows],
                summary=summary,
                query=query,
                currency=ProgrammeSettings.get().currency,
            ),
        )

    def _download(self, report, filters: ReportFilters, fmt: str) -> HttpResponse:
        content, _rows = render_export(report, filters, fmt)
        content_type = (
            "text/csv; charset=utf-8"
            if fmt == "csv"
            else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        response = HttpResponse(content, content_type=content_type)
        name = f"{report.key}-{filters.date_from}-{filters.date_to}.{fmt}"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def export_view(self, request, pk: int):
        _require(request)
        export = get_object_or_404(ReportExport, pk=pk)
        report = get_report(export.report)
        return TemplateResponse(
            request,
            "admin/points/reports/export.html",
            _context(
                self.admin_site,
                request,
                title=_("Report export"),
                export=export,
                report_title=report.title if report else export.report,
                filters=export.filters,
            ),
        )

    def export_status(self, request, pk: int):
        _require(request)
        export = get_object_or_404(ReportExport, pk=pk)
        done = export.state == ReportExport.State.DONE and bool(export.file)
        return JsonResponse(
            {
                "state": export.state,
                "state_label": str(export.get_state_display()),
                "parts_done": export.progress_done,
                "parts": export.progress_total,
                "percent": export.percent,
                "rows": export.rows,
                "error": export.error,
                "download_url": (
                    reverse("admin:points_reportexport_download", args=[export.pk])
                    if done
                    else None
                ),
            }
        )

    def export_download(self, request, pk: int):
        _require(request)
        export = get_object_or_404(ReportExport, pk=pk)
        if export.state != ReportExport.State.DONE or not export.file:
            raise Http404
        name = f"{export.report}-{export.filters['date_from']}-{export.filters['date_to']}"
        return FileResponse(
            export.file.open("rb"), as_attachment=True, filename=f"{name}.{export.format}"
        )

    # --- Settlement ---------------------------------------------------------------------------
    def settlement_view(self, request):
        _require(request)
        can_close = request.user.has_perm(CLOSE_PERMISSION)
        if request.method == "POST":
            if not can_close:
                raise PermissionDenied
            try:
                month = date.fromisoformat(request.POST.get("month", "") + "-01")
                statement = settlement.close_settlement_month(month=month, closed_by=request.user)
            except ValueError:
                messages.error(request, gettext("Choose a month."))
            except LoyaltyError as error:
                messages.error(request, error.message)
            else:
                messages.success(
                    request,
                    gettext("%(month)s is closed: %(lines)d lines, %(amount)s %(currency)s.")
                    % {
                        "month": statement,
                        "lines": statement.lines.count(),
                        "amount": statement.amount_settled,
                        "currency": statement.currency,
                    },
                )
                return redirect("admin:points_settlementstatement_change", statement.pk)
            return redirect("admin:points_settlement")
        suggested = settlement.next_month_to_close() or settlement.first_of_month(
            settlement.first_of_month(_today()) - timedelta(days=1)
        )
        try:
            month = date.fromisoformat(request.GET["month"] + "-01")
        except (KeyError, ValueError):
            month = suggested
        closed = SettlementStatement.objects.filter(month=month).first()
        preview = None if closed else settlement.settlement_preview(month=month)
        names = {partner.pk: partner.name for partner in Partner.objects.all()}
        preview_lines = [
            {
                **line,
                "payer": names.get(line["payer_id"]) or settlement.party_name(None),
                "payee": names.get(line["payee_id"]) or settlement.party_name(None),
            }
            for line in (preview.lines if preview else [])
        ]
        period_over = settlement.month_bounds(month)[1] <= timezone.now()
        return TemplateResponse(
            request,
            "admin/points/reports/settlement.html",
            _context(
                self.admin_site,
                request,
                title=_("Coalition settlement"),
                month=month,
                month_text=month.strftime("%Y-%m"),
                suggested=suggested,
                closed=closed,
                closed_lines=settlement.statement_figures(statement=closed) if closed else [],
                preview=preview,
                preview_lines=preview_lines,
                can_close=can_close and preview is not None and period_over,
                period_over=period_over,
                statements=SettlementStatement.objects.order_by("-month")[:24],
            ),
        )

    # --- Forecast -----------------------------------------------------------------------------
    def forecast_view(self, request):
        _require(request)
        form = ForecastForm(request.GET or None)
        options = {"history_months": 12, "simulations": 2000, "seed": None}
        if form.is_valid():
            options.update({k: v for k, v in form.cleaned_data.items() if v is not None})
        forecast = liability_forecast(**options)
        chart = ""
        if forecast is not None:
            chart = band_chart(
                labels=[month.strftime("%Y-%m") for month in forecast.months],
                low=forecast.p10,
                mid=forecast.p50,
                high=forecast.p90,
                plain=forecast.deterministic,
                names=(
                    gettext("P10 to P90"),
                    gettext("P50 (median)"),
                    gettext("Average history"),
                ),
                title=gettext("Outstanding points forecast"),
            )
        return TemplateResponse(
            request,
            "admin/points/reports/forecast.html",
            _context(
                self.admin_site,
                request,
                title=_("Liability forecast"),
                form=form if form.is_bound else ForecastForm(initial=options),
                forecast=forecast,
                chart=chart,
            ),
        )


class ForecastForm(forms.Form):
    history_months = forms.IntegerField(
        label=_("Months of history"), min_value=1, max_value=60, required=False
    )
    simulations = forms.IntegerField(
        label=_("Simulations"), min_value=100, max_value=20000, required=False
    )
    seed = forms.IntegerField(
        label=_("Random seed"),
        required=False,
        help_text=_("The same seed gives the same figures; empty for a new draw."),
    )


# --- Settlement statements (read-only) ---------------------------------------------------------
class SettlementLineInline(admin.TabularInline):
    model = SettlementLine
    fields = [
        "payer",
        "payee",
        "payer_points_used_at_payee",
        "payee_points_used_at_payer",
        "net_points",
        "amount",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SettlementStatement)
class SettlementStatementAdmin(admin.ModelAdmin):
    list_display = [
        "month_text",
        "entries",
        "late_entries",
        "points_used_elsewhere",
        "amount_settled",
        "currency",
        "closed_at",
        "closed_by",
    ]
    list_select_related = ["closed_by"]
    inlines = [SettlementLineInline]
    fields = [
        "month",
        "period_start",
        "period_end",
        "point_value",
        "currency",
        "entries",
        "late_entries",
        "points_used_elsewhere",
        "amount_settled",
        "closed_at",
        "closed_by",
    ]
    readonly_fields = fields

    @admin.display(description=_("month"), ordering="month")
    def month_text(self, statement: SettlementStatement) -> str:
        return str(statement)

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(VIEW_PERMISSION) or super().has_view_permission(request, obj)

    def has_add_permission(self, request) -> bool:
        return False  # closed from the settlement page, through the service

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
