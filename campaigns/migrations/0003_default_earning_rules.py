"""The default programme's purchase rule becomes an EarningRule (its rate taken from the
programme settings' former purchase rate), and the event types api.md names are configured."""

from django.db import migrations

EVENT_TYPES = [
    ("purchase", "购物 / Purchase"),
    ("registration", "注册 / Registration"),
    ("check_in", "签到 / Check-in"),
    ("review", "评价 / Review"),
    ("share", "分享 / Share"),
    ("birthday", "生日 / Birthday"),
    ("referral", "邀请 / Referral"),
]


def forwards(apps, schema_editor):
    EventType = apps.get_model("campaigns", "EventType")
    EarningRule = apps.get_model("campaigns", "EarningRule")
    ProgrammeSettings = apps.get_model("points", "ProgrammeSettings")
    RulebookState = apps.get_model("campaigns", "RulebookState")
    for code, name in EVENT_TYPES:
        EventType.objects.get_or_create(code=code, defaults={"name": name})
    programme = ProgrammeSettings.objects.filter(pk=1).first()
    rate = programme.purchase_points_per_unit if programme else 1
    EarningRule.objects.get_or_create(
        code="default-purchase",
        defaults={
            "name": "消费返积分 / Points on purchases",
            "event_type": "purchase",
            "status": "active",
            "priority": 10,
            "points_per_unit": rate,
        },
    )
    RulebookState.objects.get_or_create(pk=1)


def backwards(apps, schema_editor):
    # The rate goes back to the programme settings when the field returns (points 0005 reversed
    # first); rules and event types are dropped with their tables by 0002's reversal.
    EarningRule = apps.get_model("campaigns", "EarningRule")
    ProgrammeSettings = apps.get_model("points", "ProgrammeSettings")
    rule = EarningRule.objects.filter(code="default-purchase").first()
    if rule is not None and rule.points_per_unit is not None:
        ProgrammeSettings.objects.filter(pk=1).update(purchase_points_per_unit=rule.points_per_unit)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_earning_rules_campaigns_tasks_referrals"),
        ("points", "0004_points_refuse_function"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
