"""campaigns' models, one module per area (events, rules, reminders, health) so that each area
reads on its own; Django finds them through this package."""

from campaigns.models.events import Event
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
    "DeviceReward",
    "EarningRule",
    "Event",
    "EventType",
    "ExcludedProduct",
    "Experiment",
    "ExperimentArm",
    "HeldEvent",
    "MemberTask",
    "ReferralReward",
    "ReferralSettings",
    "RiskLimits",
    "RuleRate",
    "RuleUsage",
    "RulebookState",
    "TaskProgress",
]
