"""The back office's roles: one mapping from role to permissions, applied to auth groups.

The groups are data with stable English names (the codes below); the admin shows each with its
translated label. The mapping is the truth: `apply_roles()` (a data migration, and again after
every `migrate`) sets each group's permissions to exactly those listed, so a permission added to
a group by hand is taken away again: change the mapping instead. A permission listed here whose
model does not exist yet (another branch's earning rules, approvals ...) is skipped until it does.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"
MANAGE = (VIEW, ADD, CHANGE, DELETE)


def perms(model: str, *actions: str) -> list[str]:
    """perms("members.tier", VIEW, CHANGE) -> ["members.view_tier", "members.change_tier"]."""
    app_label, model_name = model.split(".")
    return [f"{app_label}.{action}_{model_name}" for action in actions]


@dataclass(frozen=True)
class Role:
    code: str
    label: str
    permissions: tuple[str, ...] = ()
    # Every permission of every model, present and future.
    all_permissions: bool = False


# What finance, auditors and risk reviewers read: the ledger, orders, the audit records.
_LEDGER_READ = [
    *perms("points.account", VIEW),
    *perms("points.entry", VIEW),
    *perms("points.lot", VIEW),
    *perms("points.allocation", VIEW),
    *perms("points.order", VIEW),
    *perms("points.partner", VIEW),
    *perms("members.member", VIEW),
    *perms("members.growthentry", VIEW),
    *perms("members.tierchange", VIEW),
    *perms("members.memberstatuschange", VIEW),
]
_AUDIT_READ = [
    *perms("loyalty_site.auditevent", VIEW),
    *perms("loyalty_site.apicallrecord", VIEW),
]

OPERATOR = Role(
    code="operator",
    label=_("Operator (运营)"),
    permissions=(
        # Members: edit (freeze, unfreeze, close are change actions), never delete; phone
        # numbers and emails stay masked (members.view_personal_data is not given).
        *perms("members.member", VIEW, ADD, CHANGE),
        *perms("members.memberstatuschange", VIEW),
        *perms("members.tierchange", VIEW),
        *perms("members.growthentry", VIEW),
        *perms("members.tier", *MANAGE),
        *perms("members.segment", *MANAGE),
        *perms("members.growtheventrule", *MANAGE),
        # Points: read the ledger; "Adjust points" is the account's change permission.
        *perms("points.account", VIEW, CHANGE),
        *perms("points.entry", VIEW),
        *perms("points.lot", VIEW),
        *perms("points.order", VIEW),
        *perms("points.partner", VIEW),
        # The mall's catalogue, stock, coupon codes and orders.
        *perms("rewards_mall.category", *MANAGE),
        *perms("rewards_mall.reward", *MANAGE),
        *perms("rewards_mall.tierprice", *MANAGE),
        *perms("rewards_mall.couponcode", VIEW, ADD, CHANGE),
        *perms("rewards_mall.redemption", VIEW, CHANGE),
        *perms("campaigns.event", VIEW),
        # Earning rules, campaigns and what the rule engine reads with them.
        *perms("campaigns.earningrule", *MANAGE),
        *perms("campaigns.rulerate", *MANAGE),
        *perms("campaigns.campaign", *MANAGE),
        *perms("campaigns.excludedproduct", *MANAGE),
        *perms("campaigns.eventtype", *MANAGE),
        *perms("campaigns.experiment", *MANAGE),
        *perms("campaigns.experimentarm", *MANAGE),
        *perms("campaigns.membertask", *MANAGE),
        *perms("campaigns.taskprogress", VIEW),
        *perms("campaigns.checkinreward", *MANAGE),
        *perms("campaigns.referralsettings", VIEW, CHANGE),
        *perms("campaigns.referralreward", VIEW),
        *perms("members.checkin", VIEW),
        # Maker-checker: a second operator approves (never the one who asked: the database
        # refuses it); bulk grants are uploaded, approved and resumed here.
        *perms("points.adjustmentrequest", VIEW),
        "points.approve_adjustmentrequest",
        *perms("points.bulkgrant", VIEW, ADD),
        "points.approve_bulkgrant",
        *perms("points.bulkgrantrow", VIEW),
        # Webhook endpoints of partners and their delivery log (redeliver is a change).
        *perms("points.webhookendpoint", VIEW, ADD, CHANGE),
        *perms("points.webhookdelivery", VIEW, CHANGE),
        # Expiry reminders: their templates and the delivery log.
        *perms("campaigns.remindersettings", VIEW, CHANGE),
        *perms("campaigns.messagetemplate", VIEW, CHANGE),
        *perms("campaigns.reminderdelivery", VIEW),
        # No settings: programme, growth and partner keys are the administrator's.
    ),
)

FINANCE = Role(
    code="finance",
    label=_("Finance (read-only)"),
    permissions=(
        *_LEDGER_READ,
        *_AUDIT_READ,
        *perms("points.programmesettings", VIEW),
        *perms("rewards_mall.reward", VIEW),
        *perms("rewards_mall.redemption", VIEW),
        *perms("members.tier", VIEW),
        *perms("campaigns.earningrule", VIEW),
        *perms("campaigns.campaign", VIEW),
        # Reports and their exports, the liability forecast, settlement statements (reading
        # only: closing a month is the administrator's points.add_settlementstatement).
        "points.view_finance_reports",
        *perms("points.reportexport", VIEW),
        *perms("points.settlementstatement", VIEW),
        *perms("points.settlementline", VIEW),
    ),
)

RISK_REVIEWER = Role(
    code="risk_reviewer",
    label=_("Risk reviewer"),
    permissions=(
        *_LEDGER_READ,
        *_AUDIT_READ,
        *perms("campaigns.event", VIEW),
        # Freezing and unfreezing a member are change actions on the member.
        *perms("members.member", CHANGE),
        # The review queue of events held by risk limits: approve or reject with a reason.
        "campaigns.review_event",
        *perms("campaigns.heldevent", VIEW),
        *perms("campaigns.risklimits", VIEW),
        *perms("points.issuancefreeze", VIEW),
    ),
)

ADMINISTRATOR = Role(code="administrator", label=_("Administrator"), all_permissions=True)

ROLES: tuple[Role, ...] = (OPERATOR, FINANCE, RISK_REVIEWER, ADMINISTRATOR)
ROLE_LABELS = {role.code: role.label for role in ROLES}


def apply_roles(*, group_model, permission_model, using: str = "default") -> None:
    """Create the role groups and set their permissions to the mapping (see the module doc).

    Takes the models as arguments so that a data migration can pass its historical ones.
    """
    available = {
        f"{app_label}.{codename}": pk
        for pk, app_label, codename in permission_model.objects.using(using).values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    for role in ROLES:
        group, _created = group_model.objects.using(using).get_or_create(name=role.code)
        if role.all_permissions:
            wanted = list(available.values())
        else:
            wanted = [available[name] for name in role.permissions if name in available]
        group.permissions.set(wanted)


def apply_roles_after_migrate(sender, using: str = "default", **kwargs) -> None:
    """post_migrate receiver: once the last app's permissions exist, apply the mapping."""
    from django.apps import apps
    from django.contrib.auth.models import Group, Permission

    with_models = [config for config in apps.get_app_configs() if config.models_module]
    if not with_models or sender.label != with_models[-1].label:
        return  # Django creates each app's permissions in its own post_migrate round
    apply_roles(group_model=Group, permission_model=Permission, using=using)
