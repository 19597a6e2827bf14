"""campaigns' models, one module per area (events, rules, reminders, health) so that each area
reads on its own; Django finds them through this package."""

from campaigns.models.events import Event
from campaigns.models.health import (
    DailyMerchantRollup,
    DailyProgrammeRollup,
    DailyTierSize,
    HealthAlert,
    HealthDashboard,
    HealthMetric,
    HealthMetricValue,
    HealthSettings,
    HealthThreshold,
)

__all__ = [
    "DailyMerchantRollup",
    "DailyProgrammeRollup",
    "DailyTierSize",
    "Event",
    "HealthAlert",
    "HealthDashboard",
    "HealthMetric",
    "HealthMetricValue",
    "HealthSettings",
    "HealthThreshold",
]
