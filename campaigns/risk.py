"""Risk control's anomaly limits: which limits an event would pass (docs/adr/0018).

Reads only. Each limit costs a query only when it is set, and only indexed ones: the member's
events by (member, occurred_at), the device log by (day, device) and (day, IP).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Q, Sum

from campaigns.models import DeviceReward, Event, HeldEvent, RiskLimits
from members.models import Member

Reason = HeldEvent.Reason
# Awards the per-device limit counts: the ones a farm of fake accounts or devices goes after.
DEVICE_SOURCES = frozenset({"referral", "task"})
HOUR = timedelta(hours=1)


@dataclass
class Verdict:
    reasons: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    @property
    def held(self) -> bool:
        return bool(self.reasons)

    def over(self, reason: str, *, value: int, limit: int) -> None:
        self.reasons.append(reason)
        self.details[reason] = {"value": value, "limit": limit}


def device_of(attributes: dict) -> tuple[str, str]:
    """The device id and IP an event's partner sent (attributes), as the referral check reads
    them."""
    return str(attributes.get("device_id") or "")[:128], str(attributes.get("ip") or "")[:64]


def _day_bounds(day: date, zone) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=zone)
    return start, datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)


def member_points_on(*, member: Member, day: date, zone) -> int:
    """Points the member's events occurring on `day` (programme time zone) were awarded."""
    start, end = _day_bounds(day, zone)
    total = Event.objects.filter(
        member=member, occurred_at__gte=start, occurred_at__lt=end
    ).aggregate(total=Sum("points_awarded"))["total"]
    return total or 0


def member_events_in_hour_before(*, member: Member, moment: datetime) -> int:
    """The member's events that occurred in the hour up to `moment` (held ones included)."""
    return Event.objects.filter(
        member=member, occurred_at__gt=moment - HOUR, occurred_at__lte=moment
    ).count()


def device_rewards_on(*, day: date, device: str, ip: str) -> int:
    """Referral and task rewards (granted or held) from this device or IP on `day`."""
    condition = Q(pk__in=[])
    if device:
        condition |= Q(device_id=device)
    if ip:
        condition |= Q(ip=ip)
    return DeviceReward.objects.filter(condition, day=day).count()


def has_device_reward(awards) -> bool:
    return any(a.source_type in DEVICE_SOURCES and a.points for a in awards)


def check_limits(
    *,
    limits: RiskLimits,
    member: Member,
    awards,
    attributes: dict,
    occurred_at: datetime,
    day: date,
    zone,
) -> Verdict:
    """Which limits this event, with these would-be `awards`, passes ("above" a limit: one
    more than it is allowed, the limit itself is not)."""
    verdict = Verdict()
    own = sum(a.points for a in awards if a.member is None)
    total = sum(a.points for a in awards)
    if limits.max_points_per_event is not None and total > limits.max_points_per_event:
        verdict.over(Reason.POINTS_PER_EVENT, value=total, limit=limits.max_points_per_event)
    if limits.max_points_per_member_day is not None and own:
        day_points = member_points_on(member=member, day=day, zone=zone) + own
        if day_points > limits.max_points_per_member_day:
            verdict.over(
                Reason.POINTS_PER_MEMBER_DAY,
                value=day_points,
                limit=limits.max_points_per_member_day,
            )
    if limits.max_events_per_member_hour is not None:
        events = member_events_in_hour_before(member=member, moment=occurred_at) + 1
        if events > limits.max_events_per_member_hour:
            verdict.over(
                Reason.EVENTS_PER_MEMBER_HOUR,
                value=events,
                limit=limits.max_events_per_member_hour,
            )
    if limits.max_rewards_per_device_day is not None and has_device_reward(awards):
        device, ip = device_of(attributes)
        if device or ip:
            rewards = device_rewards_on(day=day, device=device, ip=ip) + 1
            if rewards > limits.max_rewards_per_device_day:
                verdict.over(
                    Reason.REWARDS_PER_DEVICE_DAY,
                    value=rewards,
                    limit=limits.max_rewards_per_device_day,
                )
    return verdict


def log_device_reward(*, event: Event, awards, attributes: dict, day: date) -> None:
    """Count this event against its device and IP when it carries a referral or task reward."""
    if not has_device_reward(awards):
        return
    device, ip = device_of(attributes)
    if device or ip:
        DeviceReward.objects.create(event=event, day=day, device_id=device, ip=ip)
