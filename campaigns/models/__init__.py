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
from campaigns.models.reminders import (
    Channel,
    MessageTemplate,
    ReminderDelivery,
    ReminderSettings,
)
from campaigns.models.risk import DeviceReward, HeldEvent, RiskLimits
from campaigns.models.rules import (
    PURCHASE,
    Campaign,
    CheckInReward,
    EarningRule,
    EventType,
    ExcludedProduct,
    Experiment,
    ExperimentArm,
    MemberTask,
    ReferralReward,
    ReferralSettings,
    RulebookState,
    RuleRate,
    RuleUsage,
    TaskProgress,
)

__all__ = [
    "PURCHASE",
    "Campaign",
    "CheckInReward",
    "EarningRule",
    "Event",
    "EventType",
    "ExcludedProduct",
    "Experiment",
    "ExperimentArm",
    "MemberTask",
    "ReferralReward",
    "ReferralSettings",
    "RuleRate",
    "RuleUsage",
    "RulebookState",
    "TaskProgress",
]
__all__ += ["Channel", "MessageTemplate", "ReminderDelivery", "ReminderSettings"]
__all__ += [
    "DailyMerchantRollup",
    "DailyProgrammeRollup",
    "DailyTierSize",
    "HealthAlert",
    "HealthDashboard",
    "HealthMetric",
    "HealthMetricValue",
    "HealthSettings",
    "HealthThreshold",
]
__all__ += ["DeviceReward", "HeldEvent", "RiskLimits"]
