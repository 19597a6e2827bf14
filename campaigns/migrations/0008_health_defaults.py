"""The seeds' health thresholds (seed 000 and 002) and the health settings row.

Reversible: going back deletes the rows this migration created (thresholds by metric).
"""

from decimal import Decimal

from django.db import migrations

DEFAULT_THRESHOLDS = [
    # metric, lower, upper, weeks running
    ("outstanding_points", None, Decimal("8000000"), 1),
    ("outstanding_per_member", None, Decimal("2000"), 1),
    ("points_used_wow_change", Decimal("-20"), Decimal("30"), 1),
    ("redemption_rate", Decimal("5"), None, 3),
    ("breakage", None, None, 1),
    ("cost_vs_budget", None, Decimal("110"), 1),
    ("cost_to_member_value", None, Decimal("0.15"), 1),
    ("inactive_30d_share", None, Decimal("15"), 1),
]


def create_defaults(apps, schema_editor):
    HealthThreshold = apps.get_model("campaigns", "HealthThreshold")
    HealthSettings = apps.get_model("campaigns", "HealthSettings")
    for metric, lower, upper, weeks in DEFAULT_THRESHOLDS:
        HealthThreshold.objects.get_or_create(
            metric=metric, defaults={"lower": lower, "upper": upper, "weeks_running": weeks}
        )
    HealthSettings.objects.get_or_create(pk=1)


def delete_defaults(apps, schema_editor):
    HealthThreshold = apps.get_model("campaigns", "HealthThreshold")
    HealthSettings = apps.get_model("campaigns", "HealthSettings")
    HealthThreshold.objects.filter(metric__in=[row[0] for row in DEFAULT_THRESHOLDS]).delete()
    HealthSettings.objects.filter(pk=1).delete()


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0007_health")]

    operations = [migrations.RunPython(create_defaults, delete_defaults)]
