"""Campaign schedules in Celery beat: each active campaign gets a "start" and a "stop" periodic
task (visible and editable in django-celery-beat's admin) at its local midnights, which bring
`Campaign.is_running` in line with the schedule. The engine itself decides by the event's time
(Campaign.runs_on), so a late or missed beat never changes what a member earns.
"""

from __future__ import annotations

import json

from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, PeriodicTask

from campaigns.models import Campaign
from points.services import programme_settings

TASK = "campaigns.sync_campaign_state"


def _task_name(campaign: Campaign, edge: str) -> str:
    return f"campaign {campaign.code}: {edge}"


def _cron_days(days: list[int], shift: int, *, weekly: bool) -> str:
    if weekly:
        # ISO 1..7 (Monday..Sunday) to cron 0..6 (Sunday..Saturday), shifted by a day for "stop".
        return ",".join(str((day + shift) % 7) for day in sorted(days))
    return ",".join(str(day + shift if day + shift <= 31 else 1) for day in sorted(days))


def _schedules(campaign: Campaign) -> dict[str, dict]:
    zone = programme_settings().time_zone
    if campaign.recurrence == Campaign.Recurrence.NONE:
        edges = {"start": campaign.starts_at}
        if campaign.ends_at:
            edges["stop"] = campaign.ends_at
        return {
            edge: {"clocked": ClockedSchedule.objects.get_or_create(clocked_time=moment)[0]}
            for edge, moment in edges.items()
        }
    weekly = campaign.recurrence == Campaign.Recurrence.WEEKLY
    days = campaign.weekdays if weekly else campaign.month_days
    result = {}
    for edge, shift in (("start", 0), ("stop", 1)):
        field = "day_of_week" if weekly else "day_of_month"
        fields = {"day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
        fields[field] = _cron_days(days, shift, weekly=weekly) or "*"
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute="0", hour="0", timezone=zone, **fields
        )
        result[edge] = {"crontab": crontab}
    return result


@transaction.atomic
def sync_campaign_schedule(*, campaign: Campaign) -> list[PeriodicTask]:
    """Create, update or remove the campaign's beat tasks to match it; then sync its state."""
    tasks = []
    wanted = _schedules(campaign) if campaign.status == Campaign.Status.ACTIVE else {}
    for edge in ("start", "stop"):
        name = _task_name(campaign, edge)
        if edge not in wanted:
            PeriodicTask.objects.filter(name=name).delete()
            continue
        schedule = wanted[edge]
        task, _ = PeriodicTask.objects.update_or_create(
            name=name,
            defaults={
                "task": TASK,
                "args": json.dumps([campaign.pk]),
                "crontab": schedule.get("crontab"),
                "clocked": schedule.get("clocked"),
                "interval": None,
                "one_off": "clocked" in schedule,
                "enabled": True,
                "description": str(campaign),
            },
        )
        tasks.append(task)
    sync_campaign_state(campaign_id=campaign.pk)
    return tasks


def remove_campaign_schedule(*, campaign: Campaign) -> None:
    PeriodicTask.objects.filter(
        name__in=[_task_name(campaign, "start"), _task_name(campaign, "stop")]
    ).delete()


def sync_campaign_state(*, campaign_id: int, now=None) -> bool:
    """Set `is_running` from the schedule at `now`; idempotent (both edges call it)."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        return False
    local = (now or timezone.now()).astimezone(programme_settings().zone)
    running = campaign.status == Campaign.Status.ACTIVE and campaign.runs_on(local)
    # update(): not a rule change, so the rulebook's cache stays.
    Campaign.objects.filter(pk=campaign_id).update(is_running=running)
    return running
