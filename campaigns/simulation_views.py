"""Admin pages: simulation of a rule or campaign, and the A/B experiment report."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns import experiments, simulation
from campaigns.models import Campaign, EarningRule, Experiment, ExperimentArm


class SimulationForm(forms.Form):
    days = forms.IntegerField(
        label=gettext_lazy("Days of stored events"), min_value=1, max_value=366, initial=30
    )


def bar_chart(days: list[simulation.Day]) -> str:
    """Actual vs simulated points by day as inline SVG (no script, works offline)."""
    if not days:
        return ""
    width, height, pad = 720, 220, 30
    top = max([max(d.actual, d.simulated) for d in days] + [1])
    step = (width - 2 * pad) / len(days)
    bar = max(1.0, step / 2 - 1)
    parts = []
    for i, day in enumerate(days):
        x = pad + i * step
        for offset, value, colour, label in (
            (0, day.actual, "#79aec8", _("issued")),
            (bar, day.simulated, "#e8a33d", _("simulated")),
        ):
            h = (height - 2 * pad) * value / top
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
                    "<title>{} {}: {}</title></rect>",
                    f"{x + offset:.1f}",
                    f"{height - pad - h:.1f}",
                    f"{bar:.1f}",
                    f"{h:.1f}",
                    colour,
                    day.day,
                    label,
                    value,
                )
            )
    legend = format_html(
        '<text x="{}" y="16" font-size="12"><tspan fill="#417690">■ {}</tspan> '
        '<tspan fill="#b8791f">■ {}</tspan> ({}: {})</text>',
        pad,
        _("issued"),
        _("simulated"),
        _("max per day"),
        top,
    )
    return format_html(
        '<svg role="img" viewBox="0 0 {} {}" width="100%" style="max-width:{}px">{}{}'
        '<text x="{}" y="{}" font-size="11">{}</text>'
        '<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text></svg>',
        width,
        height,
        width,
        legend,
        mark_safe("".join(parts)),
        pad,
        height - 8,
        days[0].day,
        width - pad,
        height - 8,
        days[-1].day,
    )


def _simulate(model_admin, request, obj, *, rules=(), campaigns=()):
    if not model_admin.has_view_permission(request, obj):
        raise PermissionDenied
    form = SimulationForm(request.GET or None)
    days = form.cleaned_data["days"] if form.is_valid() else 30
    active = obj.status == obj.Status.ACTIVE
    result = simulation.replay(
        days=days,
        draft_rules=[] if active else list(rules),
        draft_campaigns=[] if active else list(campaigns),
    )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": _("Simulation of %(name)s") % {"name": obj},
        "object": obj,
        "form": form,
        "days": days,
        "result": result,
        "active": active,
        "chart": bar_chart(result.days),
    }
    return TemplateResponse(request, "admin/campaigns/simulation.html", context)


def simulate_rule(model_admin):
    def view(request, pk):
        rule = get_object_or_404(EarningRule, pk=pk)
        return _simulate(model_admin, request, rule, rules=[rule])

    return view


def simulate_campaign(model_admin):
    def view(request, pk):
        campaign = get_object_or_404(Campaign, pk=pk)
        return _simulate(model_admin, request, campaign, campaigns=[campaign])

    return view


def experiment_report(model_admin):
    def view(request, pk):
        experiment = get_object_or_404(Experiment, pk=pk)
        if not model_admin.has_view_permission(request, experiment):
            raise PermissionDenied
        if request.method == "POST":
            if not model_admin.has_change_permission(request, experiment):
                raise PermissionDenied
            arm = get_object_or_404(
                ExperimentArm, pk=request.POST.get("arm"), experiment=experiment
            )
            changed = experiments.promote_arm(arm=arm)
            messages.success(
                request,
                _("Arm %(arm)s now applies to everyone (%(n)s rules and campaigns changed).")
                % {"arm": arm.code, "n": changed},
            )
            return redirect(reverse("admin:campaigns_experiment_report", args=[pk]))
        report = experiments.experiment_report(experiment=experiment)
        labels = {
            "points_earned": _("points earned per member"),
            "redemptions": _("redemptions per member"),
            "spend": _("spend per member"),
        }
        verdicts = {
            "better": _("higher than control"),
            "worse": _("lower than control"),
            "unclear": _("no clear difference yet"),
            "too_small": _("sample too small to tell (at least %(n)s members per arm)")
            % {"n": experiments.MIN_MEMBERS_PER_ARM},
        }
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    d.arm.code,
                    labels[d.metric],
                    "-"
                    if d.verdict == "too_small"
                    else f"{d.difference:+.2f} [{d.low:+.2f}, {d.high:+.2f}]",
                    verdicts[d.verdict],
                )
                for d in report.differences
            ),
        )
        context = {
            **model_admin.admin_site.each_context(request),
            "opts": Experiment._meta,
            "title": _("A/B report: %(name)s") % {"name": experiment},
            "report": report,
            "difference_rows": rows,
            "can_promote": model_admin.has_change_permission(request, experiment),
        }
        return TemplateResponse(request, "admin/campaigns/experiment_report.html", context)

    return view
