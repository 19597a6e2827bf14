"""Rulebook invalidation: any change to what the engine reads bumps the rulebook's version.

Signals rather than service calls because rules are edited in admin forms, inlines and
many-to-many widgets as well as through services; whatever path saves them, the cached copies
in every process must go (campaigns.engine.rulebook).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from campaigns import engine
from campaigns.models import (
    Campaign,
    CheckInReward,
    EarningRule,
    EventType,
    ExcludedProduct,
    Experiment,
    ExperimentArm,
    MemberTask,
    ReferralSettings,
    RiskLimits,
    RuleRate,
)

RULEBOOK_MODELS = (
    Campaign,
    CheckInReward,
    EarningRule,
    EventType,
    ExcludedProduct,
    Experiment,
    ExperimentArm,
    MemberTask,
    ReferralSettings,
    RiskLimits,
    RuleRate,
)


def _changed(sender=None, **kwargs) -> None:
    engine.invalidate_rulebook()
    # Another request of this process may have rebuilt it from the uncommitted state's past.
    transaction.on_commit(engine.drop_local_rulebook)


def connect() -> None:
    for model in RULEBOOK_MODELS:
        post_save.connect(_changed, sender=model, dispatch_uid=f"rulebook-save-{model.__name__}")
        post_delete.connect(
            _changed, sender=model, dispatch_uid=f"rulebook-delete-{model.__name__}"
        )
    for model in (EarningRule, Campaign):
        for field in model._meta.many_to_many:
            m2m_changed.connect(
                _changed,
                sender=field.remote_field.through,
                dispatch_uid=f"rulebook-m2m-{model.__name__}-{field.name}",
            )
